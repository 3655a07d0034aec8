"""One simulation: the SimPy environment, random streams, recorder, cluster and scheduler.

Everything a run touches hangs off one :class:`Simulation` (DESIGN.md convention 1): two
simulations in one process never interfere.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Iterator
from typing import Any

import pandas as pd
import simpy

from simcluster.engine.cluster import ClusterState, InvariantViolation
from simcluster.engine.failures import FailureManager
from simcluster.engine.network import Network
from simcluster.engine.progress import Progress
from simcluster.engine.scheduler import Scheduler
from simcluster.engine.services import Services
from simcluster.engine.speeds import relative_speeds
from simcluster.engine.training import PerfModel, TrainingJob
from simcluster.errors import UserError
from simcluster.hardware import GPUS, LINK_EFFICIENCY, STORAGE, NICSpec
from simcluster.metrics.events import EventLog
from simcluster.metrics.records import Recorder
from simcluster.metrics.results import Results, package_versions
from simcluster.metrics.summary import STUCK_REASON
from simcluster.perf.models import MODELS
from simcluster.policies.admission import ADMISSION_POLICIES
from simcluster.policies.placement import PLACEMENT_POLICIES
from simcluster.policies.queue import QUEUE_POLICIES
from simcluster.registry import Registry
from simcluster.rng import Streams
from simcluster.routing import Router
from simcluster.scenario import ClusterConfig, Scenario
from simcluster.topology import Topology, gpu_cluster, pool_spec
from simcluster.workload.generators import job_stream
from simcluster.workload.jobs import JobSpec
from simcluster.workload.traces import TraceReport

__all__ = ["WALL_CHECK_EVENTS", "Simulation", "build_topology", "make_policy"]

WALL_CHECK_EVENTS = 2048  # events between wall-clock checks under a max_wall_s limit


def build_topology(cluster: ClusterConfig, nic: NICSpec | None = None) -> Topology:
    """The topology a scenario's ``[cluster]`` table describes (``nic``: compute NIC override).

    Pools (``[[cluster.pools]]``) share one fabric, numbered pool by pool."""
    node_pools = cluster.node_pools()
    pools = [(pool_spec(pool), pool.nodes) for pool in node_pools]
    return gpu_cluster(pools, fabric=cluster.fabric, labels=[p.label for p in node_pools],
                       nodes_per_rack=cluster.nodes_per_rack,
                       oversubscription=cluster.oversubscription,
                       storage_servers=cluster.storage.servers,
                       storage=STORAGE.get(cluster.storage.kind), nic=nic)


def make_policy(registry: Registry, name: str, params: dict[str, Any], where: str,
                streams: Streams | None = None) -> Any:
    """Instantiate a registered policy with its parameters; bad parameters are user errors.

    A policy whose constructor takes ``streams`` gets the simulation's random streams, one that
    takes ``rng`` gets the named stream ``policy/<where>`` (policies never seed themselves).
    """
    cls = registry.get(name, where)
    accepts = inspect.signature(cls).parameters
    given = dict(params)
    for injected in ("streams", "rng"):
        if injected in given:
            raise UserError(f"{where}: {injected!r} is set by the simulation, not a parameter")
    if streams is not None and "streams" in accepts:
        given["streams"] = streams
    if streams is not None and "rng" in accepts:
        given["rng"] = streams.get(f"policy/{where}")
    try:
        return cls(**given)
    except TypeError as err:
        raise UserError(f"{where}: bad parameters {params!r} for {registry.kind} {name!r}: "
                        f"{err}") from None


class Simulation:
    """A scenario made runnable.

    Args:
        scenario: the validated scenario.
        seed: root seed; the scenario's ``run.seed`` if None.
        check: verify allocation invariants after every scheduling pass.
    """

    def __init__(self, scenario: Scenario, seed: int | None = None, check: bool = False,
                 trace_events: bool = False) -> None:
        self.scenario = scenario
        self.events = EventLog() if trace_events else None  # issue 10: scheduling decisions
        self.seed = scenario.run.seed if seed is None else int(seed)
        self.check = check
        self._checked_at = 0.0
        self.env = simpy.Environment()
        self.streams = Streams(self.seed)
        self.recorder = Recorder()
        self.topology = build_topology(scenario.cluster)
        self.router = Router(self.topology, seed=self.seed)
        self.cluster = ClusterState(self.topology, clock=lambda: self.env.now)
        net = scenario.network
        self.link_efficiency = {**LINK_EFFICIENCY, **net.efficiency}
        self.network = Network(self.env, self.topology, self.router, self.link_efficiency,
                               net.solver)
        self.network.check_each_solve = check
        self.perf = PerfModel(self.topology, self.router, scenario.run.dtype,
                              self.link_efficiency, net.algorithm, net.nvls)
        policy = scenario.policy
        self.scheduler = Scheduler(
            self,
            make_policy(QUEUE_POLICIES, policy.queue, policy.queue_params, "policy.queue",
                        self.streams),
            make_policy(PLACEMENT_POLICIES, policy.placement, policy.placement_params,
                        "policy.placement", self.streams),
            make_policy(ADMISSION_POLICIES, policy.admission, policy.admission_params,
                        "policy.admission", self.streams),
            checkpoint_on_preempt=policy.preemption.checkpoint,
            restart_s=policy.preemption.restart,
            speeds=relative_speeds(self.topology, self.perf, scenario.cluster.throughputs),
        )
        # issue 8: failure, repair and maintenance processes; checkpoint policy
        self.failures = (FailureManager(self, scenario.failures)
                         if scenario.failures is not None else None)
        cost = scenario.cluster.cost
        # per GPU type: (idle W, max W, $ per GPU-hour, purchase $); overrides apply to all
        self._gpu_figures = {
            name: (g.idle_power_w, g.max_power_w, cost.hourly_usd or g.hourly_usd,
                   cost.gpu_price_usd or g.price_usd)
            for name in {p.gpu for p in scenario.cluster.node_pools()}
            for g in (GPUS.get(name),)}
        self._job_cost: dict[int, float] = {}  # on-demand $ charged so far, by job id
        self._jobs: dict[int, TrainingJob] = {}  # jobs not yet reduced to a record row
        # inference services (issue 7): replicas, routing, autoscaling; None without services
        self.services = Services(self) if scenario.services else None
        self.note_state()

    # building jobs -----------------------------------------------------------------------
    def make_job(self, spec: JobSpec) -> TrainingJob:
        """Turn a submitted spec into a run-time job: work in iterations, checkpoint period."""
        model, unfit = self.perf.layout(MODELS.get(spec.model), spec)  # issue 4: DP/TP/PP
        run = self.scenario.run
        fidelity = spec.fidelity or run.fidelity
        if unfit is not None:  # rejected at submit, with what to change
            job = TrainingJob(spec, model, spec.iterations or 1, 0, None, fidelity)
            job.state, job.reason = "rejected", unfit
            return job
        interval = self.scenario.workload.checkpoint_interval
        if self.cluster.never_fits(spec.request) is not None:
            return TrainingJob(spec, model, spec.iterations or 1, 0, None, fidelity)
        share = spec.request.gpus if spec.request.fractional else 1.0
        reference = self.perf.iteration(model, self.perf.reference_gpus(spec), share).total_s
        if spec.iterations is not None:
            iterations = spec.iterations
        else:
            iterations = max(1, round(spec.run_time_s / reference))
        fixed = None
        if fidelity == "duration":
            fixed = spec.run_time_s / iterations if spec.run_time_s is not None else reference
            reference = fixed
        # a zero-length job (run_time 0 at duration fidelity) needs no checkpoint
        every = 0 if interval <= 0 or reference <= 0 else max(1, round(interval / reference))
        return TrainingJob(spec, model, iterations, every, fixed, fidelity)

    # bookkeeping called by the scheduler ---------------------------------------------------
    def note_state(self) -> None:
        """Record the cluster state now (after any allocation change)."""
        s = self.scheduler if hasattr(self, "scheduler") else None
        running = len(s.running) if s else 0
        if s and not running:
            s.computing = s.busy_w = 0.0  # drop float residue when the cluster empties
        self.recorder.utilization(self.env.now, self.cluster.allocated,
                                  s.computing if s else 0.0, running, s.queued if s else 0,
                                  s.fragmented if s else 0.0, s.busy_w if s else 0.0)
        if self.check:
            self.check_invariants()

    def check_invariants(self) -> None:
        """``--check``: no GPU, CPU or memory over-committed; link rates within capacity and
        bytes accounted; time monotone; every job in exactly one state.

        Raises:
            InvariantViolation: naming the simulated time and what broke.
        """
        now = self.env.now
        if now < self._checked_at:
            raise InvariantViolation(f"time went backwards: {now} after {self._checked_at}")
        self._checked_at = now
        self.cluster.check()
        self.network.check()
        s = getattr(self, "scheduler", None)
        running = s.running if s else {}
        for job in self._jobs.values():
            if job.state not in ("queued", "running"):
                raise InvariantViolation(f"t={now}: job {job.spec.id} is {job.state!r} but "
                                         "not yet reduced to its row")
            if (job.state == "running") != (job.spec.id in running):
                raise InvariantViolation(f"t={now}: job {job.spec.id} is {job.state!r} but "
                                         f"{'not ' if job.spec.id not in running else ''}"
                                         "in the scheduler's running set")

    def busy_power(self, job: TrainingJob) -> float:
        """Power above idle (W) of a running job's GPUs while it computes, time-averaged."""
        alloc = job.allocation
        idle_w, max_w, _, _ = self._gpu_figures[self.topology.gpu_type(alloc.gpus[0])]
        return alloc.gpu_equivalents * job.timing.compute_fraction * (max_w - idle_w)

    def charge(self, job: TrainingJob) -> None:
        """Charge a running job's GPU time and energy up to now."""
        alloc = job.allocation
        gpu = self.topology.gpu_type(alloc.gpus[0]) if alloc is not None and alloc.gpus else None
        idle_w, max_w, hourly, _ = self._gpu_figures.get(gpu, (0.0, 0.0, 0.0, 0.0))
        before = job.gpu_seconds
        job.account(self.env.now, idle_w, max_w)
        cost = (job.gpu_seconds - before) / 3600.0 * hourly
        self._job_cost[job.spec.id] = self._job_cost.get(job.spec.id, 0.0) + cost

    def record_job(self, job: TrainingJob) -> None:
        """Reduce a job to its row (at its end, or at the horizon)."""
        self._jobs.pop(job.spec.id, None)
        if self.progress is not None:  # issue 6: the progress line, from this event
            self._recorded += 1
            self.progress.tick(self.env.now, self._recorded, self._events)
        start, end, submit = job.first_start, job.end, job.spec.submit_s
        alloc = job.allocation
        self.recorder.job(
            job_id=job.spec.id, tenant=job.spec.tenant, model=job.spec.model, state=job.state,
            reason=job.reason, submit_s=submit, start_s=start, end_s=end,
            wait_s=None if start is None else start - submit,
            run_s=None if start is None or end is None else end - start,
            jct_s=None if end is None else end - submit, gpus=job.spec.request.gpus,
            nodes=len(alloc.hosts) if alloc else 0, iterations=job.iterations,
            iterations_done=job.kept, iterations_lost=job.lost, preemptions=job.preemptions,
            gpu_hours=job.gpu_seconds / 3600.0,
            energy_kwh=job.energy_j * self.scenario.cluster.cost.pue / 3.6e6,
            cost_usd=self._job_cost.pop(job.spec.id, 0.0),
            network_wait_s=job.network_wait_s, storage_wait_s=job.storage_wait_s,
            **self.scheduler.job_columns(job),
        )

    # running -----------------------------------------------------------------------------
    def _arrivals(self, jobs: Iterator[JobSpec]):
        for spec in jobs:
            if spec.submit_s > self.env.now:
                yield self.env.timeout(spec.submit_s - self.env.now)
            job = self.make_job(spec)
            if job.state == "rejected":  # its layout cannot run (issue 4)
                self.record_job(job)
                continue
            self._jobs[spec.id] = job
            self.scheduler.submit(job)

    progress: Progress | None = None  # issue 6: a progress line on a terminal
    _recorded = 0  # jobs reduced to rows, for the progress line

    def _events(self) -> int:
        """SimPy events scheduled so far (the environment's event-id counter; taking one id
        only leaves a gap in the tie-break order, it never reorders events)."""
        return next(self.env._eid)

    def run(self, max_wall_s: float | None = None,
            progress: Progress | None = None) -> Results:
        """Run to the horizon (or until no event is left) and return the results.

        Args:
            max_wall_s: wall-clock limit (s). When it passes, the run stops after the current
                simulated instant; jobs still running or queued are recorded as at a horizon
                and ``meta["partial"]`` is True. None: no limit.
        """
        if max_wall_s is not None and not max_wall_s > 0:
            raise UserError(f"max_wall_s: expected a positive number of seconds, got "
                            f"{max_wall_s!r}")
        horizon = self.scenario.run.horizon
        self.progress = progress
        self.trace_report = TraceReport()  # issue 6: rows read, skipped, filtered
        stream = job_stream(self.scenario.workload, self.streams, horizon, self.trace_report)
        arrivals = self.env.process(self._arrivals(stream))
        if self.services is not None:  # issue 7
            self.services.start()
        if self.failures is not None:
            self.failures.start(lambda: arrivals.is_alive or bool(self._jobs)
                                or (self.services is not None and self.services.busy()))
        started = time.perf_counter()
        partial = False
        if max_wall_s is None:
            self.env.run(until=horizon)
        else:
            partial = self._run_until_wall(horizon, started + max_wall_s)
        end = horizon if horizon is not None and not partial else self.env.now
        stuck = [] if partial or arrivals.is_alive else self._diagnose_stuck()
        for job in list(self._jobs.values()):
            if job.state == "running":
                self.charge(job)
            self.record_job(job)
        serving = {} if self.services is None else dict(zip(
            ("requests", "replicas", "replica_counts"), self.services.finish(end), strict=True))
        links = pd.DataFrame(self.network.link_table(end),
                             columns=["link", "kind", "bytes", "utilization"])
        meta = self._meta(end, time.perf_counter() - started)
        meta["max_link_util"] = float(links["utilization"].max()) if len(links) else 0.0
        meta["network_solves"] = self.network.solves
        meta["partial"] = partial
        meta["jobs_stuck"] = len(stuck)
        meta["versions"] = package_versions()
        if self.scenario.workload.trace is not None:  # issue 6: trace rows read/skipped
            meta.update(self.trace_report.meta())
        if progress is not None:
            progress.close()
        if self.failures is not None:
            meta.update(self.failures.meta())
        return Results(
            jobs=self.recorder.jobs_frame(), utilization=self.recorder.utilization_frame(),
            scenario=self.scenario.model_dump(mode="json"), seed=self.seed,
            meta=meta, links=links, **serving,
            events=self.events.frame() if self.events is not None else pd.DataFrame(),
        )

    def _run_until_wall(self, horizon: float | None, deadline: float) -> bool:
        """Step the environment as ``env.run(until=horizon)`` would, checking the wall clock
        (``time.perf_counter``) every :data:`WALL_CHECK_EVENTS` events; returns True if the
        deadline stopped the run (after finishing the simulated instant it was in)."""
        env, limit = self.env, math.inf if horizon is None else horizon
        steps = 0
        while env.peek() < limit:
            env.step()
            steps += 1
            if steps % WALL_CHECK_EVENTS == 0 and time.perf_counter() >= deadline:
                now = env.now
                while env.peek() == now:  # leave no instant half-processed
                    env.step()
                return True
        if horizon is not None:
            env.run(until=horizon)  # no event is left before it: only advances the clock
        return False

    def _diagnose_stuck(self) -> list[TrainingJob]:
        """Jobs queued when every job has arrived, nothing runs and no scheduler timer is set:
        the queue stopped moving, and nothing will ever start them (at the horizon too, if the
        events ran out before it). Marks their ``reason`` and returns them."""
        s = self.scheduler
        if s.running or not s.queued or s._timer_at is not None or s._pass_pending:
            return []
        policy = self.scenario.policy
        stuck = s.pending_jobs()
        for job in stuck:
            job.reason = (f"{STUCK_REASON}: queue policy {policy.queue!r} with placement "
                          f"policy {policy.placement!r} could not place it on an idle cluster")
        return stuck

    def _meta(self, end: float, wall_s: float) -> dict[str, Any]:
        """Cluster constants for the summary. Per-GPU figures are means over the GPUs of all
        pools, so ``gpus x figure`` is the pools' sum (idle power, hourly price, host power)."""
        cluster, topo = self.scenario.cluster, self.topology
        gpus, hosts = len(topo.gpus), len(topo.hosts)
        per_gpu = [self._gpu_figures[topo.gpu_type(g)] for g in range(gpus)]
        idle, peak, hourly, price = (sum(f[i] for f in per_gpu) for i in range(4))
        host_w = sum(spec.host_power_w for spec in topo.host_specs)
        return {
            "gpus": gpus, "hosts": hosts, "gpu_idle_w": idle / gpus,
            "gpu_max_w": peak / gpus, "host_w": host_w / hosts, "pue": cluster.cost.pue,
            "hourly_usd": hourly / gpus,
            "capex_usd": price + hosts * cluster.cost.node_price_usd,
            "lifetime_s": cluster.cost.lifetime,
            "usd_per_kwh": cluster.cost.electricity_usd_per_kwh,
            "end_s": end, "warmup_s": self.scenario.run.warmup, "wall_s": wall_s,
        }

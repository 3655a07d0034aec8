"""Failures, repairs, maintenance windows and checkpoint planning (issue 8).

Failure processes (``[[failures.processes]]``), one per component kind:

* **exponential**: the N components of a kind fail independently at rate λ each, so the kind's
  failures form one Poisson process of rate N·λ. We draw the next failure of the kind as one
  exponential of rate N·λ and pick the component uniformly (superposition; one SimPy timeout per
  kind, never a poll). A pick that lands on a component that is already down is discarded
  (Poisson thinning), which gives exactly the rate (N − down)·λ of the components that are up.
* **weibull**: one renewal process per component (shape k, scale M / Γ(1 + 1/k)); fine for
  small N.

What a failure takes: ``gpu`` its GPU; ``host`` the host's GPUs; ``nic`` the host's GPUs (a
job cannot run with a lost rail); ``link`` (any network cable): a NIC's cable its host, a
switch-to-switch cable nothing when the router can go around it (the rings of running coarse
jobs move to new routes), else the hosts below its leaf; ``switch`` (a leaf) every host of its
rack; ``scope = "host" | "rack"`` widens any failure to its host or rack. With hot spares a
failed node is swapped for a healthy spare at once.
A ``storage`` server failure aborts the checkpoint writes in progress (the jobs writing stop
and lose the segment); the parallel filesystem is assumed to keep serving from its redundancy.
Failed GPUs are withheld from placement (:meth:`ClusterState.fail`) until repaired.

Jobs on a failed component stop (``Scheduler.stop(job, "failure")``): the work since their last
durable checkpoint is lost, they re-queue and pay the restart cost. Maintenance windows drain
hosts: their jobs stop as preempted (checkpointing first), the hosts come back after the window.

Each job keeps a :class:`~simcluster.engine.ledger.Ledger` of the wall time it held its GPUs,
split into useful iterations, lost (redone) work, blocking checkpoint time, restart time and
stalls.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from simcluster.engine.ledger import ledger
from simcluster.engine.training import Timing, TrainingJob
from simcluster.errors import UserError
from simcluster.policies.checkpoint import CHECKPOINT_POLICIES, CheckpointContext
from simcluster.scenario_failures import FailureProcess, FailuresConfig
from simcluster.topology import pcie_bandwidth
from simcluster.workload.distributions import sample

__all__ = ["FailureManager"]

_DAY = 86400.0


class _Kind:
    """One failure process resolved against the topology."""

    def __init__(self, spec: FailureProcess, topo: Any) -> None:
        self.spec = spec
        hosts = range(len(topo.hosts))
        kind = spec.component
        # component index -> hosts it takes down
        if kind == "gpu":
            self.hosts_of = [(int(h),) for h in topo.gpu_host]
        elif kind == "host":
            self.hosts_of = [(h,) for h in hosts]
        elif kind == "nic":
            self.hosts_of = [(h,) for h in hosts for _ in range(topo.host_specs[h].nics)]
        elif kind == "link":  # every network cable; a NIC's cable takes its host
            host_index = {name: h for h, name in enumerate(topo.hosts)}
            self.links = sorted({tuple(sorted((u, v))) for u, v, d in topo.graph.edges(data=True)
                                 if d["kind"] == "network"})
            self.hosts_of = []
            self.under: dict[int, tuple[int, ...]] = {}  # switch cables: hosts below them
            graph = topo.graph
            for c, (u, v) in enumerate(self.links):
                owner = [host_index.get(x.rsplit("/", 1)[0]) for x in (u, v)
                         if graph.nodes[x]["kind"] == "nic"]
                self.hosts_of.append(tuple(h for h in owner if h is not None))
                if not owner:
                    self.under[c] = tuple(sorted(
                        {host_index[n.rsplit("/", 1)[0]] for x in (u, v)
                         if graph.nodes[x]["kind"] == "leaf" for n in graph.successors(x)
                         if graph.nodes[n]["kind"] == "nic"
                         and n.rsplit("/", 1)[0] in host_index}))
        elif kind == "switch":
            self.hosts_of = [tuple(h for h in hosts if topo.host_rack[h] == r)
                             for r in range(topo.num_racks)]
        else:  # storage
            self.hosts_of = [() for _ in topo.storage]
        self.n = len(self.hosts_of)
        per_node = self.n / max(len(topo.hosts), 1)
        if spec.mtbf is not None:
            self.mtbf = spec.mtbf
        else:  # failures per 1,000 node-days of the kind -> per component
            rate = spec.rate_per_1000_node_days / (1000.0 * _DAY)  # per node
            self.mtbf = per_node / rate if per_node > 0 else math.inf
        self.down: Counter = Counter()

    def gpus(self, index: int, topo: Any) -> list[int]:
        """GPUs a failure of component ``index`` takes."""
        spec = self.spec
        hosts = self.hosts_of[index]
        if spec.component == "gpu" and spec.scope == "component":
            return [index]
        if spec.scope == "rack" and hosts:
            racks = {int(topo.host_rack[h]) for h in hosts}
            hosts = tuple(h for h in range(len(topo.hosts)) if int(topo.host_rack[h]) in racks)
        return [g for h in hosts for g in topo.gpus_of_host(h)]

    def exposure(self, job_gpus: int, hosts: Iterable[int], topo: Any) -> int:
        """Components of this kind whose failure stops a job on ``hosts``."""
        spec, hosts = self.spec, set(hosts)
        if spec.component == "storage":
            return 0
        if spec.component == "switch" or spec.scope == "rack":
            racks = {int(topo.host_rack[h]) for h in hosts}
            return sum(1 for hs in self.hosts_of if hs and int(topo.host_rack[hs[0]]) in racks)
        if spec.component == "gpu" and spec.scope == "component":
            return job_gpus
        return sum(1 for hs in self.hosts_of if hs and hs[0] in hosts)


class FailureManager:
    """Failure, repair and maintenance processes of one simulation, and checkpoint planning.

    Args:
        sim: the simulation (environment, topology, cluster, scheduler, streams).
        config: the scenario's ``[failures]`` table.
    """

    def __init__(self, sim: Any, config: FailuresConfig) -> None:
        self.sim, self.config = sim, config
        topo = sim.topology
        self.kinds = [_Kind(p, topo) for p in config.processes]
        ck = config.checkpoint
        self.policy = CHECKPOINT_POLICIES.get(ck.policy, "failures.checkpoint.policy")
        try:
            self.policy = self.policy(**ck.params)
        except TypeError as err:
            raise UserError(f"failures.checkpoint.params: bad parameters {ck.params!r} for "
                            f"checkpoint policy {ck.policy!r}: {err}") from None
        self.counts: Counter = Counter()  # failures by component kind
        self.events: list[tuple[float, str, int]] = []
        self.trace = _read_trace(config.trace, topo) if config.trace else []
        self.live: Callable[[], bool] = lambda: True
        self._slow: dict[int, list[float]] = {}  # GPU -> speeds of its straggler episodes
        self.rerouted = 0  # coarse jobs moved onto new routes after link failures
        self.swaps = 0  # failed nodes swapped for a hot spare
        n_hosts = len(topo.hosts)
        if config.hot_spares >= n_hosts:
            raise UserError(f"failures.hot_spares: {config.hot_spares} spare nodes leave none of "
                            f"the cluster's {n_hosts} to run on")
        self.spares = list(range(n_hosts - config.hot_spares, n_hosts))
        for h in self.spares:  # held out of placement (one reservation per GPU)
            sim.cluster.fail(topo.gpus_of_host(h))
        self.straggles: list[tuple[float, float, str, int]] = []  # (start, end, kind, index)

    # processes -------------------------------------------------------------------------
    def start(self, live: Callable[[], bool] = lambda: True) -> None:
        """Start the failure, trace and maintenance processes; random failures stop once
        ``live()`` is false (every job has arrived and ended), so a run without a horizon
        ends."""
        env = self.sim.env
        self.live = live
        for i, kind in enumerate(self.kinds):
            if kind.n == 0 or not math.isfinite(kind.mtbf):
                continue
            if kind.spec.distribution == "exponential" or kind.spec.shape == 1.0:
                env.process(self._superposed(i, kind))
            else:
                for c in range(kind.n):
                    env.process(self._renewal(i, kind, c))
        if self.trace:
            env.process(self._replay())
        for w, window in enumerate(self.config.maintenance):
            env.process(self._maintenance(w, window))
        for i, spec in enumerate(self.config.stragglers):
            env.process(self._stragglers(i, spec))

    # stragglers ----------------------------------------------------------------------------
    def _stragglers(self, i: int, spec: Any):
        """Superposed episodes of one straggler kind (as :meth:`_superposed`); a component
        already slow from this kind does not start a second episode (thinning)."""
        env, topo = self.sim.env, self.sim.topology
        rng = self.sim.streams.get(f"stragglers/{i}/{spec.component}")
        n = len(topo.gpus) if spec.component == "gpu" else len(topo.hosts)
        active: set[int] = set()
        while self.live():
            yield env.timeout(rng.exponential(spec.mtbf / n))
            c = int(rng.integers(n))
            if c in active or not self.live():
                continue
            active.add(c)
            gpus = [c] if spec.component == "gpu" else list(topo.gpus_of_host(c))
            length = sample(spec.duration, rng)
            self.straggles.append((env.now, env.now + length, spec.component, c))
            self._slow_down(gpus, spec.speed, +1)
            env.timeout(length).callbacks.append(
                lambda _e, g=gpus, c=c, v=spec.speed: (active.discard(c),
                                                       self._slow_down(g, v, -1)))

    def _slow_down(self, gpus: list[int], speed: float, sign: int) -> None:
        for g in gpus:
            speeds = self._slow.setdefault(g, [])
            if sign > 0:
                speeds.append(speed)
            else:
                speeds.remove(speed)
                if not speeds:
                    del self._slow[g]
        hit = set(gpus)
        for job in self.sim.scheduler.running.values():
            if job.allocation is not None and not hit.isdisjoint(job.allocation.gpus):
                self._set_straggle(job)

    def _set_straggle(self, job: TrainingJob) -> None:
        led = ledger(self.sim, job)
        slowest = min((min(self._slow[g]) for g in job.allocation.gpus if g in self._slow),
                      default=1.0)
        factor = 1.0 / slowest
        if factor != led.straggle:
            led.straggle = factor
            if job.wake is not None and not job.wake.triggered:
                job.wake.succeed()

    def _superposed(self, i: int, kind: _Kind):
        env = self.sim.env
        rng = self.sim.streams.get(f"failures/{i}/{kind.spec.component}")
        rate = kind.n / kind.mtbf
        while self.live():
            yield env.timeout(rng.exponential(1.0 / rate))
            if not self.live():
                return
            c = int(rng.integers(kind.n))
            if kind.down[c]:
                continue  # thinning: a component that is down cannot fail again
            self._fail(kind, c, sample(kind.spec.repair, rng), track=True)

    def _renewal(self, i: int, kind: _Kind, c: int):
        env = self.sim.env
        rng = self.sim.streams.for_entity(f"failures/{i}/{kind.spec.component}", c)
        k = kind.spec.shape
        scale = kind.mtbf / math.gamma(1.0 + 1.0 / k)
        while self.live():
            yield env.timeout(scale * rng.weibull(k))
            if not self.live():
                return
            repair = sample(kind.spec.repair, rng)
            self._fail(kind, c, repair, track=True)
            yield env.timeout(repair)

    def _replay(self):
        env = self.sim.env
        for when, kind, c, repair in self.trace:
            if when > env.now:
                yield env.timeout(when - env.now)
            self._fail(kind, c, repair, track=False)

    def _maintenance(self, w: int, window: Any):
        env, topo = self.sim.env, self.sim.topology
        bad = [h for h in window.hosts if h >= len(topo.hosts)]
        if bad:
            raise UserError(f"failures.maintenance[{w}].hosts: host {bad[0]} does not exist "
                            f"(expected 0..{len(topo.hosts) - 1})")
        gpus = [g for h in window.hosts for g in topo.gpus_of_host(h)]
        at = window.start
        while True:
            if at > env.now:
                yield env.timeout(at - env.now)
            self._take(gpus, "preempt")
            yield env.timeout(window.duration)
            self._give(gpus)
            if window.every is None or not self.live():
                return
            at += window.every

    # mechanism -------------------------------------------------------------------------
    def _fail(self, kind: _Kind, c: int, repair_s: float, track: bool) -> None:
        sim = self.sim
        self.counts[kind.spec.component] += 1
        self.events.append((sim.env.now, kind.spec.component, c))
        if kind.spec.component == "storage":
            for job in list(sim.scheduler.running.values()):
                if ledger(sim, job).writing:
                    self._stop(job)
            return
        if kind.spec.component == "link" and not kind.hosts_of[c] \
                and kind.spec.scope == "component" and self._route_around(kind.links[c]):
            if track:
                kind.down[c] += 1
            sim.env.timeout(repair_s).callbacks.append(
                lambda _e: self._link_repaired(kind, c, track))
            return
        gpus = kind.gpus(c, sim.topology)
        if kind.spec.component == "link" and not kind.hosts_of[c]:
            # a switch cable with no way around: the hosts below it are cut off
            gpus = [g for h in kind.under.get(c, ()) for g in sim.topology.gpus_of_host(h)]
        if track:
            kind.down[c] += 1
        self._take(gpus, "failure")
        sim.env.timeout(repair_s).callbacks.append(
            lambda _e: self._repaired(kind, c, gpus, track))
        if self.spares:
            self._swap({int(sim.topology.gpu_host[g]) for g in gpus})

    def _swap(self, hosts: set[int]) -> None:
        """Hot spares: each failed node not itself a spare is pulled (its jobs stop) and joins
        the spares; a healthy spare (no failure besides its reservation) takes its place."""
        cluster, topo = self.sim.cluster, self.sim.topology
        for h in sorted(hosts):
            if h in self.spares:
                continue
            spare = next((s for s in self.spares
                          if all(cluster._down[g] == 1 for g in topo.gpus_of_host(s))), None)
            if spare is None:
                return
            self.spares.remove(spare)
            self._take(list(topo.gpus_of_host(h)), "failure")  # the pulled node's reservation
            self.spares.append(h)
            self._give(list(topo.gpus_of_host(spare)))
            self.swaps += 1

    def _route_around(self, link: tuple[str, str]) -> bool:
        """A switch-to-switch cable failed: if both switches keep another uplink, mark it down
        in the router and move the rings of running coarse jobs that crossed it onto new
        routes (the fluid solver re-solves them). Transfers already in flight (checkpoints,
        data reads, iteration-fidelity collectives) finish on their route. Returns False when
        the topology offers no way around it."""
        sim = self.sim
        graph = sim.topology.graph
        u, v = link
        for a, b in ((u, v), (v, u)):
            others = [w for w in graph.successors(a) if w != b
                      and graph.nodes[w]["kind"] == graph.nodes[b]["kind"]
                      and (a, w) not in sim.router.down]
            if not others:
                return False
        edges = [(u, v), (v, u)]
        sim.router.set_down(edges, True)
        self._reroute({sim.network.link_index[e] for e in edges})
        return True

    def _link_repaired(self, kind: _Kind, c: int, track: bool) -> None:
        if track:
            kind.down[c] -= 1
        u, v = kind.links[c]
        self.sim.router.set_down([(u, v), (v, u)], False)

    def _reroute(self, links: set[int]) -> None:
        for job in list(self.sim.scheduler.running.values()):
            load = ledger(self.sim, job).load
            if load is not None and load.uses(links):
                load.reroute()
                self.rerouted += 1

    def _repaired(self, kind: _Kind, c: int, gpus: list[int], track: bool) -> None:
        if track:
            kind.down[c] -= 1
        self._give(gpus)

    def _take(self, gpus: list[int], cause: str) -> None:
        sim = self.sim
        sim.cluster.fail(gpus)
        hit = set(gpus)
        # inference replicas on the GPUs: the services engine drops or re-routes their
        # requests when it offers a ``fail(gpus, cause)`` hook (issue 7 integration point)
        on_fail = getattr(getattr(sim, "services", None), "fail", None)
        if on_fail is not None:
            on_fail(gpus, cause)
        for job in list(sim.scheduler.running.values()):
            if job.allocation is not None and not hit.isdisjoint(job.allocation.gpus):
                if cause == "failure":
                    self._stop(job)
                else:
                    sim.scheduler.stop(job, "preempt", why="maintenance drains its hosts")
        sim.note_state()

    def _stop(self, job: TrainingJob) -> None:
        sim = self.sim
        handle = sim.scheduler.handles.get(job.spec.id)
        if handle is None or handle.stopping:
            return
        led = ledger(sim, job)
        led.failures += 1
        if led.failed_at is None:
            led.failed_at = sim.env.now
        sim.scheduler.stop(job, "failure")

    def _give(self, gpus: list[int]) -> None:
        self.sim.cluster.repair(gpus)
        self.sim.scheduler._request_pass()
        self.sim.note_state()

    # checkpoint planning -----------------------------------------------------------------
    def job_mtbf(self, job: TrainingJob) -> float:
        """Mean time between failures of a job on its current placement (s)."""
        return self.placement_mtbf(job.allocation.gpus)

    def placement_mtbf(self, gpus: Iterable[int]) -> float:
        """Mean time between failures (s) of a job holding ``gpus``: 1 / the summed rates of
        every component whose failure would stop it (mean time, for Weibull processes).

        >>> import simcluster
        >>> from simcluster.engine.simulation import Simulation
        >>> s = simcluster.scenario_from_dict({"cluster": {"nodes": 2},
        ...     "workload": {"jobs": [{"model": "mlp", "gpus": 8, "run_time": "1h"}]},
        ...     "failures": {"processes": [{"component": "gpu", "mtbf": "800h"}]}})
        >>> Simulation(s).failures.placement_mtbf(range(8)) / 3600
        100.0
        """
        gpus = list(gpus)
        topo = self.sim.topology
        hosts = sorted({int(topo.gpu_host[g]) for g in gpus})
        rate = sum(k.exposure(len(gpus), hosts, topo) / k.mtbf
                   for k in self.kinds if math.isfinite(k.mtbf))
        return 1.0 / rate if rate > 0 else math.inf

    def write_s(self, job: TrainingJob) -> float | None:
        """The configured fixed checkpoint write time, or None (storage model)."""
        return self.config.checkpoint.write

    def snapshot_s(self, job: TrainingJob) -> float:
        """Blocking part of an asynchronous checkpoint: each GPU copies its shard of the
        checkpoint to host memory over its PCIe link (s)."""
        alloc, topo = job.allocation, self.sim.topology
        spec = topo.host_specs[alloc.hosts[0]]
        return job.model.checkpoint_bytes / len(alloc.gpus) / pcie_bandwidth(spec)

    def read_s(self, job: TrainingJob) -> float:
        """Time to read the last checkpoint back on restart (s)."""
        read = self.config.checkpoint.read
        return job.timing.checkpoint_s if read is None else read

    def on_start(self, job: TrainingJob, timing_of: Callable[[TrainingJob], Timing]) -> Timing:
        """Set the job's checkpoint period from the policy for its placement; returns its
        timing (with the configured checkpoint write time, if any)."""
        self._set_straggle(job)
        timing = job.timing
        write = self.config.checkpoint.write
        if write is not None:
            timing = replace(timing, checkpoint_s=write)
        elif timing.checkpoint_s == 0 and job.fixed_iteration_s is None:
            timing = replace(timing, checkpoint_s=self.sim.perf.checkpoint(
                job.model, job.allocation.hosts))
        blocking = self.snapshot_s(job) if self.config.checkpoint.asynchronous \
            else timing.checkpoint_s
        ctx = CheckpointContext(
            iteration_s=timing.iteration_s, checkpoint_s=blocking, mtbf_s=self.job_mtbf(job),
            restart_s=self.sim.scheduler.restart_s + timing.checkpoint_s,
            default_interval_s=self.sim.scenario.workload.checkpoint_interval)
        every = int(self.policy.every(ctx))
        if every != job.checkpoint_every:
            job.checkpoint_every = every
            fresh = timing_of(job)
            timing = replace(fresh, checkpoint_s=timing.checkpoint_s)
        return timing

    def meta(self) -> dict[str, Any]:
        """Run-level figures for the summary: failures by component kind."""
        out: dict[str, Any] = {f"failures_{k}": int(self.counts.get(k, 0))
                               for k in ("gpu", "host", "nic", "link", "switch", "storage")}
        out["failures"] = int(sum(self.counts.values()))
        return out


def _read_trace(path: str, topo: Any) -> list[tuple[float, _Kind, int, float]]:
    """Rows of a failure CSV as (time, kind, component, repair time)."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"failures.trace: no such file {path!r}")
    names = {name: ("gpu", i) for i, name in enumerate(topo.gpus)}
    names.update({name: ("host", i) for i, name in enumerate(topo.hosts)})
    kinds: dict[str, _Kind] = {}
    rows = []
    with file.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"time_s", "component"} <= set(reader.fieldnames):
            raise UserError(f"failures.trace {path!r}: expected columns time_s, component "
                            f"(optional repair_s), got {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            comp = row["component"].strip()
            try:
                when = float(row["time_s"])
                repair = float(row.get("repair_s") or 4 * 3600.0)  # as the process default
                if not (math.isfinite(when) and when >= 0 and math.isfinite(repair)
                        and repair >= 0):
                    raise ValueError("negative or infinite time")
                if comp in names:
                    kind_name, index = names[comp]
                else:
                    kind_name, _, idx = comp.partition(":")
                    index = int(idx)
            except ValueError:
                raise UserError(f"failures.trace {path}:{line}: bad row {row!r}; expected "
                                "time_s in s and component as kind:index (gpu:12) or a GPU "
                                "or host name") from None
            if kind_name not in kinds:
                try:
                    spec = FailureProcess(component=kind_name, mtbf=math.inf)
                except ValueError:
                    raise UserError(f"failures.trace {path}:{line}: unknown component kind "
                                    f"{kind_name!r}") from None
                kinds[kind_name] = _Kind(spec, topo)
            if not 0 <= index < kinds[kind_name].n:
                raise UserError(f"failures.trace {path}:{line}: {comp!r} does not exist "
                                f"(0..{kinds[kind_name].n - 1})")
            rows.append((when, kinds[kind_name], index, repair))
    rows.sort(key=lambda r: r[0])
    return rows

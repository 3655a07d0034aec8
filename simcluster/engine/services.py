"""Inference services in the cluster: replicas as allocations, cold starts, routing, autoscaling.

A service's replicas take GPUs through the same allocation as training jobs
(:class:`~simcluster.engine.cluster.ClusterState` with a :class:`Request` vector, placed by the
scenario's placement policy). Replicas waiting for GPUs are placed at the start of every
scheduling pass, before the training queue, so freed GPUs go to serving first; with
``serving.preempt_training`` a replica that does not fit stops running training jobs (the
scheduler's ``stop(job, "preempt")``: they checkpoint, release their GPUs and re-queue).

A replica's cold start is a fixed start time, then its weights read from the storage servers as
flows on the fluid network (striped over all servers, as checkpoints are), so replicas starting
together share the storage and its links. Requests go to ready replicas through a routing
policy (:mod:`simcluster.policies.request_routing`); while no replica is ready they wait in the
service's backlog. The autoscaler (:mod:`simcluster.policies.autoscale`) is evaluated on request
arrivals and completions (at most once per its interval) and once at the end of a cooldown —
never by polling.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import simpy

from simcluster.engine.cluster import Allocation
from simcluster.engine.serving import EngineParams, Live, Replica
from simcluster.errors import UserError
from simcluster.hardware import STORAGE
from simcluster.metrics.serving import REPLICA_COLUMNS, REQUEST_COLUMNS, slo_met
from simcluster.perf.inference import ReplicaPerf, replica_perf
from simcluster.perf.iteration import LOCAL_CHECKPOINT_DRIVE
from simcluster.policies.autoscale import HPA_SYNC_PERIOD_S, ServiceState, TargetTracking
from simcluster.policies.request_routing import ROUTING_POLICIES
from simcluster.workload.jobs import Request
from simcluster.workload.requests import RequestSpec, request_stream

if TYPE_CHECKING:
    from simcluster.engine.simulation import Simulation
    from simcluster.scenario_serving import ServiceConfig

__all__ = ["Service", "Services", "Slot"]

_TTFT_WINDOW_S = 60.0  # p95 TTFT for autoscaling: first tokens of the last minute, or of the
# last cooldown if shorter (so a decision sees only latencies of the current replica count)


class Slot:
    """One replica's life: pending (no GPUs yet) → starting → ready → draining → gone."""

    __slots__ = ("id", "state", "allocation", "replica", "asked_s", "start_s", "ready_s",
                 "end_s", "process", "flows")

    def __init__(self, sid: int, now: float) -> None:
        self.id, self.state = sid, "pending"
        self.allocation: Allocation | None = None
        self.replica: Replica | None = None
        self.asked_s, self.start_s = now, None
        self.ready_s: float | None = None
        self.end_s: float | None = None
        self.process: simpy.Process | None = None
        self.flows: list = []


class Service:
    """One ``[[services]]`` entry at run time."""

    def __init__(self, owner: Services, cfg: ServiceConfig, perf: ReplicaPerf,
                 requests: Iterator[RequestSpec]) -> None:
        sim = owner.sim
        self.owner, self.sim, self.env, self.cfg, self.perf = owner, sim, sim.env, cfg, perf
        self.name = cfg.name
        b = cfg.batching
        static = b.mode == "static" or perf.kv_capacity_tokens <= 0
        self.params = EngineParams(max_batch=b.max_batch, token_budget=b.token_budget,
                                   chunked_prefill=b.chunked_prefill, block_tokens=b.block_size,
                                   static=static, fast_forward=owner.fast_forward)
        self.request = Request(gpus=cfg.tp, gpu_type=cfg.gpu)
        self.router = _make_router(cfg.routing, sim, cfg.name)
        self.slots: dict[int, Slot] = {}
        self._ids = 0
        self.backlog: deque[Live] = deque()
        self._requests = requests
        a = cfg.autoscaling
        self.scaler = None if a is None else TargetTracking(
            metric=a.metric, target=a.target, min_replicas=a.min, max_replicas=a.max,
            up_cooldown_s=a.cooldown, down_cooldown_s=a.cooldown,
            interval_s=min(a.cooldown, HPA_SYNC_PERIOD_S))
        self._last_change = -math.inf
        self._next_eval = 0.0
        self._timer_at: float | None = None
        self._ttfts: deque[tuple[float, float]] = deque()
        self.arrivals_process: simpy.Process | None = None

    # replicas ------------------------------------------------------------------------------
    def active(self) -> list[Slot]:
        """Slots held or asked for (pending, starting, ready): the scaled count."""
        return [s for s in self.slots.values() if s.state in ("pending", "starting", "ready")]

    def ready(self) -> list[Replica]:
        return [s.replica for s in self.slots.values()
                if s.state == "ready" and s.replica is not None]

    def scale_to(self, n: int) -> None:
        """Ask for or give back replicas until ``n`` are held or asked for."""
        active = self.active()
        for _ in range(n - len(active)):
            slot = Slot(self._ids, self.env.now)
            self._ids += 1
            self.slots[slot.id] = slot
            self.owner.pending.append((self, slot))
        if n < len(active):  # newest first: pending ones, then starting, then ready
        # (a starting replica finishes its cold start and is drained when ready)
            order = {"pending": 0, "starting": 1, "ready": 2}
            victims = sorted(active, key=lambda s: (order[s.state], -s.id))[:len(active) - n]
            for slot in victims:
                if slot.state == "pending":
                    self.owner.pending.remove((self, slot))
                    slot.state, slot.end_s = "gone", self.env.now
                else:
                    slot.state = "draining"
                    if slot.replica is not None:
                        slot.replica.drain()
        self.owner.note_replicas(self)
        if n > len(active):
            self.sim.scheduler._request_pass()

    def started(self, slot: Slot, gpus: tuple[int, ...]) -> None:
        """GPUs granted: allocate them and begin the cold start."""
        slot.allocation = self.sim.cluster.allocate(self.request, gpus)
        slot.state, slot.start_s = "starting", self.env.now
        slot.process = self.env.process(self._cold_start(slot))

    def fail(self, gpus: set[int]) -> None:
        """GPUs failed: replicas on them stop; their requests go to the other replicas (or
        wait for one), and a replacement replica is asked for (issue 8)."""
        orphans: list[Live] = []
        lost = 0
        for slot in list(self.slots.values()):
            alloc = slot.allocation
            if slot.state not in ("starting", "ready", "draining") or alloc is None \
                    or gpus.isdisjoint(alloc.gpus):
                continue
            if slot.replica is not None:
                orphans += slot.replica.fail()
            elif slot.process is not None and slot.process.is_alive:  # cold start
                slot.process.interrupt("failure")
                for flow in slot.flows:
                    self.sim.network.stop(flow)
                slot.flows = []
            lost += slot.state != "draining"
            slot.state, slot.end_s = "gone", self.env.now
            self.sim.cluster.release(alloc)
            self.owner.record_replica(self, slot)
        if not lost and not orphans:
            return
        if lost:
            self.scale_to(len(self.active()) + lost)
        self.owner.note_replicas(self)
        for live in orphans:
            self._route(live)

    def _cold_start(self, slot: Slot) -> Generator[simpy.Event, Any, None]:
        try:
            yield from self._load(slot)
        except simpy.Interrupt:  # its GPUs failed while it started (:meth:`fail`)
            return

    def _load(self, slot: Slot) -> Generator[simpy.Event, Any, None]:
        env, net, topo = self.env, self.sim.network, self.sim.topology
        yield env.timeout(self.owner.start_s)
        alloc = slot.allocation
        assert alloc is not None
        hosts = alloc.hosts
        if self.owner.load_weights and self.perf.weight_bytes > 0:
            per_gpu = self.perf.weight_bytes / len(alloc.gpus)
            if topo.storage:
                flows = []
                for h in hosts:
                    shard = per_gpu * sum(1 for g in alloc.gpus if int(topo.gpu_host[g]) == h)
                    for server in topo.storage:
                        links, coefs, _ = net.path(server, topo.hosts[h])
                        flows.append(net.start(links, coefs, shard / len(topo.storage),
                                               tag=f"{self.name}/{slot.id}"))
                slot.flows = flows
                yield env.all_of([f.done for f in flows])
                slot.flows = []
            else:  # node-local drives, one per host
                drive = STORAGE.get(LOCAL_CHECKPOINT_DRIVE).read_bandwidth
                yield env.timeout(per_gpu * len(alloc.gpus) / len(hosts) / drive)
        slot.ready_s = env.now
        slot.replica = Replica(env, slot.id, self.perf, self.params, self._done, self._idle)
        if slot.state == "draining":  # scaled down while it started
            slot.replica.drain()
        else:
            slot.state = "ready"
            self.owner.note_replicas(self)
            while self.backlog:
                self._route(self.backlog.popleft())

    def _idle(self, replica: Replica) -> None:
        slot = self.slots[replica.id]
        slot.state, slot.end_s = "gone", self.env.now
        if slot.allocation is not None:
            self.sim.cluster.release(slot.allocation)
        self.owner.record_replica(self, slot)
        self.owner.note_replicas(self)
        self.sim.note_state()
        self.sim.scheduler._request_pass()

    # requests ------------------------------------------------------------------------------
    def arrivals(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        # the cache holds whole blocks: a request needs ceil((prompt + output) / block) of them
        block = self.params.block_tokens
        cap_blocks = int(self.perf.kv_capacity_tokens // block)
        for spec in self._requests:
            if spec.arrival_s > env.now:
                yield env.timeout(spec.arrival_s - env.now)
            live = Live(spec.id, spec.arrival_s, spec.prompt_tokens, spec.output_tokens,
                        self.name)
            if not self.params.static and -(-(live.prompt + live.output) // block) > cap_blocks:
                self.owner.record_request(self, live, "rejected")
                continue
            self._route(live)
            self.evaluate()

    def _route(self, live: Live) -> None:
        ready = self.ready()
        if not ready:
            self.backlog.append(live)
            if not self.active() and self.scaler is not None:  # scaled to zero: ask for one
                self.scale_to(1)
            return
        ready[self.router.route(live, ready)].add(live)

    def _done(self, live: Live) -> None:
        if live.first_token_s is not None:
            self._ttfts.append((live.first_token_s, live.first_token_s - live.arrival_s))
        self.owner.record_request(self, live, "completed")
        self.evaluate()

    # autoscaling ---------------------------------------------------------------------------
    def state(self) -> ServiceState:
        now, ready = self.env.now, self.ready()
        window = _TTFT_WINDOW_S if self.scaler is None else min(
            _TTFT_WINDOW_S, max(self.scaler.up_cooldown_s, self.scaler.interval_s))
        while self._ttfts and self._ttfts[0][0] < now - window:
            self._ttfts.popleft()
        n = len(ready)
        waiting = sum(len(r.waiting) for r in ready) + len(self.backlog)
        outstanding = sum(r.outstanding for r in ready) + len(self.backlog)
        kv = [r.kv_used_tokens / max(r.kv_capacity_tokens, 1.0) for r in ready]
        p95 = (float(np.percentile([t for _, t in self._ttfts], 95)) if self._ttfts
               else math.nan)
        return ServiceState(now=now, replicas=len(self.active()), ready=n,
                            queue_length=waiting / n if n else math.inf,
                            outstanding=outstanding / n if n else math.inf,
                            kv_usage=float(np.mean(kv)) if kv else 0.0, p95_ttft_s=p95,
                            last_change_s=self._last_change)

    def evaluate(self, _event: object = None) -> None:
        """One autoscaling decision, if the policy's interval has passed."""
        if self.scaler is None:
            return
        now = self.env.now
        if _event is not None:
            self._timer_at = None
        elif now < self._next_eval:
            return
        self._next_eval = now + self.scaler.interval_s
        state = self.state()
        want = self.scaler.desired(state)
        if want != state.replicas:
            self._last_change = now
            self.scale_to(want)
            state = self.state()
        # one re-evaluation when the cooldown ends (the metric may stay off target without
        # any request event, e.g. a service gone quiet)
        when = self.scaler.next_evaluation(state)
        if when > now and self._timer_at is None:
            self._timer_at = when
            self.env.timeout(when - now).callbacks.append(self.evaluate)


class Services:
    """All services of a simulation; the scheduler calls :meth:`place_pending` every pass."""

    def __init__(self, sim: Simulation, fast_forward: bool = True) -> None:
        self.sim = sim
        opts = getattr(sim.scenario, "serving", None)
        self.start_s = 30.0 if opts is None else opts.cold_start
        self.load_weights = True if opts is None else opts.load_weights
        self.preempt = False if opts is None else opts.preempt_training
        self.preempt_tenants = () if opts is None else tuple(opts.preempt_tenants)
        self.fast_forward = fast_forward
        self.pending: deque[tuple[Service, Slot]] = deque()
        self._requests: list[tuple] = []
        self._replicas: list[tuple] = []
        self._counts: list[tuple] = []
        horizon = sim.scenario.run.horizon
        self.services: list[Service] = []
        for cfg in sim.scenario.services:
            if horizon is None and cfg.requests.count is None and \
                    getattr(cfg.requests.arrivals, "kind", "") != "trace":
                raise UserError(f"services.{cfg.name}.requests: endless arrivals need "
                                "requests.count or run.horizon")
            try:
                perf = replica_perf(cfg.model, cfg.gpu, cfg.tp, cfg.dtype,
                                    activation_tokens=cfg.batching.token_budget)
            except UserError as err:
                raise UserError(f"services.{cfg.name} (model {cfg.model!r}, gpu {cfg.gpu!r}, "
                                f"tp {cfg.tp}, dtype {cfg.dtype!r}): {err}") from None
            if cfg.batching.mode == "static" and perf.kv_capacity_tokens > 0:
                raise UserError(f"services.{cfg.name}.batching.mode: 'static' is for models "
                                f"without a token-by-token decode (e.g. resnet-50); "
                                f"{cfg.model!r} is an LLM: use 'continuous'")
            never = sim.cluster.never_fits(Request(gpus=cfg.tp, gpu_type=cfg.gpu))
            if never is not None:
                raise UserError(f"services.{cfg.name}: a replica (tp {cfg.tp} x {cfg.gpu}) can "
                                f"never be placed: {never}")
            stream = request_stream(cfg.requests, sim.streams, cfg.name, horizon)
            self.services.append(Service(self, cfg, perf, stream))

    def start(self) -> None:
        """Ask for each service's first replicas and start its arrivals."""
        for svc in self.services:
            a = svc.cfg.autoscaling
            svc.scale_to(a.min if a is not None else int(svc.cfg.replicas or 0))
            svc.arrivals_process = svc.sim.env.process(svc.arrivals())

    def busy(self) -> bool:
        """True while some service has requests still to arrive or to serve (the failure
        processes run only while something can fail)."""
        for svc in self.services:
            if svc.arrivals_process is not None and svc.arrivals_process.is_alive:
                return True
            if svc.backlog or any(r.outstanding for r in svc.ready()):
                return True
        return False

    def fail(self, gpus: list[int], cause: str = "failure") -> None:
        """The failure manager's hook: replicas on failed (or drained) GPUs stop and their
        requests are re-routed; each service asks for replacements."""
        hit = {int(g) for g in gpus}
        for svc in self.services:
            svc.fail(hit)
        self.sim.note_state()
        self.sim.scheduler._request_pass()

    def place_pending(self) -> None:
        """Place replicas waiting for GPUs (first come, first served); called by the
        scheduler at the start of every pass, before the training queue."""
        sched = self.sim.scheduler
        place = sched.placement_policy.place
        while self.pending:
            svc, slot = self.pending[0]
            gpus = place(svc.request, sched.view)
            if gpus is None:
                if self.preempt:
                    self._preempt_for(svc.request)
                return
            self.pending.popleft()
            svc.started(slot, gpus)
            self.sim.note_state()

    def _preempt_for(self, request: Request) -> None:
        """Stop running training jobs (newest first) until enough GPUs of the type are free
        or being freed."""
        sched, cluster = self.sim.scheduler, self.sim.cluster
        mask = cluster.gpu_type_mask(request.gpu_type)
        free = int(np.count_nonzero((cluster.gpu_free >= 1 - 1e-9) & mask))

        def of_type(job) -> int:
            return sum(1 for g in job.allocation.gpus if mask[g])

        coming = sum(of_type(j) for jid, j in sched.running.items()
                     if sched.handles[jid].stopping)
        need = request.whole - free - coming
        candidates = [j for jid, j in sched.running.items() if not sched.handles[jid].stopping
                      and (not self.preempt_tenants or j.spec.tenant in self.preempt_tenants)
                      and of_type(j) > 0]
        candidates.sort(key=lambda j: -(j.first_start or 0.0))
        for job in candidates:
            if need <= 0:
                break
            need -= of_type(job)
            sched.stop(job, "preempt", why="an inference replica needs its GPUs")

    # records -------------------------------------------------------------------------------
    def record_request(self, svc: Service, live: Live, state: str) -> None:
        done, first = live.done_s, live.first_token_s
        ttft = None if first is None else first - live.arrival_s
        e2e = None if done is None else done - live.arrival_s
        tpot = (None if done is None or first is None
                else (done - first) / (live.output - 1) if live.output > 1 else 0.0)
        queue = None if live.admitted_s is None else live.admitted_s - live.arrival_s
        slo = svc.cfg.slo
        met = state == "completed" and slo_met(ttft, tpot, e2e, slo.ttft, slo.tpot, slo.e2e)
        self._requests.append((live.id, svc.name, live.replica, state, live.arrival_s, queue,
                               ttft, tpot, e2e, live.prompt, live.output, live.preemptions,
                               met))

    def record_replica(self, svc: Service, slot: Slot) -> None:
        gpus = len(slot.allocation.gpus) if slot.allocation is not None else 0
        hourly = self.sim._gpu_figures[svc.cfg.gpu][2] if gpus else 0.0
        cold = None if slot.ready_s is None or slot.start_s is None else \
            slot.ready_s - slot.start_s
        replica = slot.replica
        self._replicas.append((svc.name, slot.id, svc.cfg.gpu, gpus, slot.asked_s,
                               slot.start_s, slot.ready_s, slot.end_s, cold,
                               gpus * hourly, replica.iterations if replica else 0,
                               replica.events if replica else 0,
                               replica.busy_s if replica else 0.0))

    def note_replicas(self, svc: Service) -> None:
        now = self.sim.env.now
        active = svc.active()
        row = (now, svc.name, len(active), sum(1 for s in active if s.state == "ready"))
        if self._counts and self._counts[-1][:2] == row[:2]:
            self._counts[-1] = row
        else:
            self._counts.append(row)

    def finish(self, end: float) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """At the horizon: unfinished requests and live replicas become rows; returns the
        requests, replicas and replica-count tables."""
        for svc in self.services:
            for slot in svc.slots.values():
                if slot.replica is not None:
                    for live in list(slot.replica.running) + list(slot.replica.waiting):
                        self.record_request(svc, live, "unfinished")
                if slot.state != "gone":
                    if slot.allocation is not None:
                        slot.end_s = end
                    self.record_replica(svc, slot)
            for live in svc.backlog:
                self.record_request(svc, live, "unfinished")
        requests = pd.DataFrame(self._requests, columns=list(REQUEST_COLUMNS))
        requests = requests.sort_values(["service", "request_id"], kind="stable")
        replicas = pd.DataFrame(self._replicas, columns=list(REPLICA_COLUMNS))
        counts = pd.DataFrame(self._counts, columns=["time_s", "service", "replicas", "ready"])
        return requests.reset_index(drop=True), replicas, counts


def _make_router(name: str, sim: Simulation, service: str) -> Any:
    cls = ROUTING_POLICIES.get(name, f"services.{service}.routing")
    if cls.__init__ is not object.__init__ and "rng" in cls.__init__.__code__.co_varnames:
        return cls(rng=sim.streams.get(f"routing/{service}"))
    return cls()

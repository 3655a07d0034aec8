"""How a running training job spends its time, at each fidelity (DESIGN.md "Fidelity levels").

* ``duration``: a black box; each iteration takes a fixed time, whatever the placement.
* ``coarse``: the perf model's iteration time for the placement; the job advances in segments
  (to its next checkpoint), its inter-node traffic is one long-lived flow per ring, capped at its
  average demand, and its iteration time is stretched by ``cap / rate`` of its most throttled
  ring whenever the network gives less than it asks; checkpoints are written as flows to storage.
* ``iteration``: every iteration's phases are events: a data loader reads each batch from storage
  (flows) and preprocesses it on the job's CPU cores, a bounded prefetch buffer lets loading
  overlap compute; compute; the gradient all-reduce as flows; checkpoints as flows.

A job with a parallel layout reduces its gradients per data-parallel group
(:func:`simcluster.perf.iteration.gradient_collectives`): every group's collective at once, each
over that group's GPUs (one per node and rail when TP fills the node), at both fidelities.

A stop (:class:`simpy.Interrupt`) ends the job's flows; iterations since the last durable
checkpoint are lost.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from simcluster.engine.collectives import (
    CollectivePlan,
    execute,
    plan_collective,
    rail_links,
    ring_links,
)
from simcluster.engine.gradients import layout_plan, path_bytes
from simcluster.engine.ledger import ledger
from simcluster.engine.training import TrainingJob
from simcluster.hardware import STORAGE
from simcluster.perf.iteration import LOCAL_CHECKPOINT_DRIVE
from simcluster.perf.rings import group_by_host

if TYPE_CHECKING:
    from simcluster.engine.network import Flow, Network

__all__ = ["PREFETCH_BATCHES", "run_job"]

# Batches a data loader may hold ready: PyTorch DataLoader's default prefetch_factor is 2 per
# worker (torch.utils.data.DataLoader documentation).
PREFETCH_BATCHES = 2

End = Callable[[TrainingJob, bool], None]


def run_job(sim: Any, job: TrainingJob, on_end: End) -> Generator[simpy.Event, Any, None]:
    """The job's process body; ``on_end(job, finished)`` when it ends or is stopped."""
    if job.fidelity == "iteration" and job.fixed_iteration_s is None:
        body = _iterations(sim, job)
    else:
        body = _segments(sim, job)
    try:
        yield from body
    except simpy.Interrupt as stop:
        for flow in list(job.flows):
            sim.network.stop(flow)
        job.flows.clear()
        led = ledger(sim, job)
        led.writing = False
        led.phase = None
        it = job.timing.iteration_s
        computed = led.computed(sim.env.now)
        pending, led.pending_iters = led.pending_iters, 0  # done, but their drain is cut
        pending_s, led.pending_s = led.pending_s, 0.0
        partial = math.floor(job.in_segment * (1 + 1e-12) + 1e-9)
        if job.kept + pending + partial >= job.iterations:
            # stopped at the very instant its last iteration ended (the stop came first in
            # the event queue): the job is done, nothing to redo
            led.keep(job.iterations - job.kept, it, computed + pending_s)
            job.kept = job.iterations
            job.in_segment = 0.0
            on_end(job, True)
            return
        job.lost += pending
        led.lost_s += pending_s
        if stop.cause == "preempt" and job.checkpoint_every and partial:
            # a preemption checkpoints before the GPUs are released (the scheduler does not
            # stop a job twice), so the work is kept
            if job.fixed_iteration_s is None or job.timing.checkpoint_s > 0:
                yield from _checkpoint(sim, job)
            job.kept += partial
            led.keep(partial, it, partial * it)
            led.lost_s += (job.in_segment - partial) * it
            led.stall_s += computed - job.in_segment * it
        else:
            job.lost += partial
            led.lost_s += computed
        on_end(job, False)
        return
    on_end(job, True)


# --- checkpoints -------------------------------------------------------------------------------

def _checkpoint(sim: Any, job: TrainingJob,
                blocking: bool = True) -> Generator[simpy.Event, Any, None]:
    """Write one checkpoint: each host stripes its shard over every storage server, as flows
    (as a parallel filesystem does; the uncontended estimate pools the servers the same way).
    A fixed write time (``failures.checkpoint.write``) replaces the storage model. A blocking
    write counts as checkpoint time in the job's ledger (an asynchronous drain does not)."""
    env, net = sim.env, sim.network
    hosts = job.allocation.hosts
    shard = job.model.checkpoint_bytes / len(hosts)
    start = env.now
    topo = net.topology
    failures = getattr(sim, "failures", None)
    fixed = failures.write_s(job) if failures is not None else None
    led = ledger(sim, job)
    led.writing = True
    if blocking:
        led.began = start
    try:
        if fixed is not None:
            yield env.timeout(fixed)
        elif not topo.storage:  # node-local NVMe drives
            yield env.timeout(shard / STORAGE.get(LOCAL_CHECKPOINT_DRIVE).write_bandwidth)
        else:
            piece = shard / len(topo.storage)
            flows = [net.start(*_path_parts(net, topo.hosts[h], server), piece, tag=job.spec.id)
                     for h in hosts for server in topo.storage]
            job.flows.update(flows)
            yield env.all_of([f.done for f in flows])
            job.flows.difference_update(flows)
    finally:  # a stop during the write still spent that time on storage
        led.writing = False
        if blocking:
            led.began = None
            job.storage_wait_s += env.now - start
            led.checkpoint_s += env.now - start


def _path_parts(net: Network, src: str, dst: str) -> tuple[np.ndarray, np.ndarray]:
    links, coefs, _ = net.path(src, dst)
    return links, coefs


# --- duration and coarse -----------------------------------------------------------------------

class _CoarseLoad:
    """A coarse job's inter-node traffic: one capped stream per ring of its all-reduce (of
    every data-parallel group's collectives, for a layout job)."""

    def __init__(self, sim: Any, job: TrainingJob) -> None:
        self.sim, self.job, self.net = sim, job, sim.network
        t = job.timing
        gpus = job.allocation.gpus
        hosts = group_by_host(gpus, sim.topology)
        self.flows: list[Flow] = []
        if job.model.layout is not None:
            self._start(path_bytes(layout_plan(sim, job)).items())
            return
        if len(hosts) < 2 or t.algorithm in ("none", "direct"):
            return
        p, size = len(gpus), job.model.gradient_bytes
        if t.algorithm == "hierarchical":
            g = min(len(h) for h in hosts)
            paths = [rail_links(self.net, hosts, r) for r in range(g)]
            per_iteration = 2 * (len(hosts) - 1) / len(hosts) * size / g
        else:
            c = min(min(len(h) for h in hosts),
                    min(sim.topology.host_specs[int(sim.topology.gpu_host[h[0]])].nics
                        for h in hosts))
            paths = [ring_links(self.net, hosts, ch) for ch in range(c)]
            volume = 2.0 if t.algorithm == "tree" else 2 * (p - 1) / p
            per_iteration = volume * size / c
        self._start((path, per_iteration) for path in paths)

    def _start(self, demand: Iterable[tuple[Sequence[int], float]]) -> None:
        """One endless flow per (path, bytes per iteration), capped at the average rate it needs
        to keep the job's pace."""
        for path, nbytes in demand:
            flow = self.net.start(np.array(path), np.ones(len(path)), math.inf,
                                  cap=nbytes / self.job.timing.iteration_s,
                                  tag=self.job.spec.id, on_rate=self._changed)
            self.flows.append(flow)

    def _changed(self, _flow: Flow) -> None:
        slow = 1.0
        for f in self.flows:
            if f.rate < f.cap * (1 - 1e-9):
                slow = max(slow, f.cap / f.rate if f.rate > 0 else math.inf)
        if slow != self.job.slowdown:
            self.job.slowdown = slow
            if self.job.wake is not None and not self.job.wake.triggered:
                self.job.wake.succeed()

    def stop(self) -> None:
        for f in self.flows:
            self.net.stop(f)
        self.flows = []

    def uses(self, links: set[int]) -> bool:
        """Some ring of the job crosses one of ``links``."""
        return any(not links.isdisjoint(f.links.tolist()) for f in self.flows)

    def reroute(self) -> None:
        """Start the rings again on the router's current routes (after a link failure)."""
        self.stop()
        self.__init__(self.sim, self.job)


def _segments(sim: Any, job: TrainingJob) -> Generator[simpy.Event, Any, None]:
    env, t = sim.env, job.timing
    coarse = job.fixed_iteration_s is None
    load = _CoarseLoad(sim, job) if coarse else None
    led = ledger(sim, job)
    led.load = load
    failures = getattr(sim, "failures", None)
    overlap = failures is not None and failures.config.checkpoint.asynchronous
    drain: simpy.Process | None = None
    try:
        while job.kept + led.pending_iters < job.iterations:
            pos = job.kept + led.pending_iters
            left, every = job.iterations - pos, job.checkpoint_every
            n = left if every <= 0 else min(left, every - pos % every)
            last = pos + n >= job.iterations
            job.in_segment = 0.0
            led.begin_segment(env.now)
            while n - job.in_segment > 1e-9:
                # network share (coarse) times straggling GPUs (issue 8)
                mark, net, strag = env.now, job.slowdown, led.straggle
                slow = net * strag
                job.wake = env.event()
                if not math.isfinite(slow):  # no bandwidth at all: wait for a change
                    yield job.wake
                    continue
                timer = env.timeout((n - job.in_segment) * t.iteration_s * slow)
                try:
                    done = yield timer | job.wake
                except simpy.Interrupt:
                    job.in_segment += (env.now - mark) / (t.iteration_s * slow)
                    job.network_wait_s += (env.now - mark) * (1 - 1 / net) / strag
                    raise
                elapsed = env.now - mark
                job.network_wait_s += elapsed * (1 - 1 / net) / strag
                job.in_segment = n if timer in done else min(
                    n, job.in_segment + elapsed / (t.iteration_s * slow))
            job.wake = None
            computed = led.computed(env.now)
            if not last and job.checkpoint_every and (coarse or t.checkpoint_s > 0):
                if load is not None:  # no all-reduce traffic while the job checkpoints
                    load.stop()
                if overlap:
                    drain = yield from _snapshot(sim, job, led, drain, n, computed)
                    n = 0
                else:
                    yield from _checkpoint(sim, job)
                if load is not None:
                    load = led.load = _CoarseLoad(sim, job)
            if n:
                job.kept += n
                led.keep(n, t.iteration_s, computed)
            job.in_segment = 0.0
        if led.pending_iters:  # done before the last drain: the job is complete anyway
            job.kept += led.pending_iters
            led.keep(led.pending_iters, t.iteration_s, led.pending_s)
            led.pending_iters, led.pending_s = 0, 0.0
    finally:
        job.wake = None
        led.load = None
        if load is not None:
            load.stop()
        if drain is not None and drain.is_alive:
            drain.interrupt()


def _snapshot(sim: Any, job: TrainingJob, led: Any, drain: simpy.Process | None, n: int,
              computed: float) -> Generator[simpy.Event, Any, simpy.Process]:
    """Asynchronous checkpoint: wait for the previous drain (host memory holds one snapshot),
    copy the state to host memory (blocking), then drain it to storage in the background. The
    segment's ``n`` iterations are kept only when the drain is durable."""
    env = sim.env
    began = led.began = env.now
    try:
        if drain is not None and drain.is_alive:
            yield drain
        yield env.timeout(sim.failures.snapshot_s(job))
    finally:
        led.began = None
        led.checkpoint_s += env.now - began
    led.pending_iters += n
    led.pending_s += computed
    return env.process(_drain(sim, job, led, n, computed))


def _drain(sim: Any, job: TrainingJob, led: Any, n: int,
           computed: float) -> Generator[simpy.Event, Any, None]:
    try:
        yield from _checkpoint(sim, job, blocking=False)
    except simpy.Interrupt:
        return
    if led.pending_iters < n:  # the job stopped at this very instant: already written off
        return
    job.kept += n
    led.pending_iters -= n
    led.pending_s -= computed
    led.keep(n, job.timing.iteration_s, computed)

# --- iteration fidelity ------------------------------------------------------------------------

def _loader(sim: Any, job: TrainingJob, ready: simpy.Store) -> Generator[simpy.Event, Any, None]:
    """Read and preprocess batches ahead of the trainer, at most the store's capacity ahead."""
    env, net, topo = sim.env, sim.network, sim.topology
    alloc, model = job.allocation, job.model
    hosts = alloc.hosts
    per_gpu = model.samples_per_iteration / len(alloc.gpus)
    samples = {h: per_gpu * sum(1 for g in alloc.gpus if int(topo.gpu_host[g]) == h)
               for h in hosts}
    try:
        while True:
            if topo.storage and model.bytes_per_sample > 0:
                servers = topo.storage
                flows = [net.start(*_path_parts(net, server, topo.hosts[h]),
                                   samples[h] * model.bytes_per_sample / len(servers),
                                   tag=job.spec.id)
                         for h in hosts for server in servers]
                job.flows.update(flows)
                yield env.all_of([f.done for f in flows])
                job.flows.difference_update(flows)
            if model.cpu_s_per_sample > 0:
                yield env.timeout(max(samples[h] * model.cpu_s_per_sample
                                      / max(alloc.host_cpus[h], 1.0) for h in hosts))
            yield ready.put(1)
    except simpy.Interrupt:
        return


def _iterations(sim: Any, job: TrainingJob) -> Generator[simpy.Event, Any, None]:
    env, net, t = sim.env, sim.network, job.timing
    gpus = job.allocation.gpus
    plan: CollectivePlan | None = None
    if job.model.layout is not None:
        plan = layout_plan(sim, job)
        plan = plan if plan.stages else None  # no data parallelism: nothing to reduce
    elif len(gpus) > 1:
        # the pair's default routes: the ones the job's timing (perf.fabric_of) was priced on
        plan = plan_collective(net, gpus, "all_reduce", job.model.gradient_bytes,
                               algo=t.algorithm)
    ready = simpy.Store(env, capacity=PREFETCH_BATCHES)
    loader = env.process(_loader(sim, job, ready))
    led = ledger(sim, job)
    try:
        while job.kept < job.iterations:
            n = job.next_segment()
            last = job.kept + n >= job.iterations
            job.in_segment = 0.0
            led.begin_segment(env.now)
            for _ in range(n):
                waited = env.now
                yield ready.get()
                job.storage_wait_s += env.now - waited
                yield env.timeout(t.compute_s)
                if plan is not None:
                    began = env.now
                    yield from execute(net, plan, tag=job.spec.id, active=job.flows)
                    alone = t.iteration_s - t.compute_s
                    job.network_wait_s += max(0.0, env.now - began - alone)
                job.in_segment += 1
            computed = led.computed(env.now)
            if not last and job.checkpoint_every:
                yield from _checkpoint(sim, job)
            job.kept += n
            led.keep(n, t.iteration_s, computed)
            job.in_segment = 0.0
    finally:
        if loader.is_alive:
            loader.interrupt()
        for flow in list(job.flows):  # reads the loader had in flight
            net.stop(flow)
        job.flows.clear()

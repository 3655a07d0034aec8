"""Training jobs at run time: work in iterations, timing from the perf model, one process each.

A running job advances in *segments*: the iterations up to its next checkpoint (or its end), then
the checkpoint write. Iterations count as kept only once the checkpoint that covers them is
durable; a job stopped mid-segment loses the segment's iterations and resumes from its last
checkpoint (DESIGN.md: preemption, failure and restart conserve iterations, not seconds).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass

import simpy

from simcluster.engine.cluster import Allocation
from simcluster.perf.iteration import IterationTime, checkpoint_time, iteration_time
from simcluster.perf.models import ModelSpec
from simcluster.routing import Router
from simcluster.topology import Topology
from simcluster.workload.jobs import JobSpec

__all__ = ["PerfModel", "Timing", "TrainingJob", "run_job"]


@dataclass(frozen=True, slots=True)
class Timing:
    """How fast a job runs on one placement.

    Attributes:
        iteration_s: seconds per iteration.
        compute_fraction: share of an iteration spent computing (for power and utilisation).
        checkpoint_s: seconds to write one checkpoint.
    """

    iteration_s: float
    compute_fraction: float
    checkpoint_s: float


class PerfModel:
    """The engine's bridge to :mod:`simcluster.perf`: iteration and checkpoint times, cached.

    Args:
        topology, router: the cluster.
        dtype: math precision of training.
    """

    def __init__(self, topology: Topology, router: Router, dtype: str = "bf16") -> None:
        self.topology, self.router, self.dtype = topology, router, dtype
        self._iteration: dict[tuple[str, tuple[int, ...]], IterationTime] = {}

    def iteration(self, model: ModelSpec, gpus: tuple[int, ...], share: float) -> IterationTime:
        """Uncontended iteration time on ``gpus``, slowed by 1/share for a fractional GPU."""
        key = (model.name, gpus)
        it = self._iteration.get(key)
        if it is None:
            it = iteration_time(model, gpus, self.topology, self.router, self.dtype)
            self._iteration[key] = it
        if share < 1.0:
            return IterationTime(compute_s=it.compute_s / share, allreduce_s=it.allreduce_s)
        return it

    def reference_gpus(self, spec: JobSpec) -> tuple[int, ...]:
        """The packed placement a trace's run time refers to: the first GPUs of the type."""
        types = self.topology
        wanted = spec.request.gpu_type
        chosen = [g for g in range(len(types.gpus))
                  if wanted is None or types.gpu_type(g) == wanted][: spec.request.whole]
        return tuple(chosen)

    def checkpoint(self, model: ModelSpec, hosts: tuple[int, ...]) -> float:
        """Seconds to write one checkpoint from ``hosts``."""
        return checkpoint_time(model, hosts, self.topology)


class TrainingJob:
    """Run-time state of one submitted training job.

    Attributes:
        spec: what was submitted. model: its model.
        iterations: total work. checkpoint_every: iterations per checkpoint (0: none).
        fixed_iteration_s: seconds per iteration at ``duration`` fidelity (placement-blind).
        state: queued, running, completed or rejected.
        kept: iterations safe in a checkpoint (or done, at the end).
        executed, lost: iterations run in total, and run but lost to a stop.
    """

    __slots__ = ("spec", "model", "iterations", "checkpoint_every", "fixed_iteration_s",
                 "state", "reason", "kept", "executed", "lost", "allocation", "timing",
                 "first_start", "end", "gpu_seconds", "energy_j", "preemptions", "process",
                 "_run_start", "_segment_start", "_segment_iterations")

    def __init__(self, spec: JobSpec, model: ModelSpec, iterations: int, checkpoint_every: int,
                 fixed_iteration_s: float | None) -> None:
        self.spec, self.model = spec, model
        self.iterations, self.checkpoint_every = iterations, checkpoint_every
        self.fixed_iteration_s = fixed_iteration_s
        self.state, self.reason = "queued", ""
        self.kept = self.executed = self.lost = 0
        self.allocation: Allocation | None = None
        self.timing: Timing | None = None
        self.first_start: float | None = None
        self.end: float | None = None
        self.gpu_seconds = self.energy_j = 0.0
        self.preemptions = 0
        self.process: simpy.Process | None = None
        self._run_start = self._segment_start = 0.0
        self._segment_iterations = 0

    def next_segment(self) -> int:
        """Iterations until the next checkpoint or the end."""
        left = self.iterations - self.kept
        if self.checkpoint_every <= 0:
            return left
        return min(left, self.checkpoint_every - self.kept % self.checkpoint_every)

    def account(self, now: float, idle_w: float, max_w: float) -> None:
        """Charge GPU-seconds and GPU energy from the run's start (or last charge) to ``now``."""
        assert self.allocation is not None and self.timing is not None
        held = now - self._run_start
        gpus = self.allocation.gpu_equivalents
        self.gpu_seconds += held * gpus
        self.energy_j += held * gpus * (idle_w + (max_w - idle_w) * self.timing.compute_fraction)
        self._run_start = now


def run_job(env: simpy.Environment, job: TrainingJob, on_end: Callable[[TrainingJob, bool], None]
            ) -> Generator[simpy.Event, None, None]:
    """The job's process: segments until done; ``on_end(job, finished)`` when it ends or stops.

    A :class:`simpy.Interrupt` stops the job: the current segment's iterations are lost.
    """
    assert job.timing is not None
    t = job.timing
    job._run_start = env.now
    while job.kept < job.iterations:
        n = job.next_segment()
        last = job.kept + n >= job.iterations
        duration = n * t.iteration_s + (0.0 if last else t.checkpoint_s)
        job._segment_start, job._segment_iterations = env.now, n
        try:
            yield env.timeout(duration)
        except simpy.Interrupt:
            elapsed = env.now - job._segment_start
            partial = min(n, math.floor(elapsed / t.iteration_s + 1e-9)) if t.iteration_s else n
            job.executed += partial
            job.lost += partial
            on_end(job, False)
            return
        job.kept += n
        job.executed += n
    on_end(job, True)

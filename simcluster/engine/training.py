"""Training jobs at run time: work in iterations, timing from the perf model, one process each.

A running job advances in *segments*: the iterations up to its next checkpoint (or its end), then
the checkpoint write. Iterations count as kept only once the checkpoint that covers them is
durable; a job stopped mid-segment loses the segment's iterations and resumes from its last
checkpoint (DESIGN.md: preemption, failure and restart conserve iterations, not seconds). How a
segment is executed depends on the job's fidelity (:mod:`simcluster.engine.execution`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import simpy

from simcluster.engine.cluster import Allocation
from simcluster.hardware import LINK_EFFICIENCY
from simcluster.perf.iteration import (
    IterationTime,
    checkpoint_time,
    iteration_time,
    training_layout,
)
from simcluster.perf.models import ModelSpec
from simcluster.policies.view import TypeMasks
from simcluster.routing import Router
from simcluster.topology import Topology
from simcluster.workload.jobs import JobSpec

__all__ = ["PerfModel", "Timing", "TrainingJob"]

_CACHE_LIMIT = 100_000  # iteration times kept (oldest placement dropped first)


@dataclass(frozen=True, slots=True)
class Timing:
    """How fast a job runs on one placement, uncontended.

    Attributes:
        iteration_s: seconds per iteration.
        compute_fraction: share of a segment spent computing (for power and utilisation).
        checkpoint_s: seconds to write one checkpoint.
        compute_s: the compute part of one iteration.
        algorithm: the gradient all-reduce algorithm.
    """

    iteration_s: float
    compute_fraction: float
    checkpoint_s: float
    compute_s: float = 0.0
    algorithm: str = "none"


class PerfModel:
    """The engine's bridge to :mod:`simcluster.perf`: iteration and checkpoint times, cached.

    Args:
        topology, router: the cluster.
        dtype: math precision of training.
        links: achieved fraction of line rate per link kind.
        algorithm, nvls: all-reduce algorithm (``auto``: fastest) and NVLink SHARP use.
    """

    def __init__(self, topology: Topology, router: Router, dtype: str = "bf16",
                 links: Mapping[str, float] = LINK_EFFICIENCY, algorithm: str = "auto",
                 nvls: bool = False) -> None:
        self.topology, self.router, self.dtype, self.links = topology, router, dtype, links
        self.algorithm, self.nvls = algorithm, nvls
        self._iteration: dict[tuple[str, tuple[int, ...]], IterationTime] = {}
        self._reference: dict[tuple[str | None, int], tuple[int, ...]] = {}

    def iteration(self, model: ModelSpec, gpus: tuple[int, ...], share: float) -> IterationTime:
        """Uncontended iteration time on ``gpus``, slowed by 1/share for a fractional GPU."""
        key = (model.name, gpus)
        it = self._iteration.get(key)
        if it is None:
            if len(self._iteration) >= _CACHE_LIMIT:  # placements vary without end in long runs
                self._iteration.pop(next(iter(self._iteration)))
            algo = self.algorithm
            if algo != "auto" and len({int(self.topology.gpu_host[g]) for g in gpus}) == 1:
                algo = "auto"  # a forced multi-node algorithm does not apply inside a node
            it = iteration_time(model, gpus, self.topology, self.router, self.dtype,
                                links=self.links, algo=algo, nvls=self.nvls)
            self._iteration[key] = it
        if share < 1.0:
            return replace(it, compute_s=it.compute_s / share)
        return it

    def reference_gpus(self, spec: JobSpec) -> tuple[int, ...]:
        """The packed placement a trace's run time refers to: the first GPUs of the type."""
        key = (spec.request.gpu_type, spec.request.whole)
        chosen = self._reference.get(key)
        if chosen is None:
            topo = self.topology
            types = tuple(topo.gpu_type(g) for g in range(len(topo.gpus)))
            mask = TypeMasks(types, topo.gpu_labels)(spec.request.gpu_type)
            chosen = tuple(int(g) for g in np.flatnonzero(mask))[: key[1]]
            self._reference[key] = chosen
        return chosen

    def layout(self, model: ModelSpec, spec: JobSpec) -> tuple[ModelSpec, str | None]:
        """The job's model with its parallel layout attached (plain DP without one), and the
        reason to reject it at submit (layout does not divide, or memory does not fit)."""
        if not spec.parallelism:
            return model, None
        gpus = self.reference_gpus(spec)
        if not gpus:
            return model, None  # never fits the cluster: the scheduler rejects it
        host = self.topology.host_specs[int(self.topology.gpu_host[gpus[0]])]
        return training_layout(model, dict(spec.parallelism), spec.request.whole,
                               self.topology.gpu_type(gpus[0]), host.gpus_per_node)

    def checkpoint(self, model: ModelSpec, hosts: tuple[int, ...]) -> float:
        """Seconds to write one checkpoint from ``hosts``, uncontended."""
        return checkpoint_time(model, hosts, self.topology)


class TrainingJob:
    """Run-time state of one submitted training job.

    Attributes:
        spec: what was submitted. model: its model. fidelity: duration, coarse or iteration.
        iterations: total work. checkpoint_every: iterations per checkpoint (0: none).
        fixed_iteration_s: seconds per iteration at ``duration`` fidelity (placement-blind).
        state: queued, running, completed or rejected.
        kept: iterations safe in a checkpoint (or done, at the end).
        lost: iterations run but lost to a stop (redone later).
        slowdown: current factor on the iteration time from network contention (coarse).
        network_wait_s, storage_wait_s: time lost to contention on the fabric, and spent
            waiting for storage (checkpoint writes, data loading not hidden by prefetch).
    """

    __slots__ = ("spec", "model", "fidelity", "iterations", "checkpoint_every",
                 "fixed_iteration_s", "state", "reason", "kept", "lost",
                 "allocation", "timing", "first_start", "end", "gpu_seconds", "energy_j",
                 "preemptions", "process", "flows", "slowdown", "wake", "network_wait_s",
                 "storage_wait_s", "in_segment", "_run_start")

    def __init__(self, spec: JobSpec, model: ModelSpec, iterations: int, checkpoint_every: int,
                 fixed_iteration_s: float | None, fidelity: str = "coarse") -> None:
        self.spec, self.model, self.fidelity = spec, model, fidelity
        self.iterations, self.checkpoint_every = iterations, checkpoint_every
        self.fixed_iteration_s = fixed_iteration_s
        self.state, self.reason = "queued", ""
        self.kept = self.lost = 0
        self.allocation: Allocation | None = None
        self.timing: Timing | None = None
        self.first_start: float | None = None
        self.end: float | None = None
        self.gpu_seconds = self.energy_j = 0.0
        self.network_wait_s = self.storage_wait_s = 0.0
        self.preemptions = 0
        self.process: simpy.Process | None = None
        self.flows: set = set()  # network flows in progress (ended if the job stops)
        self.slowdown = 1.0
        self.wake: simpy.Event | None = None
        self.in_segment = 0.0  # iterations done in the current segment (not yet kept)
        self._run_start = 0.0

    def next_segment(self) -> int:
        """Iterations until the next checkpoint or the end."""
        left = self.iterations - self.kept
        if self.checkpoint_every <= 0:
            return left
        return min(left, self.checkpoint_every - self.kept % self.checkpoint_every)

    def started(self, now: float) -> None:
        """Mark the start of a run (after placement)."""
        self._run_start = now
        self.in_segment = 0.0
        self.slowdown = 1.0

    def account(self, now: float, idle_w: float, max_w: float) -> None:
        """Charge GPU-seconds and GPU energy from the run's start (or last charge) to ``now``."""
        assert self.allocation is not None and self.timing is not None
        held = now - self._run_start
        gpus = self.allocation.gpu_equivalents
        self.gpu_seconds += held * gpus
        self.energy_j += held * gpus * (idle_w + (max_w - idle_w) * self.timing.compute_fraction)
        self._run_start = now

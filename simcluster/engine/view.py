"""The engine side of the policy interface: jobs and the cluster as read-only views.

:class:`JobHandle` is the scheduler's record of one live job (queued or running) and implements
:class:`~simcluster.policies.view.JobView`; :class:`EngineView` implements
:class:`~simcluster.policies.view.ClusterView` over the cluster state, the scheduler's jobs and
the perf model's network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from simcluster.engine.cluster import ClusterState
from simcluster.engine.training import PerfModel, TrainingJob
from simcluster.perf.iteration import fabric_of
from simcluster.workload.jobs import Request

if TYPE_CHECKING:
    from simcluster.engine.scheduler import Scheduler

__all__ = ["EngineView", "JobHandle"]


class JobHandle:
    """A live job as policies see it (read-only properties), plus the scheduler's bookkeeping.

    Args:
        job: the run-time job.
        clock: returns the current simulated time.
        reference_iteration_s: seconds per iteration on the reference (packed) placement.
    """

    __slots__ = ("job", "_clock", "ref_iteration_s", "seq", "run_start", "kept_at_start",
                 "restart_s", "executed_before", "queued_since", "stopping", "stop_at",
                 "lost_seen", "lost_gpu_s")

    def __init__(self, job: TrainingJob, clock, reference_iteration_s: float) -> None:
        self.job, self._clock = job, clock
        self.ref_iteration_s = reference_iteration_s
        self.seq = 0
        self.run_start: float | None = None
        self.kept_at_start = 0
        self.restart_s = 0.0
        self.executed_before = 0.0
        self.queued_since: float | None = None
        self.stopping = False
        self.stop_at = 0.0
        self.lost_seen = 0
        self.lost_gpu_s = 0.0  # GPU-seconds of redone work, preemption checkpoints, restarts

    # JobView ----------------------------------------------------------------------------
    @property
    def id(self) -> int:
        return self.job.spec.id

    @property
    def submit_s(self) -> float:
        return self.job.spec.submit_s

    @property
    def tenant(self) -> str:
        return self.job.spec.tenant

    @property
    def model(self) -> str:
        return self.job.spec.model

    @property
    def request(self) -> Request:
        return self.job.spec.request

    @property
    def ideal_s(self) -> float:
        return self.job.iterations * self.ref_iteration_s

    @property
    def remaining_s(self) -> float:
        job = self.job
        if self.run_start is None or job.timing is None:
            return (job.iterations - job.kept) * self.ref_iteration_s
        left = job.iterations - self.kept_at_start
        ran = self._clock() - self.run_start - self.restart_s
        done = min(left, max(0.0, ran / job.timing.iteration_s)) if job.timing.iteration_s else 0
        return (left - done) * self.ref_iteration_s

    @property
    def attained_gpu_s(self) -> float:
        job = self.job
        if self.run_start is None or job.allocation is None:
            return job.gpu_seconds
        return job.gpu_seconds + (self._clock() - self.run_start) * job.allocation.gpu_equivalents

    @property
    def executed_s(self) -> float:
        if self.run_start is None:
            return self.executed_before
        return self.executed_before + self._clock() - self.run_start

    @property
    def run_start_s(self) -> float | None:
        return self.run_start

    @property
    def queued_since_s(self) -> float | None:
        return self.queued_since

    @property
    def gpus(self) -> tuple[int, ...]:
        alloc = self.job.allocation
        return alloc.gpus if self.run_start is not None and alloc is not None else ()

    @property
    def preemptions(self) -> int:
        return self.job.preemptions


class EngineView:
    """The live :class:`~simcluster.policies.view.ClusterView` of a simulation.

    Args:
        cluster: allocation state. scheduler: whose jobs are shown. perf: the network model.
        speeds: relative speed per (model, GPU type), for mixed clusters (default 1.0).
    """

    def __init__(self, cluster: ClusterState, scheduler: Scheduler, perf: PerfModel,
                 speeds=None) -> None:
        self.cluster, self.scheduler, self.perf = cluster, scheduler, perf
        self.gpu_type_mask = cluster.gpu_type_mask
        self._bandwidth: dict[tuple[int, ...], float] = {}
        self._speeds = speeds

    now = property(lambda self: self.cluster.now)
    gpu_host = property(lambda self: self.cluster.gpu_host)
    host_rack = property(lambda self: self.cluster.host_rack)
    gpu_types = property(lambda self: self.cluster.gpu_types)
    gpu_labels = property(lambda self: self.cluster.gpu_labels)
    gpu_free = property(lambda self: self.cluster.gpu_free)
    host_cpus_free = property(lambda self: self.cluster.host_cpus_free)
    host_memory_free = property(lambda self: self.cluster.host_memory_free)
    host_cpus_per_gpu = property(lambda self: self.cluster.host_cpus_per_gpu)
    host_memory_per_gpu = property(lambda self: self.cluster.host_memory_per_gpu)

    @property
    def jobs_running(self) -> Sequence[JobHandle]:
        """Running jobs that are not being stopped, in start order."""
        return self.scheduler.running_handles()

    @property
    def jobs_pending(self) -> Sequence[JobHandle]:
        """Queued jobs in the current queue order."""
        return self.scheduler.pending_handles()

    def collective_bandwidth(self, gpus: Sequence[int]) -> float:
        """Ring bandwidth over ``gpus`` from the router (NCCL-style channels over rails)."""
        key = tuple(int(g) for g in gpus)
        if len(key) <= 1:
            return float("inf")
        bw = self._bandwidth.get(key)
        if bw is None:
            bw = self._bandwidth[key] = fabric_of(key, self.perf.topology, self.perf.router,
                                                  self.perf.links).ring_bw
        return bw

    def relative_speed(self, model: str, gpu_type: str) -> float:
        """Speed of ``model`` on ``gpu_type`` relative to the slowest type (1.0 if unknown)."""
        if self._speeds is None:
            return 1.0
        return float(self._speeds(model, gpu_type))


def unusable_free(view, requests: Sequence[Request]) -> float:
    """Free GPU share that none of ``requests`` could use now (fragmentation, in GPUs).

    A fractional request can use a GPU of its type with at least its share free; a whole-GPU
    request can use the idle GPUs of its type on hosts that can give it GPUs (CPU and memory
    included), if together they hold enough.
    """
    from simcluster.policies.placement import host_capacity

    free = view.gpu_free
    if not len(requests):
        return 0.0
    usable = np.zeros(len(free), dtype=bool)
    idle = free >= 1.0 - 1e-9
    for r in set(requests):
        mask = view.gpu_type_mask(r.gpu_type)
        if r.fractional:
            usable |= mask & (free >= r.gpus - 1e-9)
        else:
            capacity = host_capacity(r, view)
            if capacity.sum() >= r.whole:
                usable |= mask & idle & (capacity[view.gpu_host] > 0)
    return float(free[~usable].sum())

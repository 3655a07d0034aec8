"""Heterogeneity-aware placement: choose the GPU type by the job's relative speed (Gavel-style).

Gavel (Narayanan et al., "Heterogeneity-Aware Cluster Scheduling Policies for Deep Learning
Workloads", OSDI 2020) allocates GPU types by each job's *normalised throughput*: its throughput
on a type divided by its throughput on its best type, and gives the fast types to the jobs that
gain most from them. ``hetero`` is a greedy, event-driven version of that rule for one job at a
time (Gavel solves an optimisation over rounds; this does not).

>>> from simcluster.policies.view import StaticJob, StaticView
>>> from simcluster.workload.jobs import Request
>>> view = StaticView([2, 2], gpu_types=["A100-80GB", "H100-SXM"],
...                   speeds={("mlp", "H100-SXM"): 3.0})
>>> Hetero().place(Request(1), view, StaticJob(1))   # the faster type while it has room
(2,)
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from simcluster.policies.placement import PLACEMENT_POLICIES, Pack
from simcluster.policies.view import ClusterView, JobView
from simcluster.workload.jobs import Request

__all__ = ["Hetero"]

_EPS = 1e-9


@PLACEMENT_POLICIES.register("hetero")
class Hetero:
    """Place each job on the GPU type where its normalised throughput is highest, with room.

    Rule: for the job's model, s_t = ``view.relative_speed(model, t)`` over the allowed types
    (the request's ``gpu_type`` if it names one, else every type of the cluster); normalised
    throughput n_t = s_t / max s. Types are tried in decreasing n_t (ties: cluster order), and
    within a type the GPUs are chosen as ``pack`` does. Ties between jobs go to the job that
    gains most: with ``yield_fast`` (default true), a job skips a type if other queued jobs that
    gain more from it (larger s_t / min s) would then no longer fit in its free GPUs, provided a
    slower type has room for this job now. Source: Gavel, Narayanan et al., OSDI 2020 (§3-4,
    normalised throughput and max-min / max-throughput allocation over types).

    The scheduler passes the job because the choice depends on its model (``job_aware``); with
    no job, or one GPU type, this is ``pack``.

    Args:
        yield_fast: leave a fast type to queued jobs that gain more from it.
    """

    job_aware = True

    def __init__(self, yield_fast: bool = True) -> None:
        if not isinstance(yield_fast, bool):
            raise TypeError(f"yield_fast must be true or false, got {yield_fast!r}")
        self.yield_fast = yield_fast
        self._pack = Pack()

    @staticmethod
    def _types(request: Request, view: ClusterView) -> list[str]:
        if request.gpu_type is not None:
            return [request.gpu_type]
        return list(dict.fromkeys(view.gpu_types))

    def _gain(self, job: JobView, gpu_type: str, view: ClusterView) -> float:
        speeds = [view.relative_speed(job.model, t) for t in self._types(job.request, view)]
        return view.relative_speed(job.model, gpu_type) / min(speeds) if speeds else 1.0

    def _contested(self, job: JobView, gpu_type: str, view: ClusterView) -> bool:
        """True if queued jobs gaining more from ``gpu_type`` would not fit beside ``job``."""
        free = float(view.gpu_free[view.gpu_type_mask(gpu_type)].sum())
        mine = self._gain(job, gpu_type, view)
        others = 0.0
        for other in view.jobs_pending:
            if other.id == job.id or gpu_type not in self._types(other.request, view):
                continue
            if other.request.gpus <= free + _EPS and self._gain(other, gpu_type, view) > mine:
                others += other.request.gpus
        return others > _EPS and free - job.request.gpus < others - _EPS

    def place(self, request: Request, view: ClusterView,
              job: JobView | None = None) -> tuple[int, ...] | None:
        types = self._types(request, view)
        if job is None or len(types) < 2:
            return self._pack.place(request, view)
        speeds = np.array([view.relative_speed(job.model, t) for t in types])
        normalised = speeds / speeds.max()
        order = sorted(range(len(types)), key=lambda i: (-normalised[i], i))
        options = [(types[i], self._pack.place(replace(request, gpu_type=types[i]), view))
                   for i in order]
        options = [(t, gpus) for t, gpus in options if gpus is not None]
        if not options:
            return None
        if not self.yield_fast:
            return options[0][1]
        for t, gpus in options[:-1]:  # a slower type with room remains after each of these
            if not self._contested(job, t, view):
                return gpus
        return options[-1][1]

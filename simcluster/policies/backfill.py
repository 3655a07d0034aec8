"""EASY backfilling (Lifka 1995; Mu'alem & Feitelson, IEEE TPDS 2001).

The queue is FIFO. When the head job does not fit, it gets a *reservation*: the shadow time at
which, by the running jobs' estimated ends, enough GPUs of its type will be free, and the number
of *extra* GPUs free at that time beyond what the head needs. A later job may start now (backfill)
only if it fits now and either ends (by its estimate) before the shadow time or uses no more than
the extra GPUs — so, when estimates are not too short, it never delays the head.

The scheduler asks :meth:`EasyBackfill.reserve` when the head is blocked and
:meth:`EasyBackfill.admit` for each later job that placement could start.

>>> from simcluster.policies.view import StaticJob, StaticView
>>> running = [StaticJob(1, size=2, remaining=100.0, gpus=(0, 1), run_start_s=0.0)]
>>> view = StaticView([4], gpu_free=[0, 0, 1, 1], running=running)
>>> easy = EasyBackfill()
>>> r = easy.reserve(StaticJob(2, size=4), view)
>>> r.shadow_s, r.extra
(100.0, 0.0)
>>> easy.admit(StaticJob(3, ideal_s=50.0), (2,), r, view) is not None  # ends before shadow
True
>>> easy.admit(StaticJob(4, ideal_s=500.0), (2,), r, view) is None     # would delay the head
True
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from simcluster.policies.queue import QUEUE_POLICIES, Estimates, QueuePolicy
from simcluster.policies.view import ClusterView, JobView
from simcluster.rng import Streams

__all__ = ["EasyBackfill", "Reservation"]

_EPS = 1e-9


@dataclass(frozen=True)
class Reservation:
    """The head job's reservation: when it will start at the latest, and the spare GPUs then.

    Attributes:
        job_id: the head job. shadow_s: its reserved start time (s).
        extra: GPUs of its type free at the shadow time beyond its need.
        gpu_type: the GPU type it needs (None: any).
    """

    job_id: int
    shadow_s: float
    extra: float
    gpu_type: str | None


@QUEUE_POLICIES.register("easy_backfill")
class EasyBackfill(QueuePolicy):
    """FIFO with EASY backfilling on estimated run times.

    Args:
        estimate_sigma: log-normal error of user run-time estimates (0: the oracle). EASY's
            guarantee to the head holds when estimates are not too short.
        streams: random streams (set by the engine).
    """

    blocking = True
    backfill = True

    def __init__(self, estimate_sigma: float = 0.0, streams: Streams | None = None) -> None:
        self.estimates = Estimates(estimate_sigma, streams)

    def key(self, job: JobView, view: ClusterView | None = None) -> tuple[float, int]:
        return (job.submit_s, job.id)

    def reserve(self, head: JobView, view: ClusterView) -> Reservation:
        """The head's reservation from the running jobs' estimated ends."""
        gpu_type = head.request.gpu_type
        mask = view.gpu_type_mask(gpu_type)
        need = head.request.gpus
        free = float(np.count_nonzero(view.gpu_free[mask] >= 1.0 - _EPS))
        if head.request.fractional:
            free = float(view.gpu_free[mask].max(initial=0.0))
        now = view.now
        ends = []
        for job in view.jobs_running:
            mine = sum(1 for g in job.gpus if mask[g])
            if mine:
                share = job.request.gpus / len(job.gpus)
                ends.append((now + self.estimates.remaining(job), mine * share))
        shadow = now
        for end, gpus in sorted(ends):
            if free + _EPS >= need:
                break
            shadow, free = end, free + gpus
        if free + _EPS < need:
            return Reservation(head.id, float("inf"), 0.0, gpu_type)
        return Reservation(head.id, shadow, free - need, gpu_type)

    def admit(self, job: JobView, gpus: tuple[int, ...], reservation: Reservation,
              view: ClusterView) -> Reservation | None:
        """The reservation after starting ``job`` on ``gpus``, or None if that would delay the
        head."""
        if view.now + self.estimates.remaining(job) <= reservation.shadow_s + _EPS:
            return reservation
        mask = view.gpu_type_mask(reservation.gpu_type)
        share = job.request.gpus / max(1, len(gpus))
        used = sum(share for g in gpus if mask[g])
        if used <= reservation.extra + _EPS:
            return replace(reservation, extra=reservation.extra - used)
        return None

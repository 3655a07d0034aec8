"""Least attained service: Tiresias' discretised two-dimensional LAS (Gu et al., NSDI'19).

A job's attained service is the GPU-time it has received (GPUs × seconds run: the "2D" of
Tiresias, so a wide job ages faster than a narrow one). Queues are bands of attained service cut at
``thresholds``: a new job enters queue 0; it drops a queue when its attained service crosses a
threshold. Queues are served in order and FIFO (by submission) inside a queue; a pending job of a
better queue preempts running jobs of worse queues (:mod:`simcluster.policies.preemption`).
Starvation prevention: a pending job that has waited ``starvation_factor`` × its run time so far
is promoted to queue 0 and its attained service is counted from zero again (Tiresias'
STARVELIMIT rule).

Threshold crossings are the policy's timers: :meth:`Las.next_event` gives the next time a running
job changes queue or a waiting job is promoted, and the scheduler runs one pass then.

>>> from simcluster.policies.view import StaticJob
>>> las = Las(thresholds=[100.0, 1000.0])
>>> [las.queue(StaticJob(i, attained_gpu_s=a)) for i, a in enumerate([0.0, 100.0, 5e3])]
[0, 1, 2]
"""

from __future__ import annotations

from collections.abc import Sequence

from simcluster.policies.preemption import ideal_set_victims, lease_expiry
from simcluster.policies.queue import QUEUE_POLICIES, QueuePolicy, _flag, _nonneg
from simcluster.policies.view import ClusterView, JobView

__all__ = ["Las"]

_EPS = 1e-9


@QUEUE_POLICIES.register("las")
class Las(QueuePolicy):
    """Discretised least-attained-service with starvation prevention (Tiresias, NSDI'19).

    Args:
        thresholds: attained GPU-seconds at which a job drops to the next queue, ascending.
            Default 1 and 10 GPU-hours: an assumption for day-scale workloads (Tiresias tunes
            its thresholds per trace); give ``[]`` for one queue (FIFO).
        starvation_factor: promote a pending job to queue 0 after it has waited this many times
            its run time so far (0 disables).
        preempt: better queues preempt worse ones (default True).
        min_run_s: a job runs at least this long before it can be preempted.
    """

    dynamic = True
    blocking = False

    def __init__(self, thresholds: Sequence[float] = (3600.0, 36000.0),
                 starvation_factor: float = 2.0, preempt: bool = True,
                 min_run_s: float = 0.0) -> None:
        values = [_nonneg("thresholds", t) for t in thresholds]
        if values != sorted(values) or len(set(values)) != len(values):
            raise TypeError(f"thresholds must be strictly ascending, got {list(thresholds)!r}")
        self.thresholds = values
        self.starvation_factor = _nonneg("starvation_factor", starvation_factor)
        self.preemptive = _flag("preempt", preempt)
        self.min_run_s = _nonneg("min_run_s", min_run_s)
        self._offset: dict[int, float] = {}  # attained service forgiven by promotions

    def attained(self, job: JobView) -> float:
        """Attained GPU-seconds since the job's last promotion."""
        return max(0.0, job.attained_gpu_s - self._offset.get(job.id, 0.0))

    def queue(self, job: JobView) -> int:
        """The job's queue (0 = best)."""
        a = self.attained(job)
        return sum(1 for t in self.thresholds if a >= t - _EPS)

    def _starving_at(self, job: JobView) -> float | None:
        if (self.starvation_factor <= 0 or job.queued_since_s is None or job.executed_s <= 0
                or self.queue(job) == 0):
            return None
        return job.queued_since_s + self.starvation_factor * job.executed_s

    def _promote(self, view: ClusterView) -> None:
        for job in view.jobs_pending:
            due = self._starving_at(job)
            if due is not None and view.now >= due - _EPS:
                self._offset[job.id] = job.attained_gpu_s

    def key(self, job: JobView, view: ClusterView | None = None) -> tuple[int, float, int]:
        if view is not None and job.queued_since_s is not None:
            due = self._starving_at(job)
            if due is not None and view.now >= due - _EPS:
                self._offset[job.id] = job.attained_gpu_s
        return (self.queue(job), job.submit_s, job.id)

    def preempt(self, view: ClusterView) -> list[int]:
        self._promote(view)
        if not self.preemptive or not view.jobs_pending:
            return []
        # only a pending job of a better queue may preempt: when none is better than the
        # worst running job, the ideal set stops nobody (exact; skips the O(R + P) walk)
        best = min(self.queue(p) for p in view.jobs_pending)
        if all(self.queue(r) <= best for r in view.jobs_running):
            return []
        return ideal_set_victims(view, self.key, min_run_s=self.min_run_s,
                                 may_preempt=lambda p, r: self.queue(p) < self.queue(r))

    def next_event(self, view: ClusterView) -> float | None:
        if not view.jobs_pending:
            return None
        now = view.now
        times = []
        for job in view.jobs_running:
            rate = job.request.gpus
            above = [t for t in self.thresholds if t > self.attained(job) + _EPS]
            if above and rate > 0:
                times.append(now + (above[0] - self.attained(job)) / rate)
        for job in view.jobs_pending:
            due = self._starving_at(job)
            if due is not None and due > now + _EPS:
                times.append(due)
        lease = lease_expiry(view, self.min_run_s)
        if lease is not None:
            times.append(lease)
        return min(times) if times else None

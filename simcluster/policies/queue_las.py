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
job changes queue or a waiting job is promoted, and the scheduler runs one pass then. In the
engine, :meth:`Las.on_start` and :meth:`Las.on_stop` keep each running job's queue in a heap of
crossing times (:class:`_Levels`), so a pass costs O(pending + crossings), not O(running): a
full-trace replay has ~600 running jobs and ~10^5 passes. Given only a view (no notifications),
the policy computes the same answers from the running jobs themselves.

>>> from simcluster.policies.view import StaticJob
>>> las = Las(thresholds=[100.0, 1000.0])
>>> [las.queue(StaticJob(i, attained_gpu_s=a)) for i, a in enumerate([0.0, 100.0, 5e3])]
[0, 1, 2]
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Sequence

from simcluster.policies.preemption import (
    ENTRY_KEY,
    Entry,
    entry,
    ideal_set_victims,
    lease_expiry,
)
from simcluster.policies.queue import QUEUE_POLICIES, QueuePolicy, _flag, _nonneg
from simcluster.policies.view import ClusterView, JobView

__all__ = ["Las"]

_EPS = 1e-9
_MARGIN = 1e-3  # s: crossings this close are checked with the exact test (rounding of times)


class _Levels:
    """The queue of every running job, advanced by a heap of threshold-crossing times.

    A running job's attained service grows at its GPU-equivalents per second, so the time it
    crosses each threshold is known when it starts. :meth:`advance` pops the crossings due by
    ``now`` (and those within ``_MARGIN`` of it) and moves a job down a queue only when the exact
    test of :meth:`Las.queue` says so; a crossing more than ``_MARGIN`` away cannot have happened,
    so the levels equal :meth:`Las.queue` at every pass.
    """

    def __init__(self, las: Las) -> None:
        self.las = las
        # id -> [job, run start, queue, attained at the start, GPU-equivalents]
        self.jobs: dict[int, list] = {}
        self.heap: list[tuple[float, int, float]] = []  # (crossing time, id, run start)
        self.order: list[Entry] = []  # the running jobs ranked by LAS key (queue first)

    def start(self, job: JobView) -> None:
        self.stop(job)
        if job.run_start_s is None:
            return
        request = job.request
        rate = len(job.gpus) * (request.gpus if request.fractional else 1.0)
        level = self.las.queue(job)
        self.jobs[job.id] = [job, job.run_start_s, level, self.las.attained(job), rate]
        self._rank(job, level)
        self._push(job.id)

    def stop(self, job: JobView) -> None:
        entry = self.jobs.pop(job.id, None)
        if entry is not None:
            self._unrank(entry[0], entry[2])

    def _rank(self, job: JobView, level: int) -> None:
        key = (level, job.submit_s, job.id)
        bisect.insort(self.order, entry(lambda _j: key, job), key=ENTRY_KEY)

    def _unrank(self, job: JobView, level: int) -> None:
        i = bisect.bisect_left(self.order, (level, job.submit_s, job.id), key=ENTRY_KEY)
        assert self.order[i][5] is job, "LAS ranking out of step with the running jobs"
        del self.order[i]

    def _push(self, job_id: int) -> None:
        _, start, level, attained, rate = self.jobs[job_id]
        if level < len(self.las.thresholds) and rate > 0:
            when = start + (self.las.thresholds[level] - attained) / rate
            heapq.heappush(self.heap, (when, job_id, start))

    def advance(self, now: float) -> None:
        """Move every job whose attained service has reached its next threshold."""
        heap, near = self.heap, []
        while heap and heap[0][0] <= now + _MARGIN:
            item = heapq.heappop(heap)
            entry = self.jobs.get(item[1])
            if entry is None or entry[1] != item[2]:
                continue  # stopped (or restarted) since
            if self.las.queue(entry[0]) > entry[2]:
                self._unrank(entry[0], entry[2])
                entry[2] += 1
                self._rank(entry[0], entry[2])
                self._push(item[1])
            else:
                near.append(item)  # due within the margin, not yet crossed
        for item in near:
            heapq.heappush(heap, item)

    def worst(self) -> int:
        """The worst (highest) queue of a running job, -1 with none running."""
        return self.order[-1][0][0] if self.order else -1

    def next_crossing(self) -> float | None:
        """The earliest pending threshold crossing of a running job."""
        heap = self.heap
        while heap and ((e := self.jobs.get(heap[0][1])) is None or e[1] != heap[0][2]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None


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
        self._levels: _Levels | None = None  # running jobs' queues, once the engine reports

    def on_start(self, job: JobView) -> None:
        if self._levels is None:
            self._levels = _Levels(self)
        self._levels.start(job)

    def on_stop(self, job: JobView) -> None:
        if self._levels is not None:
            self._levels.stop(job)

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
        tracked = None if self._levels is None else self._levels.jobs.get(job.id)
        # a running job's queue as the engine's reports keep it (equal to self.queue(job))
        return (self.queue(job) if tracked is None else tracked[2], job.submit_s, job.id)

    def _tracked(self, view: ClusterView) -> _Levels | None:
        """The running jobs' queues as of now, if the engine reports starts and stops."""
        if self._levels is not None:
            self._levels.advance(view.now)
        return self._levels

    def preempt(self, view: ClusterView) -> list[int]:
        self._promote(view)
        pending = view.jobs_pending
        if not self.preemptive or not pending:
            return []
        # only a pending job of a better queue may preempt: when none is better than the
        # worst running job, the ideal set stops nobody (exact; skips the O(R + P) walk)
        best = min(self.queue(p) for p in pending)
        levels = self._tracked(view)
        if levels is not None:
            if levels.worst() <= best:
                return []
        elif all(self.queue(r) <= best for r in view.jobs_running):
            return []
        return ideal_set_victims(view, self.key, min_run_s=self.min_run_s,
                                 may_preempt=lambda p, r: self.key(p)[0] < self.key(r)[0],
                                 ranked_running=None if levels is None else levels.order)

    def next_event(self, view: ClusterView) -> float | None:
        if not view.jobs_pending:
            return None
        now = view.now
        times = []
        levels = self._tracked(view)
        crossing = None if levels is None else levels.next_crossing()
        if crossing is not None and crossing > now + _MARGIN:
            times.append(crossing)  # every other crossing is later
        for job in (() if levels is not None and (crossing is None or crossing > now + _MARGIN)
                    else view.jobs_running):  # without reports, or a crossing due about now
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

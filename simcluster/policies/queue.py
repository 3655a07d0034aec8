"""Queue policies: the order in which pending jobs are offered to placement, and preemptions.

A queue policy gives each pending job a sort key (smaller = sooner) and says whether the queue is
*blocking*: a blocking queue stops at the first job that does not fit (strict order, no job
overtakes), a non-blocking one offers every job in order and starts those that fit. Registered by
name in :data:`QUEUE_POLICIES`. The optional parts of the interface (see :class:`QueuePolicy`):

- ``dynamic = True``: keys depend on time or on the cluster (attained service, remaining time,
  tenant shares); the scheduler re-keys the pending jobs at every scheduling pass (passes happen
  on events: submit, end, stop, policy timer — never by polling).
- ``rekey_on_start = True``: keys also change when a job starts (fair shares): the scheduler
  re-keys after every start within a pass.
- ``preempt(view) -> list[int]``: ids of running jobs to stop now (the scheduler stops them through
  its ``stop`` mechanism; they checkpoint, release their GPUs and re-queue).
- ``next_event(view) -> float | None``: the next time (s) at which the policy's decisions may
  change without any other event (a LAS threshold crossing, a lease expiry); the scheduler runs a
  pass then, as one scheduled event.
- ``on_start(job)``, ``on_stop(job)``: the engine reports every start and every stop (from the
  moment a stop is asked). A policy may keep incremental state from them to avoid a scan of the
  running jobs on every pass; its decisions must be the same as without them (LAS does this).

>>> from simcluster.policies.view import StaticJob
>>> a, b = StaticJob(1, submit_s=5.0), StaticJob(2, submit_s=3.0, ideal_s=9e3)
>>> sorted([a, b], key=Fifo().key)[0].id, sorted([a, b], key=Sjf().key)[0].id
(2, 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simcluster.policies.preemption import ideal_set_victims, lease_expiry
from simcluster.policies.view import ClusterView, JobView
from simcluster.registry import Registry
from simcluster.rng import Streams

__all__ = ["QUEUE_POLICIES", "Estimates", "Fifo", "Priority", "QueuePolicy", "Sjf", "Srtf"]

QUEUE_POLICIES: Registry[type] = Registry("queue policy")


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be true or false, got {value!r}")
    return value


def _nonneg(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise TypeError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


class QueuePolicy:
    """Defaults of the queue-policy interface: static keys, no preemption, no timers."""

    blocking: bool = True
    dynamic: bool = False
    rekey_on_start: bool = False

    def key(self, job: JobView, view: ClusterView | None = None) -> Any:  # pragma: no cover
        raise NotImplementedError

    def preempt(self, view: ClusterView) -> list[int]:
        """Running jobs to stop now (none by default)."""
        return []

    def next_event(self, view: ClusterView) -> float | None:
        """When decisions may next change on their own (never by default)."""
        return None

    def on_start(self, job: JobView) -> None:
        """A job started running (nothing to do by default)."""

    def on_stop(self, job: JobView) -> None:
        """A running job is stopping or has ended (nothing to do by default)."""


class Estimates:
    """Run-time estimates for a policy: the oracle, or a user's estimate with lognormal error.

    A user estimate is the oracle run time times ``exp(N(0, sigma))``, one draw per job from the
    stream ``policy/estimates`` keyed by the job id (the same error under every policy).

    Args:
        sigma: standard deviation of the log error (0: the oracle).
        streams: the simulation's random streams (passed in by the engine).
    """

    def __init__(self, sigma: float = 0.0, streams: Streams | None = None) -> None:
        self.sigma = _nonneg("estimate_sigma", sigma)
        self._streams = streams if streams is not None else Streams(0)
        self._factor: dict[int, float] = {}

    def factor(self, job: JobView) -> float:
        """The job's estimate / oracle ratio (1.0 for the oracle)."""
        if self.sigma == 0.0:
            return 1.0
        f = self._factor.get(job.id)
        if f is None:
            rng = self._streams.for_entity("policy/estimates", job.id)
            f = self._factor[job.id] = float(rng.lognormal(0.0, self.sigma))
        return f

    def total(self, job: JobView) -> float:
        """Estimated uncontended run time (s)."""
        return job.ideal_s * self.factor(job)

    def remaining(self, job: JobView) -> float:
        """Estimated remaining run time (s); a job past its estimate is about to end (0)."""
        return max(0.0, job.ideal_s * self.factor(job) - (job.ideal_s - job.remaining_s))


@QUEUE_POLICIES.register("fifo")
class Fifo(QueuePolicy):
    """First in, first out by submission time (ties by job id).

    Args:
        blocking: True (default) for strict FIFO: the head job waits for room and nothing
            overtakes it. False lets later jobs that fit start while the head waits ("first fit
            in arrival order", which can starve large jobs).
    """

    def __init__(self, blocking: bool = True) -> None:
        self.blocking = _flag("blocking", blocking)

    def key(self, job: JobView, view: ClusterView | None = None) -> tuple[float, int]:
        """Sort key of a pending job: (submit time, id)."""
        return (job.submit_s, job.id)


@QUEUE_POLICIES.register("sjf")
class Sjf(QueuePolicy):
    """Shortest job first: by estimated run time (or GPU-time), non-preemptive.

    Classic SJF (Tiresias' SJF and shortest-GPU-time baselines; Gu et al., NSDI'19).

    Args:
        by: ``"time"`` (estimated run time) or ``"gpu_time"`` (run time × GPUs).
        estimate_sigma: log-normal error of user estimates (0: oracle run time).
        blocking: stop at the first job that does not fit (default False: backfill smaller).
        streams: random streams (set by the engine).
    """

    def __init__(self, by: str = "time", estimate_sigma: float = 0.0, blocking: bool = False,
                 streams: Streams | None = None) -> None:
        if by not in ("time", "gpu_time"):
            raise TypeError(f"by must be 'time' or 'gpu_time', got {by!r}")
        self.by = by
        self.blocking = _flag("blocking", blocking)
        self.estimates = Estimates(estimate_sigma, streams)

    def key(self, job: JobView, view: ClusterView | None = None) -> tuple[float, float, int]:
        est = self.estimates.total(job)
        if self.by == "gpu_time":
            est *= job.request.gpus
        return (est, job.submit_s, job.id)


@QUEUE_POLICIES.register("srtf")
class Srtf(QueuePolicy):
    """Shortest remaining time first, preemptive: a pending job whose estimated remaining time is
    shorter than a running job's may take its GPUs (Schrage 1968; Tiresias' SRTF baseline).

    Args:
        estimate_sigma: log-normal error of user estimates (0: oracle).
        preempt: allow preemption (default True; False is shortest-remaining order only).
        min_run_s: a job runs at least this long before it can be preempted (bounds thrashing).
        streams: random streams (set by the engine).
    """

    dynamic = True
    blocking = False

    def __init__(self, estimate_sigma: float = 0.0, preempt: bool = True,
                 min_run_s: float = 0.0, streams: Streams | None = None) -> None:
        self.estimates = Estimates(estimate_sigma, streams)
        self.preemptive = _flag("preempt", preempt)
        self.min_run_s = _nonneg("min_run_s", min_run_s)

    def key(self, job: JobView, view: ClusterView | None = None) -> tuple[float, float, int]:
        return (self.estimates.remaining(job), job.submit_s, job.id)

    def preempt(self, view: ClusterView) -> list[int]:
        if not self.preemptive:
            return []
        return ideal_set_victims(view, self.key, min_run_s=self.min_run_s)

    def next_event(self, view: ClusterView) -> float | None:
        return lease_expiry(view, self.min_run_s) if self.preemptive else None


@QUEUE_POLICIES.register("priority")
class Priority(QueuePolicy):
    """Strict priority classes (0 = highest), FIFO inside a class; optionally a pending job
    preempts running jobs of *lower* classes (never of its own), as production clusters do for
    guaranteed vs. best-effort virtual clusters (e.g. Philly: Jeon et al., ATC'19).

    Args:
        classes: tenant → class number; other tenants get ``default_class``.
        default_class: class of unlisted tenants.
        preempt: whether higher classes preempt lower ones.
        min_run_s: a job runs at least this long before it can be preempted.
        blocking: stop at the first job that does not fit.
    """

    def __init__(self, classes: Mapping[str, int] | None = None, default_class: int = 1,
                 preempt: bool = False, min_run_s: float = 0.0, blocking: bool = False) -> None:
        self.classes = dict(classes or {})
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in self.classes.values()):
            raise TypeError(f"classes must map tenants to integers, got {self.classes!r}")
        self.default_class = int(default_class)
        self.preemptive = _flag("preempt", preempt)
        self.min_run_s = _nonneg("min_run_s", min_run_s)
        self.blocking = _flag("blocking", blocking)

    def level(self, job: JobView) -> int:
        """The job's class."""
        return self.classes.get(job.tenant, self.default_class)

    def key(self, job: JobView, view: ClusterView | None = None) -> tuple[int, float, int]:
        return (self.level(job), job.submit_s, job.id)

    def preempt(self, view: ClusterView) -> list[int]:
        if not self.preemptive:
            return []
        return ideal_set_victims(view, self.key, min_run_s=self.min_run_s,
                                 may_preempt=lambda p, r: self.level(r) > self.level(p))

    def next_event(self, view: ClusterView) -> float | None:
        return lease_expiry(view, self.min_run_s) if self.preemptive else None


# the other families register themselves on import
from simcluster.policies import backfill, fair, queue_las  # noqa: E402, F401

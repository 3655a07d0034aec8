"""Queue policies: the order in which pending jobs are offered to placement.

A queue policy gives each pending job a sort key when it is queued (smaller = sooner) and says
whether the queue is *blocking*: a blocking queue stops at the first job that does not fit (strict
order, no job overtakes), a non-blocking one offers every job in order and starts those that fit.
Registered by name in :data:`QUEUE_POLICIES`.

>>> from simcluster.workload.jobs import JobSpec, Request
>>> a = JobSpec(id=1, submit_s=5.0, request=Request(1), model="mlp")
>>> b = JobSpec(id=2, submit_s=3.0, request=Request(8), model="mlp")
>>> sorted([a, b], key=Fifo().key)[0].id
2
"""

from __future__ import annotations

from simcluster.registry import Registry
from simcluster.workload.jobs import JobSpec

__all__ = ["QUEUE_POLICIES", "Fifo"]

QUEUE_POLICIES: Registry[type] = Registry("queue policy")


@QUEUE_POLICIES.register("fifo")
class Fifo:
    """First in, first out by submission time (ties by job id).

    Args:
        blocking: True (default) for strict FIFO: the head job waits for room and nothing
            overtakes it. False lets later jobs that fit start while the head waits ("first fit
            in arrival order", which can starve large jobs).
    """

    def __init__(self, blocking: bool = True) -> None:
        if not isinstance(blocking, bool):
            raise TypeError(f"blocking must be true or false, got {blocking!r}")
        self.blocking = blocking

    def key(self, job: JobSpec) -> tuple[float, int]:
        """Sort key of a pending job: (submit time, id)."""
        return (job.submit_s, job.id)

"""The scheduling event log: every decision the scheduler takes, with its reason.

Off by default (a run of a million jobs does not need it); ``simcluster.run(...,
trace_events=True)`` or ``simcluster run --trace-events FILE`` turns it on. Rows:
``t`` (simulated s), ``event``, ``job``, ``gpus`` (the GPU indices of a start), ``detail``
(the reason, in words). Events:

- ``submit``: a job arrived and was queued; ``reject``: it can never run, or admission refused;
- ``wait``: a scheduling pass left it queued, and why (logged when the reason changes);
- ``start``: placed on GPUs (which, on which hosts, by which policy);
- ``preempt``: the queue policy stopped it for others; ``stop``: stopped by a failure or
  maintenance (``detail`` names the cause); ``requeue``: back in the queue after a stop;
- ``end``: completed.

>>> log = EventLog()
>>> log.add(0.0, "submit", 3, detail="8 GPUs")
>>> log.frame()[["event", "job", "detail"]].values.tolist()
[['submit', 3, '8 GPUs']]
"""

from __future__ import annotations

import pandas as pd

__all__ = ["EVENT_COLUMNS", "EventLog"]

EVENT_COLUMNS = ["t", "event", "job", "gpus", "detail"]


class EventLog:
    """Rows of scheduling decisions, appended in simulated-time order."""

    __slots__ = ("_rows", "_waiting")

    def __init__(self) -> None:
        self._rows: list[tuple[float, str, int, str, str]] = []
        self._waiting: dict[int, str] = {}  # job -> last logged wait reason

    def add(self, t: float, event: str, job: int, gpus: tuple[int, ...] = (),
            detail: str = "") -> None:
        """Append one decision."""
        if event != "wait":
            self._waiting.pop(job, None)
        self._rows.append((t, event, job, " ".join(map(str, gpus)), detail))

    def wait(self, t: float, job: int, reason: str) -> None:
        """Log that ``job`` stays queued for ``reason``, unless that is already logged."""
        if self._waiting.get(job) != reason:
            self._waiting[job] = reason
            self._rows.append((t, "wait", job, "", reason))

    def __len__(self) -> int:
        return len(self._rows)

    def frame(self) -> pd.DataFrame:
        """The log as a table (columns :data:`EVENT_COLUMNS`)."""
        return pd.DataFrame(self._rows, columns=EVENT_COLUMNS)

"""A progress line for long runs, in simulated time: jobs done, simulated days, events/s.

Nothing polls: the simulation calls :meth:`Progress.tick` from events it processes anyway (a
job's arrival, a job reduced to its record row); the line is redrawn at most every
``interval_s`` of wall time. It is drawn only on a terminal (``stream.isatty()``), so logs and
pipes stay clean; ``simcluster run --quiet`` turns it off.

>>> import io
>>> p = Progress(io.StringIO())      # not a terminal: quiet
>>> p.enabled
False
>>> out = io.StringIO()
>>> p = Progress(out, enabled=True, interval_s=0.0, total_jobs=4)
>>> p.tick(now_s=86400.0, jobs_done=2, events=100)
>>> "2/4 jobs" in out.getvalue() and "1.00 simulated days" in out.getvalue()
True
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """A rate-limited progress line on a terminal.

    Args:
        stream: where to draw (default stderr).
        enabled: draw at all; default: only if ``stream`` is a terminal.
        interval_s: least wall time between redraws (s).
        total_jobs: jobs expected, if known (shown as ``done/total``).
    """

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None,
                 interval_s: float = 0.5, total_jobs: int | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = bool(isatty and isatty()) if enabled is None else enabled
        self.interval_s = interval_s
        self.total_jobs = total_jobs
        self._started = time.perf_counter()
        self._last = -float("inf")
        self._drawn = False
        self._width = 0

    def tick(self, now_s: float, jobs_done: int, events: int | Callable[[], int]) -> None:
        """Note progress; redraws if ``interval_s`` of wall time has passed since the last.

        ``events`` (SimPy events so far) may be a callable, evaluated only on a redraw.
        """
        if not self.enabled:
            return
        wall = time.perf_counter()
        if wall - self._last < self.interval_s:
            return
        self._last = wall
        elapsed = max(wall - self._started, 1e-9)
        events = events() if callable(events) else events
        jobs = f"{jobs_done}/{self.total_jobs}" if self.total_jobs else f"{jobs_done}"
        line = (f"{jobs} jobs done | {now_s / 86400.0:.2f} simulated days | "
                f"{events / elapsed:,.0f} events/s | {elapsed:.0f} s")
        self._width = max(self._width, len(line))
        self.stream.write("\r" + line.ljust(self._width))  # blanks what a longer line left
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the line (if one was drawn)."""
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()

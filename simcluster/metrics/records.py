"""Flat records appended during a run: one row per job, one row per change of cluster state.

The recorder only appends; it never computes summaries (those are pure functions in
:mod:`simcluster.metrics.summary`).
"""

from __future__ import annotations

import math
from array import array

import numpy as np
import pandas as pd

__all__ = ["JOB_COLUMNS", "UTILIZATION_COLUMNS", "Recorder"]

JOB_COLUMNS = (
    "job_id", "tenant", "model", "state", "reason", "submit_s", "start_s", "end_s", "wait_s",
    "run_s", "jct_s", "gpus", "nodes", "iterations", "iterations_done", "iterations_lost",
    "preemptions", "gpu_hours", "energy_kwh", "cost_usd", "network_wait_s", "storage_wait_s",
    "ideal_s", "lost_gpu_hours",
    # issue 8 (engine/failures.py Ledger): failures that stopped the job; wall seconds while
    # holding GPUs spent on kept work, lost work, blocking checkpoints, restarts, stalls, and
    # their sum; effective training time ratio; mean time from a failure back to work
    "failures", "useful_s", "lost_s", "checkpoint_s", "restart_s", "stall_s", "held_s", "ettr",
    "recover_s",
)
UTILIZATION_COLUMNS = (
    "time_s", "gpus_allocated", "gpus_computing", "jobs_running", "jobs_queued",
    "gpus_fragmented", "gpus_busy_w",
)


class _Column:
    """One column, stored compactly: an ``array('q')`` while every value is an int, an
    ``array('d')`` while values are ints, floats or None (None kept as NaN, as pandas makes it),
    else a plain list. 8 bytes per number instead of a float object and a tuple slot (a million
    job rows fit in a few hundred MB). The frame comes out with the dtypes that building it from
    tuples of the same values gives."""

    __slots__ = ("data", "nones", "leading")

    def __init__(self) -> None:
        self.data: array | list | None = None  # None until the first non-None value
        self.nones: list[int] = []             # positions of None in a float array
        self.leading = 0                        # Nones before the first value

    def __len__(self) -> int:
        return self.leading if self.data is None else len(self.data)

    def append(self, v: object) -> None:
        data, kind = self.data, getattr(self.data, "typecode", None)
        if data is None:
            if v is None:
                self.leading += 1
                return
            if type(v) is int and not self.leading:
                self.data = array("q")
            elif type(v) in (int, float) or isinstance(v, float):
                self.data = array("d", [math.nan] * self.leading)
                self.nones = list(range(self.leading))
            else:
                self.data = [None] * self.leading
            self.leading = 0
            self.append(v)
            return
        if kind == "q" and type(v) is not int:
            if v is None or isinstance(v, float):
                self.data = data = array("d", data)
                kind = "d"
            else:
                self.data = data = list(data)
                kind = None
        if kind == "d":
            if v is None:
                self.nones.append(len(data))
                data.append(math.nan)
                return
            if type(v) is int or isinstance(v, float):
                data.append(v)
                return
            values = data.tolist()
            for i in self.nones:
                values[i] = None
            self.data = data = values
            self.nones = []
        data.append(v)

    def extend(self, values: tuple) -> None:
        """Append many values: one C-level extend when they all fit the current storage."""
        data = self.data
        if data is None and values.count(None) == len(values):
            self.leading += len(values)
            return
        if isinstance(data, list):
            data.extend(values)
            return
        if isinstance(data, array) and bool not in set(map(type, values)):
            n = len(data)
            try:
                data.extend(values)
                return
            except TypeError:  # None, or a float in an int column: value by value
                del data[n:]
        for v in values:
            self.append(v)

    def pop(self) -> None:
        """Drop the last value (to replace a row by one of the same types: a type change
        made by the dropped value is not undone)."""
        if self.data is None:
            self.leading -= 1
            return
        self.data.pop()
        if self.nones and self.nones[-1] == len(self.data):
            self.nones.pop()

    def values(self) -> np.ndarray | list:
        if self.data is None or len(self.nones) == len(self.data):
            return [None] * len(self)
        if isinstance(self.data, array):
            return np.frombuffer(self.data, dtype=np.int64 if self.data.typecode == "q"
                                 else np.float64).copy()
        return self.data


class _Table:
    """Rows buffered as tuples, moved into columns (:class:`_Column`) a chunk at a time (one
    C-level ``array.extend`` per column and chunk instead of a Python call per value)."""

    CHUNK = 4096

    def __init__(self, columns: tuple[str, ...]) -> None:
        self.names = columns
        self.columns = [_Column() for _ in columns]
        self.rows: list[tuple] = []

    def __len__(self) -> int:
        return len(self.columns[0]) + len(self.rows)

    def append(self, row: tuple) -> None:
        if len(row) != len(self.names):
            raise ValueError(f"a row of {len(row)} values for {len(self.names)} columns")
        self.rows.append(row)
        if len(self.rows) >= self.CHUNK:
            self._flush()

    def pop(self) -> None:
        if self.rows:
            self.rows.pop()
        else:
            for column in self.columns:
                column.pop()

    def _flush(self) -> None:
        rows, self.rows = self.rows, []
        if rows:
            for column, values in zip(self.columns, zip(*rows, strict=True), strict=True):
                column.extend(values)

    def frame(self) -> pd.DataFrame:
        self._flush()
        if not len(self):
            return pd.DataFrame([], columns=list(self.names))
        return pd.DataFrame({n: c.values() for n, c in zip(self.names, self.columns,
                                                             strict=True)})


class Recorder:
    """Append-only tables of one simulation."""

    def __init__(self) -> None:
        self._jobs = _Table(JOB_COLUMNS)
        self._util = _Table(UTILIZATION_COLUMNS)
        self._last_util_time: float | None = None

    def job(self, **row: object) -> None:
        """Append one job row; keys must be exactly :data:`JOB_COLUMNS`."""
        if row.keys() != set(JOB_COLUMNS):
            missing = set(JOB_COLUMNS) ^ row.keys()
            raise ValueError(f"job row keys differ from JOB_COLUMNS: {sorted(missing)}")
        self._jobs.append(tuple(row[c] for c in JOB_COLUMNS))

    def utilization(self, time_s: float, gpus_allocated: float, gpus_computing: float,
                    jobs_running: int, jobs_queued: int, gpus_fragmented: float = 0.0,
                    gpus_busy_w: float = 0.0) -> None:
        """Record the cluster state from ``time_s`` on; a second row at one time replaces it.

        ``gpus_fragmented``: free GPUs (shares) that no queued job can use; ``gpus_busy_w``: the
        computing GPUs' power above idle, W (each at its own type's idle and maximum).
        """
        row = (time_s, gpus_allocated, gpus_computing, jobs_running, jobs_queued,
               gpus_fragmented, gpus_busy_w)
        if self._last_util_time is not None and self._last_util_time == time_s:
            self._util.pop()
        self._util.append(row)
        self._last_util_time = time_s

    def jobs_frame(self) -> pd.DataFrame:
        """The job rows as a DataFrame sorted by job id."""
        frame = self._jobs.frame()
        return frame.sort_values("job_id", kind="stable").reset_index(drop=True)

    def utilization_frame(self) -> pd.DataFrame:
        """The state-change rows as a DataFrame (a step function of time)."""
        return self._util.frame()

"""Flat records appended during a run: one row per job, one row per change of cluster state.

The recorder only appends; it never computes summaries (those are pure functions in
:mod:`simcluster.metrics.summary`).
"""

from __future__ import annotations

import pandas as pd

__all__ = ["JOB_COLUMNS", "UTILIZATION_COLUMNS", "Recorder"]

JOB_COLUMNS = (
    "job_id", "tenant", "model", "state", "reason", "submit_s", "start_s", "end_s", "wait_s",
    "run_s", "jct_s", "gpus", "nodes", "iterations", "iterations_done", "iterations_lost",
    "preemptions", "gpu_hours", "energy_kwh", "cost_usd", "network_wait_s", "storage_wait_s",
    "ideal_s", "lost_gpu_hours",
)
UTILIZATION_COLUMNS = (
    "time_s", "gpus_allocated", "gpus_computing", "jobs_running", "jobs_queued",
    "gpus_fragmented", "gpus_busy_w",
)


class Recorder:
    """Append-only tables of one simulation."""

    def __init__(self) -> None:
        self._jobs: list[tuple] = []
        self._util: list[tuple[float, float, float, int, int, float, float]] = []

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
        if self._util and self._util[-1][0] == time_s:
            self._util[-1] = row
        else:
            self._util.append(row)

    def jobs_frame(self) -> pd.DataFrame:
        """The job rows as a DataFrame sorted by job id."""
        frame = pd.DataFrame(self._jobs, columns=list(JOB_COLUMNS))
        return frame.sort_values("job_id", kind="stable").reset_index(drop=True)

    def utilization_frame(self) -> pd.DataFrame:
        """The state-change rows as a DataFrame (a step function of time)."""
        return pd.DataFrame(self._util, columns=list(UTILIZATION_COLUMNS))

"""Replications of one scenario, and steady-state intervals from one long run.

>>> import simcluster
>>> s = simcluster.scenario_from_dict({
...     "run": {"fidelity": "duration"},
...     "cluster": {"nodes": 1, "gpus_per_node": 2, "storage": {"servers": 0}},
...     "workload": {"arrivals": {"kind": "poisson", "rate": 1.0}, "count": 200,
...                  "checkpoint_interval": 0,
...                  "mix": [{"model": "mlp", "run_time": {"kind": "exponential", "mean": 1}}]}})
>>> reps = replicate(s, n=4, seed=1, executor="serial")
>>> table = reps.summary(["mean_wait_s"])
>>> int(table.loc["mean_wait_s", "n"])
4
>>> bool(table.loc["mean_wait_s", "ci_low"] <= table.loc["mean_wait_s", "ci_high"])
True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simcluster.errors import UserError
from simcluster.experiment.stats import Interval, steady_state_interval
from simcluster.experiment.sweep import SweepResults, sweep
from simcluster.metrics.results import Results
from simcluster.scenario import Scenario

__all__ = ["SteadyState", "replicate", "steady_state"]


def replicate(scenario: Scenario | str | Path, n: int = 10, seed: int | None = None,
              executor: Any = None, workers: int | None = None, scheduler: str | None = None,
              out: str | Path | None = None, progress: bool = False,
              level: float = 0.95) -> SweepResults:
    """Run ``n`` independent replications of a scenario.

    Replication ``i`` uses the seed spawned for child ``i`` of ``SeedSequence(seed)``
    (:func:`~simcluster.experiment.tasks.replication_seed`), so the same ``seed`` gives the
    same replications under any alternative scenario (common random numbers).

    Args:
        scenario: a scenario or a path to its TOML file.
        n: number of replications (at least 2 for an interval).
        seed: root seed (default: the scenario's ``run.seed``).
        executor, workers, scheduler, out, progress: as for :func:`~simcluster.sweep`.
        level: confidence level of the intervals.

    Returns:
        :class:`~simcluster.experiment.sweep.SweepResults` without grid keys: ``.runs`` has one
        row per replication, ``.summary()`` the mean, std and Student-t interval per metric.
    """
    return sweep(scenario, None, replications=n, seed=seed, executor=executor, workers=workers,
                 scheduler=scheduler, out=out, progress=progress, level=level)


@dataclass(frozen=True)
class SteadyState:
    """A steady-state estimate from one run.

    Attributes:
        interval: batch-means interval of the mean after warm-up deletion.
        deleted: leading observations deleted as warm-up (MSER-5).
        observations: observations in the series before deletion.
    """

    interval: Interval
    deleted: int
    observations: int


def steady_state(results: Results, column: str = "wait_s", batches: int = 20,
                 level: float = 0.95) -> SteadyState:
    """Steady-state mean of a per-job column of one long run, with an honest interval.

    Jobs are taken in submission order (jobs that never started are left out for waits,
    jobs that never completed for completion and run times); MSER-5 picks the warm-up to
    delete, and non-overlapping batch means give the interval.

    Raises:
        UserError: an unknown column, or too few jobs for ``batches`` batches.
    """
    jobs = results.jobs
    if column not in jobs:
        raise UserError(f"steady_state: unknown jobs column {column!r}; "
                        f"expected one of {', '.join(jobs.columns)}")
    series = jobs.sort_values(["submit_s", "job_id"], kind="stable")[column].dropna()
    if len(series) < 2 * batches:
        raise UserError(f"steady_state: {len(series)} values of {column!r} are too few for "
                        f"{batches} batches")
    interval, deleted = steady_state_interval(series.to_numpy(dtype=float), batches, level)
    return SteadyState(interval, deleted, len(series))

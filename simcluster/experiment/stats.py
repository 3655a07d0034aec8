"""Confidence intervals for simulation output: replications, paired differences, batch means.

Independent replications give i.i.d. samples of a metric, so a Student-t interval is honest for
their mean. Comparing two alternatives under common random numbers (the same seed for the same
replication index) gives paired samples; the interval of their differences is usually much
narrower than the two-sample (Welch) interval, because the shared randomness cancels. One long
run gives correlated output; it gets an interval from non-overlapping batch means after the
warm-up is deleted with MSER-5 (White 1997; Franklin & White 2008).

>>> iv = t_interval([1.0, 2.0, 3.0])
>>> iv.mean, round(iv.half_width, 4)
(2.0, 2.4841)
>>> iv.low < 2.0 < iv.high
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "Interval",
    "batch_means",
    "interval_table",
    "mser5",
    "one_sided_bound",
    "paired_difference",
    "steady_state_interval",
    "t_interval",
    "welch_difference",
]


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval ``mean ± half_width``.

    Attributes:
        mean: the estimate.
        half_width: half the interval's width (NaN with fewer than two samples).
        n: number of (independent or batch) samples behind it.
        level: confidence level, e.g. 0.95.
        std: sample standard deviation of those samples (ddof=1).
    """

    mean: float
    half_width: float
    n: int
    level: float = 0.95
    std: float = math.nan

    @property
    def low(self) -> float:
        """Lower end of the interval."""
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        """Upper end of the interval."""
        return self.mean + self.half_width

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.mean:.6g} ± {self.half_width:.3g} ({self.level:.0%}, n={self.n})"


def _clean(samples: Iterable[float]) -> np.ndarray:
    values = np.asarray(list(samples) if not isinstance(samples, np.ndarray) else samples,
                        dtype=float)
    return values[~np.isnan(values)]


def t_interval(samples: Iterable[float], level: float = 0.95) -> Interval:
    """Student-t interval for the mean of i.i.d. samples (NaNs are dropped).

    >>> t_interval([5.0]).half_width
    nan
    """
    x = _clean(samples)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, 0, level)
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, math.nan, n, level)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return Interval(mean, half, n, level, std)


def one_sided_bound(samples: Iterable[float], level: float = 0.95, upper: bool = True) -> float:
    """One-sided Student-t confidence bound for the mean: ``mean ± t_{level,n-1}·s/√n``.

    The true mean is below the upper bound (above the lower one) with probability ``level``.
    NaN with fewer than two samples.

    >>> one_sided_bound([1.0, 2.0, 3.0], upper=True) > 2.0
    True
    """
    x = _clean(samples)
    if len(x) < 2:
        return math.nan
    margin = float(stats.t.ppf(level, len(x) - 1)) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return float(x.mean()) + (margin if upper else -margin)


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Interval:
    """Interval for E[a − b] from paired samples (same replication, common random numbers).

    >>> paired_difference([3.0, 4.0, 5.0], [1.0, 2.1, 2.9]).mean
    2.0
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError("paired samples need the same length")
    return t_interval(x - y, level)


def welch_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Interval:
    """Two-sample (unpaired) Welch interval for E[a] − E[b], with Welch–Satterthwaite d.o.f.

    >>> round(welch_difference([3.0, 4.0, 5.0], [1.0, 2.1, 2.9]).mean, 6)
    2.0
    """
    x, y = _clean(a), _clean(b)
    if len(x) < 2 or len(y) < 2:
        return Interval(float(x.mean() - y.mean()) if len(x) and len(y) else math.nan,
                        math.nan, min(len(x), len(y)), level)
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(vx + vy)
    dof = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1)) if se > 0 else 1.0
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    return Interval(float(x.mean() - y.mean()), half, min(len(x), len(y)), level, math.nan)


def mser5(series: Sequence[float]) -> int:
    """Warm-up to delete by MSER-5: the number of leading observations to drop.

    The series is cut into batches of 5; for each candidate truncation ``d`` (in batches, over
    the first half of the run) the marginal standard error ``Σ_{j>d}(z_j − z̄_d)² / (k − d)²``
    is computed, and the ``d`` that minimises it is chosen (White, Cobb & Spratt 2000).

    Returns:
        The number of observations to delete (a multiple of 5).

    >>> mser5([100.0] * 10 + [1.0, 2.0] * 50)
    10
    """
    x = np.asarray(series, dtype=float)
    k = len(x) // 5
    if k < 2:
        return 0
    z = x[: 5 * k].reshape(k, 5).mean(axis=1)
    # suffix sums give every candidate's mean and squared deviations in O(k)
    tail_n = np.arange(k, 0, -1, dtype=float)
    tail_sum = np.cumsum(z[::-1])[::-1]
    tail_sq = np.cumsum((z**2)[::-1])[::-1]
    sse = tail_sq - tail_sum**2 / tail_n
    stat = sse / tail_n**2
    half = max(1, k // 2)
    return int(np.argmin(stat[:half])) * 5


def batch_means(series: Sequence[float], batches: int = 20, level: float = 0.95) -> Interval:
    """Non-overlapping batch-means interval for the steady-state mean of one run's output.

    The series (already free of warm-up) is cut into ``batches`` equal batches (a remainder at
    the start is dropped); the batch means are treated as i.i.d. normal, which holds when the
    batches are long compared with the output's correlation time.

    >>> batch_means(list(range(100)), batches=4).mean
    49.5
    """
    x = np.asarray(series, dtype=float)
    size = len(x) // batches
    if batches < 2 or size < 1:
        raise ValueError(f"batch means need at least {batches} observations, got {len(x)}")
    z = x[len(x) - size * batches:].reshape(batches, size).mean(axis=1)
    return t_interval(z, level)


def steady_state_interval(series: Sequence[float], batches: int = 20,
                          level: float = 0.95) -> tuple[Interval, int]:
    """MSER-5 warm-up deletion followed by batch means.

    Returns:
        The interval and the number of leading observations deleted.
    """
    cut = mser5(series)
    return batch_means(np.asarray(series, dtype=float)[cut:], batches, level), cut


def interval_table(runs: pd.DataFrame, by: Sequence[str], metrics: Sequence[str],
                   level: float = 0.95) -> pd.DataFrame:
    """Mean, standard deviation and Student-t interval of each metric per group of runs.

    Args:
        runs: one row per run (failed runs, ``status != "ok"``, are left out).
        by: columns that name a group (grid keys); empty for one group.
        metrics: metric columns to summarise.
        level: confidence level.

    Returns:
        One row per (group, metric): ``*by, metric, n, mean, std, half_width, ci_low, ci_high``.
    """
    ok = runs[runs["status"] == "ok"] if "status" in runs else runs
    rows = []
    groups = ok.groupby(list(by), sort=False, dropna=False) if by else [((), ok)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        for metric in metrics:
            iv = t_interval(group[metric].to_numpy(dtype=float), level)
            rows.append((*key, metric, iv.n, iv.mean, iv.std, iv.half_width, iv.low, iv.high))
    columns = [*by, "metric", "n", "mean", "std", "half_width", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=columns)

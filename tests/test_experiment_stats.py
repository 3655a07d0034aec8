"""Confidence intervals cover what they claim to (simcluster.experiment.stats).

The model is the waiting time of an M/M/1 queue by Lindley's recursion,
W_{n+1} = max(0, W_n + S_n − A_{n+1}), in pure numpy: λ = 0.5, μ = 1, so ρ = 0.5 and the mean
wait in queue is ρ/(μ − λ) = 1. Started from the stationary law (W = 0 with probability 1 − ρ,
else exponential with rate μ − λ), every W_n has mean exactly 1, so a replication's average is
an unbiased sample of it. Coverage over R repetitions is binomial: its standard deviation is
sqrt(0.95·0.05/R), and the tests allow three of them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simcluster.experiment.stats import (
    batch_means,
    interval_table,
    mser5,
    one_sided_bound,
    paired_difference,
    steady_state_interval,
    t_interval,
    welch_difference,
)

LAM, MU = 0.5, 1.0
TRUE_MEAN = (LAM / MU) / (MU - LAM)


def lindley(rng: np.random.Generator, rows: int, n: int, start: np.ndarray | None = None):
    """``rows`` independent M/M/1 wait sequences of length ``n`` (stationary start by default)."""
    if start is None:
        busy = rng.random(rows) < LAM / MU
        start = np.where(busy, rng.exponential(1 / (MU - LAM), rows), 0.0)
    steps = rng.exponential(1 / MU, (n, rows)) - rng.exponential(1 / LAM, (n, rows))
    waits = np.empty((n, rows))
    w = start
    for i in range(n):
        waits[i] = w
        w = np.maximum(0.0, w + steps[i])
    return waits.T


def binomial_tolerance(reps: int, p: float = 0.95) -> float:
    return 3 * math.sqrt(p * (1 - p) / reps)


def test_t_interval_known_values():
    iv = t_interval([1.0, 2.0, 3.0, 4.0], level=0.95)
    # s = 1.2910, t_{0.975, 3} = 3.1824 -> half = 3.1824 · 1.2910 / 2
    assert iv.mean == 2.5 and iv.n == 4
    assert iv.half_width == pytest.approx(3.182446 * 1.290994 / 2, rel=1e-5)
    assert 2.5 in iv and 10 not in iv
    assert math.isnan(t_interval([float("nan"), 1.0]).half_width)
    assert one_sided_bound([1.0, 2.0, 3.0, 4.0], 0.95) == pytest.approx(
        2.5 + 2.353363 * 1.290994 / 2, rel=1e-5)


def test_replication_intervals_cover_the_true_mean_95_percent_of_the_time():
    reps, n, length = 1000, 10, 400
    rng = np.random.default_rng(2024)
    samples = lindley(rng, reps * n, length).mean(axis=1).reshape(reps, n)
    covered = np.mean([TRUE_MEAN in t_interval(row) for row in samples])
    assert abs(covered - 0.95) <= binomial_tolerance(reps), covered


def test_batch_means_cover_the_steady_state_mean_of_one_long_run():
    reps = 200
    waits = lindley(np.random.default_rng(7), reps, 20_000)
    covered = np.mean([TRUE_MEAN in batch_means(row, batches=20) for row in waits])
    assert abs(covered - 0.95) <= binomial_tolerance(reps), covered


def test_mser5_deletes_the_initial_transient():
    # start 200 s behind: the drift E[S − A] = −1 s per customer clears it in ~200 customers
    rng = np.random.default_rng(11)
    waits = lindley(rng, 1, 5_000, start=np.array([200.0]))[0]
    interval, deleted = steady_state_interval(waits, batches=20)
    assert 150 <= deleted <= 600
    assert TRUE_MEAN in interval
    assert abs(waits.mean() - TRUE_MEAN) > 3 * abs(interval.mean - TRUE_MEAN)  # deletion helps
    assert mser5(np.ones(3)) == 0


def test_paired_interval_is_narrower_than_welch_under_common_randomness():
    rng = np.random.default_rng(3)
    shared = rng.normal(10, 3, 20)
    a, b = shared + rng.normal(0, 0.1, 20), shared + 0.5 + rng.normal(0, 0.1, 20)
    paired, welch = paired_difference(b, a), welch_difference(b, a)
    assert paired.mean == pytest.approx(welch.mean)
    assert paired.half_width < welch.half_width / 10
    assert 0.5 in paired


def test_interval_table_groups_and_skips_failed_runs():
    import pandas as pd

    runs = pd.DataFrame({"k": [1, 1, 1, 2, 2], "status": ["ok", "ok", "error", "ok", "ok"],
                         "m": [1.0, 3.0, float("nan"), 5.0, 5.0]})
    table = interval_table(runs, ["k"], ["m"])
    assert table["n"].tolist() == [2, 2]
    assert table["mean"].tolist() == [2.0, 5.0]
    assert table["half_width"].iloc[1] == 0.0


def test_steady_state_of_one_simulated_run_covers_erlang_c():
    import simcluster
    from simcluster.experiment.replicate import steady_state

    from .conftest import queue_scenario
    from .test_queueing import mmc_wq

    results = simcluster.run(queue_scenario(2, 0.5, 3000), seed=4)
    estimate = steady_state(results, "wait_s", batches=10, level=0.99)
    assert estimate.observations == 3000 and 0 <= estimate.deleted <= 1500
    assert mmc_wq(2, 1.0) in estimate.interval, estimate
    with pytest.raises(simcluster.UserError, match="wait_z"):
        steady_state(results, "wait_z")

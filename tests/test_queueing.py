"""Analytic tests: the engine against queueing theory (DESIGN.md section 4).

Each case runs R independent replications (fixed seeds), deletes a warm-up of W jobs from each,
and takes the replication means as i.i.d. samples: the 99% Student-t interval of their mean must
contain the closed form. The interval's half-width is also bounded, so that the test has power:
it would catch an error of that size. Heavy-load waits are very variable (one 5,500-job run of
M/M/8 at ρ = 0.8 has a 25% relative standard deviation of its mean wait, measured over 10 seeds),
so the wait interval there is ±20% while P(wait), a less variable estimator, is held to ±10%;
at ρ = 0.5 both are within ±12%. The whole file runs in about 25 s here.
"""

from __future__ import annotations

from math import factorial

import numpy as np
import pytest
from scipy import stats

import simcluster
from simcluster.metrics.summary import time_average

from .conftest import queue_scenario


def erlang_c(c: int, a: float) -> float:
    """Probability of waiting in M/M/c with offered load a = λ/μ (Erlang C)."""
    rho = a / c
    top = a**c / factorial(c) / (1 - rho)
    return top / (sum(a**k / factorial(k) for k in range(c)) + top)


def mmc_wq(c: int, lam: float, mu: float = 1.0) -> float:
    """Mean wait in queue of M/M/c: C(c, a) / (cμ − λ)."""
    return erlang_c(c, lam / mu) / (c * mu - lam)


def test_closed_forms_match_reference_table():
    # shared/reference/README.md, table of M/M/c values (unit mean service)
    assert mmc_wq(1, 0.8) == pytest.approx(4.0)
    assert erlang_c(4, 3.0) == pytest.approx(0.5094, abs=1e-4)
    assert erlang_c(8, 6.4) == pytest.approx(0.4576, abs=1e-4)
    assert mmc_wq(8, 6.4) == pytest.approx(0.2860, abs=1e-4)


def replicate(c, rho, jobs, warmup, seeds, service=None):
    """Per-replication (mean wait, fraction that waited, Little's-law pair) after warm-up."""
    rows = []
    for seed in seeds:
        result = simcluster.run(queue_scenario(c, rho, jobs, service), seed=seed)
        j = result.jobs.sort_values("submit_s").iloc[warmup:]
        rows.append((j["wait_s"].mean(), (j["wait_s"] > 1e-12).mean()))
    return np.array(rows)


def t_interval(samples: np.ndarray, level: float = 0.99) -> tuple[float, float]:
    mean = samples.mean()
    half = stats.t.ppf(0.5 + level / 2, len(samples) - 1) * samples.std(ddof=1) / np.sqrt(
        len(samples))
    return mean, half


@pytest.mark.parametrize(
    ("c", "rho", "jobs", "reps", "max_half_wait", "max_half_p"),
    [(8, 0.8, 8_000, 10, 0.20, 0.10), (1, 0.5, 6_000, 6, 0.10, 0.05)],
    ids=["M/M/8 rho=0.8", "M/M/1 rho=0.5"],
)
def test_mmc_mean_wait_matches_erlang_c(c, rho, jobs, reps, max_half_wait, max_half_p):
    lam = rho * c
    samples = replicate(c, rho, jobs, warmup=500, seeds=range(100, 100 + reps))
    wq, p_wait = mmc_wq(c, lam), erlang_c(c, lam)
    mean, half = t_interval(samples[:, 0])
    assert half < max_half_wait * wq, f"interval too wide to test anything: ±{half:.4f}"
    assert abs(mean - wq) <= half, f"mean wait {mean:.4f} ± {half:.4f}, Erlang C {wq:.4f}"
    mean_p, half_p = t_interval(samples[:, 1])
    assert half_p < max_half_p * p_wait
    assert abs(mean_p - p_wait) <= half_p, f"P(wait) {mean_p:.4f} ± {half_p:.4f} vs {p_wait:.4f}"


def test_md1_mean_wait_matches_pollaczek_khinchine():
    # M/D/1 at rho = 0.5: Wq = rho·E[S]·(1 + Cs²)/(2(1 − rho)) = 0.5·1·1/(2·0.5) = 0.5
    service = {"kind": "constant", "value": 1.0}
    samples = replicate(1, 0.5, 6_000, warmup=500, seeds=range(200, 206), service=service)
    mean, half = t_interval(samples[:, 0])
    assert half < 0.12 * 0.5
    assert abs(mean - 0.5) <= half, f"{mean:.3f} ± {half:.3f} vs 0.5"


def test_littles_law_on_one_sample_path():
    # L_q = λ·W_q holds on every sample path up to edge effects; with the run ending empty
    # (no horizon) and all jobs counted, it holds to float precision.
    result = simcluster.run(queue_scenario(4, 0.75, 5_000), seed=7)
    end = result.meta["end_s"]
    lq = time_average(result.utilization, "jobs_queued", end)
    lam_hat = len(result.jobs) / end
    assert lq == pytest.approx(lam_hat * result.jobs["wait_s"].mean(), rel=1e-9)
    busy = time_average(result.utilization, "gpus_allocated", end)
    assert busy == pytest.approx(lam_hat * result.jobs["run_s"].mean(), rel=1e-9)

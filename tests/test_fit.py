"""Calibrated synthetic workloads (simcluster.workload.fit): the fit, the presets, the generator.

Tolerances:
- run times: two-sample Kolmogorov-Smirnov statistic D below the critical value at alpha = 0.001,
  c(a) * sqrt((n + m) / (n m)) with c(a) = sqrt(-ln(a / 2) / 2) = 1.95, plus 0.005 for the
  preset's quantile grid (step 0.0025: the generated CDF equals the trace's at every grid point
  and both are monotone in between, so they differ by at most one step; 0.005 also covers ties);
- size mix: chi-square test of homogeneity (generated vs trace counts) with p > 0.001, and total
  variation distance below 0.015;
- daily cycle: the generated hour-of-day profile within 0.15 (absolute, rate relative to the mean)
  of the source trace's own profile, and correlated with it (r > 0.95).
"""

from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import simcluster
from simcluster.errors import UserError
from simcluster.rng import Streams
from simcluster.scenario import Preset
from simcluster.workload.fit import (
    PRESETS,
    Fit,
    fit,
    load_preset,
    preset_jobs,
    save_preset,
)

ROOT = Path(__file__).parents[1]
TRACES = Path(__file__).parents[2] / "shared/data/traces"
N = 20_000
# only the tests that read a trace need the shared data; the rest run anywhere
needs_traces = pytest.mark.skipif(not TRACES.exists(), reason="shared traces not present")


def _script():
    spec = importlib.util.spec_from_file_location("fit_presets", ROOT / "scripts/fit_presets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _script()


@functools.cache
def source(name: str) -> tuple[pd.DataFrame, float]:
    fmt, rel, _ = SCRIPT.PRESETS[name]
    frame, origin = SCRIPT.trace(fmt, TRACES / rel)
    return frame[frame["gpus"] > 0], origin


def generate(name: str, n: int = N, seed: int = 1, **kw) -> pd.DataFrame:
    jobs = preset_jobs(Preset(preset=name, **kw), Streams(seed), None, n)
    return pd.DataFrame([(j.submit_s, j.request.gpus, j.run_time_s, j.tenant) for j in jobs],
                        columns=["submit_s", "gpus", "run_time_s", "tenant"])


def ks_limit(n: int, m: int, alpha: float = 0.001) -> float:
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m)) + 0.005


def chi_square_p(a: pd.Series, b: pd.Series) -> float:
    """p-value of the chi-square test that a and b come from one categorical distribution
    (categories with fewer than 5 expected draws in either sample pooled)."""
    table = pd.concat([a.value_counts(), b.value_counts()], axis=1).fillna(0)
    shares = (table.sum() / table.to_numpy().sum()).to_numpy()
    expected = table.sum(axis=1).to_numpy()[:, None] * shares
    rare = (expected < 5).any(axis=1)
    table = pd.concat([table[~rare], table[rare].sum().to_frame().T]) if rare.any() else table
    return float(stats.chi2_contingency(table.to_numpy()).pvalue)


def total_variation(a: pd.Series, b: pd.Series) -> float:
    p, q = a.value_counts(normalize=True), b.value_counts(normalize=True)
    return 0.5 * float(p.sub(q, fill_value=0).abs().sum())


@needs_traces
@pytest.mark.parametrize("name", ["philly", "philly_pollux", "openb"])
def test_generated_workload_matches_its_source(name):
    src, _ = source(name)
    gen = generate(name)
    assert total_variation(gen["gpus"], src["gpus"]) < 0.015
    assert chi_square_p(gen["gpus"], src["gpus"]) > 0.001
    # run times, all jobs and per size class (1 GPU, 2-7, 8+; fractions for openb)
    d = stats.ks_2samp(gen["run_time_s"], src["run_time_s"]).statistic
    assert d < ks_limit(len(gen), len(src))
    for lo, hi in [(0, 1), (1, 2), (2, 8), (8, math.inf)]:
        a = gen["run_time_s"][(gen["gpus"] >= lo) & (gen["gpus"] < hi)]
        b = src["run_time_s"][(src["gpus"] >= lo) & (src["gpus"] < hi)]
        if len(b) >= 1000:
            assert stats.ks_2samp(a, b).statistic < ks_limit(len(a), len(b)), (lo, hi)
    # and the quantiles a capacity planner reads
    for q in (0.5, 0.9, 0.99):
        assert gen["run_time_s"].quantile(q) == pytest.approx(src["run_time_s"].quantile(q),
                                                              rel=0.15), q


def test_source_figures_of_the_bundled_presets():
    """The presets carry the published trace figures (SOURCE.md of each trace)."""
    philly, pollux = load_preset("philly"), load_preset("philly_pollux")
    assert philly.jobs == 111_549 and pollux.jobs == 82_247
    assert philly.rate_per_s * philly.span_s == pytest.approx(111_549, rel=1e-4)
    share = dict(zip(pollux.sizes, pollux.size_weights, strict=True))
    assert share[1.0] == pytest.approx(76_627 / 82_247, abs=1e-4)
    assert len(pollux.tenants) == 15 and math.fsum(pollux.tenant_weights) == pytest.approx(1, 1e-3)
    # the 1-GPU class of Philly/RFold: median 1,321 s over all jobs, 1-GPU jobs are 87% of it
    one = philly.size_class(1.0)
    assert one.jobs == 96_662
    assert math.expm1(np.median(one.log1p_quantiles)) < 1_321 * 1.5


@needs_traces
def test_daily_cycle_shape_follows_the_trace():
    """philly_pollux has real clock times: the generated hour-of-day profile is the trace's."""
    src, origin = source("philly_pollux")  # origin: the clock time of the first submission
    f = load_preset("philly_pollux")
    clock_h = (((origin + src["submit_s"]) // 3600) % 24).astype(int).to_numpy()
    days = (src["submit_s"].max() - src["submit_s"].min()) / 86400
    trace_profile = np.bincount(clock_h, minlength=24) / days / (len(src) / days / 24)
    gen = generate("philly_pollux", n=60_000)
    gen_h = (((f.origin_s + gen["submit_s"]) // 3600) % 24).astype(int).to_numpy()
    gen_profile = np.bincount(gen_h, minlength=24) / (len(gen) / 24)
    assert np.abs(gen_profile - trace_profile).max() < 0.15
    assert np.corrcoef(gen_profile, trace_profile)[0, 1] > 0.95
    # the weekly cycle: fewer arrivals on the weekend (Sat, Sun) than on weekdays, as in the trace
    gen_d = (((f.origin_s + gen["submit_s"]) // 86400) % 7).astype(int).to_numpy()
    per_day = np.bincount(gen_d, minlength=7)
    assert per_day[5:].mean() < 0.75 * per_day[:5].mean()
    src_d = (((origin + src["submit_s"]) // 86400) % 7).astype(int).to_numpy()
    src_per_day = np.bincount(src_d, minlength=7)
    assert src_per_day[5:].mean() < 0.75 * src_per_day[:5].mean()


def test_thinning_reproduces_a_piecewise_rate(tmp_path):
    """Closed form: rate 2r in hours 0-11, 0 in hours 12-23, weekdays only; counts per slot are
    Poisson with mean rate x exposure (checked within 4 s.d.)."""
    base = load_preset("philly")
    hourly = (2.0,) * 12 + (0.0,) * 12
    weekday = (1.4,) * 5 + (0.0,) * 2
    f = Fit(**{**base.__dict__, "name": "step", "origin_s": 0.0, "hourly": hourly,
               "weekday": weekday, "rate_per_s": 1 / 60.0})
    path = save_preset(f, tmp_path / "step.json")
    horizon = 4 * 7 * 86400.0
    jobs = list(preset_jobs(Preset(preset=str(path)), Streams(3), horizon, None))
    t = np.array([j.submit_s for j in jobs])
    hour, day = (t // 3600) % 24, (t // 86400) % 7
    assert not ((hour >= 12) | (day >= 5)).any()
    expected = (1 / 60.0) * 2.0 * 1.4 * (4 * 5 * 12 * 3600)
    assert abs(len(t) - expected) < 4 * math.sqrt(expected)


def test_rate_scale_scales_the_arrival_rate():
    horizon = 30 * 86400.0
    one = list(preset_jobs(Preset(preset="philly"), Streams(5), horizon, None))
    two = list(preset_jobs(Preset(preset="philly", rate_scale=2.0), Streams(5), horizon, None))
    expected = load_preset("philly").rate_per_s * horizon  # 30 days = 4.3 weeks of cycle
    assert len(one) == pytest.approx(expected, rel=0.1)
    assert len(two) / len(one) == pytest.approx(2.0, rel=0.05)


@needs_traces
def test_the_fit_is_deterministic_and_the_bundled_presets_are_current():
    """Refitting (as scripts/fit_presets.py does) gives the bundled presets exactly."""
    for name in ("philly", "philly_pollux", "openb"):
        fmt, rel, note = SCRIPT.PRESETS[name]
        frame, origin = source(name)
        again = fit(frame, name=name, source=f"{fmt}: {rel}", origin_s=origin, note=note)
        assert again.to_dict() == load_preset(name).to_dict(), name
    frame, origin = source("philly_pollux")
    assert fit(frame, "x", origin_s=origin) == fit(frame.sample(frac=1, random_state=0), "x",
                                                   origin_s=origin)


def test_same_seed_same_jobs_and_sizes_keyed_by_job_id():
    a, b = generate("philly", n=500, seed=7), generate("philly", n=500, seed=7)
    pd.testing.assert_frame_equal(a, b)
    c = generate("philly", n=500, seed=8)
    assert not np.array_equal(a["submit_s"], c["submit_s"])


def test_a_scenario_with_preset_arrivals_runs():
    s = simcluster.scenario_from_dict({
        "run": {"fidelity": "duration"},
        "cluster": {"nodes": 8},
        "workload": {"arrivals": {"kind": "preset", "preset": "philly", "model": "mlp"},
                     "count": 300}})
    jobs = simcluster.run(s, seed=2).jobs
    assert len(jobs) == 300
    done = jobs[jobs["state"] == "completed"]
    big = jobs["gpus"] > 64  # a 128-GPU Philly job never fits 8 nodes x 8 GPUs
    assert len(done) == (~big).sum()


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(UserError, match=r"unknown workload preset 'phily'.*did you mean 'philly'"):
        simcluster.scenario_from_dict({"workload": {
            "arrivals": {"kind": "preset", "preset": "phily"}, "count": 3}})
    with pytest.raises(UserError, match="unknown workload preset"):
        load_preset("nope")
    with pytest.raises(UserError, match="cannot read preset file"):
        load_preset("/nonexistent/preset.json")
    with pytest.raises(UserError, match="mix"):
        simcluster.scenario_from_dict({"workload": {
            "arrivals": {"kind": "preset", "preset": "philly"}, "count": 3,
            "mix": [{"run_time": {"kind": "constant", "value": 1}}]}})
    assert "philly" in PRESETS


@needs_traces
def test_fit_command_writes_a_preset_that_runs(tmp_path, capsys):
    from simcluster.cli import main

    out = tmp_path / "pollux.json"
    path = TRACES / "philly_pollux/philly.csv"
    # the trace's first submission is 2017-09-04 10:30:41, a Monday
    assert main(["fit", "philly_pollux", str(path), "--out", str(out),
                 "--start", "2017-09-04 10:30:41"]) == 0
    assert "82,247 jobs" in capsys.readouterr().out
    mine, bundled = load_preset(str(out)), load_preset("philly_pollux")
    assert mine.origin_s == bundled.origin_s == 10 * 3600 + 30 * 60 + 41
    assert (mine.hourly, mine.weekday, mine.classes) == (bundled.hourly, bundled.weekday,
                                                         bundled.classes)
    jobs = list(preset_jobs(Preset(preset=str(out)), Streams(1), None, 10))
    assert len(jobs) == 10
    assert main(["fit", "philly_pollux", str(path), "--out", str(out), "--start", "Monday"]) == 2
    assert "--start" in capsys.readouterr().err


def test_lognormal_option_draws_the_fitted_lognormal():
    """run_time = "lognormal": per class, log run times are normal(mu, sigma) (KS vs closed
    form at alpha = 0.001)."""
    f = load_preset("philly")
    gen = generate("philly", n=N, run_time="lognormal")
    one = np.log(gen["run_time_s"][gen["gpus"] == 1.0])
    c = f.size_class(1.0)
    d = stats.kstest(one, stats.norm(c.mu, c.sigma).cdf).statistic
    assert d < math.sqrt(-math.log(0.001 / 2) / 2) / math.sqrt(len(one))


def test_a_trace_without_run_times_cannot_be_fitted():
    frame = pd.DataFrame({"submit_s": [0.0, 10.0, 20.0], "gpus": [1, 2, 1],
                          "run_time_s": [float("nan")] * 3})
    with pytest.raises(UserError, match="need at least 2 jobs with GPUs and a run time"):
        fit(frame, "iterations_only")

"""Workload cases: workloads generated from fitted presets against traces (two-sample
Kolmogorov–Smirnov on run times, total variation on the job-size mix).

The bundled presets were fitted to these very traces: those cases are *calibration* (they check
the fit and the generator reproduce their source). The hold-out case fits the first half of the
Philly trace and compares what it generates with the second half, which the fit never saw.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
from scipy import stats

from simcluster.rng import Streams
from simcluster.scenario import Preset
from simcluster.scenario_traces import resolve_data_path
from simcluster.validation.cases import Outcome, Unavailable, case
from simcluster.workload.fit import fit, preset_jobs, save_preset
from simcluster.workload.traces import trace_frame

__all__: list[str] = []

_SOURCES = {"philly": ("philly_rfold", "philly_rfold/philly_trace.csv"),
            "philly_pollux": ("philly_pollux", "philly_pollux/philly.csv")}


def _pair(preset: str, quick: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    fmt, rel = _SOURCES[preset]
    path = resolve_data_path(rel)
    if not path.exists():
        raise Unavailable(f"trace {path} not found (set --data-dir or SIMCLUSTER_DATA)")
    source = trace_frame(fmt, path)
    source = source[source["gpus"] > 0]
    n = 20_000 if quick else 100_000
    jobs = preset_jobs(Preset(preset=preset), Streams(1), None, n)
    generated = pd.DataFrame([(j.request.gpus, j.run_time_s) for j in jobs],
                             columns=["gpus", "run_time_s"])
    return source, generated


def _ks(preset: str, quick: bool) -> Outcome:
    source, generated = _pair(preset, quick)
    d = stats.ks_2samp(generated["run_time_s"], source["run_time_s"]).statistic
    return Outcome(float(d), detail=f"{len(generated)} generated vs {len(source)} trace jobs")


def _tv(preset: str, quick: bool) -> Outcome:
    source, generated = _pair(preset, quick)
    p = generated["gpus"].value_counts(normalize=True)
    q = source["gpus"].value_counts(normalize=True)
    return Outcome(0.5 * float(p.sub(q, fill_value=0).abs().sum()))


@case("ks_philly_run_times")
def _ks_philly(quick: bool) -> Outcome:
    return _ks("philly", quick)


@case("tv_philly_sizes")
def _tv_philly(quick: bool) -> Outcome:
    return _tv("philly", quick)


@case("ks_philly_pollux_run_times")
def _ks_pollux(quick: bool) -> Outcome:
    return _ks("philly_pollux", quick)


@case("ks_philly_holdout_run_times")
def _holdout(quick: bool) -> Outcome:
    fmt, rel = _SOURCES["philly"]
    path = resolve_data_path(rel)
    if not path.exists():
        raise Unavailable(f"trace {path} not found (set --data-dir or SIMCLUSTER_DATA)")
    source = trace_frame(fmt, path)
    source = source[source["gpus"] > 0]
    half = source["submit_s"].median()
    first, second = source[source["submit_s"] <= half], source[source["submit_s"] > half]
    with tempfile.TemporaryDirectory() as tmp:
        preset = save_preset(fit(first, "philly_first_half"), Path(tmp) / "first.json")
        jobs = list(preset_jobs(Preset(preset=str(preset)), Streams(1), None,
                                20_000 if quick else 100_000))
    generated = [j.run_time_s for j in jobs]
    d = stats.ks_2samp(generated, second["run_time_s"]).statistic
    return Outcome(float(d), detail=f"fitted on {len(first)} jobs, compared with the next "
                                    f"{len(second)}")

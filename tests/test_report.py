"""Plots and the run report: every plot draws from a small run, the page is self-contained."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

import simcluster
from simcluster.cli import main
from simcluster.metrics.results import Results
from simcluster.report import plots
from simcluster.report.html import REPORT_NAME, figures, rebuild_report, write_report

from .conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def results() -> Results:
    scenario = simcluster.load_scenario(ROOT / "scenarios" / "quickstart.toml",
                                        ["workload.count=25"])
    return simcluster.run(scenario, seed=2)


def labels(fig: Figure) -> list[tuple[str, str]]:
    return [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes]


def test_gpu_timeline(results):
    fig = plots.gpu_timeline(results)
    assert isinstance(fig, Figure)
    assert labels(fig) == [("simulated time (h)", "GPU slots (GPUs, stacked by start order)")]
    ax = fig.axes[0]
    assert len(ax.patches) >= len(results.jobs)  # one bar per job, more when split
    tenants = {t.get_text() for t in ax.get_legend().get_texts()}
    assert tenants == set(results.jobs["tenant"])
    # the stack of bars never exceeds the cluster (no preemptions in this run)
    assert ax.get_ylim()[1] == results.meta["gpus"]


def test_gpu_timeline_with_jobs_that_never_start():
    scenario = simcluster.scenario_from_dict({
        "run": {"fidelity": "duration"},
        "cluster": {"nodes": 1, "gpus_per_node": 2, "storage": {"servers": 0}},
        "workload": {"jobs": [{"run_time": 10, "gpus": 2}, {"run_time": 10, "gpus": 1},
                              {"run_time": 5, "gpus": 4, "submit": 1}]}})
    run = simcluster.run(scenario)
    assert run.jobs["start_s"].isna().sum() == 1  # the 4-GPU job is rejected
    fig = plots.gpu_timeline(run)
    assert len(fig.axes[0].patches) == 2
    assert fig.axes[0].get_xlabel() == "simulated time (s)"


def test_utilization_and_queue_plots(results):
    util = plots.utilization_plot(results)
    assert labels(util) == [("simulated time (h)", "GPUs")]
    assert [line.get_label() for line in util.axes[0].lines] == ["allocated", "computing",
                                                                 "cluster"]
    queue = plots.queue_plot(results)
    assert labels(queue) == [("simulated time (h)", "jobs")]
    assert [line.get_label() for line in queue.axes[0].lines] == ["queued", "running"]


def test_cdfs_of_several_runs_share_one_axis_per_column(results):
    other = results.jobs.assign(wait_s=results.jobs["wait_s"] * 2)
    fig = plots.cdf_plot({"fifo": results, "doubled": other})
    assert [ax.get_ylabel() for ax in fig.axes] == ["fraction of jobs"] * 2
    xlabels = [ax.get_xlabel() for ax in fig.axes]
    assert xlabels[0].startswith("wait (") and xlabels[1].startswith("job completion time (")
    assert all(len(ax.lines) == 2 for ax in fig.axes)
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["fifo", "doubled"]
    assert plots.cdf_plot(results, columns=["run_s"], log=True).axes[0].get_xscale() == "log"


def test_comparison_bars_from_replications_and_sweeps():
    scenario = simcluster.scenario_from_dict({
        "run": {"fidelity": "duration"},
        "cluster": {"nodes": 1, "gpus_per_node": 2, "storage": {"servers": 0}},
        "workload": {"arrivals": {"kind": "poisson", "rate": 1.0}, "count": 40,
                     "checkpoint_interval": 0,
                     "mix": [{"model": "mlp", "run_time": {"kind": "exponential", "mean": 1}}]}})
    reps = simcluster.replicate(scenario, n=3, seed=1, executor="serial")
    fig = plots.comparison_bars(reps.summary(["mean_wait_s"]))
    assert labels(fig) == [("metric", "mean_wait_s (s)")]
    assert len(fig.axes[0].patches) == 1
    assert any(isinstance(c, ErrorbarContainer) for c in fig.axes[0].containers)
    # a sweep's table: grid keys label the bars
    table = pd.DataFrame({"policy.queue": ["fifo", "sjf", "fifo", "sjf"],
                          "metric": ["gpu_util"] * 2 + ["cost_usd"] * 2, "n": 3,
                          "mean": [0.5, 0.6, 10.0, 12.0], "half_width": [0.1, 0.05, 1.0, 2.0]})
    fig = plots.comparison_bars(table, metric="cost_usd")
    assert labels(fig) == [("policy.queue", "cost_usd (US$)")]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["policy.queue=fifo",
                                                                     "policy.queue=sjf"]
    with pytest.raises(ValueError, match="metric="):
        plots.comparison_bars(table)


def test_busiest_links(results):
    fig = plots.busiest_links(results, n=5)
    assert labels(fig) == [("mean utilisation over the run (%)", "link")]
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(ticks) == 5
    util = results.links.set_index("link")["utilization"]
    assert util[ticks[-1]] == util.max()  # the busiest on top
    assert [p.get_width() for p in fig.axes[0].patches][-1] == pytest.approx(util.max() * 100)


def img_sources(page: str) -> list[str]:
    return re.findall(r"<img[^>]*\ssrc='([^']*)'", page)


def assert_self_contained(page: str) -> None:
    for attr in re.findall(r"""\s(?:src|href)\s*=\s*['"]?([^'"\s>]*)""", page):
        assert attr.startswith("data:"), f"external reference {attr[:60]!r}"
    assert "<link" not in page and "<script" not in page and "url(" not in page


def test_report_is_self_contained_with_every_figure(results, tmp_path):
    path = write_report(results, tmp_path)
    assert path == tmp_path / REPORT_NAME
    page = path.read_text()
    assert_self_contained(page)
    expected = figures(results)
    assert set(expected) == {"timeline", "utilization", "queue", "cdf", "links"}
    for key in expected:
        assert f"id='fig-{key}'" in page
    sources = img_sources(page)
    assert len(sources) == len(expected)
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<h1>quickstart</h1>" in page and "Seed <b>2</b>" in page
    assert "p95_wait_s" in page and "95th percentile wait" in page


def test_run_report_and_rebuild_from_saved_results(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", str(ROOT / "scenarios" / "quickstart.toml"), "--set",
                 "workload.count=15", "--out", str(out), "--report", "--json"])
    assert code == 0
    page = (out / REPORT_NAME).read_text()
    saved = json.loads((out / "summary.json").read_text())
    loaded = Results.load(out)
    assert loaded.seed == saved["seed"] and loaded.scenario["name"] == "quickstart"
    assert loaded.summary()["mean_wait_s"] == pytest.approx(saved["mean_wait_s"])
    (out / REPORT_NAME).unlink()
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert "report.html" in capsys.readouterr().err
    rebuilt = (out / REPORT_NAME).read_text()
    assert_self_contained(rebuilt)
    assert re.findall(r"id='fig-\w+'", rebuilt) == re.findall(r"id='fig-\w+'", page)
    assert "id='fig-topology'" in rebuilt  # the cluster, rebuilt from the saved scenario
    # an older directory without meta.json still rebuilds, from summary.json
    (out / "meta.json").unlink()
    assert rebuild_report(out).exists()


def test_report_needs_out_and_a_saved_run(tmp_path, capsys):
    assert main(["run", str(ROOT / "scenarios" / "quickstart.toml"), "--report"]) == 2
    assert "--report needs --out" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "no saved run here" in capsys.readouterr().err


def test_report_renders_in_headless_chromium(results, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"no headless browser: {CHROMIUM} is not installed (apt-get install "
                    "chromium to run this test)")
    page = write_report(results, tmp_path / "site")
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1200,3000", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_topology_plot_colours_links_by_utilisation(results):
    from matplotlib.collections import LineCollection

    from simcluster.engine.simulation import build_topology

    scenario = simcluster.load_scenario(ROOT / "scenarios" / "quickstart.toml")
    topo = build_topology(scenario.cluster)
    fig = plots.topology_plot(topo, results)
    ax = fig.axes[0]
    edges = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert edges, "no edges drawn"
    widths = edges[0].get_linewidths()
    busy = results.links["utilization"].max()
    assert busy > 0 and max(widths) > min(widths)  # a busy link is drawn thicker
    assert fig.axes[1].get_ylabel() == "mean link utilisation (%)"  # the colour bar
    # big clusters collapse NICs and GPUs
    small = plots.topology_plot(topo, None, max_gpus=0)
    kinds = {t.get_text() for t in small.axes[0].get_legend().get_texts()}
    assert "gpu" not in kinds and "host" in kinds


def test_sweep_curve_draws_bands():
    table = pd.DataFrame({"cluster.nodes": [1, 2, 4, 1, 2, 4], "policy.queue": ["fifo"] * 3
                          + ["sjf"] * 3, "metric": "mean_wait_s", "mean": [9, 4, 1, 7, 3, 1],
                          "ci_low": [8, 3, 0.5, 6, 2, 0.5], "ci_high": [10, 5, 1.5, 8, 4, 1.5]})
    fig = plots.sweep_curve(table, "cluster.nodes", by="policy.queue")
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("cluster.nodes", "mean_wait_s (s)")
    assert len(ax.lines) == 2 and len(ax.collections) == 2  # two curves, two bands
    with pytest.raises(ValueError, match="grid key"):
        plots.sweep_curve(table, "nodes")


def test_iteration_breakdown_stacks_the_phases():
    from simcluster.experiment.estimate_train import train_estimate

    runs = {f"tp{tp}": train_estimate("llama-2-7b", gpu="H100-SXM", gpus=16, tp=tp)
            for tp in (1, 8)}
    fig = plots.iteration_breakdown({k: r["breakdown"] for k, r in runs.items()})
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("seconds per iteration", "layout")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["tp1", "tp8"]
    for i, r in enumerate(runs.values()):  # each bar ends at the iteration time
        ends = [p.get_x() + p.get_width() for p in ax.patches if abs(p.get_y() + p.get_height()
                                                                    / 2 - i) < 1e-9]
        assert max(ends) == pytest.approx(r["iteration_s"], rel=1e-6)


# serving plots (issue 10): a few minutes of a small autoscaled service next to a training job

SERVING_SLO = {"ttft": 1.0, "tpot": 0.05}


@pytest.fixture(scope="module")
def serving_run() -> Results:
    return simcluster.run(simcluster.scenario_from_dict({
        "run": {"seed": 3, "horizon": "5min"},
        "cluster": {"gpu": "H100-SXM", "nodes": 1},
        "workload": {"jobs": [{"model": "llama-2-7b", "gpus": 4, "run_time": "1h"}]},
        "serving": {"cold_start": "20s"},
        "services": [{"name": "chat", "model": "llama-2-7b", "tp": 1,
                      "slo": {"ttft": "1s", "tpot": "50ms"},
                      "autoscaling": {"min": 1, "max": 3, "metric": "kv_usage",
                                      "target": 0.05, "cooldown": "1min"},
                      "requests": {"arrivals": {"kind": "poisson", "rate": "5/s"},
                                   "prompt_tokens": 1024, "output_tokens": [64, 256]}}]}))


def test_serving_latency_draws_window_percentiles_and_the_slo(serving_run):
    fig = plots.serving_latency(serving_run, slo=SERVING_SLO, windows=10)
    assert labels(fig) == [("arrival time (min)", "time to first token (ms)"),
                           ("arrival time (min)", "time per output token (ms)"),
                           ("arrival time (min)", "end-to-end latency (s)")]
    done = serving_run.requests[serving_run.requests["state"] == "completed"]
    edges = np.linspace(0.0, serving_run.meta["end_s"], 11)
    for ax, column, scale in zip(fig.axes, ("ttft_s", "tpot_s", "e2e_s"), (1e3, 1e3, 1.0),
                                 strict=True):
        assert ax.get_yscale() == "log"
        p50, p90, p99, *slo = ax.get_lines()
        assert [line.get_label() for line in (p50, p90, p99)] == ["p50", "p90", "p99"]
        # the first window's p50 and p99 are those of the requests that arrived in it
        first = done[done["arrival_s"] < edges[1]][column]
        assert p50.get_ydata()[0] == pytest.approx(first.median() * scale)
        assert p99.get_ydata()[0] == pytest.approx(np.percentile(first, 99) * scale)
        assert (p50.get_ydata() <= p99.get_ydata() + 1e-12).all()
        if column == "e2e_s":
            assert slo == []  # no e2e target given
        else:
            assert slo[0].get_ydata()[0] == pytest.approx(SERVING_SLO[column[:4]] * scale)
    attained = serving_run.services()["slo_attainment"].iloc[0]
    assert f"SLO attainment {attained:.1%}" in fig.axes[1].get_title()
    # without an SLO no target line; an unknown service or a run without services is an error
    assert len(plots.serving_latency(serving_run, service="chat").axes[0].get_lines()) == 3
    with pytest.raises(ValueError, match="no service 'nope'"):
        plots.serving_latency(serving_run, service="nope")


def test_replica_count_steps_and_splits_the_gpus(serving_run, results):
    fig = plots.replica_count(serving_run)
    assert labels(fig) == [("", "replicas"), ("simulated time (min)", "GPUs allocated")]
    top, gpus = fig.axes
    held, ready = top.get_lines()
    counts = serving_run.replica_counts.groupby("time_s", as_index=False).last()
    assert list(held.get_ydata()[:-1]) == list(counts["replicas"])
    assert list(ready.get_ydata()[:-1]) == list(counts["ready"])
    assert counts["replicas"].max() > 1  # the autoscaler did scale out
    # serving + training stack up to the allocated GPUs; serving peaks at the replicas' GPUs
    serving, training = gpus.collections[:2]
    top_y = max(p.vertices[:, 1].max() for p in training.get_paths())
    assert top_y == serving_run.utilization["gpus_allocated"].max()
    serving_y = max(p.vertices[:, 1].max() for p in serving.get_paths())
    assert serving_y == counts["replicas"].max()  # tp = 1: one GPU per replica
    with pytest.raises(ValueError, match="no inference services"):
        plots.replica_count(results)


def test_report_figures_include_the_serving_plots(serving_run, results):
    assert {"serving_latency", "replicas"} <= set(figures(serving_run))
    assert not {"serving_latency", "replicas"} & set(figures(results))


def test_gpu_timeline_marks_jobs_hit_by_failures(tmp_path):
    trace = tmp_path / "failures.csv"
    trace.write_text("time_s,component,repair_s\n3600,gpu:0,600\n")
    s = simcluster.scenario_from_dict({
        "run": {"fidelity": "duration"}, "cluster": {"nodes": 1, "storage": {"servers": 0}},
        "workload": {"checkpoint_interval": "30min",
                     "jobs": [{"gpus": 8, "run_time": "3h"}, {"gpus": 8, "run_time": "1h"}]},
        "failures": {"trace": str(trace)}})
    r = simcluster.run(s)
    assert r.jobs["failures"].tolist() == [1, 0]
    fig = plots.gpu_timeline(r)
    hatches = [p.get_hatch() for p in fig.axes[0].patches]
    assert hatches.count("xx") == 1 and hatches.count(None) == 1
    labels_ = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "hit by a failure" in labels_

"""Replications, common random numbers, sweeps on executors, and the resumable results store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

import simcluster
from simcluster.cli import main
from simcluster.experiment.sweep import expand_grid, parse_grid_spec
from simcluster.experiment.tasks import replication_seed

from .conftest import ROOT, SCENARIOS, queue_scenario

QUICKSTART = SCENARIOS / "quickstart.toml"
GRID = {"cluster.gpus_per_node": [2, 3], "policy.placement": ["first_fit", "pack"]}


def small_queue():
    return queue_scenario(2, 0.7, 100)


def test_replication_seeds_are_spawned_from_the_root_and_shared_by_alternatives():
    seeds = [replication_seed(5, i) for i in range(4)]
    assert len(set(seeds)) == 4 and all(0 <= s < 2**63 for s in seeds)
    assert seeds == [replication_seed(5, i) for i in range(4)]  # independent of n
    result = simcluster.sweep(small_queue(), GRID, replications=3, seed=5, executor="serial")
    assert result.runs.groupby("replication")["seed"].nunique().eq(1).all()
    assert result.runs["seed"].tolist()[:3] == seeds[:3]


def test_replicate_summary_has_intervals_for_every_metric():
    reps = simcluster.replicate(small_queue(), n=4, seed=2, executor="serial")
    assert list(reps.runs["replication"]) == [0, 1, 2, 3]
    table = reps.summary()
    assert {"mean_wait_s", "p95_wait_s", "gpu_util", "cost_usd"} <= set(table.index)
    row = table.loc["mean_wait_s"]
    assert row["n"] == 4 and row["ci_low"] < row["mean"] < row["ci_high"]
    assert row["mean"] == pytest.approx(reps.runs["mean_wait_s"].mean())
    # replication 0 is an ordinary run with that replication's seed
    single = simcluster.run(small_queue(), seed=int(reps.runs["seed"][0])).summary()
    assert single["mean_wait_s"] == reps.runs["mean_wait_s"][0]


def test_common_random_numbers_make_paired_intervals_narrower(quickstart):
    # the same 100 jobs arrive at 4 and at 5 nodes in each replication; the differences vary
    # less than the waits themselves (measured: 0.71 of the Welch half-width at n = 5)
    result = simcluster.sweep(quickstart, {"cluster.nodes": [4, 5]}, replications=5, seed=1,
                              executor="serial")
    diff = result.compare("mean_wait_s").iloc[0]
    assert diff["cluster.nodes"] == 5 and diff["n"] == 5
    assert diff["ci_high"] < 0  # a fifth node shortens waits, and the paired interval says so
    assert diff["half_width"] < 0.8 * diff["unpaired_half_width"], diff.to_dict()


def test_dask_and_any_worker_count_give_bit_identical_results(tmp_path):
    distributed = pytest.importorskip("distributed")
    scenario = small_queue()
    serial = simcluster.sweep(scenario, GRID, replications=2, executor="serial",
                              out=tmp_path / "serial")
    local = simcluster.sweep(scenario, GRID, replications=2, workers=2, out=tmp_path / "local")
    with ThreadPoolExecutor(3) as pool:
        threads = simcluster.sweep(scenario, GRID, replications=2, executor=pool)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        dask = simcluster.sweep(scenario, GRID, replications=2, executor=client,
                                out=tmp_path / "dask")
        # the command line, on the same cluster by its loopback address
        toml = tmp_path / "mm2.toml"
        toml.write_text(
            '[run]\nfidelity = "duration"\n'
            '[cluster]\nnodes = 1\ngpus_per_node = 2\nstorage = { servers = 0 }\n'
            '[workload]\narrivals = { kind = "poisson", rate = 1.4 }\ncount = 100\n'
            'checkpoint_interval = 0\n'
            '[[workload.mix]]\nmodel = "mlp"\ngpus = 1\n'
            'run_time = { kind = "exponential", mean = 1.0 }\n'
            '[policy]\nqueue = "fifo"\nplacement = "first_fit"\n')
        assert main(["sweep", str(toml), "--grid", "cluster.gpus_per_node=2,3", "--grid",
                     "policy.placement=first_fit,pack", "--replications", "2", "--scheduler",
                     cluster.scheduler_address, "--out", str(tmp_path / "cli")]) == 0
    cli = simcluster.load_results(tmp_path / "cli")
    pd.testing.assert_frame_equal(serial.runs, cli, check_exact=True)
    for other in (local, threads, dask):
        pd.testing.assert_frame_equal(serial.runs, other.runs, check_exact=True)
        pd.testing.assert_frame_equal(serial.summary(), other.summary(), check_exact=True)
    for name in ("local", "dask"):
        for table in ("runs", "jobs"):
            pd.testing.assert_frame_equal(
                simcluster.load_results(tmp_path / "serial", table),
                simcluster.load_results(tmp_path / name, table), check_exact=True)


def test_results_store_round_trips_and_resumes_after_an_interruption(tmp_path):
    scenario, total = small_queue(), 4 * 3
    whole = simcluster.sweep(scenario, GRID, replications=3, executor="serial",
                             out=tmp_path / "whole")
    assert whole.computed == total

    seen = []

    def interrupt_after_five(record):
        seen.append(record["key"])
        if len(seen) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simcluster.sweep(scenario, GRID, replications=3, executor="serial",
                         out=tmp_path / "cut", on_result=interrupt_after_five)
    runs = tmp_path / "cut" / "runs"
    assert len(list(runs.glob("*.json"))) == 5
    (runs / "deadbeef.json.tmp").write_text("{half a reco")  # a crash mid-write
    again = simcluster.sweep(scenario, GRID, replications=3, executor="serial",
                             out=tmp_path / "cut")
    assert again.computed == total - 5
    pd.testing.assert_frame_equal(whole.runs, again.runs, check_exact=True)
    for table in ("runs", "jobs"):
        pd.testing.assert_frame_equal(simcluster.load_results(tmp_path / "whole", table),
                                      simcluster.load_results(tmp_path / "cut", table),
                                      check_exact=True)
    # the stored record carries the resolved scenario, the seed and package versions
    record = json.loads(next(runs.glob("*.json")).read_text())
    assert record["scenario"]["cluster"]["gpus_per_node"] == record["point"][
        "cluster.gpus_per_node"]
    assert record["seed"] == replication_seed(scenario.run.seed, record["replication"])
    assert {"numpy", "simcluster", "python"} <= set(record["versions"])
    jobs = simcluster.load_results(tmp_path / "cut", "jobs")
    assert list(jobs.columns[:4]) == [*GRID, "replication", "seed"]
    assert len(jobs) == total * 100
    # a third run computes nothing
    assert simcluster.sweep(scenario, GRID, replications=3, executor="serial",
                            out=tmp_path / "cut").computed == 0


def test_a_store_refuses_a_different_scenario(tmp_path):
    simcluster.sweep(small_queue(), None, replications=1, executor="serial", out=tmp_path)
    with pytest.raises(simcluster.UserError, match="different scenario"):
        simcluster.sweep(queue_scenario(3, 0.5, 100), None, executor="serial", out=tmp_path)


def test_a_failing_run_is_recorded_the_others_finish_and_a_rerun_retries_it(tmp_path):
    grid = {"policy.queue_params": [{}, {"no_such_parameter": 1}]}
    result = simcluster.sweep(small_queue(), grid, replications=2, executor="serial",
                              out=tmp_path)
    assert (result.runs["status"] == "ok").sum() == 2
    failed = result.failed
    assert len(failed) == 2 and failed["error"].str.contains("no_such_parameter").all()
    assert failed["seed"].tolist() == result.runs["seed"][:2].tolist()
    stored = simcluster.load_results(tmp_path)
    assert stored["status"].value_counts().to_dict() == {"ok": 2, "error": 2}
    again = simcluster.sweep(small_queue(), grid, replications=2, executor="serial",
                             out=tmp_path)
    assert again.computed == 2  # only the failed runs


def test_grid_errors_are_user_errors_before_anything_runs(tmp_path):
    with pytest.raises(simcluster.UserError, match="nodes"):
        simcluster.sweep(small_queue(), {"cluster.nodse": [1, 2]}, executor="serial")
    with pytest.raises(simcluster.UserError, match=r"cluster\.nodes"):
        simcluster.sweep(small_queue(), {"cluster.nodes": [1, -1]}, executor="serial")
    with pytest.raises(simcluster.UserError, match="backend"):
        simcluster.sweep(small_queue(), None, executor="spark")
    with pytest.raises(simcluster.UserError, match="not a results directory"):
        simcluster.load_results(tmp_path)
    assert expand_grid(None) == [{}]
    assert parse_grid_spec("a.b=[1,2],[3]") == ("a.b", [[1, 2], [3]])
    with pytest.raises(simcluster.UserError, match="KEY=V1"):
        parse_grid_spec("cluster.nodes")


def test_cli_sweep_prints_intervals_and_stores_runs(tmp_path, capsys):
    args = ["sweep", str(QUICKSTART), "--grid", "cluster.nodes=4,5", "--replications", "2",
            "--backend", "serial", "--set", "workload.count=30", "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "4 runs (4 computed now)" in out and "±" in out and "p95_wait_s" in out
    assert len(simcluster.load_results(tmp_path)) == 4
    assert main(args) == 0
    assert "(0 computed now)" in capsys.readouterr().out
    assert main(["sweep", str(QUICKSTART), "--grid", "cluster.nodes"]) == 2
    assert main(["sweep", str(QUICKSTART), "--grid", "cluster.nodez=4", "--backend",
                 "serial"]) == 2
    assert "did you mean 'nodes'" in capsys.readouterr().err
    assert main(["sweep", str(QUICKSTART), "--backend", "local", "--scheduler",
                 "tcp://127.0.0.1:1"]) == 2
    assert "needs the dask backend" in capsys.readouterr().err


def test_killed_cli_sweep_resumes_with_only_the_missing_runs(tmp_path):
    scenario = tmp_path / "mm2.toml"
    scenario.write_text(
        'name = "mm2"\n[run]\nfidelity = "duration"\n'
        '[cluster]\nnodes = 1\ngpus_per_node = 2\nstorage = { servers = 0 }\n'
        '[workload]\narrivals = { kind = "poisson", rate = 1.4 }\ncount = 400\n'
        'checkpoint_interval = 0\n'
        '[[workload.mix]]\nmodel = "mlp"\ngpus = 1\n'
        'run_time = { kind = "exponential", mean = 1.0 }\n')
    out = tmp_path / "out"
    command = [sys.executable, "-m", "simcluster", "sweep", str(scenario), "--grid",
               "policy.placement=pack,first_fit", "--replications", "3", "--backend", "serial",
               "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(out.glob("runs/*.json"))) < 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(out.glob("runs/*.json")))
    assert 2 <= done < 6, "the sweep finished before it could be killed"
    resumed = simcluster.sweep(scenario, {"policy.placement": ["pack", "first_fit"]},
                               replications=3, executor="serial", out=out)
    assert resumed.computed == 6 - done
    assert (resumed.runs["status"] == "ok").all() and len(resumed.runs) == 6

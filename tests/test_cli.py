"""The scenario file and the command line: the quickstart, outputs, and user errors (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import simcluster
from simcluster.cli import main

from .conftest import SCENARIOS

QUICKSTART = str(SCENARIOS / "quickstart.toml")


def test_quickstart_summary_is_sane():
    results = simcluster.run(simcluster.load_scenario(QUICKSTART))
    s = results.summary()
    assert s["jobs_submitted"] == s["jobs_completed"] == 100
    assert s["jobs_rejected"] == s["jobs_queued_at_end"] == s["jobs_running_at_end"] == 0
    assert 0.3 < s["gpu_util"] <= 1.0
    assert 0 < s["gpu_compute_util"] <= s["gpu_util"]
    assert 0 <= s["p50_wait_s"] <= s["p95_wait_s"] <= s["p99_wait_s"]
    assert s["mean_jct_s"] >= s["mean_run_s"] > 0
    # every GPU-hour is in some job row; the cluster's energy covers at least the idle floor
    assert s["gpu_hours"] == pytest.approx(results.jobs["gpu_hours"].sum())
    meta = results.meta
    idle_floor_kwh = (meta["gpus"] * meta["gpu_idle_w"] + meta["hosts"] * meta["host_w"]) \
        * meta["pue"] * s["sim_time_s"] / 3.6e6
    assert s["energy_kwh"] > idle_floor_kwh
    assert s["cost_usd"] == pytest.approx(32 * s["sim_time_s"] / 3600 * meta["hourly_usd"])
    assert set(results.jobs["tenant"]) == {"teaching", "vision", "nlp", "llm"}
    tenants = results.per_tenant().set_index("tenant")
    assert tenants["jobs"].sum() == 100 and tenants["gpu_share"].sum() == pytest.approx(1.0)
    assert results.links["utilization"].is_monotonic_decreasing  # busiest first
    assert results.jobs["gpus"].between(1, 16).all()


def test_run_writes_outputs(tmp_path, capsys):
    assert main(["run", QUICKSTART, "--seed", "4", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "p95_wait_s" in out and "energy_kwh" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["seed"] == 4 and summary["jobs_completed"] == 100
    jobs = pd.read_csv(tmp_path / "jobs.csv")
    assert len(jobs) == 100 and {"wait_s", "jct_s", "gpu_hours", "energy_kwh"} <= set(jobs)
    util = pd.read_csv(tmp_path / "utilization.csv")
    assert {"time_s", "gpus_allocated", "gpus_computing", "power_w"} <= set(util)
    resolved = json.loads((tmp_path / "scenario.resolved.json").read_text())
    assert resolved["seed"] == 4 and resolved["scenario"]["cluster"]["nodes"] == 4
    assert resolved["scenario"]["cluster"]["cost"]["pue"] == 1.58  # defaults are resolved


def test_set_overrides_and_json(capsys):
    assert main(["run", QUICKSTART, "--set", "cluster.nodes=8", "--set", "workload.count=20",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["jobs_submitted"] == 20
    assert data["cost_usd"] == pytest.approx(64 * data["sim_time_s"] / 3600 * 55.04 / 8)


def test_check_and_topology(capsys):
    assert main(["check", QUICKSTART]) == 0
    assert "ok (4 nodes, 32 H100-SXM GPUs, fifo + pack)" in capsys.readouterr().out
    assert main(["topology", QUICKSTART, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["gpus"] == 32 and info["hosts"] == 4
    assert info["per_node_bandwidth_Bps"] == pytest.approx(8 * 50e9)


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return str(path)


BASE = """
[cluster]
nodes = 2
[workload]
jobs = [{ model = "mlp", gpus = 1, run_time = "1h" }]
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BASE.replace("nodes = 2", "nodez = 2"),
         ["cluster.nodez: unknown key 'nodez'", "did you mean 'nodes'"]),
        (BASE.replace("nodes = 2", "nodes = 'two'"), ["cluster.nodes", "'two'", "integer"]),
        (BASE.replace("nodes = 2", "nodes = -1"), ["cluster.nodes", "-1", "greater than or equal"]),
        (BASE.replace("nodes = 2", "nodes = 2\ngpu = 'H100-SMX'"),
         ["cluster.gpu", "unknown GPU 'H100-SMX'", "did you mean 'H100-SXM'"]),
        (BASE + "[policy]\nqueue = 'fifi'\n",
         ["policy.queue", "unknown queue policy 'fifi'", "did you mean 'fifo'"]),
        (BASE + "[policy]\nplacement = 'packk'\n", ["did you mean 'pack'"]),
        (BASE.replace('model = "mlp"', 'model = "llama2-7b"'),
         ["workload.jobs[0].model", "did you mean 'llama-2-7b'"]),
        (BASE.replace('"1h"', '"1 hour"'), ["workload.jobs[0].run_time", "unknown unit 'hour'"]),
        (BASE.replace("gpus = 1", "gpus = 2.5"), ["whole number"]),
        ("[cluster\nnodes = 2", ["not valid TOML"]),
        (BASE + "[policy]\nqueue_params = { blocking = 3 }\n",
         ["policy.queue", "bad parameters", "blocking"]),
        (BASE.replace("[cluster]", "[cluster]\nstorage = { servers = 1, kind = 'DDN' }"),
         ["cluster.storage.kind", "unknown storage 'DDN'"]),
        ("[workload]\narrivals = { kind = 'poisson', rate = '5/h' }\n"
         "mix = [{ model = 'mlp', run_time = { kind = 'constant', value = '1h' } }]\n",
         ["workload.count or run.horizon"]),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(tmp_path, capsys, text, expected):
    path = write(tmp_path, text)
    assert main(["run", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ")
    for fragment in expected:
        assert fragment in err, err
    assert "Traceback" not in err


def test_missing_file_and_bad_set(capsys):
    assert main(["run", "no/such/file.toml"]) == 2
    assert "no/such/file.toml: no such scenario file" in capsys.readouterr().err
    assert main(["run", QUICKSTART, "--set", "cluster.nodes"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_console_script_exit_code_without_traceback(tmp_path):
    path = write(tmp_path, BASE.replace("nodes = 2", "nodes = 0"))
    proc = subprocess.run([sys.executable, "-m", "simcluster", "check", path],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "cluster.nodes" in proc.stderr and "Traceback" not in proc.stderr


def test_job_that_never_fits_is_rejected_with_a_reason():
    s = simcluster.scenario_from_dict({"cluster": {"nodes": 1}, "workload": {"jobs": [
        {"gpus": 16, "run_time": "1h"}, {"gpus": 1, "gpu_type": "B200", "run_time": "1h"},
        {"gpus": 1, "run_time": "1h"}]}})
    jobs = simcluster.run(s).jobs.set_index("job_id")
    assert jobs.loc[0, "state"] == "rejected" and "at most 8" in jobs.loc[0, "reason"]
    assert jobs.loc[1, "state"] == "rejected" and "no GPU of type 'B200'" in jobs.loc[1, "reason"]
    assert jobs.loc[2, "state"] == "completed"


@pytest.mark.parametrize(("text", "expected"), [
    ("[run]\ndtype = 'fp8'\n[cluster]\ngpu = 'A100-80GB'\n", "A100-80GB has no fp8 peak"),
    ("[run]\nhorizon = 0\n", "run.horizon"),
    ("[[workload.mix]]\nrun_time = { kind = 'constant', value = -5 }\n", "greater than or equal"),
])
def test_cross_field_errors_are_caught_by_check(tmp_path, capsys, text, expected):
    body = text if "workload.mix" not in text else (
        "[workload]\narrivals = { kind = 'poisson', rate = '1/h' }\ncount = 3\n" + text)
    if "[workload]" not in body:
        body += "[workload]\njobs = [{ run_time = '1h' }]\n"
    path = write(tmp_path, body)
    assert main(["check", path]) == 2
    assert expected in capsys.readouterr().err


def test_seed_must_be_non_negative(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", QUICKSTART, "--seed", "-1"])
    assert exit_info.value.code == 2
    assert "non-negative integer" in capsys.readouterr().err


def test_collective_command_prints_nccl_tests_table(capsys):
    assert main(["collective", "--gpu", "H100-SXM", "--nodes", "2", "-b", "1M", "-e", "1G",
                 "-f", "32", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["size_bytes"] for r in rows] == [2**20, 2**25, 2**30]
    # the keys, plus NCCL's protocol (LL, LL128, Simple) that the cost model picked
    assert set(rows[0]) == {"size_bytes", "time_s", "algbw_GBps", "busbw_GBps", "algorithm",
                            "protocol"}
    # busbw grows with size toward the 2-node ring bottleneck min(370, 8 × 48) GB/s
    assert rows[0]["busbw_GBps"] < rows[1]["busbw_GBps"] < rows[2]["busbw_GBps"] <= 370
    assert main(["collective", "--gpu", "H100-SXM", "--op", "all_gather", "-b", "8M",
                 "-e", "8M"]) == 0
    assert "busbw" in capsys.readouterr().out
    assert main(["collective", "--gpu", "H100-SXM", "--algo", "tree", "-b", "8M",
                 "-e", "8M"]) == 2  # a tree needs more than one node
    assert main(["collective", "--gpu", "H100-SMX"]) == 2
    # --proto forces NCCL's protocol (as NCCL_PROTO): Simple at 1 MiB, where auto picks LL
    capsys.readouterr()
    assert main(["collective", "--gpu", "H100-SXM", "-b", "1M", "-e", "1M", "--json"]) == 0
    auto = json.loads(capsys.readouterr().out)
    assert main(["collective", "--gpu", "H100-SXM", "-b", "1M", "-e", "1M", "--json",
                 "--proto", "Simple"]) == 0
    forced = json.loads(capsys.readouterr().out)
    assert (auto["protocol"], forced["protocol"]) == ("LL", "Simple")
    assert forced["time_s"] > auto["time_s"]
    assert main(["collective", "--gpu", "H100-SXM", "--proto", "LL256"]) == 2


def test_zero_run_time_job_completes_at_duration_fidelity():
    s = simcluster.scenario_from_dict({"run": {"fidelity": "duration"}, "workload": {
        "jobs": [{"gpus": 1, "run_time": 0}]}})
    jobs = simcluster.run(s).jobs
    assert jobs["state"].iloc[0] == "completed" and jobs["run_s"].iloc[0] == 0

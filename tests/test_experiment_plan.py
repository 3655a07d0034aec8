"""Capacity search (simcluster.plan) against Erlang C, and its command line."""

from __future__ import annotations

import pytest

import simcluster
from simcluster.cli import main
from simcluster.experiment.plan import parse_target, parse_vary

from .test_queueing import mmc_wq

LAM = 3.0  # jobs/s, unit mean exponential service: c servers carry a = 3 Erlang
TARGET = 0.25  # mean wait (s); Erlang C: c = 4 gives 0.509, c = 5 gives 0.118


def mm_c(jobs: int = 600):
    """M/M/c with c = cluster.gpus_per_node on one node; the first 50 s are warm-up."""
    return simcluster.scenario_from_dict({
        "run": {"fidelity": "duration", "warmup": 50.0},
        "cluster": {"nodes": 1, "gpus_per_node": 1, "storage": {"servers": 0}},
        "workload": {"arrivals": {"kind": "poisson", "rate": LAM}, "count": jobs,
                     "checkpoint_interval": 0,
                     "mix": [{"model": "mlp", "gpus": 1,
                              "run_time": {"kind": "exponential", "mean": 1.0}}]},
        "policy": {"queue": "fifo", "placement": "first_fit"},
    })


def test_plan_finds_the_erlang_c_answer():
    stable = [c for c in range(1, 17) if c > LAM]
    expected = min(c for c in stable if mmc_wq(c, LAM) <= TARGET)
    assert expected == 5 and mmc_wq(4, LAM) > 2 * TARGET > 4 * mmc_wq(5, LAM)
    # from 3 (critical load) up: 3 and 4 fail, 6 holds, bisection tries 5
    result = simcluster.plan(mm_c(), "cluster.gpus_per_node", f"mean_wait_s<={TARGET}",
                             low=3, high=16, replications=3, executor="serial")
    assert result.answer == expected
    ev = result.evidence.set_index("value")
    assert not ev.loc[expected - 1, "holds"] and ev.loc[expected, "holds"]
    assert ev.loc[expected, "bound"] <= TARGET < ev.loc[expected - 1, "bound"]
    assert ev.loc[expected, "ci_low"] <= mmc_wq(expected, LAM) <= ev.loc[expected, "ci_high"]
    assert list(ev.index) == [3, 4, 5, 6] and (ev["n"] == 3).all()
    assert result.cost["cluster_gpus"] == expected
    assert result.cost["tco_usd_per_year"] > 0 and result.cost["cost_usd_per_year"] > 0
    text = result.report()
    assert "answer: cluster.gpus_per_node = 5 (5 GPUs)" in text and "per year" in text


def test_plan_without_upper_limit_brackets_upward_and_reports_no_answer_in_range():
    result = simcluster.plan(mm_c(400), "cluster.gpus_per_node=4:", "mean_wait_s<=0.25",
                             replications=3, executor="serial")
    assert result.answer in (5, 6)
    none = simcluster.plan(mm_c(300), "cluster.gpus_per_node=2:3", "mean_wait_s<=0.25",
                           replications=2, executor="serial")
    assert none.answer is None and "answer: none" in none.report()


def test_targets_and_ranges_parse_with_units_and_clear_errors():
    assert parse_target("p95_wait_s<=1h").value == 3600.0
    assert parse_target("gpu_util >= 0.6").op == ">="
    with pytest.raises(simcluster.UserError, match="did you mean 'p95_wait_s'"):
        parse_target("p95_wiat_s<=3600")
    with pytest.raises(simcluster.UserError, match="METRIC<=VALUE"):
        parse_target("p95_wait_s=3600")
    assert parse_vary("cluster.oversubscription=1.0:4.0") == ("cluster.oversubscription", 1.0,
                                                              4.0)
    with pytest.raises(simcluster.UserError, match="KEY=LO:HI"):
        parse_vary("cluster.nodes")
    with pytest.raises(simcluster.UserError, match="at least 2"):
        simcluster.plan(mm_c(), "cluster.nodes=1:2", "mean_wait_s<=1", replications=1)


def test_cli_plan(tmp_path, capsys):
    scenario = tmp_path / "mmc.toml"
    scenario.write_text(
        '[run]\nfidelity = "duration"\nwarmup = 20.0\n'
        '[cluster]\nnodes = 1\ngpus_per_node = 1\nstorage = { servers = 0 }\n'
        '[workload]\narrivals = { kind = "poisson", rate = 3.0 }\ncount = 300\n'
        'checkpoint_interval = 0\n'
        '[[workload.mix]]\nmodel = "mlp"\ngpus = 1\n'
        'run_time = { kind = "exponential", mean = 1.0 }\n')
    args = ["plan", str(scenario), "--vary", "cluster.gpus_per_node=3:8", "--target",
            "mean_wait_s<=0.25", "--replications", "3", "--backend", "serial"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "answer: cluster.gpus_per_node =" in out and "total cost of ownership" in out
    assert main([*args[:5], "mean_wait_s<=-1", *args[6:]]) == 1
    assert main([*args[:5], "mean_waits<=1", *args[6:]]) == 2


def test_capacity_planning_script_runs(capsys):
    import importlib.util

    from .conftest import SCENARIOS

    spec = importlib.util.spec_from_file_location("capacity_planning",
                                                  SCENARIOS / "capacity_planning.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--backend", "serial"]) == 0
    out = capsys.readouterr().out
    assert "Q2" in out and "total cost of ownership" in out

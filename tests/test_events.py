"""The scheduling event log (`--trace-events`) and its Chrome-trace export (`--perfetto`)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import simcluster
from simcluster.cli import main
from simcluster.report.trace import chrome_trace

from .conftest import ROOT


def overloaded(queue: str = "fifo", **policy) -> simcluster.Scenario:
    """One 8-GPU node, 1- and 8-GPU jobs arriving faster than it serves them."""
    return simcluster.scenario_from_dict({
        "run": {"fidelity": "duration"},
        "cluster": {"nodes": 1, "storage": {"servers": 0}},
        "workload": {"checkpoint_interval": "10min", "jobs": [
            {"submit": 0, "gpus": 1, "run_time": "2h", "tenant": "a"},
            {"submit": 60, "gpus": 8, "run_time": "1h", "tenant": "b"},
            {"submit": 120, "gpus": 2, "run_time": "1h", "tenant": "a"},
            {"submit": 180, "gpus": 1, "run_time": "30min", "tenant": "c"}]},
        "policy": {"queue": queue, **policy}})


def test_every_decision_is_logged_with_its_reason():
    r = simcluster.run(overloaded(), trace_events=True)
    ev = r.events
    counts = ev.groupby("event").size()
    assert counts["submit"] == counts["start"] == counts["end"] == 4
    assert ev["t"].is_monotonic_increasing
    waits = ev[ev["event"] == "wait"].groupby("job")["detail"].first()
    assert waits[1] == "needs 8 GPU(s), 7 free"  # the 8-GPU job behind the running 1-GPU job
    assert waits[2].startswith("queued behind job 1")  # strict FIFO holds the rest
    start = ev[(ev["event"] == "start") & (ev["job"] == 1)].iloc[0]
    assert start["gpus"].split() == [str(g) for g in range(8)]
    assert start["detail"] == "on rack0/node0 by pack placement"
    # no log unless asked: nothing to pay on big replays
    assert simcluster.run(overloaded()).events.empty


def test_preemption_and_requeue_are_logged():
    scenario = overloaded("priority", queue_params={"classes": {"b": 0, "a": 1, "c": 1},
                                                    "preempt": True})
    r = simcluster.run(scenario, trace_events=True)
    ev = r.events
    assert (ev["event"] == "preempt").any(), ev.to_string()
    victim = int(ev.loc[ev["event"] == "preempt", "job"].iloc[0])
    after = ev[(ev["job"] == victim) & (ev["t"] >= ev.loc[ev["event"] == "preempt", "t"].iloc[0])]
    assert after["event"].tolist()[:2] == ["preempt", "requeue"]
    assert "lost since the last checkpoint" in after["detail"].iloc[1]


def test_chrome_trace_slices_cover_the_gpu_time():
    r = simcluster.run(overloaded(), trace_events=True)
    doc = chrome_trace(r)
    slices = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    gpu_s = sum(e["dur"] for e in slices) / 1e6
    assert gpu_s == pytest.approx((r.jobs["run_s"] * r.jobs["gpus"]).sum(), rel=1e-9)
    waits = [e for e in doc["traceEvents"] if e["ph"] in "be" and e["cat"] == "queue"]
    assert len(waits) == 2 * 4  # one async slice per job: submit to start
    with pytest.raises(ValueError, match="trace_events=True"):
        chrome_trace(simcluster.run(overloaded()))


def test_cli_writes_the_log_and_the_trace(tmp_path, capsys):
    log, trace = tmp_path / "events.csv", tmp_path / "trace.json"
    code = main(["run", str(ROOT / "scenarios" / "quickstart.toml"), "--set",
                 "workload.count=10", "--trace-events", str(log), "--perfetto", str(trace),
                 "--out", str(tmp_path / "out")])
    assert code == 0
    table = pd.read_csv(log)
    assert list(table.columns) == ["t", "event", "job", "gpus", "detail"]
    assert (table["event"] == "submit").sum() == 10
    doc = json.loads(trace.read_text())
    names = {e["args"]["name"] for e in doc["traceEvents"] if e["ph"] == "M"}
    assert "queue (waiting jobs)" in names and any("/gpu" in n for n in names)
    assert (tmp_path / "out" / "events.csv").exists()  # saved with the run, read back by load
    assert len(simcluster.Results.load(tmp_path / "out").events) == len(table)


def test_a_run_without_decisions_still_exports_a_trace():
    s = simcluster.scenario_from_dict({
        "run": {"fidelity": "duration", "horizon": 1.0},
        "cluster": {"nodes": 1, "storage": {"servers": 0}},
        "workload": {"jobs": [{"submit": 10.0, "run_time": "1h"}]}})
    r = simcluster.run(s, trace_events=True)
    assert r.events.empty
    doc = chrome_trace(r)
    assert [e["ph"] for e in doc["traceEvents"]] == ["M"]


def test_a_maintenance_drain_is_logged_as_such(tmp_path):
    s = simcluster.scenario_from_dict({
        "run": {"fidelity": "duration"}, "cluster": {"nodes": 1, "storage": {"servers": 0}},
        "workload": {"checkpoint_interval": "30min", "jobs": [{"gpus": 8, "run_time": "3h"}]},
        "failures": {"maintenance": [{"start": "1h", "duration": "1h", "hosts": [0]}]}})
    ev = simcluster.run(s, trace_events=True).events
    drain = ev[ev["event"] == "preempt"]
    assert drain["detail"].tolist() == ["maintenance drains its hosts"]

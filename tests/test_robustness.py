"""Robustness: the scenario's JSON Schema, wall-clock limits, deadlock diagnosis,
reproducibility across processes, and fuzzed scenario files that never crash the CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simcluster
from simcluster.cli import main
from simcluster.errors import UserError
from simcluster.metrics.summary import METRICS, STUCK_REASON
from simcluster.policies.placement import PLACEMENT_POLICIES
from simcluster.rng import Streams
from simcluster.workload.generators import job_stream

from .conftest import SCENARIOS

QUICKSTART = str(SCENARIOS / "quickstart.toml")
ROOT = Path(__file__).resolve().parent.parent

# --- the JSON Schema ------------------------------------------------------------------------


def _validate(value, schema, root, path="$"):
    """A small JSON Schema checker (the keywords pydantic emits); returns the problems found."""
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return _validate(value, target, root, path)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            results = [_validate(value, s, root, path) for s in schema[key]]
            if all(results):
                return [f"{path}: matches no alternative: {results}"]
    kind = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind is not None:
        ok = isinstance(value, types[kind])
    else:
        ok = True
    if not ok:
        return [f"{path}: {value!r} is not of type {kind}"]
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        problems.append(f"{path}: {value!r} != {schema['const']!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: {value} < {schema['minimum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            problems.append(f"{path}: {value} <= {schema['exclusiveMinimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: {value} > {schema['maximum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            problems.append(f"{path}: fewer than {schema['minItems']} items")
        for i, item in enumerate(value):
            problems += _validate(item, schema.get("items", {}), root, f"{path}[{i}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        problems += [f"{path}: missing {k}" for k in schema.get("required", []) if k not in value]
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                problems += _validate(item, properties[key], root, f"{path}.{key}")
            elif extra is False:
                problems.append(f"{path}: unknown key {key!r}")
            elif isinstance(extra, dict):
                problems += _validate(item, extra, root, f"{path}.{key}")
    return problems


@pytest.fixture(scope="module")
def schema():
    return simcluster.scenario.json_schema()


def test_schema_command_prints_and_writes_the_schema(tmp_path, capsys, schema):
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == schema
    assert main(["schema", "--out", str(tmp_path / "scenario.schema.json")]) == 0
    assert json.loads((tmp_path / "scenario.schema.json").read_text()) == schema
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert set(schema["properties"]) == {"name", "description", "run", "cluster", "workload",
                                         "policy", "network", "failures", "services", "serving"}
    assert schema["required"] == ["workload"] and schema["additionalProperties"] is False
    # quantities take numbers or strings with units, and say so
    warmup = schema["$defs"]["RunConfig"]["properties"]["warmup"]
    assert {"type": "string"} in warmup["anyOf"] and "6h" in warmup["description"]


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda p: p.name)
def test_bundled_scenarios_conform_to_the_schema(path, schema):
    data = tomllib.loads(path.read_text())
    assert _validate(data, schema, schema) == []


def test_the_schema_checker_catches_what_validation_catches(schema):
    assert _validate({"workload": {"jobs": []}, "clustr": {}}, schema, schema)
    assert _validate({"cluster": {"nodes": "two"}}, schema, schema)  # and workload is missing
    assert _validate({"workload": {"count": 5, "checkpoint_interval": "1h"}}, schema, schema) \
        == []


# --- wall-clock limit -----------------------------------------------------------------------

def long_scenario(*overrides):
    return simcluster.load_scenario(QUICKSTART, ["workload.count=20000", "run.fidelity=duration",
                                                 *overrides])


def test_max_wall_stops_cleanly_with_partial_results():
    results = simcluster.run(long_scenario(), max_wall_s=1e-6)
    jobs, s = results.jobs, results.summary()
    assert results.meta["partial"] is True
    assert 0 < len(jobs) < 20000 and jobs["job_id"].is_unique
    end = results.meta["end_s"]
    assert s["sim_time_s"] == end and jobs["submit_s"].max() <= end
    running, queued = jobs[jobs["state"] == "running"], jobs[jobs["state"] == "queued"]
    done = jobs[jobs["state"] == "completed"]
    assert set(jobs["state"]) <= {"completed", "running", "queued", "rejected"}
    assert len(running) == s["jobs_running_at_end"] > 0
    assert running["start_s"].notna().all() and running["end_s"].isna().all()
    assert (running["iterations_done"] < running["iterations"]).all()
    assert queued["end_s"].isna().all() and (queued["reason"].fillna("") == "").all()
    assert (done["end_s"] <= end).all() and (done["iterations_done"] == done["iterations"]).all()
    assert s["jobs_stuck"] == 0
    util = results.utilization
    assert util["time_s"].max() <= end and util["gpus_allocated"].iloc[-1] == running["gpus"].sum()


@pytest.mark.parametrize("horizon", [None, "12h"])
def test_a_limit_that_does_not_bite_changes_nothing(horizon):
    overrides = [f"run.horizon={horizon}"] if horizon else []
    scenario = simcluster.load_scenario(QUICKSTART, overrides)
    plain = simcluster.run(scenario)
    stepped = simcluster.run(scenario, max_wall_s=1e6)
    assert plain.meta["partial"] is stepped.meta["partial"] is False
    pd.testing.assert_frame_equal(plain.jobs, stepped.jobs)
    pd.testing.assert_frame_equal(plain.utilization, stepped.utilization)
    assert plain.meta["end_s"] == stepped.meta["end_s"]


def test_max_wall_on_the_command_line(tmp_path, capsys):
    assert main(["run", QUICKSTART, "--set", "workload.count=20000", "--set",
                 "run.fidelity=duration", "--max-wall", "0.000001",
                 "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "warning: --max-wall stopped the run" in err and "results are partial" in err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["partial"] is True and summary["jobs_submitted"] < 20000
    assert main(["run", QUICKSTART, "--set", "workload.count=5", "--max-wall", "1min",
                 "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["partial"] is False and "warning" not in out.err
    with pytest.raises(SystemExit) as exit_info:
        main(["run", QUICKSTART, "--max-wall", "-3"])
    assert exit_info.value.code == 2
    with pytest.raises(UserError, match="max_wall_s"):
        simcluster.run(simcluster.load_scenario(QUICKSTART), max_wall_s=0)


# --- deadlock diagnosis ---------------------------------------------------------------------

NEVER = "test-never-places"
if NEVER not in PLACEMENT_POLICIES:
    @PLACEMENT_POLICIES.register(NEVER)
    class NeverPlaces:
        """Refuses every request: the queue can never move."""

        def place(self, request, view):
            return None


def stuck_scenario(horizon=None):
    run = {"fidelity": "duration"} | ({"horizon": horizon} if horizon else {})
    return simcluster.scenario_from_dict({
        "run": run, "cluster": {"nodes": 1, "storage": {"servers": 0}},
        "workload": {"jobs": [{"gpus": 1, "run_time": "1h"}, {"gpus": 2, "run_time": "1h",
                                                               "submit": "10min"}]},
        "policy": {"placement": NEVER}})


@pytest.mark.parametrize("horizon", [None, "1d"])
def test_a_queue_that_stops_moving_is_diagnosed(horizon):
    results = simcluster.run(stuck_scenario(horizon))
    jobs, s = results.jobs, results.summary()
    assert (jobs["state"] == "queued").all()
    assert jobs["reason"].str.startswith(STUCK_REASON).all()
    assert f"'fifo' with placement policy '{NEVER}'" in jobs["reason"].iloc[0]
    assert s["jobs_stuck"] == 2 and "jobs_stuck" in METRICS
    assert results.meta["jobs_stuck"] == 2


def test_deadlock_warning_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "stuck.toml"
    path.write_text(f'[cluster]\nnodes = 1\n[policy]\nplacement = "{NEVER}"\n'
                    '[workload]\njobs = [{ gpus = 1, run_time = "1h" }]\n')
    assert main(["run", str(path), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "warning: the queue stopped moving: 1 jobs stayed queued" in err
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["jobs_stuck"] == 1


def test_a_busy_queue_at_the_horizon_is_not_a_deadlock():
    results = simcluster.run(simcluster.load_scenario(QUICKSTART, ["run.horizon=6h"]))
    s = results.summary()
    assert s["jobs_queued_at_end"] + s["jobs_running_at_end"] > 0 and s["jobs_stuck"] == 0


# --- reproducibility ------------------------------------------------------------------------

def test_results_record_package_versions(tmp_path):
    results = simcluster.run(simcluster.load_scenario(QUICKSTART, ["workload.count=3"]))
    versions = results.meta["versions"]
    assert {"simcluster", "simpy", "numpy", "pandas", "networkx", "scipy", "pydantic",
            "python"} <= set(versions)
    results.save(tmp_path)
    resolved = json.loads((tmp_path / "scenario.resolved.json").read_text())
    assert resolved["versions"] == versions


def test_two_processes_give_byte_identical_jobs_csv(tmp_path):
    outputs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"run{hash_seed}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        proc = subprocess.run([sys.executable, "-m", "simcluster", "run", QUICKSTART, "--out",
                               str(out)], capture_output=True, text=True, env=env, cwd=ROOT,
                              check=False)
        assert proc.returncode == 0, proc.stderr
        outputs.append((out / "jobs.csv").read_bytes())
    assert outputs[0] == outputs[1] and outputs[0].count(b"\n") == 101


def test_an_unrelated_stream_does_not_change_arrivals():
    workload = simcluster.load_scenario(QUICKSTART).workload
    plain = list(job_stream(workload, Streams(5), None))
    streams = Streams(5)
    streams.get("failures/gpu").random(1000)  # e.g. failures enabled: drawn first, and often
    streams.get("policy/policy.placement").integers(0, 10, 100)
    other = list(job_stream(workload, streams, None))
    assert [(j.id, j.submit_s, j.request, j.model, j.run_time_s) for j in plain] == \
        [(j.id, j.submit_s, j.request, j.model, j.run_time_s) for j in other]


# --- fuzzed scenario files ------------------------------------------------------------------

VALID = {
    "name": "fuzz",
    "run": {"seed": 1, "horizon": "1d", "fidelity": "coarse"},
    "cluster": {"gpu": "H100-SXM", "nodes": 2, "nodes_per_rack": 1,
                "storage": {"servers": 1, "kind": "AI400X2"}},
    "workload": {"arrivals": {"kind": "poisson", "rate": "10/h"}, "count": 5,
                 "checkpoint_interval": "1h",
                 "mix": [{"model": "resnet-50", "gpus": [1, 2], "weight": 1.0,
                          "run_time": {"kind": "lognormal", "median": "1h", "sigma": 1.0}}],
                 "jobs": [{"submit": "1h", "gpus": 4, "run_time": "2h", "model": "mlp"}]},
    "policy": {"queue": "fifo", "placement": "pack", "queue_params": {"blocking": True},
               "preemption": {"checkpoint": True, "restart": "30s"}},
    "network": {"solver": "numpy", "efficiency": {"nvlink": 0.8}},
}
# keys whose value sets the size of what `check` builds: kept small (a huge cluster is valid)
SIZE_KEYS = {"nodes", "gpus_per_node", "servers", "nodes_per_rack"}

scalars = st.one_of(
    st.integers(-2**63, 2**63 - 1), st.sampled_from([0, -1, 1, 2**63 - 1, -2**63]),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.text(max_size=12), st.sampled_from(["1h", "-5s", "1e400h", "80GiB", "nan", "", "fifo",
                                           "poisson", "choice", "H100-SXM", "10/h"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)


def _paths(data, prefix=()):
    for key, value in data.items():
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from _paths(value, (*prefix, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    yield from _paths(item, (*prefix, key, i))


PATHS = list(_paths(VALID))


@st.composite
def mutated(draw):
    data = json.loads(json.dumps(VALID))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent = data
        try:
            for part in path[:-1]:
                parent = parent[part]
        except (KeyError, IndexError, TypeError):
            continue
        if not isinstance(parent, dict):
            continue
        action = draw(st.sampled_from(["delete", "replace", "unknown"]))
        key = path[-1]
        if action == "delete":
            parent.pop(key, None)
        elif action == "unknown":
            parent[draw(st.text(min_size=1, max_size=8))] = draw(values)
        else:
            value = draw(values)
            if key in SIZE_KEYS and isinstance(value, int) and not isinstance(value, bool):
                value = max(-5, min(value, 4))
            parent[key] = value
    return data


def _key(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a TOML basic string (JSON's escapes)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") \
            if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return _key(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


def to_toml(data: dict) -> str:
    lines = [f"{_key(k)} = {_toml_value(v)}" for k, v in data.items()
             if not isinstance(v, dict)]
    for key, table in data.items():
        if isinstance(table, dict):
            lines.append(f"[{_key(key)}]")
            lines += [f"{_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


@st.composite
def scenario_texts(draw):
    text = to_toml(draw(mutated()))
    if draw(st.integers(0, 4)) == 4:  # broken TOML: cut, or splice in a stray character
        at = draw(st.integers(0, len(text)))
        text = text[:at] if draw(st.booleans()) else \
            text[:at] + draw(st.sampled_from(["[", "=", '"', "\x00", "{", "\n["])) + text[at:]
    return text


def test_the_fuzzer_starts_from_a_valid_scenario(tmp_path, capsys):
    path = tmp_path / "valid.toml"
    path.write_text(to_toml(VALID))
    assert main(["check", str(path)]) == 0, capsys.readouterr().err


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(scenario_texts())
def test_fuzzed_scenario_files_never_crash_check(tmp_path, capsys, text):
    path = tmp_path / "fuzz.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    code = main(["check", str(path)])
    err = capsys.readouterr().err
    assert code in (0, 2), err
    if code == 2:
        assert err.startswith("error: ") and "Traceback" not in err, err


# --- --check: each invariant broken on purpose is caught -------------------------------------

def _checked_sim():
    from simcluster.engine.simulation import Simulation
    scenario = simcluster.scenario_from_dict({
        "cluster": {"nodes": 2},
        "workload": {"jobs": [{"model": "gpt2-1.5b", "gpus": 16, "iterations": 50}],
                     "checkpoint_interval": 0}})
    return Simulation(scenario, check=True)


def _run_until_running(sim):
    from simcluster.workload.generators import job_stream
    sim.env.process(sim._arrivals(job_stream(sim.scenario.workload, sim.streams, None)))
    sim.env.run(until=1e-3)
    assert sim.scheduler.running and sim.network.active


@pytest.mark.parametrize("breakage", ["gpu", "link", "bytes", "state", "time"])
def test_check_catches_each_broken_invariant(breakage):
    from simcluster.engine.cluster import InvariantViolation
    sim = _checked_sim()
    _run_until_running(sim)
    sim.check_invariants()  # all fine so far
    flow = next(iter(sim.network._flows.values()))
    job = next(iter(sim.scheduler.running.values()))
    if breakage == "gpu":
        sim.cluster._free[0] = -1.0                 # a GPU allocated twice
    elif breakage == "link":
        flow.rate, flow.cap = 1e15, float("inf")    # a link over its capacity
    elif breakage == "bytes":                       # bytes appearing from nowhere
        gpus = sim.topology.gpus
        transfer = sim.network.start(*sim.network.path(gpus[0], gpus[8])[:2], 1e9)
        sim.env.run(until=sim.env.now + 1e-6)
        transfer.sent += 1e9
    elif breakage == "state":
        job.state = "queued"                        # running, but says queued
    else:
        sim._checked_at = sim.env.now + 1.0         # time going backwards
    with pytest.raises(InvariantViolation):
        sim.check_invariants()


def test_custom_policies_are_imported_only_when_allowed(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_policies.py").write_text(
        "from simcluster.policies.placement import FirstFit\n"
        "class Mine(FirstFit):\n"
        "    '''First fit, from the user's own module.'''\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    scenario = tmp_path / "s.toml"
    scenario.write_text("[policy]\nplacement = 'my_policies:Mine'\n"
                        "[workload]\njobs = [{ run_time = '1h' }]\n")
    assert main(["check", str(scenario)]) == 2
    err = capsys.readouterr().err
    assert "my_policies:Mine" in err and "--allow-import" in err
    assert "my_policies" not in __import__("sys").modules   # nothing was imported
    assert main(["run", str(scenario), "--allow-import", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["jobs_completed"] == 1
    bad = tmp_path / "bad.toml"
    bad.write_text("[policy]\nplacement = 'no_such_module:X'\n"
                   "[workload]\njobs = [{ run_time = '1h' }]\n")
    assert main(["check", str(bad), "--allow-import"]) == 2
    assert "cannot import module 'no_such_module'" in capsys.readouterr().err

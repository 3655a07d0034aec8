"""Property tests (hypothesis): allocation, job states, determinism, stop and resume."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simcluster
from simcluster.engine.simulation import Simulation

SIZES = [0.25, 0.5, 1, 2, 3, 4, 8, 16, 32]  # 32 never fits a 2-node cluster: rejected

job = st.fixed_dictionaries({
    "submit": st.floats(0, 3600, allow_nan=False),
    "gpus": st.sampled_from(SIZES),
    "run_time": st.floats(1, 7200, allow_nan=False),
    "model": st.sampled_from(["mlp", "resnet-50", "bert-large", "gpt2-1.5b"]),
})
scenarios = st.fixed_dictionaries({
    "jobs": st.lists(job, min_size=1, max_size=25),
    "fidelity": st.sampled_from(["duration", "coarse"]),
    "placement": st.sampled_from(["first_fit", "pack"]),
    "blocking": st.booleans(),
    "horizon": st.one_of(st.none(), st.floats(600, 20_000)),
})


def build(d):
    run = {"fidelity": d["fidelity"]}
    if d["horizon"] is not None:
        run["horizon"] = d["horizon"]
    return simcluster.scenario_from_dict({
        "run": run,
        "cluster": {"nodes": 2, "nodes_per_rack": 1},
        "workload": {"jobs": d["jobs"], "checkpoint_interval": "20min"},
        "policy": {"placement": d["placement"], "queue_params": {"blocking": d["blocking"]}},
    })


SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(scenarios)
def test_every_job_ends_in_exactly_one_state_and_nothing_is_overallocated(d):
    scenario = build(d)
    result = simcluster.run(scenario, check=True)  # check: invariants after every pass
    jobs = result.jobs
    horizon = d["horizon"] if d["horizon"] is not None else float("inf")
    submitted = [j for j in d["jobs"] if j["submit"] < horizon]  # later ones never arrive
    assert len(jobs) == len(submitted) and jobs["job_id"].is_unique
    assert set(jobs["state"]) <= {"completed", "rejected", "queued", "running"}
    assert (jobs.loc[jobs["gpus"] > 16, "state"] == "rejected").all()
    assert (jobs.loc[jobs["gpus"] <= 16, "state"] != "rejected").all()
    done = jobs[jobs["state"] == "completed"]
    assert (done["iterations_done"] == done["iterations"]).all()
    if d["horizon"] is None:
        assert set(jobs["state"]) <= {"completed", "rejected"}
    util = result.utilization
    assert (util["gpus_allocated"] <= 16 + 1e-9).all() and (util["gpus_allocated"] >= -1e-9).all()
    assert util["time_s"].is_monotonic_increasing
    assert (util["gpus_computing"] <= util["gpus_allocated"] + 1e-9).all()
    started = jobs[jobs["start_s"].notna()]
    assert (started["wait_s"] >= 0).all()


@SETTINGS
@given(scenarios, st.integers(0, 2**32))
def test_same_seed_same_jobs_table(d, seed):
    a = simcluster.run(build(d), seed=seed).jobs
    b = simcluster.run(build(d), seed=seed).jobs
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("fidelity", ["duration", "coarse"])
@pytest.mark.parametrize("stop_at", [500.0, 1500.0, 3000.0])
def test_stop_and_resume_does_the_same_iterations(fidelity, stop_at):
    scenario = simcluster.scenario_from_dict({
        "run": {"fidelity": fidelity},
        "cluster": {"nodes": 1},
        "workload": {"jobs": [{"model": "resnet-50", "gpus": 4, "run_time": "1h"}],
                     "checkpoint_interval": "20min"},
    })
    plain = simcluster.run(scenario).jobs.iloc[0]
    sim = Simulation(scenario)
    sim.env.timeout(stop_at).callbacks.append(
        lambda _e: sim.scheduler.stop(sim.scheduler.running[0]))
    stopped = sim.run().jobs.iloc[0]
    assert stopped["state"] == plain["state"] == "completed"
    assert stopped["iterations_done"] == plain["iterations_done"] == plain["iterations"]
    assert stopped["preemptions"] == 1
    # the work since the last checkpoint is lost and redone: the job ends later by that much
    lost = stopped["iterations_lost"]
    assert 0 < lost < plain["iterations"] / 3 + 1
    per_iteration = plain["run_s"] / plain["iterations"]
    assert stopped["end_s"] - plain["end_s"] >= lost * per_iteration * 0.99


def test_generated_jobs_are_the_same_under_another_policy():
    # common random numbers: the workload does not depend on the policy
    path = "scenarios/quickstart.toml"
    a = simcluster.run(simcluster.load_scenario(path)).jobs
    b = simcluster.run(simcluster.load_scenario(path, ["policy.placement=first_fit"])).jobs
    cols = ["job_id", "submit_s", "gpus", "model", "tenant", "iterations"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


@pytest.mark.parametrize("fidelity", ["duration", "coarse"])
def test_stop_at_the_instant_a_segment_ends_keeps_the_segment(fidelity):
    scenario = simcluster.scenario_from_dict({
        "run": {"fidelity": fidelity},
        "cluster": {"nodes": 1, "storage": {"servers": 0}},
        "workload": {"jobs": [{"model": "resnet-50", "gpus": 4, "run_time": "1h"}],
                     "checkpoint_interval": 0},
    })
    plain = simcluster.run(scenario).jobs.iloc[0]
    sim = Simulation(scenario)
    # stop exactly when the job's only segment ends: it has finished, nothing is lost
    sim.env.timeout(plain["end_s"]).callbacks.append(
        lambda _e: sim.scheduler.running and sim.scheduler.stop(sim.scheduler.running[0]))
    stopped = sim.run().jobs.iloc[0]
    assert stopped["state"] == "completed"
    assert stopped["iterations_lost"] == 0 and stopped["end_s"] == plain["end_s"]

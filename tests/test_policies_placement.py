"""Placement policies best_fit, spread, random, topology_aware (first_fit and pack: see
test_placement.py), and admission policies."""

from __future__ import annotations

import numpy as np
import pytest

import simcluster
from simcluster.policies.admission import ADMISSION_POLICIES, LoadBased, MaxQueue, TenantCap
from simcluster.policies.placement import PLACEMENT_POLICIES, BestFit, Random, Spread
from simcluster.policies.placement_topo import TopologyAware
from simcluster.policies.view import StaticJob, StaticView
from simcluster.rng import Streams
from simcluster.workload.jobs import Request

F, B = 1.0, 0.0


@pytest.mark.parametrize(("hosts", "free", "request_", "best_fit", "spread"), [
    # one host fits: best fit takes the fuller host; spread one GPU per host
    ([4, 4], [B, B, F, F, F, F, F, F], Request(2), (2, 3), (2, 4)),
    # larger than a host: best fit fills the fullest hosts first, spread goes wide
    ([4, 4, 4], [B, B, B, F, B, F, F, F, F, F, F, F], Request(5), (3, 5, 6, 7, 8),
     (3, 5, 6, 8, 9)),
    # does not fit at all (empty blocks too small in total)
    ([2, 2], [F, B, B, F], Request(3), None, None),
    # fractional: best fit the fullest GPU that fits, spread the emptiest
    ([2, 2], [0.3, 1.0, 0.6, 1.0], Request(0.5), (2,), (1,)),
])
def test_placement_table(hosts, free, request_, best_fit, spread):
    view = StaticView(hosts, gpu_free=free)
    assert BestFit().place(request_, view) == best_fit
    assert Spread().place(request_, view) == spread


def test_best_fit_counts_cpus():
    # host 0 has fewer idle GPUs but host 1 would be left with fewer free cores
    view = StaticView([4, 4], gpu_free=[B, F, F, F, B, B, F, F], cpus_free=[56.0, 14.0])
    assert BestFit().place(Request(2, cpus_per_gpu=7.0), view) == (6, 7)


def test_random_is_reproducible_and_valid():
    view = StaticView([4, 4], gpu_free=[B, F, F, F, F, F, B, F])
    a = Random(Streams(5).get("policy/placement"))
    b = Random(Streams(5).get("policy/placement"))
    picks = [a.place(Request(3), view) for _ in range(20)]
    assert picks == [b.place(Request(3), view) for _ in range(20)]
    assert len(set(picks)) > 1
    for p in picks:
        assert len(set(p)) == 3 and all(view.gpu_free[g] == 1.0 for g in p)
    assert a.place(Request(7), view) is None
    with pytest.raises(TypeError):
        Random()


def test_random_whole_gpu_choice_is_uniform_over_what_each_host_offers():
    # hosts of 4, 4 and 2 idle GPUs whose free CPUs allow 2, 4 and 1 GPUs of 8 cores each: a
    # host offers a uniformly random subset of its idle GPUs of that size, and the request
    # takes a uniform subset of all offered slots, so P(g) = cap/idle x need/sum(cap)
    view = StaticView([4, 4, 2], gpu_free=[F] * 10, cpus_free=[16.0, 32.0, 8.0])
    policy, request = Random(Streams(3).get("policy/placement")), Request(3, cpus_per_gpu=8.0)
    trials, counts = 6000, np.zeros(10)
    for _ in range(trials):
        picked = policy.place(request, view)
        per_host = np.bincount(view.gpu_host[list(picked)], minlength=3)
        assert len(set(picked)) == 3 and (per_host <= [2, 4, 1]).all(), picked
        counts[list(picked)] += 1
    expected = np.array([2 / 4] * 4 + [1.0] * 4 + [1 / 2] * 2) * 3 / 7
    sd = np.sqrt(expected * (1 - expected) / trials)
    assert (np.abs(counts / trials - expected) < 5 * sd).all(), (counts / trials, expected)


def test_topology_aware_balances_rails_and_stays_in_a_rack():
    view = StaticView([8, 8, 8], hosts_per_rack=2, gpu_free=[B, B] + [F] * 22)
    # 12 GPUs: 6 + 6 in rack 0 (six channels) beats 8 + 4 (four) and any cross-rack choice
    assert TopologyAware().place(Request(12), view) == tuple(range(2, 14))
    # fits on one host: the fullest that fits, like pack
    assert TopologyAware().place(Request(4), view) == (2, 3, 4, 5)


def test_topology_aware_in_a_run_is_not_slower_than_first_fit():
    def scenario(placement):
        return simcluster.scenario_from_dict({
            "cluster": {"nodes": 4, "nodes_per_rack": 2},
            "workload": {"jobs": [{"model": "gpt2-1.5b", "gpus": 4, "run_time": "1h"},
                                  {"model": "gpt2-1.5b", "gpus": 12, "submit": "1min",
                                   "run_time": "1h"}], "checkpoint_interval": 0},
            "policy": {"placement": placement},
        })
    ta = simcluster.run(scenario("topology_aware")).jobs
    ff = simcluster.run(scenario("first_fit")).jobs
    assert ta["run_s"].iloc[1] <= ff["run_s"].iloc[1] * (1 + 1e-9)


PACKAGE_PLACEMENTS = ["first_fit", "pack", "best_fit", "spread", "random", "topology_aware",
                      "gpu_milli", "fgd"]


def test_all_placements_run_with_checks():
    assert set(PACKAGE_PLACEMENTS) <= set(PLACEMENT_POLICIES.names())
    for name in PACKAGE_PLACEMENTS:  # (other tests may register more, e.g. the README's)
        scenario = simcluster.scenario_from_dict({
            "run": {"fidelity": "duration"},
            "cluster": {"nodes": 2, "storage": {"servers": 0}},
            "workload": {"jobs": [{"gpus": g, "run_time": "10min", "submit": i * 60.0}
                                  for i, g in enumerate([0.5, 0.25, 4, 8, 1, 0.5, 16, 2])],
                         "checkpoint_interval": 0},
            "policy": {"placement": name},
        })
        jobs = simcluster.run(scenario, check=True).jobs
        assert (jobs["state"] == "completed").all(), name


@pytest.mark.parametrize(("policy", "pending", "job", "rejected"), [
    (MaxQueue(2), [StaticJob(1), StaticJob(2)], StaticJob(3), True),
    (MaxQueue(2), [StaticJob(1)], StaticJob(3), False),
    (LoadBased(1.0), [StaticJob(1, size=6)], StaticJob(3, size=2), False),  # 8 <= 1 × 8
    (LoadBased(1.0), [StaticJob(1, size=6)], StaticJob(3, size=4), True),
    (TenantCap({"a": 4}), [StaticJob(1, size=2, tenant="a")], StaticJob(3, size=2, tenant="a"),
     False),
    (TenantCap({"a": 4}), [StaticJob(1, size=2, tenant="a")], StaticJob(3, size=4, tenant="a"),
     True),
    (TenantCap({"a": 4}), [], StaticJob(3, size=8, tenant="b"), False),
])
def test_admission_table(policy, pending, job, rejected):
    view = StaticView([8], pending=pending)
    assert (policy.admit(job, view) is not None) == rejected


def test_admission_from_a_scenario():
    assert {"accept_all", "max_queue", "load", "tenant_cap"} <= set(ADMISSION_POLICIES.names())
    scenario = simcluster.scenario_from_dict({
        "run": {"fidelity": "duration"},
        "cluster": {"nodes": 1, "storage": {"servers": 0}},
        "workload": {"jobs": [{"gpus": 8, "run_time": "1h"}] * 5, "checkpoint_interval": 0},
        "policy": {"admission": "max_queue", "admission_params": {"limit": 2}},
    })
    jobs = simcluster.run(scenario).jobs
    # all five arrive at t = 0, before any pass: two wait, three find the queue full
    assert (jobs["state"] == "rejected").sum() == 3
    assert jobs.loc[jobs["state"] == "rejected", "reason"].str.contains("queue full").all()
    with pytest.raises(simcluster.UserError, match="did you mean 'max_queue'"):
        simcluster.scenario_from_dict({"workload": {"jobs": [{"run_time": "1h"}]},
                                       "policy": {"admission": "max_queu"}})

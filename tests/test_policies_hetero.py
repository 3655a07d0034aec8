"""Heterogeneous GPUs: pools, per-pool energy and cost, `hetero` placement, throughput tables."""

from __future__ import annotations

import json

import pytest

import simcluster
from simcluster.engine.simulation import Simulation, build_topology
from simcluster.errors import UserError
from simcluster.hardware import GPUS
from simcluster.policies.hetero import Hetero
from simcluster.policies.view import StaticJob, StaticView
from simcluster.workload.jobs import Request
from tests.conftest import TRACES

GAVEL = TRACES / "gavel_throughputs" / "simulation_throughputs.json"
POOLS = [{"gpu": "A100-80GB", "nodes": 1}, {"gpu": "H100-SXM", "nodes": 1}]


def scenario(placement="hetero", jobs=None, cluster=None, fidelity="coarse"):
    workload = {"jobs": jobs} if jobs else {
        "arrivals": {"kind": "poisson", "rate": "40/h"}, "count": 60, "checkpoint_interval": 0,
        "mix": [{"model": "resnet-50", "gpus": [1, 2],
                 "run_time": {"kind": "exponential", "mean": "30min"}},
                {"model": "bert-large", "gpus": [1, 2, 4],
                 "run_time": {"kind": "exponential", "mean": "30min"}}]}
    return simcluster.scenario_from_dict({
        "run": {"fidelity": fidelity, "seed": 3},
        "cluster": cluster or {"pools": POOLS, "storage": {"servers": 0}},
        "workload": workload,
        "policy": {"queue": "fifo", "placement": placement},
    })


def test_pools_build_one_fabric_with_both_types():
    topo = build_topology(scenario().cluster)
    types = [topo.gpu_type(g) for g in range(len(topo.gpus))]
    assert types == ["A100-80GB"] * 8 + ["H100-SXM"] * 8
    assert topo.fabric == "rail_optimized" and topo.num_racks == 1 and len(topo.hosts) == 2


def test_two_pool_run_passes_invariant_checks():
    r = simcluster.run(scenario(), check=True)
    assert (r.jobs["state"] == "completed").all() and len(r.jobs) == 60


def test_energy_and_cost_sum_over_pools():
    a, h = GPUS.get("A100-80GB"), GPUS.get("H100-SXM")
    jobs = [{"model": "resnet-50", "run_time": "1h", "gpu_type": "A100-80GB"},
            {"model": "resnet-50", "run_time": "1h", "gpu_type": "H100-SXM"}]
    r = simcluster.run(scenario(jobs=jobs, fidelity="duration"), check=True)
    meta = r.meta
    assert meta["gpus"] == 16
    assert meta["gpus"] * meta["gpu_idle_w"] == pytest.approx(8 * a.idle_power_w
                                                              + 8 * h.idle_power_w)
    assert meta["gpus"] * meta["gpu_max_w"] == pytest.approx(8 * a.max_power_w
                                                             + 8 * h.max_power_w)
    assert meta["gpus"] * meta["hourly_usd"] == pytest.approx(8 * a.hourly_usd + 8 * h.hourly_usd)
    assert meta["capex_usd"] == pytest.approx(8 * a.price_usd + 8 * h.price_usd)
    # each job is charged at its own type's price and power (1 GPU for 1 h)
    cost = r.jobs.set_index("job_id")["cost_usd"].sort_index().tolist()
    assert cost == pytest.approx([a.hourly_usd, h.hourly_usd])
    pue = r.scenario["cluster"]["cost"]["pue"]
    for (_, job), gpu in zip(r.jobs.sort_values("job_id").iterrows(), (a, h), strict=True):
        assert gpu.idle_power_w * pue / 1e3 - 1e-9 <= job["energy_kwh"]
        assert job["energy_kwh"] <= gpu.max_power_w * pue / 1e3 + 1e-9


def test_hetero_takes_the_faster_type_when_both_are_free():
    jobs = [{"model": "resnet-50", "run_time": "1h"}]
    first = simcluster.run(scenario("first_fit", jobs), check=True).jobs.iloc[0]
    fast = simcluster.run(scenario("hetero", jobs), check=True).jobs.iloc[0]
    # the run time refers to the first GPUs (A100); H100 runs resnet-50 3.17x faster (perf model)
    assert first["run_s"] == pytest.approx(3600, rel=0.01)
    assert fast["run_s"] == pytest.approx(3600 / 3.1712, rel=0.01)


def test_hetero_beats_first_fit_on_mean_jct():
    jct = {p: simcluster.run(scenario(p), check=True).summary()["mean_jct_s"]
           for p in ("first_fit", "hetero")}
    assert jct["hetero"] < 0.75 * jct["first_fit"]  # seed 3: 1416 s vs 2272 s


def test_hetero_unit_rules():
    view = StaticView([2, 2], gpu_types=["A100-80GB", "H100-SXM"],
                      speeds={("mlp", "H100-SXM"): 3.0, ("bert-large", "H100-SXM"): 1.5})
    policy = Hetero()
    assert policy.place(Request(1), view, StaticJob(1)) == (2,)
    assert policy.place(Request(1, gpu_type="A100-80GB"), view, StaticJob(1)) == (0,)
    assert policy.place(Request(1), view) == Hetero().place(Request(1), view, None)
    # the fast type is full: the slow one
    full = StaticView([2, 2], gpu_free=[1, 1, 0, 0], gpu_types=["A100-80GB", "H100-SXM"],
                      speeds={("mlp", "H100-SXM"): 3.0})
    assert policy.place(Request(1), full, StaticJob(1)) == (0,)
    # ties between jobs: bert gains 1.5x, a queued mlp job gains 3x from the 2 free H100s
    mlp = StaticJob(2, size=2, model="mlp")
    bert = StaticJob(1, model="bert-large")
    contested = StaticView([2, 2], gpu_types=["A100-80GB", "H100-SXM"], pending=[bert, mlp],
                           speeds={("mlp", "H100-SXM"): 3.0, ("bert-large", "H100-SXM"): 1.5})
    assert policy.place(Request(1), contested, bert) == (0,)
    assert Hetero(yield_fast=False).place(Request(1), contested, bert) == (2,)
    with pytest.raises(TypeError):
        Hetero(yield_fast="yes")


@pytest.mark.parametrize("cluster, message", [
    ({"gpu": "H100-SXM", "pools": POOLS}, "not both"),
    ({"nodes": 2, "pools": POOLS}, "not both"),
    ({"pools": [{"gpu": "H100-SMX", "nodes": 1}]}, "did you mean 'H100-SXM'"),
    ({"pools": [{"gpu": "H100-SXM", "nodes": 0}]}, "cluster.pools[0].nodes"),
    ({"pools": [{"gpu": "H100-SXM"}]}, "missing required key 'nodes'"),
    ({"pools": [{"gpu": "H100-SXM", "nodes": 1, "gpus": 4}]}, "unknown key 'gpus'"),
])
def test_schema_rejects_bad_pools(cluster, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        scenario(cluster=cluster)


def test_single_form_still_default():
    s = scenario(cluster={"nodes": 2})
    assert [(p.gpu, p.nodes) for p in s.cluster.node_pools()] == [("H100-SXM", 2)]


@pytest.mark.skipif(not GAVEL.exists(), reason=f"Gavel throughput table missing: {GAVEL}")
def test_gavel_throughput_table_sets_relative_speeds():
    table = json.loads(GAVEL.read_text())
    key = "('ResNet-50 (batch size 64)', 1)"
    expected = table["v100"][key]["null"] / table["k80"][key]["null"]  # 4.395 / 0.619
    cluster = {"pools": POOLS, "storage": {"servers": 0},
               "throughputs": {"path": str(GAVEL), "gpus": {"A100-80GB": "k80",
                                                            "H100-SXM": "v100"},
                               "models": {"resnet-50": "ResNet-50 (batch size 64)"}}}
    view = Simulation(scenario(cluster=cluster)).scheduler.view
    assert expected == pytest.approx(7.1, abs=0.05)
    assert view.relative_speed("resnet-50", "H100-SXM") == pytest.approx(expected)
    assert view.relative_speed("resnet-50", "A100-80GB") == 1.0
    # a model the table does not map keeps the perf model
    assert view.relative_speed("mlp", "H100-SXM") == pytest.approx(1.643, rel=1e-3)
    # the string form is a path with default (identity) mappings: nothing maps, perf model
    plain = Simulation(scenario(cluster={"pools": POOLS, "throughputs": str(GAVEL)}))
    assert plain.scheduler.view.relative_speed("resnet-50", "H100-SXM") == pytest.approx(
        3.1712, rel=1e-3)


def test_missing_throughput_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot read"):
        Simulation(scenario(cluster={"pools": POOLS, "throughputs": str(tmp_path / "x.json")}))


def test_cluster_power_counts_each_gpu_type_at_its_own_figures():
    from simcluster.hardware import gpu
    s = simcluster.scenario_from_dict({
        "run": {"fidelity": "duration"},
        "cluster": {"pools": [{"gpu": "A100-80GB", "nodes": 1}, {"gpu": "H100-SXM", "nodes": 1}],
                    "storage": {"servers": 0}},
        "workload": {"jobs": [{"gpus": 8, "gpu_type": t, "run_time": "1h"}
                              for t in ("A100-80GB", "H100-SXM")], "checkpoint_interval": 0}})
    result = simcluster.run(s)
    meta = result.meta
    a, h = gpu("A100-80GB"), gpu("H100-SXM")
    both_busy = result.utilization.iloc[0]
    # every GPU of both pools computes: each at its own maximum, plus the hosts, times the PUE
    expected = (8 * a.max_power_w + 8 * h.max_power_w + meta["hosts"] * meta["host_w"]) \
        * meta["pue"]
    assert both_busy["power_w"] == pytest.approx(expected)

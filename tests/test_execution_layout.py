"""A layout job's gradient traffic runs per data-parallel group, at iteration and coarse level."""

from __future__ import annotations

import pytest

import simcluster
from simcluster.engine.simulation import Simulation
from simcluster.experiment.estimate_train import train_estimate
from simcluster.hardware import LINK_EFFICIENCY
from simcluster.perf.memory import params_per_gpu
from simcluster.perf.models import model
from simcluster.perf.parallelism import Parallelism

LLAMA = "llama-2-7b"


def _scenario(jobs, fidelity="iteration", **cluster):
    return simcluster.scenario_from_dict({
        "run": {"fidelity": fidelity},
        "cluster": {"nodes": 4, **cluster},
        "workload": {"jobs": jobs, "checkpoint_interval": 0},
    })


def _job(layout, gpus=32, iterations=4, name=LLAMA):
    return {"model": name, "gpus": gpus, "iterations": iterations, "parallelism": layout}


def _shard_bytes(tp, dp):
    """BF16 gradient bytes one GPU reduces over its DP group (the step model's dense shard)."""
    return 2.0 * params_per_gpu(model(LLAMA).architecture, Parallelism(tp=tp, dp=dp))[0]


@pytest.mark.parametrize("layout", [
    {"tp": 8, "global_batch": 32},                      # TP=8 in a node, DP=4 across 4 nodes
    {"tp": 8, "zero": 3, "global_batch": 32},           # reduce-scatter + 2m weight gathers
    {"tp": 4, "pp": 2, "zero": 1, "global_batch": 32},  # 8 DP groups of 4, one per rail
])
def test_coarse_and_iteration_agree_for_a_layout_job_on_four_nodes(layout):
    coarse = simcluster.run(_scenario([_job(layout)], "coarse"), check=True).jobs.iloc[0]
    fine = simcluster.run(_scenario([_job(layout)], "iteration"), check=True).jobs.iloc[0]
    assert coarse["state"] == fine["state"] == "completed"
    assert fine["run_s"] == pytest.approx(coarse["run_s"], rel=0.02)
    # packed on 4 DGX nodes, as the estimate's non-blocking fabric assumes: the step model's time
    est = train_estimate(LLAMA, gpus=32, **layout)
    assert coarse["run_s"] == pytest.approx(4 * est["iteration_s"], rel=0.02)


def test_one_iteration_moves_the_ring_volume_of_every_dp_group_between_nodes():
    layout = {"tp": 8, "global_batch": 32}
    tp, dp = 8, 4
    result = simcluster.run(_scenario([_job(layout, iterations=1)]), check=True)
    links = result.links
    # rail-optimised fabric: each node's compute NIC j uplinks to rail leaf j
    egress = links[links["link"].str.contains(r"/node\d+/nic\d+->", regex=True)
                   & (links["kind"] == "network")]
    shard = _shard_bytes(tp, dp)
    assert shard == pytest.approx(2.0 * model(LLAMA).params / tp, rel=1e-5)
    # tp groups of dp ranks, one per rail: every rank sends its ring share 2(dp-1)/dp · shard
    # once through its own rail, so each of the tp × dp NIC uplinks carries exactly that
    assert len(egress) == tp * dp
    per_rank = 2 * (dp - 1) / dp * shard
    assert egress["bytes"].to_numpy() == pytest.approx(per_rank, rel=1e-9)
    assert egress["bytes"].sum() == pytest.approx(tp * dp * per_rank, rel=1e-9)


def _shared_uplink(fidelity, jobs):
    # two nodes in two racks whose leaves have one uplink each (oversubscription 8); "spread"
    # puts 4 GPUs of each 8-GPU job on each node, so every DP ring of both jobs crosses the
    # same two leaf uplinks
    scenario = simcluster.scenario_from_dict({
        "run": {"fidelity": fidelity},
        "cluster": {"nodes": 2, "fabric": "fat_tree", "nodes_per_rack": 1,
                    "oversubscription": 8.0},
        "workload": {"jobs": [_job({"tp": 4, "global_batch": 2}, gpus=8, iterations=6)] * jobs,
                     "checkpoint_interval": 0},
        "policy": {"placement": "spread"},
    })
    sim = Simulation(scenario)
    result = sim.run()
    graph = sim.topology.graph
    up = graph.edges["rack0/leaf0", "spine0"]
    return result.jobs, up["bandwidth"] * LINK_EFFICIENCY[up["kind"]]


@pytest.mark.parametrize("fidelity", ["iteration", "coarse"])
def test_two_layout_jobs_sharing_an_uplink_each_get_half(fidelity):
    alone, uplink = _shared_uplink(fidelity, 1)
    both, _ = _shared_uplink(fidelity, 2)
    assert (both["state"] == "completed").all()
    shard = _shard_bytes(4, 2)
    rings = 4  # one per TP rank (DP group), each a 2-rank ring carrying one shard per hop
    own = rings * shard / uplink  # the traffic of one job alone on the uplink, s/iteration
    per_iter = alone["run_s"].iloc[0] / 6
    assert per_iter > own  # compute plus its own rings
    for run_s in both["run_s"]:
        if fidelity == "iteration":
            # the jobs start together and stay in step: same compute, each ring at half rate
            assert run_s / 6 == pytest.approx(per_iter + own, rel=0.01)
        else:
            # the streams ask for more than half the link: bandwidth-bound at bytes / rate
            assert run_s / 6 == pytest.approx(2 * own, rel=0.01)

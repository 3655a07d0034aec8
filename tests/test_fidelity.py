"""The three fidelity levels agree where they overlap, and coarse jobs load the network."""

from __future__ import annotations

import numpy as np
import pytest

import simcluster
from simcluster.perf.models import MODELS, ModelSpec
from simcluster.policies.placement import PLACEMENT_POLICIES, FirstFit

# A communication-heavy model for contention tests: 1e9 parameters (a 2 GB BF16 gradient) and
# almost no FLOP, so its iteration is mostly all-reduce.
COMM_HEAVY = "test-comm-heavy"
if COMM_HEAVY not in MODELS:
    MODELS.add(COMM_HEAVY, ModelSpec(COMM_HEAVY, params=1e9, flop_per_sample=1e6,
                                     samples_per_iteration=8, seq_len=1,
                                     source="synthetic, for tests"))


HALVES = "test-half-per-node"
if HALVES not in PLACEMENT_POLICIES:
    @PLACEMENT_POLICIES.register(HALVES)
    class HalfPerNode:
        """Half of a job's GPUs on host 0, half on host 1 (the lowest idle ones); first fit for
        requests that cannot be halved (other tests run every registered placement)."""

        def place(self, request, view):
            if request.fractional or request.whole % 2:
                return FirstFit().place(request, view)
            half = request.whole // 2
            idle = np.flatnonzero(view.gpu_free == 1.0)
            picks = [idle[view.gpu_host[idle] == h][:half] for h in (0, 1)]
            if any(len(p) < half for p in picks):
                return None
            return tuple(int(g) for p in picks for g in p)


def one_job(fidelity, model="gpt2-1.5b", gpus=16, nodes=2, iterations=30, **cluster):
    scenario = simcluster.scenario_from_dict({
        "run": {"fidelity": fidelity},
        "cluster": {"nodes": nodes, **cluster},
        "workload": {"jobs": [{"model": model, "gpus": gpus, "iterations": iterations}],
                     "checkpoint_interval": 0},
    })
    return simcluster.run(scenario, check=True).jobs.iloc[0]


@pytest.mark.parametrize(("model", "gpus", "nodes"), [
    ("gpt2-1.5b", 16, 2), ("bert-large", 8, 1), ("resnet-50", 32, 4), (COMM_HEAVY, 16, 2)])
# 30 iterations: the iteration-level job also waits for its first batch from storage, once
def test_coarse_and_iteration_agree_on_an_idle_cluster(model, gpus, nodes):
    coarse = one_job("coarse", model, gpus, nodes)
    fine = one_job("iteration", model, gpus, nodes)
    assert coarse["state"] == fine["state"] == "completed"
    assert fine["run_s"] == pytest.approx(coarse["run_s"], rel=0.02)


def test_iteration_fidelity_reads_every_batch_from_storage():
    scenario = simcluster.scenario_from_dict({
        "run": {"fidelity": "iteration"}, "cluster": {"nodes": 2},
        "workload": {"jobs": [{"model": "resnet-50", "gpus": 16, "iterations": 50}],
                     "checkpoint_interval": 0}})
    result = simcluster.run(scenario)
    disk = result.links.set_index("link").loc["storage0/disk", "bytes"]
    model = MODELS.get("resnet-50")
    batch = model.samples_per_iteration * model.bytes_per_sample
    # 50 batches consumed; the loader may have read PREFETCH_BATCHES more ahead, plus part of
    # the one it was reading when the job ended
    from simcluster.engine.execution import PREFETCH_BATCHES
    assert 50 * batch <= disk <= (50 + PREFETCH_BATCHES + 1) * batch


def contention_scenario(fidelities, iterations=(40, 40)):
    # a fat-tree whose leaves have one uplink (oversubscription 8): two nodes in two racks; each
    # job gets half its GPUs on each node (job 0 GPUs 0-3 of both, job 1 GPUs 4-7), so every
    # ring hop of both jobs crosses the same two leaf uplinks
    jobs = [{"model": COMM_HEAVY, "gpus": 8, "iterations": n, "fidelity": f}
            for f, n in zip(fidelities, iterations, strict=False)]
    return simcluster.scenario_from_dict({
        "cluster": {"nodes": 2, "fabric": "fat_tree", "nodes_per_rack": 1,
                    "oversubscription": 8.0, "gpus_per_node": 8},
        "workload": {"jobs": jobs, "checkpoint_interval": 0},
        "policy": {"placement": HALVES},
        # rings: all of the all-reduce crosses the uplinks (a hierarchical one would first
        # reduce inside each node, and only its inter-node stage would slow down)
        "network": {"algorithm": "ring"},
    })


UPLINK = 50e9 * 0.96                              # one leaf uplink, efficiency-scaled
RING_BYTES = 2 * 7 / 8 * 2e9                      # all-reduce of a 2 GB gradient on 8 GPUs
COMPUTE = 32 * 1e9 / 3350e9                       # the HBM-bound step (32 B/param, H100)


def test_rings_sharing_a_link_halve_it():
    alone = simcluster.run(contention_scenario(["iteration"])).jobs.iloc[0]
    # alone, the job's 4 rings share the uplink: compute + S_ring / C (+ 14 α of 5.4 µs)
    assert alone["run_s"] / 40 == pytest.approx(COMPUTE + RING_BYTES / UPLINK, rel=0.01)
    both = simcluster.run(contention_scenario(["iteration", "iteration"])).jobs
    # two identical iteration-level jobs started together stay in step: they compute at the
    # same time and communicate at the same time, each over half the link
    for run_s in both["run_s"]:
        assert run_s / 40 == pytest.approx(COMPUTE + RING_BYTES / (UPLINK / 2), rel=0.01)


def test_coarse_and_iteration_jobs_on_one_link_each_get_half():
    # the iteration-level job (20 iterations) runs inside the coarse one's (60): the coarse
    # job's stream asks for more than half the link, so the fine job's rings get exactly half
    both = simcluster.run(contention_scenario(["coarse", "iteration"], (60, 20)),
                          check=True).jobs.set_index("job_id")
    fine, coarse = both.loc[1], both.loc[0]
    halved = COMPUTE + RING_BYTES / (UPLINK / 2)
    assert fine["run_s"] / 20 == pytest.approx(halved, rel=0.02)
    # the coarse job is bandwidth-bound while squeezed (time = bytes / rate), at its own pace
    # after: (fine job's span / squeezed pace) iterations in the window, the rest alone
    squeezed, own = RING_BYTES / (UPLINK / 2), COMPUTE + RING_BYTES / UPLINK
    in_window = fine["run_s"] / squeezed
    assert coarse["run_s"] == pytest.approx(fine["run_s"] + (60 - in_window) * own, rel=0.05)
    assert coarse["network_wait_s"] > 0 and fine["network_wait_s"] > 0


def test_two_coarse_jobs_on_one_uplink_each_get_half():
    both = simcluster.run(contention_scenario(["coarse", "coarse"])).jobs
    # each stream asks for 4 × 10.6 GB/s of a 48 GB/s link: both get half, and a throttled
    # coarse job's iteration takes bytes / rate
    for run_s in both["run_s"]:
        assert run_s / 40 == pytest.approx(RING_BYTES / (UPLINK / 2), rel=0.02)


def test_iteration_job_leaves_no_flow_behind():
    from simcluster.engine.simulation import Simulation
    scenario = simcluster.scenario_from_dict({
        "run": {"fidelity": "iteration"}, "cluster": {"nodes": 2},
        "workload": {"jobs": [{"model": "resnet-50", "gpus": 16, "iterations": 20}],
                     "checkpoint_interval": 0}})
    sim = Simulation(scenario)
    result = sim.run()
    assert result.jobs["state"].iloc[0] == "completed"
    assert sim.network.active == 0                     # the loader's reads ended with the job
    assert sim.env.now == pytest.approx(result.jobs["end_s"].iloc[0])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_coarse_and_iteration_agree_on_a_multi_spine_fat_tree(seed):
    # several equal-cost spines: both fidelities price and run the job's rings on the same
    # routes, so they agree whatever the job or seed
    def run(fidelity):
        s = simcluster.scenario_from_dict({
            "run": {"fidelity": fidelity, "seed": seed},
            "cluster": {"nodes": 4, "nodes_per_rack": 2, "fabric": "fat_tree"},
            "workload": {"jobs": [{"model": "gpt2-1.5b", "gpus": 32, "iterations": 20}] * 2,
                         "checkpoint_interval": 0}})
        return simcluster.run(s).jobs["run_s"].to_numpy()
    np.testing.assert_allclose(run("iteration"), run("coarse"), rtol=0.02)

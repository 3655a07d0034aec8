"""Perf models against published counts and hand-computed roofline + α-β values."""

import pytest

from simcluster.hardware import gpu, node_spec
from simcluster.perf.collectives import (
    Fabric,
    algorithm_times,
    busbw,
    busbw_allreduce,
    choose_algorithm,
    ring_allreduce_time,
)
from simcluster.perf.iteration import checkpoint_time, iteration_time
from simcluster.perf.models import MODELS, model
from simcluster.routing import Router
from simcluster.topology import gpu_cluster

# Parameter counts as published with the models' reference implementations (Hugging Face
# transformers configs; torchvision for ResNet-50; the Keras example's model.summary()).
PUBLISHED = {
    "llama-2-7b": 6_738_415_616,
    "llama-2-70b": 68_976_648_192,
    "gpt2-1.5b": 1_557_611_200,
    "bert-large": 335_141_888,
    "resnet-50": 25_557_032,
    "mlp": 669_706,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_counts_match_published(name):
    assert model(name).params == PUBLISHED[name]


def test_catalog_has_the_issue_models():
    assert set(PUBLISHED) <= set(MODELS.names())


def test_alpha_beta_ring_allreduce():
    # Thakur et al. 2005: 2(p-1)α + 2(p-1)/p · n/B
    assert ring_allreduce_time(4, 1e9, 1e10, 1e-6) == pytest.approx(6e-6 + 1.5 * 0.1)
    assert ring_allreduce_time(1, 1e9, 1e10, 1e-6) == 0.0
    assert busbw_allreduce(4, 1e9, 0.15) == pytest.approx(1e10)


H100 = gpu("H100-SXM")
LLAMA = model("llama-2-7b")
S = 2 * LLAMA.params                            # BF16 gradient bytes
FLOP = 6 * LLAMA.params * 1024 * 4096           # 6·N·tokens, 4M-token batch
# per direction, efficiency-scaled: NVLink4 450 GB/s × 370/450 (NCCL's achieved NVLink rate,
# NVIDIA/nccl-tests#212) and NDR 50 GB/s × 0.96 (NVIDIA/nccl-tests#119)
NVLINK, NIC = 370e9, 48e9
# A gradient all-reduce is large, so NCCL's protocol model picks Simple: full bandwidth, and
# NCCL's Simple latency (tuning.cc baseLat/hwLat) instead of the ring/LL step α (the router's
# 0.6 µs NVLink and 2.7 µs network hop): a base of
# 8.4 µs, then 3.4 µs per NVLink step and 14 µs per network step (2N of the 2(p-1) steps).
SIMPLE_BASE, SIMPLE_NVLINK, SIMPLE_NET = 8.4e-6, 3.4e-6, 14e-6
# a multi-node Simple ring all-reduce has its latency x 1.4 (tuning.cc, "Plateau effect of ring")
PLATEAU = 1.4


@pytest.fixture(scope="module")
def cluster():
    topo = gpu_cluster(node_spec("H100-SXM"), nodes=2)
    return topo, Router(topo)


def test_coarse_iteration_one_full_node(cluster):
    topo, router = cluster
    it = iteration_time(LLAMA, range(8), topo, router)
    compute = FLOP / 8 / (989.4e12 * 0.5)       # compute-bound: 32 B/param of HBM is 64 ms
    assert it.compute_s == pytest.approx(compute, rel=1e-12)
    allreduce = 2 * 7 / 8 * S / NVLINK + SIMPLE_BASE + 2 * 7 * SIMPLE_NVLINK
    assert it.allreduce_s == pytest.approx(allreduce, rel=1e-9)


def test_coarse_iteration_two_full_nodes(cluster):
    topo, router = cluster
    it = iteration_time(LLAMA, range(16), topo, router)
    assert it.compute_s == pytest.approx(FLOP / 16 / (989.4e12 * 0.5), rel=1e-12)
    # 8 channels, one per rail: min(NVLink, 8 × NIC) = min(370, 384) GB/s
    allreduce = (2 * 15 / 16 * S / min(NVLINK, 8 * NIC)
                 + PLATEAU * (SIMPLE_BASE + (30 - 4) * SIMPLE_NVLINK + 4 * SIMPLE_NET))
    assert it.algorithm == "ring"
    assert it.allreduce_s == pytest.approx(allreduce, rel=1e-9)


def test_coarse_iteration_one_gpu_per_node_is_nic_bound(cluster):
    topo, router = cluster
    it = iteration_time(LLAMA, [0, 8], topo, router)   # GPU 0 of each node: one rail
    assert it.allreduce_s == pytest.approx(
        2 * 1 / 2 * S / NIC + PLATEAU * (SIMPLE_BASE + 2 * SIMPLE_NET), rel=1e-9)
    spread = iteration_time(LLAMA, [0, 8], topo, router).total_s
    packed = iteration_time(LLAMA, [0, 1], topo, router).total_s
    assert spread > packed


def test_memory_bound_small_model():
    # the MLP's step is HBM-bound on an H100: 32 B/param over 3.35 TB/s beats its FLOP time
    from simcluster.perf.compute import TRAINING_HBM_BYTES_PER_PARAM, training_step_time
    mlp = model("mlp")
    t = training_step_time(mlp.flop_per_iteration, mlp.params, 1, H100, mlp.efficiency)
    assert t == pytest.approx(TRAINING_HBM_BYTES_PER_PARAM * mlp.params / 3350e9)


def test_checkpoint_time_is_storage_bound(cluster):
    topo, _ = cluster
    # 14 B/param; the AI400X2 writes 65 GB/s, below the host's storage NICs
    assert checkpoint_time(LLAMA, [0], topo) == pytest.approx(14 * LLAMA.params / 65e9)


FABRIC = Fabric(ranks=64, nodes=8, gpus_per_node=8, channels=8, nvlink_bw=370e9, nic_bw=48e9,
                alpha_intra=0.6e-6, alpha_inter=3.6e-6, nvls_bw=275e9)


def test_alpha_beta_forms_of_every_algorithm():
    n, f = 1e9, FABRIC
    t = algorithm_times("all_reduce", n, f)
    ring_bw = min(370e9, 8 * 48e9)
    assert t["ring"] == pytest.approx(2 * 63 * 3.6e-6 + 2 * 63 / 64 * n / ring_bw)
    assert t["tree"] == pytest.approx(2 * 6 * 3.6e-6 + 2 * n / ring_bw)   # ⌈log2 64⌉ = 6
    intra = 7 * 0.6e-6 + 7 / 8 * n / 370e9
    inter = 2 * 7 * 3.6e-6 + 2 * 7 / 8 * (n / 8) / 48e9          # S/8 per rail, 8 rails
    assert t["hierarchical"] == pytest.approx(2 * intra + inter)
    rs = algorithm_times("reduce_scatter", n, f)["ring"]
    assert rs == pytest.approx(63 * 3.6e-6 + 63 / 64 * n / ring_bw)
    assert algorithm_times("broadcast", n, f)["ring"] == pytest.approx(63 * 3.6e-6 + n / ring_bw)
    one_node = Fabric(8, 1, 8, 1, 370e9, float("inf"), 0.6e-6, 0.0, 275e9)
    a2a = algorithm_times("all_to_all", n, one_node)["direct"]
    assert a2a == pytest.approx(7 * 0.6e-6 + 7 / 8 * n / 370e9)
    nvls = algorithm_times("all_reduce", n, one_node, nvls=True)["nvls"]
    assert nvls == pytest.approx(2 * 0.6e-6 + n / 275e9)


def test_algorithm_choice_follows_size():
    # tree's log-depth latency wins for small messages; on 2 nodes a ring's 2(p-1)/p·S/B beats
    # the tree's 2S/B once S is large (on 64 ranks the ring's 126 α steps keep the tree ahead
    # up to a few hundred MB; with NCCL's protocol model the tree also loses 8% of bandwidth,
    # so by 1 GB the ring wins there too)
    two_nodes = Fabric(16, 2, 8, 8, 370e9, 48e9, 0.6e-6, 3.6e-6)
    # 1 kB: the tree's log-depth latency with LL wins (27 µs); the hierarchical form runs only
    # Simple (as NCCL's CollNet does: no LL/LL128), whose per-step latency loses at this size
    assert choose_algorithm("all_reduce", 1e3, two_nodes) == "tree"
    assert choose_algorithm("all_reduce", 1e3, FABRIC) == "tree"
    assert choose_algorithm("all_reduce", 1e9, two_nodes) == "ring"
    assert choose_algorithm("all_reduce", 1e8, FABRIC) == "tree"
    assert choose_algorithm("all_reduce", 16e9, FABRIC) == "ring"


def test_busbw_definitions_match_nccl_tests():
    assert busbw("all_reduce", 8, 8e9, 1.0) == pytest.approx(8e9 * 14 / 8)
    assert busbw("all_gather", 8, 8e9, 1.0) == pytest.approx(8e9 * 7 / 8)
    assert busbw("broadcast", 8, 8e9, 1.0) == pytest.approx(8e9)

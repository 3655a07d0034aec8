"""Perf models against published counts and hand-computed roofline + α-β values."""

import pytest

from simcluster.hardware import gpu, node_spec
from simcluster.perf.collectives import busbw_allreduce, ring_allreduce_time
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
NVLINK, NIC = 450e9, 50e9                       # per direction, H100 NVLink4 and NDR
ALPHA_NVLINK = 2 * 0.3e-6                       # GPU->NVSwitch->GPU
ALPHA_NET = 4 * 0.9e-6                          # GPU->NIC->leaf->NIC->GPU


@pytest.fixture(scope="module")
def cluster():
    topo = gpu_cluster(node_spec("H100-SXM"), nodes=2)
    return topo, Router(topo)


def test_coarse_iteration_one_full_node(cluster):
    topo, router = cluster
    it = iteration_time(LLAMA, range(8), topo, router)
    compute = FLOP / 8 / (989.4e12 * 0.5)       # compute-bound: 32 B/param of HBM is 64 ms
    assert it.compute_s == pytest.approx(compute, rel=1e-12)
    allreduce = 2 * 7 / 8 * S / NVLINK + 2 * 7 * ALPHA_NVLINK
    assert it.allreduce_s == pytest.approx(allreduce, rel=1e-9)


def test_coarse_iteration_two_full_nodes(cluster):
    topo, router = cluster
    it = iteration_time(LLAMA, range(16), topo, router)
    assert it.compute_s == pytest.approx(FLOP / 16 / (989.4e12 * 0.5), rel=1e-12)
    # 8 channels, one per rail: min(NVLink, 8 × NIC) = 400 GB/s
    allreduce = 2 * 15 / 16 * S / min(NVLINK, 8 * NIC) + 2 * 15 * ALPHA_NET
    assert it.allreduce_s == pytest.approx(allreduce, rel=1e-9)


def test_coarse_iteration_one_gpu_per_node_is_nic_bound(cluster):
    topo, router = cluster
    it = iteration_time(LLAMA, [0, 8], topo, router)   # GPU 0 of each node: one rail
    assert it.allreduce_s == pytest.approx(2 * 1 / 2 * S / NIC + 2 * ALPHA_NET, rel=1e-9)
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

"""NCCL's protocol model: the per-size choice of LL / LL128 / Simple shapes the busbw curve.

Constants are NCCL's (NVIDIA/nccl src/graph/tuning.cc, see perf/collectives.py); the expected
values below are written out from them so that a change of model or constant shows.
"""

from __future__ import annotations

import pytest
import simpy

from simcluster.engine.collectives import run_collective
from simcluster.engine.network import Network
from simcluster.experiment.collective import collective_sweep
from simcluster.hardware import node_spec
from simcluster.perf.collectives import (
    Fabric,
    algorithm_times,
    busbw,
    collective_cost,
    collective_time,
)
from simcluster.perf.iteration import fabric_of
from simcluster.routing import Router
from simcluster.topology import gpu_cluster

NVLINK = 370e9
ONE_NODE = Fabric(8, 1, 8, 1, NVLINK, float("inf"), 0.6e-6, 0.0)
TWO_NODES = Fabric(16, 2, 8, 8, NVLINK, 48e9, 0.6e-6, 2.7e-6)
MiB = 1 << 20


def test_protocol_follows_size_on_one_node():
    # LL: 6.6 + 14 × 0.6 µs, busbw min(370/4, 87.7) GB/s; LL128: 14 + 14 × 1.9 µs, 0.92 × 370;
    # Simple: 8.4 + 14 × 3.4 µs at 370 GB/s
    for size, proto in ((64 * 1024, "LL"), (4 * MiB, "LL128"), (1 << 30, "Simple")):
        assert collective_cost("all_reduce", size, ONE_NODE).protocol == proto
    s = 4 * MiB
    expected = (14.0 + 14 * 1.9) * 1e-6 + 2 * 7 / 8 * s / (0.92 * NVLINK)
    assert collective_time("all_reduce", s, ONE_NODE)[0] == pytest.approx(expected, rel=1e-12)
    s = 64 * 1024
    ll = collective_cost("all_reduce", s, ONE_NODE, proto="LL")
    assert ll.time == pytest.approx((6.6 + 14 * 0.6) * 1e-6 + 2 * 7 / 8 * s / 87.7e9, rel=1e-12)


def test_large_sizes_stay_within_two_percent_of_the_alpha_beta_form():
    for f in (ONE_NODE, TWO_NODES):
        size = 8 * (1 << 30)
        bare = min(algorithm_times("all_reduce", size, f).values())
        with_protocols = collective_time("all_reduce", size, f)[0]
        assert 1.0 <= with_protocols / bare < 1.02


def test_mid_size_busbw_ramps_instead_of_sitting_at_the_asymptote():
    bare = busbw("all_reduce", 8, 64 * MiB, algorithm_times("all_reduce", 64 * MiB,
                                                            ONE_NODE)["ring"])
    now = busbw("all_reduce", 8, 64 * MiB, collective_time("all_reduce", 64 * MiB, ONE_NODE)[0])
    assert bare > 0.97 * NVLINK       # the bare form is already at the peak at 64 MiB
    assert now < 0.9 * NVLINK         # NCCL's latencies keep it below


def test_multi_node_ring_latency_counts_network_steps_as_nccl_does():
    # 2 nodes, 16 ranks, Simple: 8.4 µs + (30 − 2N) NVLink steps of 3.4 µs + 2N = 4 network
    # steps of 2.7 + (14 − 2.7) µs, all x 1.4 ("Plateau effect of ring", multi-node Simple
    # all-reduce of >= 64 B per channel and rank)
    cost = collective_cost("all_reduce", 1 << 30, TWO_NODES, "ring", proto="Simple")
    assert cost.latency == pytest.approx(1.4 * (8.4 + 26 * 3.4 + 4 * 14.0) * 1e-6, rel=1e-12)
    # not for the other collectives
    gather = collective_cost("all_gather", 1 << 30, TWO_NODES, "ring", proto="Simple")
    assert gather.latency == pytest.approx((8.4 + 14 * 3.4 + 1 * 14.0) * 1e-6, rel=1e-12)
    # LL on more than one node: each intra step at least NCCL's 1 µs network post overhead
    ll = collective_cost("all_reduce", 1024, TWO_NODES, "ring", proto="LL")
    assert ll.latency == pytest.approx((6.6 + 26 * 1.0 + 4 * 2.7) * 1e-6, rel=1e-12)


def test_flows_follow_the_analytic_protocol_model_across_nodes():
    topo = gpu_cluster(node_spec("H100-SXM"), nodes=2)
    router = Router(topo)
    fabric = fabric_of(list(range(16)), topo, router)
    for size in (64 * 1024, 8 * MiB, 32 * MiB, 1 << 30):
        env = simpy.Environment()
        net = Network(env, topo, router)
        proc = env.process(run_collective(net, range(16), "all_reduce", size, algo="ring"))
        env.run()
        cost = collective_cost("all_reduce", size, fabric, "ring")
        assert proc.value.protocol == cost.protocol
        assert proc.value.time_s == pytest.approx(cost.time, rel=0.01)


def test_sweep_reports_the_protocol_and_busbw_never_falls_with_size():
    table = collective_sweep(gpu_cluster(node_spec("H100-SXM"), 1), "all_reduce",
                             [2**k for k in range(12, 34, 3)])
    assert set(table["protocol"]) == {"LL", "LL128", "Simple"}
    assert table["busbw_GBps"].is_monotonic_increasing


def test_unknown_protocol_is_refused():
    with pytest.raises(ValueError, match="protocol"):
        collective_cost("all_reduce", 1e6, ONE_NODE, proto="LL64")

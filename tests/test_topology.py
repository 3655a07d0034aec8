"""Tests of topology builders, routing and summary figures (hand-derived expectations)."""

from __future__ import annotations

import dataclasses

import networkx as nx
import numpy as np
import pytest

from simcluster.errors import UserError
from simcluster.hardware import nic, node_spec, storage
from simcluster.routing import Router
from simcluster.topology import (
    FABRICS,
    Topology,
    bisection_bandwidth,
    describe,
    fat_tree,
    gpu_cluster,
    per_node_bandwidth,
    single_node,
)

H100 = node_spec("H100-SXM")
NDR = 50e9  # InfiniBand NDR 400 Gb/s = 50 GB/s per direction
NVLINK_H100 = 450e9  # NVLink4, per direction
STORAGE_NIC = nic(storage("AI400X2").nic).bandwidth


@pytest.fixture(scope="module")
def four() -> Topology:
    return gpu_cluster(H100, nodes=4)


def test_fabric_registry() -> None:
    assert FABRICS.names() == ["fat_tree", "rail_optimized"]
    with pytest.raises(UserError, match="did you mean 'fat_tree'"):
        gpu_cluster(H100, nodes=2, fabric="fat-tree")


def test_counts_four_node_rail_optimized(four: Topology) -> None:
    # 4 DGX H100: 8 GPUs, 8 compute NICs, 2 storage NICs, 1 NVSwitch, 1 host each; one rack with
    # 8 rail leaves of 4 downlinks each, so 4 spines (one uplink per downlink at
    # oversubscription 1); one AI400X2 with 8 NICs.
    assert four.counts() == {"gpu": 32, "host": 4, "nic": 4 * 8 + 4 * 2 + 8, "nvswitch": 4,
                             "leaf": 8, "spine": 4, "core": 0, "storage": 1}
    compute = [n for n, d in four.graph.nodes(data=True) if d.get("role") == "compute"]
    assert len(compute) == 32
    assert four.num_racks == 1 and four.storage == ("storage0",)
    assert four.gpus[:2] == ("rack0/node0/gpu0", "rack0/node0/gpu1")
    assert four.gpus[8] == "rack0/node1/gpu0"
    assert four.hosts[3] == "rack0/node3"
    assert four.gpus_of_host(2) == range(16, 24)
    assert four.gpu_type(31) == "H100-SXM"
    assert list(four.gpu_host[:9]) == [0] * 8 + [1]
    assert four.graph.nodes["storage0"]["read_bandwidth"] == 90e9
    assert four.graph.nodes["rack0/leaf2"]["rail"] == 2


def test_arrays_and_graph_are_read_only(four: Topology) -> None:
    with pytest.raises(ValueError):
        four.gpu_host[0] = 3
    with pytest.raises(ValueError):
        four.host_rack[0] = 3
    with pytest.raises(nx.NetworkXError):
        four.graph.add_edge("a", "b")


@pytest.mark.parametrize("build", [
    lambda: gpu_cluster(H100, nodes=5, nodes_per_rack=2, oversubscription=2.0),
    lambda: gpu_cluster(H100, nodes=3, fabric="fat_tree", storage_servers=2),
    lambda: fat_tree(4, storage_servers=1),
    lambda: single_node(H100, storage_servers=2),
])
def test_every_link_is_two_directed_edges(build) -> None:
    g = build().graph
    kinds = {"nvlink", "pcie", "network", "storage"}
    for u, v, d in g.edges(data=True):
        assert g.has_edge(v, u)
        assert g.edges[v, u] == d
        assert d["kind"] in kinds and d["bandwidth"] > 0 and d["latency"] > 0
    for _, d in g.nodes(data=True):
        assert d["kind"] in {"gpu", "host", "nic", "nvswitch", "leaf", "spine", "core", "storage"}


def test_intra_node_route_is_nvlink_only(four: Topology) -> None:
    r = Router(four)
    src, dst = "rack0/node1/gpu0", "rack0/node1/gpu7"
    assert r.route(src, dst) == ((src, "rack0/node1/nvswitch"), ("rack0/node1/nvswitch", dst))
    assert r.kinds(src, dst) == ["nvlink", "nvlink"]
    assert r.bottleneck(src, dst) == NVLINK_H100
    assert r.latency(src, dst) == pytest.approx(2 * H100.nvlink_latency_s)
    assert r.route(src, src) == () and r.bottleneck(src, src) == float("inf")


def test_inter_node_same_rail(four: Topology) -> None:
    r = Router(four)
    src, dst = "rack0/node0/gpu3", "rack0/node2/gpu3"
    nodes = [src, "rack0/node0/nic3", "rack0/leaf3", "rack0/node2/nic3", dst]
    assert r.route(src, dst) == tuple(zip(nodes[:-1], nodes[1:], strict=True))
    assert r.bottleneck(src, dst) == NDR
    assert r.latency(src, dst) == pytest.approx(3 * nic("NDR").latency_s)  # 2 × ½ PCIe + 2 net


def test_inter_node_different_rail_goes_via_spine(four: Topology) -> None:
    r = Router(four)
    src, dst = "rack0/node0/gpu1", "rack0/node3/gpu6"
    route = r.route(src, dst)
    hops = [v for _, v in route]
    assert hops[:2] == ["rack0/node0/nic1", "rack0/leaf1"]
    assert four.graph.nodes[hops[2]]["kind"] == "spine"
    assert hops[3:] == ["rack0/leaf6", "rack0/node3/nic6", dst]
    assert r.bottleneck(src, dst) == NDR
    # deterministic across routers; the cache returns the identical tuple
    assert Router(four).route(src, dst) == route
    assert r.route(src, dst) is route


def test_routes_are_shortest_and_avoid_transit_through_gpus(four: Topology) -> None:
    r = Router(four)
    g = four.graph
    pairs = [("rack0/node0/gpu0", "rack0/node1/gpu5"), ("rack0/node2", "storage0"),
             ("storage0", "rack0/node1"), ("rack0/node0/gpu2", "storage0")]
    for src, dst in pairs:
        route = r.route(src, dst)
        assert route[0][0] == src and route[-1][1] == dst
        assert len(route) == nx.shortest_path_length(g, src, dst)
        for _, v in route[:-1]:
            assert g.nodes[v]["kind"] not in {"gpu", "host", "storage"}
    # host -> storage: storage NIC -> spine -> storage server NIC, at the slower NIC's rate
    assert r.kinds("rack0/node2", "storage0") == ["pcie", "network", "network", "storage"]
    assert r.bottleneck("rack0/node2", "storage0") == min(NDR, STORAGE_NIC)


@pytest.mark.parametrize("build", [
    lambda: gpu_cluster(H100, nodes=5, nodes_per_rack=2, oversubscription=2.0, storage_servers=2),
    lambda: gpu_cluster(H100, nodes=3, fabric="fat_tree"),
    lambda: fat_tree(4, storage_servers=1),
    lambda: single_node(H100, storage_servers=1),
])
def test_closed_forms_agree_with_shortest_paths(build) -> None:
    topo = build()
    g = topo.graph
    ends = [*topo.gpus[::3], *topo.hosts, *topo.storage]
    r = Router(topo)
    for i, src in enumerate(ends):
        for dst in ends[i % 5::7]:
            view = nx.subgraph_view(g, filter_node=lambda n, s=src, d=dst: n in (s, d) or (
                g.nodes[n]["kind"] not in {"gpu", "host", "storage"}))
            route = r.route(src, dst)
            assert len(route) == nx.shortest_path_length(view, src, dst)
            assert all(g.has_edge(*e) for e in route)
            assert all(e[1] == f[0] for e, f in zip(route, route[1:], strict=False))


def test_unknown_node_and_no_route() -> None:
    topo = single_node(H100)
    r = Router(topo)
    with pytest.raises(UserError, match="did you mean"):
        r.route("rack0/node0/gpu9x", "rack0/node0/gpu0")
    with pytest.raises(UserError, match="no route"):
        r.route("rack0/node0/nic0", "rack0/node0/nic1")


def test_bisection_two_racks() -> None:
    # 64 nodes, 32 per rack: hosts 0-31 (rack 0) vs 32-63 (rack 1). Rack 0 injects
    # 32 nodes x 8 NICs x 50 GB/s = 12.8 TB/s; its 8 leaves' uplinks carry exactly that when
    # non-blocking, half of it with oversubscription 2.
    full = gpu_cluster(H100, nodes=64, nodes_per_rack=32)
    assert full.num_racks == 2 and full.counts()["leaf"] == 16
    assert bisection_bandwidth(full) == pytest.approx(32 * 8 * NDR)
    half = gpu_cluster(H100, nodes=64, nodes_per_rack=32, oversubscription=2.0)
    assert bisection_bandwidth(half) == pytest.approx(32 * 8 * NDR / 2)
    # 32 downlinks per leaf: 32 spines (16 at oversubscription 2), each uplink at the NIC rate
    assert full.counts()["spine"] == 32 and half.counts()["spine"] == 16
    assert half.graph.edges["rack0/leaf3", "spine15"]["bandwidth"] == NDR
    # each leaf's uplink total = downlink total / oversubscription
    g = half.graph
    up = sum(g.edges["rack1/leaf0", s]["bandwidth"] for s in g.successors("rack1/leaf0")
             if g.nodes[s]["kind"] == "spine")
    assert up == pytest.approx(32 * NDR / 2)


def test_fat_tree_cluster_fabric() -> None:
    topo = gpu_cluster(H100, nodes=3, nodes_per_rack=2, fabric="fat_tree")
    # one leaf per rack, taking every NIC of its nodes
    assert topo.counts()["leaf"] == 2 and topo.num_racks == 2
    assert list(topo.host_rack) == [0, 0, 1]
    assert set(topo.graph.successors("rack0/node1/nic5")) >= {"rack0/leaf0"}
    r = Router(topo)
    assert [v for _, v in r.route("rack0/node0/gpu1", "rack0/node1/gpu6")][0:3] == [
        "rack0/node0/nic1", "rack0/leaf0", "rack0/node1/nic6"]
    assert len(r.route("rack0/node0/gpu1", "rack1/node0/gpu1")) == 6
    # racks 0 (2 nodes) vs 1: first half is host 0 alone, 8 x 50 GB/s
    assert bisection_bandwidth(topo) == pytest.approx(8 * NDR)


def test_kary_fat_tree_4() -> None:
    topo = fat_tree(4)
    c = topo.counts()
    assert len(topo.hosts) == 16 and c["host"] == 16 and c["nic"] == 16
    assert (c["leaf"], c["spine"], c["core"]) == (8, 8, 4)
    assert c["leaf"] + c["spine"] + c["core"] == 20
    assert topo.num_racks == 8 and len(topo.gpus) == 16 * 8
    # Hosts 0-7 are pods 0-1, hosts 8-15 pods 2-3. The only links between the halves are the
    # pods' core uplinks: 2 pods x 2 aggregation switches x 2 cores = 8 links of 50 GB/s, and
    # the 8 source hosts' NICs give 8 x 50 GB/s too: full bisection, 8 x link bandwidth.
    assert bisection_bandwidth(topo) == pytest.approx(8 * NDR)
    assert per_node_bandwidth(topo) == NDR
    r = Router(topo)
    # inter-pod: gpu -> nic -> edge -> agg -> core -> agg -> edge -> nic -> gpu
    route = r.route("rack0/node0/gpu0", "rack7/node1/gpu0")
    assert [topo.graph.nodes[v]["kind"] for _, v in route] == [
        "nic", "leaf", "spine", "core", "spine", "leaf", "nic", "gpu"]
    assert r.bottleneck("rack0/node0/gpu0", "rack7/node1/gpu0") == NDR
    # hosts reach storage through their one NIC; storage hangs off the core switches
    with_storage = fat_tree(4, storage_servers=1)
    assert Router(with_storage).kinds("rack0/node0", "storage0")[:2] == ["pcie", "network"]


def test_single_node() -> None:
    topo = single_node(H100, storage_servers=1)
    assert topo.counts()["leaf"] == 0 and topo.counts()["spine"] == 0
    assert bisection_bandwidth(topo) == 0.0
    assert per_node_bandwidth(topo) == 8 * NDR
    r = Router(topo)
    assert r.kinds("rack0/node0", "storage0") == ["pcie", "network", "storage"]
    with pytest.raises(UserError):
        single_node(dataclasses.replace(H100, storage_nics=0), storage_servers=1)


def test_a100_uses_pcie_gen4_and_shared_nics() -> None:
    a100 = node_spec("A100-80GB")
    topo = gpu_cluster(a100, nodes=2, storage_servers=0)
    g = topo.graph
    assert g.edges["rack0/node0/gpu0", "rack0/node0/nic0"]["bandwidth"] == 32e9
    assert g.edges["rack0/node0/gpu0", "rack0/node0/nvswitch"]["bandwidth"] == 300e9
    assert Router(topo).bottleneck("rack0/node0/gpu0", "rack0/node1/gpu0") == 25e9  # HDR
    four_nics = gpu_cluster(dataclasses.replace(H100, nics=4), nodes=2)
    assert four_nics.counts()["leaf"] == 4
    assert four_nics.graph.nodes["rack0/node0/gpu5"]["nic"] == "rack0/node0/nic1"
    assert per_node_bandwidth(four_nics) == 4 * NDR


def test_nic_override_and_describe() -> None:
    topo = gpu_cluster(H100, nodes=2, nic=nic("XDR"))
    assert Router(topo).bottleneck("rack0/node0/gpu0", "rack0/node1/gpu0") == 64e9  # PCIe Gen5
    info = describe(gpu_cluster(H100, nodes=4))
    assert info["gpus"] == 32 and info["hosts"] == 4 and info["racks"] == 1
    assert info["nodes_by_kind"]["gpu"] == 32
    assert info["bisection_bandwidth_Bps"] == pytest.approx(2 * 8 * NDR)
    assert info["per_node_bandwidth_Bps"] == 8 * NDR


def test_invalid_arguments() -> None:
    with pytest.raises(UserError):
        gpu_cluster(H100, nodes=0)
    with pytest.raises(UserError):
        gpu_cluster(H100, nodes=2, oversubscription=0.0)
    with pytest.raises(UserError):
        fat_tree(3)
    with pytest.raises(UserError, match="no NICs"):
        gpu_cluster(H100, nodes=2, storage=storage("NVMe-PM1733"))
    with pytest.raises(ValueError):
        Topology(nx.DiGraph(), ("a", "b"), np.array([1, 0]), ("h0", "h1"), np.array([0, 0]),
                 (H100, H100))

"""Cluster topologies as directed graphs: builders, fabrics and summary figures.

A :class:`Topology` is a frozen ``networkx.DiGraph`` plus index tables. Nodes carry ``kind`` (one
of :data:`NODE_KINDS`); every physical link is two directed edges (full duplex) with
``bandwidth`` (bytes/s per direction), ``latency`` (s) and ``kind`` (one of :data:`LINK_KINDS`).
Names are hierarchical: ``rack0/node3/gpu1``, ``rack0/node3/nic1`` (compute NIC, rail 1),
``rack0/node3/snic0`` (storage NIC), ``rack0/node3/nvswitch``, ``rack0/node3`` (the host: CPUs and
memory), ``rack0/leaf2`` (rail-2 leaf of rack 0), ``spine5``, ``core1``, ``storage0``,
``storage0/nic3``. Routes: :class:`~simcluster.routing.Router` (re-exported here).

Inside a server: every GPU ↔ the NVSwitch (kind ``nvlink``); GPU i ↔ compute NIC ``i mod nics``,
host ↔ each GPU and host ↔ each storage NIC over PCIe (kind ``pcie``). Storage servers hang off
the spine layer through their own NICs; host storage NICs connect to the spines too, so storage
traffic shares the spine layer with compute traffic (DESIGN.md §1).

Node attributes besides ``kind``: gpu ``gpu_type, index, host, local, nic, nvswitch``; host
``index, rack``; nic ``role`` ("compute"/"storage"), ``host`` or ``storage`` (owner index),
``rail, bandwidth``; nvswitch ``host``; leaf ``rack`` (+ ``rail`` when rail-optimised, ``pod``
in :func:`fat_tree`); spine ``index`` (+ ``pod``); core ``index``; storage ``index,
read_bandwidth, write_bandwidth, capacity_bytes`` (bytes/s, bytes).

>>> topo = gpu_cluster(node_spec("H100-SXM"), nodes=4)
>>> len(topo.gpus), len(topo.hosts), topo.num_racks, topo.counts()["leaf"]
(32, 4, 1, 8)
>>> bisection_bandwidth(topo) / 1e9  # 2 nodes x 8 NICs x 50 GB/s
800.0
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from types import MappingProxyType

import networkx as nx
import numpy as np

from simcluster.errors import UserError
from simcluster.hardware import GPUS, NICS, NICSpec, NodeSpec, StorageSpec, nic, node_spec, storage
from simcluster.registry import Registry
from simcluster.routing import Route, Router
from simcluster.scenario import PoolConfig

__all__ = ["FABRICS", "LINK_KINDS", "NODE_KINDS", "PCIE_BANDWIDTH", "Route", "Router", "Topology",
           "bisection_bandwidth", "describe", "fat_tree", "gpu_cluster", "pcie_bandwidth",
           "per_node_bandwidth", "pool_spec", "single_node"]

NODE_KINDS = ("gpu", "host", "nic", "nvswitch", "leaf", "spine", "core", "storage")
LINK_KINDS = ("nvlink", "pcie", "network", "storage")

# PCIe x16 per direction between GPU, NIC and CPU: Gen4 ≈ 32 GB/s (DGX A100), Gen5 ≈ 64 GB/s
# (DGX H100/H200/B200); shared/reference/README.md "Interconnects". GPUs not listed use Gen5.
# A NodeSpec can override with ``extra={"pcie_bandwidth": ...}``.
_GEN4, _GEN5 = 32e9, 64e9
PCIE_BANDWIDTH = MappingProxyType({"A100-40GB": _GEN4, "A100-80GB": _GEN4, "H100-SXM": _GEN5,
                                   "H200": _GEN5, "B200": _GEN5})

#: Fabric builders by name: ``FABRICS.get(name)(spec, nodes, **options) -> Topology`` with the
#: keyword options of :func:`gpu_cluster` (all but ``fabric``).
FABRICS: Registry[Callable[..., Topology]] = Registry("fabric")


@dataclass(frozen=True, eq=False)
class Topology:
    """A built cluster: the graph and index tables (compared by identity, hashable).

    Attributes:
        graph: frozen DiGraph (see module docstring for node and edge attributes).
        gpus: GPU node names in index order, host-major.
        gpu_host: host index of each GPU (read-only int array).
        hosts: host node names in index order.
        host_rack: rack index of each host (read-only int array).
        host_specs: the NodeSpec of each host.
        storage: storage server node names.
        fabric: the builder that made it ("single_node", "rail_optimized", "fat_tree",
            "kary_fat_tree").
        host_labels: the label of each host's pool (``[[cluster.pools]] label``: a node list's
            GPU model, e.g. openb's ``T4``), None where unlabelled; () when no host has one.
    """

    graph: nx.DiGraph
    gpus: tuple[str, ...]
    gpu_host: np.ndarray
    hosts: tuple[str, ...]
    host_rack: np.ndarray
    host_specs: tuple[NodeSpec, ...]
    storage: tuple[str, ...] = ()
    fabric: str = "custom"
    host_labels: tuple[str | None, ...] = ()
    _starts: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("gpu_host", "host_rack"):
            array = np.array(getattr(self, name), dtype=np.int64)
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        if len(self.gpu_host) != len(self.gpus) or len(self.host_rack) != len(self.hosts):
            raise ValueError("gpu_host/host_rack must have one entry per GPU/host")
        if len(self.host_specs) != len(self.hosts):
            raise ValueError("host_specs must have one entry per host")
        if self.host_labels and len(self.host_labels) != len(self.hosts):
            raise ValueError("host_labels must be empty or have one entry per host")
        if np.any(np.diff(self.gpu_host) < 0):
            raise ValueError("GPUs must be listed host-major (gpu_host non-decreasing)")
        starts = np.searchsorted(self.gpu_host, np.arange(len(self.hosts) + 1))
        starts.setflags(write=False)
        object.__setattr__(self, "_starts", starts)

    def gpus_of_host(self, h: int) -> range:
        """Contiguous GPU indices of host ``h``."""
        return range(int(self._starts[h]), int(self._starts[h + 1]))

    def gpu_type(self, g: int) -> str:
        """GPU catalog name of GPU index ``g``."""
        return self.host_specs[int(self.gpu_host[g])].gpu

    def gpu_label(self, g: int) -> str | None:
        """Label of GPU index ``g``'s pool (None when its pool has none)."""
        return self.host_labels[int(self.gpu_host[g])] if self.host_labels else None

    @property
    def gpu_labels(self) -> tuple[str | None, ...]:
        """:meth:`gpu_label` of every GPU, in index order."""
        return tuple(self.gpu_label(g) for g in range(len(self.gpus)))

    @property
    def num_racks(self) -> int:
        """Number of racks (scalable units; edge switches for :func:`fat_tree`)."""
        return int(self.host_rack.max()) + 1 if len(self.host_rack) else 0

    def counts(self) -> dict[str, int]:
        """Graph node counts by kind, every kind of :data:`NODE_KINDS` present (maybe 0)."""
        tally = Counter(kind for _, kind in self.graph.nodes(data="kind"))
        return {kind: tally.get(kind, 0) for kind in NODE_KINDS}


def pool_spec(pool: PoolConfig) -> NodeSpec:
    """The server of one ``[[cluster.pools]]`` entry: its GPU generation's node spec with the
    pool's GPUs per node (NICs capped to match), CPU cores and host memory where given.

    >>> spec = pool_spec(PoolConfig(gpu="A100-40GB", nodes=1, gpus_per_node=2, cpus=64,
    ...                             memory_gib=256))
    >>> spec.name, spec.gpus_per_node, spec.nics, spec.cpu_cores, spec.host_memory_bytes / 2**30
    ('DGX-A100-40GB/2gpu/64cpu/256GiB', 2, 2, 64.0, 256.0)
    """
    spec = node_spec(pool.gpu)
    name = spec.name
    changes: dict[str, object] = {}
    if pool.gpus_per_node is not None:
        g = pool.gpus_per_node
        name += f"/{g}gpu"
        changes.update(gpus_per_node=g, nics=min(spec.nics, g))
    if pool.cpus is not None:
        name += f"/{pool.cpus:g}cpu"
        changes["cores"] = float(pool.cpus)
    if pool.memory_gib is not None:
        name += f"/{pool.memory_gib:g}GiB"
        changes["host_memory_bytes"] = pool.memory_gib * 2.0**30
    return replace(spec, name=name, **changes) if changes else spec


def pcie_bandwidth(spec: NodeSpec) -> float:
    """PCIe x16 bandwidth per direction of a node's GPUs and NICs, bytes/s."""
    return float(spec.extra.get("pcie_bandwidth", PCIE_BANDWIDTH.get(spec.gpu, _GEN5)))


class _Builder:
    """Accumulates one topology while it is built (local to a builder call)."""

    def __init__(self) -> None:
        self.g = nx.DiGraph()
        self.gpus: list[str] = []
        self.gpu_host: list[int] = []
        self.hosts: list[str] = []
        self.host_rack: list[int] = []
        self.specs: list[NodeSpec] = []
        self.storage: list[str] = []

    def link(self, u: str, v: str, bandwidth: float, latency: float, kind: str) -> None:
        """Add one full-duplex link as two directed edges."""
        self.g.add_edge(u, v, bandwidth=float(bandwidth), latency=float(latency), kind=kind)
        self.g.add_edge(v, u, bandwidth=float(bandwidth), latency=float(latency), kind=kind)

    def host(self, spec: NodeSpec, rack: int, slot: int, compute: NICSpec,
             nics: int, storage_nics: int) -> tuple[list[str], list[str]]:
        """Add one server; returns its compute NIC and storage NIC names."""
        h = len(self.hosts)
        name = f"rack{rack}/node{slot}"
        gpu_spec = GPUS.get(spec.gpu)
        pcie = pcie_bandwidth(spec)
        self.g.add_node(name, kind="host", index=h, rack=rack)
        switch = f"{name}/nvswitch"
        self.g.add_node(switch, kind="nvswitch", host=h)
        nic_names = [f"{name}/nic{j}" for j in range(nics)]
        for j, n in enumerate(nic_names):
            self.g.add_node(n, kind="nic", role="compute", host=h, rail=j,
                            bandwidth=compute.bandwidth)
        for i in range(spec.gpus_per_node):
            gname = f"{name}/gpu{i}"
            self.g.add_node(gname, kind="gpu", gpu_type=spec.gpu, index=len(self.gpus), host=h,
                            local=i, nic=nic_names[i % nics], nvswitch=switch)
            self.gpus.append(gname)
            self.gpu_host.append(h)
            self.link(gname, switch, gpu_spec.nvlink_bandwidth, spec.nvlink_latency_s, "nvlink")
            # half a network hop on PCIe, so that GPU->NIC->leaf->NIC->GPU sums to NCCL's
            # 2.7 us NET step (hardware.py): 0.45 + 0.9 + 0.9 + 0.45
            self.link(gname, nic_names[i % nics], pcie, compute.latency_s / 2, "pcie")
            self.link(name, gname, pcie, compute.latency_s / 2, "pcie")
        for j in range(spec.gpus_per_node, nics):  # more NICs than GPUs: share GPUs round-robin
            self.link(f"{name}/gpu{j % spec.gpus_per_node}", nic_names[j], pcie,
                      compute.latency_s, "pcie")
        snic = nic(spec.storage_nic) if storage_nics else None
        snics = [f"{name}/snic{j}" for j in range(storage_nics)]
        for j, n in enumerate(snics):
            self.g.add_node(n, kind="nic", role="storage", host=h, rail=j,
                            bandwidth=snic.bandwidth)
            self.link(name, n, pcie, snic.latency_s, "pcie")
        self.hosts.append(name)
        self.host_rack.append(rack)
        self.specs.append(spec)
        return nic_names, snics

    def storage_server(self, spec: StorageSpec) -> list[str]:
        """Add one storage server and its NICs (linked by kind "storage" at the NIC rate)."""
        if spec.nics < 1:
            raise UserError(f"storage {spec.name!r} has no NICs; it cannot be a storage server")
        s = len(self.storage)
        name = f"storage{s}"
        port = nic(spec.nic)
        self.g.add_node(name, kind="storage", index=s, read_bandwidth=spec.read_bandwidth,
                        write_bandwidth=spec.write_bandwidth, capacity_bytes=spec.capacity_bytes)
        names = [f"{name}/nic{j}" for j in range(spec.nics)]
        for j, n in enumerate(names):
            self.g.add_node(n, kind="nic", role="storage", storage=s, rail=j,
                            bandwidth=port.bandwidth)
            self.link(name, n, port.bandwidth, port.latency_s, "storage")
        self.storage.append(name)
        return names

    def build(self, fabric: str) -> Topology:
        return Topology(nx.freeze(self.g), tuple(self.gpus), np.array(self.gpu_host),
                        tuple(self.hosts), np.array(self.host_rack), tuple(self.specs),
                        tuple(self.storage), fabric)


def _storage_spec(storage_spec: StorageSpec | None) -> StorageSpec:
    return storage("AI400X2") if storage_spec is None else storage_spec


def single_node(spec: NodeSpec, storage_servers: int = 0,
                storage: StorageSpec | None = None) -> Topology:
    """One server, no fabric switches (its compute NICs have no network links).

    Storage servers attach directly (point to point) to the host's storage NICs: host storage
    NIC k is cabled to NIC ``k mod nics`` of every server.

    Args:
        spec: the server.
        storage_servers: number of storage servers.
        storage: their spec (default ``AI400X2``).
    """
    if storage_servers < 0:
        raise UserError(f"storage_servers must be >= 0, got {storage_servers}")
    if storage_servers and spec.storage_nics == 0:
        raise UserError(f"node {spec.name} has no storage NICs to attach storage servers to")
    b = _Builder()
    _, snics = b.host(spec, 0, 0, nic(spec.nic), max(1, spec.nics), spec.storage_nics)
    sspec = _storage_spec(storage)
    cable = min(nic(sspec.nic).bandwidth, nic(spec.storage_nic).bandwidth)
    for _ in range(storage_servers):
        ports = b.storage_server(sspec)
        for k, snic in enumerate(snics):
            b.link(snic, ports[k % len(ports)], cable, nic(sspec.nic).latency_s, "network")
    return b.build("single_node")


def gpu_cluster(spec: NodeSpec | Sequence[tuple[NodeSpec, int]], nodes: int | None = None,
                fabric: str = "rail_optimized",
                nodes_per_rack: int = 32, oversubscription: float = 1.0,
                storage_servers: int = 1, storage: StorageSpec | None = None,
                nic: NICSpec | None = None,
                labels: Sequence[str | None] | None = None) -> Topology:
    """A two-level leaf/spine GPU cluster: racks of servers, leaves, spines, storage.

    Rail-optimised (DGX SuperPOD style): a rack has one leaf per rail; NIC r of every server in
    the rack goes to leaf r. Fat-tree: a rack has one leaf taking every NIC of its servers.
    A full leaf has P downlink ports (servers per rack, times the NICs per server for fat-tree);
    there are ``max(1, floor(P / oversubscription))`` spines and each leaf has one uplink to each
    spine of bandwidth ``downlink_total / (oversubscription * spines)``. So a leaf's uplink total
    is exactly its downlink total / oversubscription, and an uplink runs at about the NIC rate
    (exactly when the oversubscription divides P), as with one leaf port per spine in a
    SuperPOD. Spines exist even for one rack: they carry storage traffic. Storage NIC k (in
    host-major order) goes to spine ``k mod spines``; NIC j of storage server s to spine
    ``(s*nics + j) mod spines`` (when a host's and a server's NICs share no spine, the shortest
    route crosses a leaf).

    A mixed cluster passes ``spec`` as ``[(NodeSpec, count), ...]`` (``nodes`` None or the total):
    the servers are numbered pool by pool on one fabric; a rail-optimised rack has as many rails
    as the most NICs of any server, a server's NIC j goes to rail j at its own NIC rate.

    Args:
        spec: the server of every node, or pools of (server, count).
        nodes: number of servers (the pools' total if None).
        fabric: a name in :data:`FABRICS` ("rail_optimized" or "fat_tree").
        nodes_per_rack: servers per rack (scalable unit); the last rack may be partial.
        oversubscription: each leaf's downlink / uplink bandwidth ratio (1 = non-blocking).
        storage_servers: storage servers on the spine layer.
        storage: their spec (default ``AI400X2``).
        nic: compute NIC override (default ``spec.nic``).
        labels: each pool's label (:attr:`Topology.host_labels`), one per pool; default none.
    """
    counts = [nodes or 0] if isinstance(spec, NodeSpec) else [int(n) for _, n in spec]
    if labels is not None and len(labels) != len(counts):
        raise UserError(f"{len(labels)} labels for {len(counts)} pools")
    if isinstance(spec, NodeSpec):
        if nodes is None:
            raise UserError("gpu_cluster needs nodes for a single node spec")
    else:
        pools = [(p, int(n)) for p, n in spec]
        total = sum(n for _, n in pools)
        if nodes is not None and nodes != total:
            raise UserError(f"nodes={nodes} but the pools hold {total}")
        if not pools or any(n < 1 for _, n in pools):
            raise UserError(f"pools need at least one node each, got {[n for _, n in pools]}")
        spec, nodes = (pools[0][0] if len(pools) == 1 else tuple(pools)), total
    topo = FABRICS.get(fabric, where="fabric")(
        spec, nodes, nodes_per_rack=nodes_per_rack, oversubscription=oversubscription,
        storage_servers=storage_servers, storage=storage, nic=nic)
    if labels is None or all(label is None for label in labels):
        return topo
    host_labels = tuple(label for label, n in zip(labels, counts, strict=True)
                        for _ in range(n))
    return replace(topo, host_labels=host_labels)


def _cluster(spec: NodeSpec | tuple[tuple[NodeSpec, int], ...], nodes: int,
             nodes_per_rack: int = 32, oversubscription: float = 1.0,
             storage_servers: int = 1, storage: StorageSpec | None = None,
             nic: NICSpec | None = None, *, rail: bool) -> Topology:
    """Wire racks of servers to leaves and every leaf to every spine (see gpu_cluster)."""
    if nodes < 1 or nodes_per_rack < 1 or storage_servers < 0 or not oversubscription > 0:
        raise UserError(f"need nodes >= 1, nodes_per_rack >= 1, storage_servers >= 0 and "
                        f"oversubscription > 0; got {nodes}, {nodes_per_rack}, "
                        f"{storage_servers}, {oversubscription}")
    specs = ([spec] * nodes if isinstance(spec, NodeSpec)
             else [p for p, n in spec for _ in range(n)])
    rails = max(max(1, p.nics) for p in specs)
    ports = min(nodes, nodes_per_rack) * (1 if rail else rails)
    b = _Builder()
    spines = [f"spine{i}" for i in range(max(1, math.floor(ports / oversubscription + 1e-9)))]
    for i, s in enumerate(spines):
        b.g.add_node(s, kind="spine", index=i)
    host_snics: list[str] = []
    racks = -(-nodes // nodes_per_rack)
    for r in range(racks):
        in_rack = min(nodes_per_rack, nodes - r * nodes_per_rack)
        leaves = [f"rack{r}/leaf{j}" for j in range(rails if rail else 1)]
        for j, leaf in enumerate(leaves):
            b.g.add_node(leaf, kind="leaf", rack=r, **({"rail": j} if rail else {}))
        down = [0.0] * len(leaves)
        for slot in range(in_rack):
            hspec = specs[r * nodes_per_rack + slot]
            compute = NICS.get(hspec.nic) if nic is None else nic
            nics, snics = b.host(hspec, r, slot, compute, max(1, hspec.nics),
                                 hspec.storage_nics)
            sn = NICS.get(hspec.storage_nic) if snics else None
            host_snics.extend((n, sn) for n in snics)
            for j, n in enumerate(nics):
                b.link(n, leaves[j] if rail else leaves[0], compute.bandwidth, compute.latency_s,
                       "network")
                down[j if rail else 0] += compute.bandwidth
        for leaf, leaf_down in zip(leaves, down, strict=True):
            for s in spines:
                b.link(leaf, s, leaf_down / (oversubscription * len(spines)), compute.latency_s,
                       "network")
    for k, (n, sn) in enumerate(host_snics):
        b.link(n, spines[k % len(spines)], sn.bandwidth, sn.latency_s, "network")
    sspec = _storage_spec(storage)
    for s in range(storage_servers):
        port = NICS.get(sspec.nic)
        for j, n in enumerate(b.storage_server(sspec)):
            b.link(n, spines[(s * sspec.nics + j) % len(spines)], port.bandwidth,
                   port.latency_s, "network")
    return b.build("rail_optimized" if rail else "fat_tree")


FABRICS.add("rail_optimized", partial(_cluster, rail=True))
FABRICS.add("fat_tree", partial(_cluster, rail=False))


def fat_tree(k: int, spec: NodeSpec | None = None, storage_servers: int = 0) -> Topology:
    """The classic k-ary fat-tree (Al-Fares, Loukissas, Vahdat, SIGCOMM 2008).

    k pods of k/2 edge switches (kind "leaf", one rack each, name ``rack{r}/leaf0``) and k/2
    aggregation switches (kind "spine", ``spine{i}``); (k/2)^2 core switches (``core{i}``);
    k^3/4 hosts, k/2 per edge switch. Each host is a server of ``spec`` (default H100 node) but
    with ONE compute NIC (so k^3/4 NICs) shared by all its GPUs and its CPU, and no storage NIC;
    storage servers attach round-robin to the core switches. Every network link runs at the NIC
    rate. Aggregation switch a of a pod links to cores ``a*k/2 .. a*k/2 + k/2 - 1``.

    Args:
        k: switch port count, even and >= 2.
        spec: server spec (default ``node_spec("H100-SXM")``).
        storage_servers: number of ``AI400X2`` storage servers.
    """
    if k < 2 or k % 2:
        raise UserError(f"fat_tree k must be even and >= 2, got {k}")
    spec = node_spec("H100-SXM") if spec is None else spec
    port = nic(spec.nic)
    bw, lat, half = port.bandwidth, port.latency_s, k // 2
    b = _Builder()
    cores = [f"core{i}" for i in range(half * half)]
    for i, c in enumerate(cores):
        b.g.add_node(c, kind="core", index=i)
    for p in range(k):
        aggs = [f"spine{p * half + a}" for a in range(half)]
        for a, agg in enumerate(aggs):
            b.g.add_node(agg, kind="spine", index=p * half + a, pod=p)
            for c in cores[a * half:(a + 1) * half]:
                b.link(agg, c, bw, lat, "network")
        for e in range(half):
            r = p * half + e
            edge = f"rack{r}/leaf0"
            b.g.add_node(edge, kind="leaf", rack=r, pod=p)
            for agg in aggs:
                b.link(edge, agg, bw, lat, "network")
            for slot in range(half):
                (n,), _ = b.host(spec, r, slot, port, 1, 0)
                b.link(n, edge, bw, lat, "network")
                b.link(b.hosts[-1], n, pcie_bandwidth(spec), lat, "pcie")
    sspec = storage("AI400X2")
    for s in range(storage_servers):
        sport = nic(sspec.nic)
        for j, n in enumerate(b.storage_server(sspec)):
            b.link(n, cores[(s * sspec.nics + j) % len(cores)], sport.bandwidth,
                   sport.latency_s, "network")
    return b.build("kary_fat_tree")


def _compute_nics(topology: Topology, hosts: range | list[int]) -> list[str]:
    wanted = set(hosts)
    return [n for n, d in topology.graph.nodes(data=True)
            if d["kind"] == "nic" and d.get("role") == "compute" and d.get("host") in wanted]


def bisection_bandwidth(topology: Topology) -> float:
    """Max flow (bytes/s, one direction) from the first half of the hosts to the second half.

    Hosts are split by index (first ``n // 2`` / the rest); a super-source feeds the first
    half's compute NICs and a super-sink drains the second half's, over links of kind
    "network" only. A single host has no network cut: 0.0 (its NVLink is not a bisection).
    """
    n = len(topology.hosts)
    if n < 2:
        return 0.0
    flow = nx.DiGraph()
    for u, v, d in topology.graph.edges(data=True):
        if d["kind"] == "network":
            flow.add_edge(u, v, capacity=d["bandwidth"])
    src, dst = object(), object()
    for x in _compute_nics(topology, range(n // 2)):
        flow.add_edge(src, x)  # no capacity attribute = unbounded
    for x in _compute_nics(topology, range(n // 2, n)):
        flow.add_edge(x, dst)
    if src not in flow or dst not in flow:
        return 0.0
    return float(nx.maximum_flow_value(flow, src, dst))


def per_node_bandwidth(topology: Topology) -> float:
    """Injection bandwidth of host 0's compute NICs (sum of their line rates), bytes/s."""
    if not topology.hosts:
        return 0.0
    nodes = topology.graph.nodes
    return float(sum(nodes[n]["bandwidth"] for n in _compute_nics(topology, [0])))


def describe(topology: Topology) -> dict[str, object]:
    """A summary for the CLI: sizes, node counts by kind, bandwidth figures (bytes/s)."""
    return {
        "fabric": topology.fabric,
        "gpus": len(topology.gpus),
        "hosts": len(topology.hosts),
        "racks": topology.num_racks,
        "storage_servers": len(topology.storage),
        "nodes_by_kind": topology.counts(),
        "bisection_bandwidth_Bps": bisection_bandwidth(topology),
        "per_node_bandwidth_Bps": per_node_bandwidth(topology),
    }

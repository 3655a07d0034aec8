"""Coarse iteration time of a data-parallel training job on a placement.

iteration = compute roofline + uncontended ring all-reduce of the BF16 gradients (α-β), and every
K iterations a checkpoint written to storage. The all-reduce follows NCCL's ring: one ring per
channel, channels spread over the node's NICs (one rail each), so across nodes the ring gets
``channels × NIC bandwidth`` while inside a node it runs at the NVLink rate.

>>> from simcluster.hardware import node_spec
>>> from simcluster.perf.models import model
>>> from simcluster.routing import Router
>>> from simcluster.topology import gpu_cluster
>>> topo = gpu_cluster(node_spec("H100-SXM"), nodes=2)
>>> it = iteration_time(model("llama-2-7b"), range(16), topo, Router(topo))
>>> round(it.allreduce_s, 4)  # 2·15/16 · 13.48 GB / (8 × 50 GB/s) + 30 · 3.6 µs
0.0633
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from simcluster.hardware import NICS, STORAGE, GPUSpec, NodeSpec
from simcluster.hardware import gpu as gpu_spec
from simcluster.perf.collectives import ring_allreduce_time
from simcluster.perf.compute import training_step_time
from simcluster.perf.models import ModelSpec
from simcluster.routing import Router
from simcluster.topology import Topology

__all__ = ["IterationTime", "checkpoint_time", "iteration_time", "ring_bandwidth"]

LOCAL_CHECKPOINT_DRIVE = "NVMe-PM1733"  # used when the cluster has no storage server


@dataclass(frozen=True, slots=True)
class IterationTime:
    """One iteration's phases in seconds."""

    compute_s: float
    allreduce_s: float

    @property
    def total_s(self) -> float:
        """compute + all-reduce (no overlap: a conservative, simple bound)."""
        return self.compute_s + self.allreduce_s


def _hosts_in_order(gpus: Sequence[int], topology: Topology) -> dict[int, list[int]]:
    by_host: dict[int, list[int]] = {}
    for g in gpus:
        by_host.setdefault(int(topology.gpu_host[g]), []).append(int(g))
    return by_host


def ring_bandwidth(gpus: Sequence[int], topology: Topology, router: Router) -> tuple[float, float]:
    """Bottleneck bandwidth (bytes/s) and per-step latency α (s) of NCCL-style rings.

    Inside a node a ring hop is the GPU-GPU route (NVLink). Across nodes each channel's ring
    leaves every node once through one NIC; with ``c`` channels (the fewest job GPUs on any of
    its nodes, capped by that node's NICs) the inter-node rate is ``c`` × the slowest GPU-GPU
    route between consecutive nodes on one rail.
    """
    by_host = _hosts_in_order(gpus, topology)
    names = topology.gpus
    bandwidth, alpha = float("inf"), 0.0
    for members in by_host.values():
        for a, b in zip(members, members[1:], strict=False):
            bandwidth = min(bandwidth, router.bottleneck(names[a], names[b]))
            alpha = max(alpha, router.latency(names[a], names[b]))
    hosts = list(by_host)
    if len(hosts) > 1:
        channels = min(min(len(by_host[h]), topology.host_specs[h].nics) for h in hosts)
        inter = float("inf")
        for i, h in enumerate(hosts):
            nxt = hosts[(i + 1) % len(hosts)]
            for rail in range(channels):
                a, b = by_host[h][rail], by_host[nxt][rail]
                inter = min(inter, router.bottleneck(names[a], names[b]))
                alpha = max(alpha, router.latency(names[a], names[b]))
        bandwidth = min(bandwidth, channels * inter)
    return bandwidth, alpha


def iteration_time(spec: ModelSpec, gpus: Sequence[int], topology: Topology, router: Router,
                   dtype: str = "bf16", efficiency: float | None = None) -> IterationTime:
    """Uncontended time of one data-parallel iteration of ``spec`` on GPU indices ``gpus``.

    Args:
        spec: the model (its global batch is split evenly over the GPUs).
        gpus: GPU indices of the placement (whole GPUs; a fractional job passes one index).
        topology, router: the cluster.
        dtype: math precision.
        efficiency: fraction of peak; the model's default if None.
    """
    gpus = list(gpus)
    device: GPUSpec = gpu_spec(topology.gpu_type(gpus[0]))
    eff = spec.efficiency if efficiency is None else efficiency
    compute = training_step_time(spec.flop_per_iteration, spec.params, len(gpus), device, eff,
                                 dtype)
    allreduce = 0.0
    if len(gpus) > 1:
        bandwidth, alpha = ring_bandwidth(gpus, topology, router)
        allreduce = ring_allreduce_time(len(gpus), spec.gradient_bytes, bandwidth, alpha)
    return IterationTime(compute_s=compute, allreduce_s=allreduce)


def checkpoint_time(spec: ModelSpec, hosts: Sequence[int], topology: Topology) -> float:
    """Seconds to write one checkpoint of ``spec`` from the job's ``hosts``, uncontended.

    The ranks write shards in parallel through their hosts' storage NICs to the storage servers,
    so the rate is min(the servers' write bandwidth, the hosts' storage-NIC bandwidth). Without a
    storage server each host writes its shard to a local NVMe drive.
    """
    nbytes = spec.checkpoint_bytes
    if not topology.storage:
        return nbytes / (len(hosts) * STORAGE.get(LOCAL_CHECKPOINT_DRIVE).write_bandwidth)
    servers = sum(topology.graph.nodes[s]["write_bandwidth"] for s in topology.storage)
    node: NodeSpec
    nic_rate = 0.0
    for h in hosts:
        node = topology.host_specs[h]
        nic_rate += node.storage_nics * NICS.get(node.storage_nic).bandwidth
    return nbytes / min(servers, nic_rate)


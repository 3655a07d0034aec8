"""Coarse iteration time of a training job on a placement.

A job with a parallel layout (``spec.layout``, see :func:`training_layout`) is timed by the step
model (:mod:`simcluster.perf.step`) on its placement's groups: ``allreduce_s`` is its gradient
traffic (:func:`gradient_collectives`: each GPU's shard reduced over its data-parallel group, all
TP × PP groups at once, their rings sharing the links they cross), the collectives the engine runs
as flows at ``iteration`` fidelity and as capped streams at ``coarse`` (so the fidelities agree on
an idle cluster), and ``compute_s`` every other phase less the part of that traffic the step model
hides under the backward pass.
A plain data-parallel job (no layout) keeps the simple form:

iteration = compute roofline + uncontended all-reduce of the BF16 gradients (the fastest pair of
NCCL's algorithms and protocols by its cost model, perf.collectives.collective_cost),
and every K iterations a checkpoint written to storage. NCCL's
rings run one per channel, channels spread over the node's NICs (one rail each), so across nodes a
ring gets ``channels × one rail`` while inside a node it runs at the NVLink rate; every bandwidth
is the line rate times the link kind's efficiency (:data:`simcluster.hardware.LINK_EFFICIENCY`).

>>> from simcluster.hardware import node_spec
>>> from simcluster.perf.models import model
>>> from simcluster.routing import Router
>>> from simcluster.topology import gpu_cluster
>>> topo = gpu_cluster(node_spec("H100-SXM"), nodes=2)
>>> it = iteration_time(model("llama-2-7b"), range(16), topo, Router(topo))
>>> it.algorithm, round(it.allreduce_s, 4)  # 2·15/16 · 13.48 GB / (0.822 × 450 GB/s) + latency
('ring', 0.0685)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from simcluster.errors import UserError
from simcluster.hardware import (
    LINK_EFFICIENCY,
    NICS,
    NVLS_EFFICIENCY,
    NVLS_GPUS,
    STORAGE,
    GPUSpec,
    NodeSpec,
)
from simcluster.hardware import gpu as gpu_spec
from simcluster.perf.collectives import Fabric, collective_cost, collective_time
from simcluster.perf.compute import training_step_time
from simcluster.perf.fluid import maxmin_numpy
from simcluster.perf.memory import fit_message, params_per_gpu
from simcluster.perf.models import ModelSpec
from simcluster.perf.parallelism import Parallelism
from simcluster.perf.rings import group_by_host, ring_route
from simcluster.perf.step import check_layout, placement_fabrics, step_time
from simcluster.routing import Router
from simcluster.topology import Topology

__all__ = ["GroupCollective", "IterationTime", "checkpoint_time", "fabric_of",
           "gradient_collectives", "iteration_time", "route_bandwidth", "training_layout"]

LOCAL_CHECKPOINT_DRIVE = "NVMe-PM1733"  # used when the cluster has no storage server


@dataclass(frozen=True, slots=True)
class GroupCollective:
    """One collective of a layout job's gradient traffic, run by all of its groups at once.

    Attributes:
        op: all_reduce, reduce_scatter or all_gather.
        nbytes: message size of each group (its GPUs' BF16 gradient or weight shard), bytes.
        groups: GPU indices of each group, in rank order.
        repeat: runs per iteration, one after another (ZeRO-3 gathers the weights 2m times).
        algorithms: each group's algorithm (set by pricing; empty before).
        protocols: each group's NCCL protocol (set by pricing; empty before).
        seconds: uncontended time of all the runs, on the slowest group (set by pricing).
    """

    op: str
    nbytes: float
    groups: tuple[tuple[int, ...], ...]
    repeat: int = 1
    algorithms: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ()
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class IterationTime:
    """One iteration's phases in seconds; a layout job's ``collectives`` are the gradient
    traffic that ``allreduce_s`` prices (empty for plain data parallelism)."""

    compute_s: float
    allreduce_s: float
    algorithm: str = "none"
    collectives: tuple[GroupCollective, ...] = field(default=())

    @property
    def total_s(self) -> float:
        """compute + all-reduce (no overlap: a conservative, simple bound)."""
        return self.compute_s + self.allreduce_s


def _hosts_in_order(gpus: Sequence[int], topology: Topology) -> dict[int, list[int]]:
    by_host: dict[int, list[int]] = {}
    for g in gpus:
        by_host.setdefault(int(topology.gpu_host[g]), []).append(int(g))
    return by_host


def route_bandwidth(router: Router, src: str, dst: str,
                    efficiency: Mapping[str, float] = LINK_EFFICIENCY) -> float:
    """Effective bandwidth of the route src → dst: min over its links of line rate × efficiency."""
    graph = router.topology.graph
    return min((graph.edges[e]["bandwidth"] * efficiency.get(graph.edges[e]["kind"], 1.0)
                for e in router.route(src, dst)), default=float("inf"))


def _ring_rates(topology: Topology, router: Router, rings: list[tuple[list[list[int]], int]],
                efficiency: Mapping[str, float]) -> np.ndarray:
    """Rates of ring channels ``(hosts' GPUs, channel)`` across nodes when they all run at once,
    uncontended by other jobs: the max-min solve of their inter-node routes (rings that share a
    link, as on an oversubscribed uplink, split it)."""
    graph = topology.graph
    index: dict[tuple[str, str], int] = {}
    rows, cols = [], []
    for i, (groups, ch) in enumerate(rings):
        for edge in ring_route(topology, router, groups, ch, inter_only=True):
            rows.append(i)
            cols.append(index.setdefault(edge, len(index)))
    capacity = np.array([graph.edges[e]["bandwidth"] * efficiency.get(graph.edges[e]["kind"], 1.0)
                         for e in index])
    incidence = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(rings), len(index)))
    incidence.sum_duplicates()
    return maxmin_numpy(incidence, capacity, np.full(len(rings), np.inf))


def _channel_rate(topology: Topology, router: Router, groups: list[list[int]], channels: int,
                  efficiency: Mapping[str, float]) -> float:
    """Rate of the slowest ring channel of one collective across nodes, all channels at once."""
    rings = [(groups, ch) for ch in range(channels)]
    return float(_ring_rates(topology, router, rings, efficiency).min())


def fabric_of(gpus: Sequence[int], topology: Topology, router: Router,
              efficiency: Mapping[str, float] = LINK_EFFICIENCY) -> Fabric:
    """The α-β view of the GPUs ``gpus`` on the topology (uncontended, efficiency-scaled).

    Inside a node a hop is the GPU-GPU route (NVLink). Across nodes each of NCCL's channels
    leaves every node once through one NIC; with ``c`` channels (the fewest job GPUs on any of
    its nodes, capped by that node's NICs) rings run at min(NVLink, c × one channel's rate),
    where the channels' rate comes from a max-min solve of their routes together (so channels
    squeezed through one oversubscribed uplink share it).
    """
    by_host = _hosts_in_order(gpus, topology)
    names = topology.gpus
    nvlink, alpha_intra = float("inf"), 0.0
    for members in by_host.values():
        for a, b in zip(members, members[1:], strict=False):
            nvlink = min(nvlink, route_bandwidth(router, names[a], names[b], efficiency))
            alpha_intra = max(alpha_intra, router.latency(names[a], names[b]))
    hosts = list(by_host)
    per_node = min(len(m) for m in by_host.values())
    channels, nic, alpha_inter = 1, float("inf"), 0.0
    if len(hosts) > 1:
        channels = min(min(len(by_host[h]), topology.host_specs[h].nics) for h in hosts)
        groups = list(by_host.values())
        for i, members in enumerate(groups):
            nxt = groups[(i + 1) % len(groups)]
            for rail in range(channels):
                alpha_inter = max(alpha_inter, router.latency(names[members[rail]],
                                                              names[nxt[rail]]))
        nic = _channel_rate(topology, router, groups, channels, efficiency)
    device = gpu_spec(topology.gpu_type(gpus[0]))
    nvls = NVLS_EFFICIENCY * device.nvlink_bandwidth if device.name in NVLS_GPUS else 0.0
    return Fabric(ranks=len(gpus), nodes=len(hosts), gpus_per_node=per_node, channels=channels,
                  nvlink_bw=nvlink, nic_bw=nic, alpha_intra=alpha_intra,
                  alpha_inter=alpha_inter, nvls_bw=nvls,
                  uniform=len({len(m) for m in by_host.values()}) == 1)


def iteration_time(spec: ModelSpec, gpus: Sequence[int], topology: Topology, router: Router,
                   dtype: str = "bf16", efficiency: float | None = None,
                   links: Mapping[str, float] = LINK_EFFICIENCY, algo: str = "auto",
                   nvls: bool = False) -> IterationTime:
    """Uncontended time of one data-parallel iteration of ``spec`` on GPU indices ``gpus``.

    Args:
        spec: the model (its global batch is split evenly over the GPUs).
        gpus: GPU indices of the placement (whole GPUs; a fractional job passes one index).
        topology, router: the cluster.
        dtype: math precision.
        efficiency: fraction of peak; the model's default if None.
        links: achieved fraction of line rate per link kind.
        algo, nvls: all-reduce algorithm (``auto``: the fastest by the α-β model) and whether
            NVLink SHARP may be used.
    """
    gpus = list(gpus)
    device: GPUSpec = gpu_spec(topology.gpu_type(gpus[0]))
    if spec.layout is not None:
        return _layout_iteration(spec, gpus, topology, router, device, dtype, links, nvls)
    eff = spec.efficiency if efficiency is None else efficiency
    compute = training_step_time(spec.flop_per_iteration, spec.params, len(gpus), device, eff,
                                 dtype)
    allreduce, chosen = 0.0, "none"
    if len(gpus) > 1:
        fabric = fabric_of(gpus, topology, router, links)
        allreduce, chosen = collective_time("all_reduce", spec.gradient_bytes, fabric, algo, nvls)
    return IterationTime(compute_s=compute, allreduce_s=allreduce, algorithm=chosen)


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



def _layout_iteration(spec: ModelSpec, gpus: list[int], topology: Topology, router: Router,
                      device: GPUSpec, dtype: str, links: Mapping[str, float],
                      nvls: bool) -> IterationTime:
    par = spec.layout
    assert par is not None
    fabrics = placement_fabrics(par, gpus, lambda g: fabric_of(g, topology, router, links))
    host = topology.host_specs[int(topology.gpu_host[gpus[0]])]
    step = step_time(spec, par, spec.samples_per_iteration, device, fabrics, dtype,
                     gpus_per_node=host.gpus_per_node, nvls=nvls)
    priced = tuple(_price(c, topology, router, links, nvls)
                   for c in gradient_collectives(spec, gpus))
    allreduce = sum(c.seconds for c in priced)
    chosen = priced[0].algorithms[0] if priced else "none"
    # The engine runs the gradient traffic after compute_s; the part the step model hides under
    # the backward pass is moved out of compute_s so that, uncontended, compute_s + traffic is
    # the step model's iteration (and contended traffic still stretches it).
    hidden = min(step.dp_total_s - step.dp_s, allreduce)
    return IterationTime(compute_s=step.iteration_s - step.dp_s - hidden, allreduce_s=allreduce,
                         algorithm=chosen, collectives=priced)


def gradient_collectives(spec: ModelSpec, gpus: Sequence[int]) -> tuple[GroupCollective, ...]:
    """The data-parallel traffic of one iteration of a layout job, rank ``r`` on ``gpus[r]``.

    As the step model counts it (:func:`simcluster.perf.step.step_time`): every GPU reduces the
    BF16 gradient of the dense parameters it holds over its data-parallel group (one group per
    TP × PP position, CP ranks included, all at once): an all-reduce, or with ZeRO-3 a
    reduce-scatter plus two weight all-gathers per micro-batch; expert parameters the same over
    their expert-data-parallel groups. Unpriced (see :func:`iteration_time`).

    >>> from simcluster.perf.models import model
    >>> from simcluster.perf.parallelism import Parallelism
    >>> spec = replace(model("gpt2-1.5b"), layout=Parallelism(tp=2, dp=2))
    >>> [(c.op, c.groups) for c in gradient_collectives(spec, [10, 11, 12, 13])]
    [('all_reduce', ((10, 12), (11, 13)))]
    """
    par, arch = spec.layout, spec.architecture
    assert par is not None
    dense, expert = (float(spec.params), 0.0) if arch is None else params_per_gpu(arch, par)
    sharded = par.zero >= 3 and arch is not None  # the step model's ZeRO-3 (transformers)
    op = "reduce_scatter" if sharded else "all_reduce"
    gathers = 2 * max(1, spec.samples_per_iteration // (par.dp * par.micro_batch))
    out: list[GroupCollective] = []
    for dim, params in (("dp", dense), ("dp_expert", expert)):
        groups = tuple(tuple(int(gpus[r]) for r in g) for g in par.groups(dim))
        if params <= 0 or len(groups[0]) < 2:
            continue
        out.append(GroupCollective(op, 2.0 * params, groups))
        if sharded:
            out.append(GroupCollective("all_gather", 2.0 * params, groups, repeat=gathers))
    return tuple(out)


def _price(coll: GroupCollective, topology: Topology, router: Router,
           links: Mapping[str, float], nvls: bool) -> GroupCollective:
    """``coll`` with each group's algorithm and protocol (the fastest by NCCL's cost model)
    and the slowest group's time, every group's rings across nodes sharing the links they
    cross with the other groups'."""
    fabrics = [fabric_of(g, topology, router, links) for g in coll.groups]
    rings = [(group_by_host(g, topology), ch) for g, f in zip(coll.groups, fabrics, strict=True)
             if f.nodes > 1 for ch in range(f.channels)]
    rates = iter(_ring_rates(topology, router, rings, links).tolist() if rings else [])
    times = []
    for f in fabrics:
        if f.nodes > 1:
            f = replace(f, nic_bw=min(next(rates) for _ in range(f.channels)))
        times.append(collective_cost(coll.op, coll.nbytes, f, "auto", nvls))
    return replace(coll, algorithms=tuple(c.algorithm for c in times),
                   protocols=tuple(c.protocol for c in times),
                   seconds=coll.repeat * max(c.time for c in times))


def training_layout(spec: ModelSpec, fields: Mapping[str, object] | None, gpus: int,
                    gpu_name: str, gpus_per_node: int) -> tuple[ModelSpec, str | None]:
    """The job's model with its layout attached, and None or the reason to reject it.

    Args:
        spec: the catalog model. fields: the scenario's ``parallelism`` (tp, pp, cp, ep, dp,
            zero, vp, micro_batch, global_batch, recompute, dp_overlap, tp_overlap); None
            keeps plain data parallelism.
        gpus: whole GPUs of the job. gpu_name: their type. gpus_per_node: GPUs per node.

    Returns:
        (model, reason): reason says why the layout cannot run (sizes that do not divide, or
        memory that does not fit, by how much and what would fit).
    """
    if not fields:
        return spec, None
    f = dict(fields)
    split = int(f["tp"]) * int(f["pp"]) * int(f["cp"])
    dp = f.get("dp") or max(1, gpus // split)
    batch = int(f.get("global_batch") or spec.samples_per_iteration)
    try:
        par = Parallelism(tp=int(f["tp"]), pp=int(f["pp"]), dp=int(dp), cp=int(f["cp"]),
                          ep=int(f["ep"]), zero=int(f["zero"]), virtual_stages=int(f["vp"]),
                          micro_batch=int(f["micro_batch"]), recompute=str(f["recompute"]),
                          dp_overlap=float(f["dp_overlap"]), tp_overlap=float(f["tp_overlap"]))
        m = check_layout(spec, par, batch, gpus, gpus_per_node)
    except UserError as exc:
        return spec, f"parallelism: {exc}"
    tag = (f"{spec.name}[tp{par.tp} pp{par.pp} dp{par.dp} cp{par.cp} ep{par.ep} "
           f"zero{par.zero} vp{par.virtual_stages} mb{par.micro_batch} gb{batch} "
           f"{par.recompute} o{par.dp_overlap:g}/{par.tp_overlap:g}]")
    out = replace(spec, name=tag, layout=par, samples_per_iteration=batch)
    if spec.architecture is None:
        return out, None
    hbm = gpu_spec(gpu_name).hbm_bytes
    return out, fit_message(spec.architecture, par, m, hbm, gpus_per_node, gpu_name)

"""Collectives as stages of flows on the fluid network (DESIGN.md "Collectives as flows").

A collective is a short sequence of stages run one after another; a stage is a set of flows plus
an α term per algorithm step (latency is counted once: the flows carry none). A pipelined ring
moves at the pace of its slowest hop, so each ring (one per NCCL channel) is *one* flow that
crosses every link of the ring at one rate. Traffic that stays inside one node never contends
with other jobs (GPUs are not shared between jobs and the NVSwitch is non-blocking), so a
collective on one node, and the intra-node stages of a hierarchical one, are priced by their α-β
form instead of flows.

The algorithm and NCCL's protocol (LL, LL128, Simple) come from
:func:`simcluster.perf.collectives.collective_cost`: a stage waits the protocol's latency (NCCL's
base + per-step costs) and each of its flows is capped at the protocol's share of its
uncontended rate, so the flows and the analytic form agree when the network is idle.

>>> import simpy
>>> from simcluster.hardware import node_spec
>>> from simcluster.routing import Router
>>> from simcluster.topology import gpu_cluster
>>> from simcluster.engine.network import Flow, Network
>>> topo = gpu_cluster(node_spec("H100-SXM"), nodes=2)
>>> env = simpy.Environment()
>>> net = Network(env, topo, Router(topo))
>>> proc = env.process(run_collective(net, range(16), "all_reduce", 1e9, algo="ring"))
>>> env.run()
>>> # 2·15/16 · 1 GB / min(370, 8 × 48 GB/s) + Simple latency 1.4 (8.4 + 26 · 3.4 + 4 · 14) µs
>>> round(proc.value.time_s * 1e3, 3)
5.281
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
import simpy

from simcluster.engine.network import Flow, Network
from simcluster.perf.collectives import collective_cost, step_latencies
from simcluster.perf.iteration import fabric_of
from simcluster.perf.rings import group_by_host, pair_route, rail_route, ring_route

__all__ = ["CollectivePlan", "CollectiveResult", "Stage", "execute", "plan_collective",
           "rail_links", "ring_links", "run_collective"]


@dataclass(frozen=True, slots=True)
class CollectiveResult:
    """What one collective took: seconds, the algorithm, how many flows it started, and the
    protocol (LL, LL128, Simple)."""

    time_s: float
    algorithm: str
    flows: int
    protocol: str = "Simple"


def _links(net: Network, edges: list[tuple[str, str]]) -> list[int]:
    index = net.link_index
    return [index[e] for e in edges]


def ring_links(net: Network, hosts: list[list[int]], channel: int,
               key: str | None = None) -> list[int]:
    """Link indices of ring ``channel`` (:func:`simcluster.perf.rings.ring_route`)."""
    return _links(net, ring_route(net.topology, net.router, hosts, channel, key))


def rail_links(net: Network, hosts: list[list[int]], rail: int,
               key: str | None = None) -> list[int]:
    """Link indices of one rail's inter-node ring (:func:`simcluster.perf.rings.rail_route`)."""
    return _links(net, rail_route(net.topology, net.router, hosts, rail, key))


def _edges(net: Network, a: int, b: int, key: str | None = None) -> list[int]:
    return _links(net, list(pair_route(net.topology, net.router, a, b, key)))


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage: wait ``seconds`` (α terms, intra-node α-β), then run ``paths`` as flows of
    ``nbytes`` each, or of ``sizes[i]`` when given (all at once; the stage ends with the last),
    each at most ``cap`` bytes/s (the protocol's share of the link)."""

    seconds: float
    paths: tuple[tuple[int, ...], ...] = ()
    nbytes: float = 0.0
    sizes: tuple[float, ...] = ()
    cap: float = math.inf


@dataclass(frozen=True, slots=True)
class CollectivePlan:
    """A collective prepared for one placement: reusable every iteration."""

    op: str
    algorithm: str
    stages: tuple[Stage, ...]
    protocol: str = "Simple"

    @property
    def flows(self) -> int:
        """Flows started per execution."""
        return sum(len(s.paths) for s in self.stages)


def plan_collective(net: Network, gpus: Sequence[int], op: str, nbytes: float,
                    algo: str = "auto", nvls: bool = False,
                    key: str | None = None, proto: str = "auto") -> CollectivePlan:
    """Decide the algorithm and protocol and build the stages of ``op`` of ``nbytes``.

    Args:
        net: the fluid network.
        gpus: participating GPU indices (one rank each).
        op: one of :data:`simcluster.perf.collectives.OPS` (send_recv: gpus[0] to gpus[1]).
        nbytes: message size S as nccl-tests counts it (the buffer per rank).
        algo: ``auto`` (fastest by NCCL's cost model, :func:`collective_cost`) or a name.
        nvls: allow NVLink SHARP (in-switch reduction) inside a node.
        key: ECMP key of the collective's connections (e.g. the job id); None uses each
            GPU pair's default route. Connections persist, so the paths are fixed per plan.
        proto: ``auto`` or one of LL, LL128, Simple (as ``NCCL_PROTO`` forces it).

    The protocol sets each stage's latency (NCCL's base and per-step costs) and caps each flow
    at the protocol's share of its uncontended rate (LL ~1/4, LL128 0.92, Simple 1).
    """
    gpus = list(gpus)
    fabric = fabric_of(gpus, net.topology, net.router, net.efficiency)
    cost = collective_cost(op, nbytes, fabric, algo, nvls, proto)
    algo, p, hosts = cost.algorithm, len(gpus), group_by_host(gpus, net.topology)
    k = cost.scale  # the protocol's share of the bandwidths

    def stage(seconds: float, paths: list[list[int]] = (), size: float = 0.0,
              cap: float = math.inf) -> Stage:
        return Stage(seconds, tuple(tuple(x) for x in paths), size, cap=cap)

    def capped(full: float) -> float:  # no cap where the protocol loses nothing
        return math.inf if k >= 1.0 else k * full

    if p <= 1 or nbytes <= 0:
        stages = ()
    elif len(hosts) == 1:  # inside one node: α-β, no contention possible
        stages = (stage(cost.time),)
    elif op == "send_recv":
        stages = (stage(fabric.alpha_inter, [_edges(net, gpus[0], gpus[1])], nbytes),)
    elif algo == "hierarchical":
        g, big_n = fabric.gpus_per_node, fabric.nodes
        intra_lat, inter_lat = step_latencies(algo, cost.protocol, fabric)
        intra = (g - 1) * intra_lat + (g - 1) / g * nbytes / (k * fabric.nvlink_bw)
        base = cost.latency - 2 * (g - 1) * intra_lat - 2 * (big_n - 1) * inter_lat
        rails = [rail_links(net, hosts, r, key) for r in range(g)]
        stages = (stage(base + intra),  # reduce-scatter inside each node
                  stage(2 * (big_n - 1) * inter_lat, rails,
                        2 * (big_n - 1) / big_n * nbytes / g, capped(fabric.nic_bw)),
                  stage(intra))  # all-gather inside each node
    elif op == "all_to_all":
        paths = []
        for i, src in enumerate(hosts):
            for j, dst in enumerate(hosts):
                if i != j:
                    paths += [_edges(net, src[r], dst[r % len(dst)],
                                     None if key is None else f"{key}/a2a/{i}/{j}/{r}")
                              for r in range(len(src))]
        # each GPU sends S/p to each rank of every other node, over its own rail: one flow per
        # (source GPU, destination node) of len(destination) · S/p bytes
        sizes = [len(dst) * nbytes / p for i, src in enumerate(hosts)
                 for j, dst in enumerate(hosts) if i != j for _ in src]
        stages = (Stage((p - 1) * fabric.alpha, tuple(tuple(x) for x in paths), 0.0,
                        tuple(sizes)),)
    else:  # ring-shaped: all_reduce (ring, tree), reduce_scatter, all_gather, broadcast
        c = fabric.channels
        volume = {"all_reduce": 2 * (p - 1) / p, "reduce_scatter": (p - 1) / p,
                  "all_gather": (p - 1) / p, "broadcast": 1.0}[op]
        if algo == "tree":
            volume = 2.0
        rings = [ring_links(net, hosts, ch, key) for ch in range(c)]
        stages = (stage(cost.latency, rings, volume * nbytes / c, capped(fabric.ring_bw / c)),)
    return CollectivePlan(op=op, algorithm=algo, stages=stages, protocol=cost.protocol)


def execute(net: Network, plan: CollectivePlan, tag: object = None,
            active: set[Flow] | None = None) -> Generator[simpy.Event, object, float]:
    """SimPy process body running ``plan``; returns its duration (s).

    Flows in progress are kept in ``active`` (if given) so that an owner that is stopped can
    end them.
    """
    env = net.env
    start = env.now
    for st in plan.stages:
        if st.seconds > 0:
            yield env.timeout(st.seconds)
        if st.paths:
            sizes = st.sizes or (st.nbytes,) * len(st.paths)
            flows = [net.start(path, np.ones(len(path)), size, cap=st.cap, tag=tag)
                     for path, size in zip(st.paths, sizes, strict=True)]
            if active is not None:
                active.update(flows)
            yield env.all_of([f.done for f in flows])
            if active is not None:
                active.difference_update(flows)
    return env.now - start


def run_collective(net: Network, gpus: Sequence[int], op: str, nbytes: float,
                   algo: str = "auto", nvls: bool = False, tag: object = None,
                   proto: str = "auto") -> Generator[simpy.Event, object, CollectiveResult]:
    """SimPy process body: plan and run ``op`` of ``nbytes`` over GPU indices ``gpus`` once.

    Returns:
        A :class:`CollectiveResult` (the process's value).
    """
    plan = plan_collective(net, gpus, op, nbytes, algo, nvls, proto=proto)
    seconds = yield from execute(net, plan, tag)
    return CollectiveResult(time_s=seconds, algorithm=plan.algorithm, flows=plan.flows,
                            protocol=plan.protocol)

"""The routes of NCCL-style rings over a placement (pure: topology and router only).

NCCL runs one ring per channel and spreads channels over a node's NICs, one rail each. A ring
channel visits, on every node, each of the job's GPUs in a cycle that starts at the channel's GPU,
then leaves through that GPU's rail to the same rail of the next node (DESIGN.md "Collectives as
flows": a ring is one flow that crosses all of its hops at one rate). A hierarchical all-reduce's
inter-node stage runs one ring per rail over the nodes only.

>>> from simcluster.hardware import node_spec
>>> from simcluster.routing import Router
>>> from simcluster.topology import gpu_cluster
>>> topo = gpu_cluster(node_spec("H100-SXM"), nodes=2)
>>> hosts = group_by_host(range(16), topo)
>>> [len(h) for h in hosts]
[8, 8]
>>> len(ring_route(topo, Router(topo), hosts, channel=0))  # 2 × (8 NVLink hops × 2 + 4 rail)
40
"""

from __future__ import annotations

from collections.abc import Iterable

from simcluster.routing import Route, Router
from simcluster.topology import Topology

__all__ = ["group_by_host", "pair_route", "rail_route", "ring_route"]

Edge = tuple[str, str]


def group_by_host(gpus: Iterable[int], topology: Topology) -> list[list[int]]:
    """GPU indices grouped by host, hosts in order of first appearance."""
    groups: dict[int, list[int]] = {}
    for g in gpus:
        groups.setdefault(int(topology.gpu_host[g]), []).append(int(g))
    return list(groups.values())


def pair_route(topology: Topology, router: Router, a: int, b: int,
               key: str | None = None) -> Route:
    """Route between GPU indices ``a`` and ``b``: the pair's default, or its ECMP choice."""
    names = topology.gpus
    if key is None:
        return router.route(names[a], names[b])
    return router.ecmp(names[a], names[b], key)


def ring_route(topology: Topology, router: Router, hosts: list[list[int]], channel: int,
               key: str | None = None, inter_only: bool = False) -> list[Edge]:
    """Directed edges of ring ``channel`` (with ``inter_only``, just its inter-node hops).

    With a ``key`` each inter-node hop takes its ECMP path for ``key/channel/hop``.
    """
    edges: list[Edge] = []
    for i, members in enumerate(hosts):
        start = channel % len(members)
        order = members[start:] + members[:start]
        if not inter_only and len(order) > 1:
            for a, b in zip(order, order[1:] + order[:1], strict=True):
                edges += pair_route(topology, router, a, b)
        nxt = hosts[(i + 1) % len(hosts)]
        if nxt is not members:
            hop = None if key is None else f"{key}/{channel}/{i}"
            edges += pair_route(topology, router, order[0], nxt[channel % len(nxt)], hop)
    return edges


def rail_route(topology: Topology, router: Router, hosts: list[list[int]], rail: int,
               key: str | None = None) -> list[Edge]:
    """Directed edges of the inter-node ring of one rail (GPU ``rail`` of each node)."""
    edges: list[Edge] = []
    for i, members in enumerate(hosts):
        nxt = hosts[(i + 1) % len(hosts)]
        if nxt is not members:
            hop = None if key is None else f"{key}/rail{rail}/{i}"
            edges += pair_route(topology, router, members[rail % len(members)],
                                nxt[rail % len(nxt)], hop)
    return edges

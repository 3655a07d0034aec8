"""Routes over a :class:`~simcluster.topology.Topology`: one shortest path per (src, dst), cached.

Routes are shortest by hop count, and only switches, NICs and NVSwitches are used as transit
nodes: a route never passes through a GPU, host or storage server other than its endpoints.
Known shapes are closed-form: GPU → NVSwitch → GPU inside a server; a direct link when there is
one; otherwise, for the builders of :mod:`simcluster.topology`, each endpoint goes up through one
of its NICs to a switch and the two switches are joined in at most two switch hops: GPU → NIC →
leaf → NIC → GPU under one leaf (same rail and rack when rail-optimised), GPU → NIC → leaf →
spine → leaf → NIC → GPU across leaves, host → storage NIC → spine → NIC → storage server. A GPU
always leaves its server through its own NIC, so a transfer between different rails goes up to a
spine (real systems often first move the data over NVLink to the GPU on the destination's rail,
NCCL's PXN; not modelled yet). Anything else (inter-pod routes of a k-ary fat-tree, direct-attached
storage of a single node) uses networkx shortest paths over the same transit nodes.

Among equal-cost paths, :meth:`Router.choose` picks one by a stable digest of ``"src|dst"``, so
routes are deterministic across runs and processes; per-flow ECMP can override that hook.

>>> from simcluster.hardware import node_spec
>>> from simcluster.topology import gpu_cluster
>>> router = Router(gpu_cluster(node_spec("H100-SXM"), nodes=2))
>>> [kind for kind in router.kinds("rack0/node0/gpu0", "rack0/node1/gpu0")]
['pcie', 'network', 'network', 'pcie']
>>> router.bottleneck("rack0/node0/gpu0", "rack0/node0/gpu5") / 1e9  # NVLink, GB/s
450.0
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice
from typing import TYPE_CHECKING, TypeVar

import networkx as nx

from simcluster.errors import UserError, closest
from simcluster.rng import digest

if TYPE_CHECKING:  # topology.py re-exports Router, so no import of it at run time
    from simcluster.topology import Topology

__all__ = ["Route", "Router"]

Route = tuple[tuple[str, str], ...]
T = TypeVar("T")

_SWITCHES = frozenset({"leaf", "spine", "core"})
_TRANSIT = _SWITCHES | {"nic", "nvswitch"}
_CLOSED_FORM = frozenset({"rail_optimized", "fat_tree", "kary_fat_tree"})  # builders it covers
_MAX_PATHS = 64  # equal-cost paths considered by the generic fallback


class Router:
    """Shortest-path routes of one topology, cached per (src, dst).

    Args:
        topology: the topology to route over (its graph is frozen, so routes stay valid).
    """

    def __init__(self, topology: Topology, seed: int = 0) -> None:
        self.topology = topology
        self.seed = seed
        self._graph = topology.graph
        self._routes: dict[tuple[str, str], Route] = {}
        self._paths: dict[tuple[str, str], tuple[Route, ...]] = {}
        self._near: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {}
        self.down: set[tuple[str, str]] = set()  # failed directed edges (engine/failures.py)

    def set_down(self, edges: Sequence[tuple[str, str]], down: bool) -> None:
        """Mark directed edges failed (or repaired); routes chosen from now on avoid failed
        edges where an equal-cost path does (the route cache is invalidated)."""
        if down:
            self.down.update(edges)
        else:
            self.down.difference_update(edges)
        self._routes.clear()

    def _usable(self, options: tuple[Route, ...]) -> tuple[Route, ...]:
        if not self.down:
            return options
        return tuple(p for p in options if self.down.isdisjoint(p)) or options

    def choose(self, src: str, dst: str, options: Sequence[T]) -> T:
        """Pick one of several equal-cost options for the route ``src`` → ``dst``.

        The hook for ECMP policies: the default is a stable digest of ``"src|dst"`` modulo the
        number of options (deterministic, independent of process and call order).
        """
        return options[digest(f"{src}|{dst}") % len(options)]

    def route(self, src: str, dst: str) -> Route:
        """The directed edges of one shortest path from ``src`` to ``dst`` (empty if equal).

        Raises:
            UserError: an unknown node name, or no path between the two.
        """
        key = (src, dst)
        cached = self._routes.get(key)
        if cached is None:
            cached = self._routes[key] = self.choose(src, dst,
                                                     self._usable(self.paths(src, dst)))
        return cached

    def paths(self, src: str, dst: str) -> tuple[Route, ...]:
        """All equal-cost routes src → dst that the router considers (at most 64), cached."""
        key = (src, dst)
        cached = self._paths.get(key)
        if cached is None:
            for name in key:
                if name not in self._graph:
                    hint = closest(name, self._graph.nodes)
                    extra = f" (did you mean {hint!r}?)" if hint else ""
                    raise UserError(f"unknown topology node {name!r}{extra}")
            options = self._closed_form(src, dst) or self._shortest(src, dst)
            cached = tuple(tuple(zip(nodes[:-1], nodes[1:], strict=True)) for nodes in options)
            self._paths[key] = cached
        return cached

    def ecmp(self, src: str, dst: str, flow_key: str) -> Route:
        """The route of one flow under ECMP: a stable digest of the flow's key and the seed picks
        one of the equal-cost paths (deterministic for a seed, spread over flows)."""
        options = self._usable(self.paths(src, dst))
        if len(options) == 1:
            return options[0]
        return options[digest(f"{self.seed}/{flow_key}") % len(options)]

    def bottleneck(self, src: str, dst: str) -> float:
        """The smallest link bandwidth along the route, bytes/s (inf for src == dst)."""
        edges = self._graph.edges
        return min((edges[e]["bandwidth"] for e in self.route(src, dst)), default=float("inf"))

    def latency(self, src: str, dst: str) -> float:
        """The sum of link latencies along the route, s."""
        edges = self._graph.edges
        return float(sum(edges[e]["latency"] for e in self.route(src, dst)))

    def kinds(self, src: str, dst: str) -> list[str]:
        """The link kinds along the route ("nvlink", "pcie", "network", "storage")."""
        return [self._graph.edges[e]["kind"] for e in self.route(src, dst)]

    def _closed_form(self, src: str, dst: str) -> list[list[str]] | None:
        """Shortest paths that join the endpoints' NIC uplinks within two switch hops."""
        graph, nodes = self._graph, self._graph.nodes
        if src == dst:
            return [[src]]
        if graph.has_edge(src, dst):
            return [[src, dst]]
        a, b = nodes[src], nodes[dst]
        if a["kind"] == b["kind"] == "gpu" and a["host"] == b["host"]:
            return [[src, a["nvswitch"], dst]]
        if self.topology.fabric not in _CLOSED_FORM:
            return None
        best: list[list[str]] = []
        for up in self._attach(src):
            for down in self._attach(dst):
                x, y = up[-1], down[-1]
                tail = list(reversed(down))
                if x == y:
                    found = [[*up, *tail[1:]]]
                elif y in self._switches(x)[1]:
                    found = [[*up, *tail]]
                else:
                    near = self._switches(y)[1]
                    found = [[*up, m, *tail] for m in self._switches(x)[0] if m in near]
                if found and (not best or len(found[0]) < len(best[0])):
                    best = found
                elif found and len(found[0]) == len(best[0]):
                    best.extend(found)
        return best or None

    def _attach(self, node: str) -> tuple[tuple[str, ...], ...]:
        """The ways from an endpoint to its first switch: (node, nic, switch) or shorter."""
        kind = self._graph.nodes[node]["kind"]
        if kind in _SWITCHES:
            return ((node,),)
        if kind == "nic":
            return tuple((node, s) for s in self._switches(node)[0])
        return tuple((node, n, s) for n in self._graph.successors(node)
                     if self._graph.nodes[n]["kind"] == "nic" for s in self._switches(n)[0])

    def _switches(self, node: str) -> tuple[tuple[str, ...], frozenset[str]]:
        """The switch neighbours of ``node`` in graph order, and as a set (cached)."""
        cached = self._near.get(node)
        if cached is None:
            nodes = self._graph.nodes
            order = tuple(n for n in self._graph.successors(node)
                          if nodes[n]["kind"] in _SWITCHES)
            cached = self._near[node] = (order, frozenset(order))
        return cached

    def _shortest(self, src: str, dst: str) -> list[list[str]]:
        nodes = self._graph.nodes
        view = nx.subgraph_view(
            self._graph,
            filter_node=lambda n: n in (src, dst) or nodes[n]["kind"] in _TRANSIT)
        try:
            paths = list(islice(nx.all_shortest_paths(view, src, dst), _MAX_PATHS))
        except nx.NetworkXNoPath:
            raise UserError(f"no route from {src!r} to {dst!r} in this topology") from None
        return paths

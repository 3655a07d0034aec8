"""The flow-level (fluid) network: max-min fair sharing of directed links among active flows.

Every transfer is a :class:`Flow` over a set of constraints: the directed links of its route
(capacity = line rate × the link kind's efficiency) and, for traffic to or from a storage server,
that server's disk (one constraint that reads and writes share, DESIGN.md). Rates are the weighted
max-min fair allocation with per-flow caps (:mod:`simcluster.perf.fluid`).

Event discipline (DESIGN.md "The fluid solver"):

* a flow starting or ending marks the network dirty and asks for one solve at the current time;
  all changes at one timestamp share that solve;
* a solve covers only the flows connected (through shared constraints) to what changed;
* the next completion is one SimPy event; completions within a relative tolerance of each other
  are handled together;
* a flow's route latency is added once, after its last byte (the flow frees its links when its
  bytes are through, and its ``done`` event fires ``latency`` seconds later).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp
import simpy

from simcluster.engine.cluster import InvariantViolation
from simcluster.hardware import LINK_EFFICIENCY
from simcluster.perf.fluid import SOLVERS, maxmin_dense
from simcluster.routing import Router
from simcluster.topology import Topology

__all__ = ["Flow", "Network"]

_TOL = 1e-9  # relative tolerance for coalescing completions
_DENSE_CELLS = 4096  # components up to this many flow x link cells use the dense solver
_SEARCH_LIMIT = 256  # above this many flows, solve them all instead of searching a component


class Flow:
    """One transfer (or a long-lived capped stream when ``remaining`` is infinite).

    Attributes:
        id: unique per network.
        links: constraint indices it crosses; coefs: its coefficient on each (1 for links).
        remaining: bytes left (inf for a stream that only ends when stopped).
        cap: rate cap in bytes/s (inf for none).
        rate: current rate (bytes/s), set by the solver.
        done: event that succeeds (with the flow) ``latency`` s after the last byte.
        on_rate: optional callback ``on_rate(flow)`` after every rate change.
        tag: owner's label (job id, "checkpoint", ...), for metrics.
    """

    __slots__ = ("id", "links", "coefs", "mult", "remaining", "cap", "rate", "updated",
                 "latency", "done", "on_rate", "tag", "version", "sent", "started", "cancelled",
                 "size")

    def __init__(self, fid: int, links: np.ndarray, coefs: np.ndarray, nbytes: float, cap: float,
                 latency: float, done: simpy.Event, now: float, tag: object = None,
                 on_rate: Callable[[Flow], None] | None = None) -> None:
        self.id, self.links, self.coefs = fid, links, coefs
        self.remaining, self.cap, self.latency = float(nbytes), float(cap), float(latency)
        self.rate, self.updated, self.started = 0.0, now, now
        self.done, self.on_rate, self.tag = done, on_rate, tag
        self.version, self.sent, self.cancelled = 0, 0.0, False
        self.size = float(nbytes)
        self.mult = np.ones(len(links))


class Network:
    """Flows over one topology, solved max-min fair, advanced by SimPy events.

    Args:
        env: the SimPy environment.
        topology, router: the cluster and its routes.
        efficiency: achieved fraction of line rate per link kind (default
            :data:`simcluster.hardware.LINK_EFFICIENCY`).
        solver: name of a registered max-min solver (``numpy`` or ``heap``).
    """

    def __init__(self, env: simpy.Environment, topology: Topology, router: Router,
                 efficiency: Mapping[str, float] | None = None, solver: str = "numpy") -> None:
        self.env, self.topology, self.router = env, topology, router
        self.efficiency = dict(LINK_EFFICIENCY if efficiency is None else efficiency)
        self._solve = SOLVERS.get(solver)
        graph = topology.graph
        self.link_names: list[tuple[str, str]] = list(graph.edges())
        self.link_index = {edge: i for i, edge in enumerate(self.link_names)}
        n_links = len(self.link_names)
        self.link_kind = [graph.edges[e]["kind"] for e in self.link_names]
        cap = [graph.edges[e]["bandwidth"] * self.efficiency.get(graph.edges[e]["kind"], 1.0)
               for e in self.link_names]
        self._latency = np.array([graph.edges[e]["latency"] for e in self.link_names])
        # storage disks: one normalised constraint each (capacity 1; a read of r bytes/s uses
        # r / read_bandwidth of it, a write w / write_bandwidth)
        self.disk_index = {s: n_links + i for i, s in enumerate(topology.storage)}
        self._disk_rate = {s: (graph.nodes[s]["read_bandwidth"], graph.nodes[s]["write_bandwidth"])
                           for s in topology.storage}
        self.capacity = np.array(cap + [1.0] * len(topology.storage), dtype=float)
        self.bytes = np.zeros(len(self.capacity))  # bytes carried per constraint
        self.load = np.zeros(len(self.capacity))  # capacity-weighted use: utilisation numerator
        self._on: list[set[int]] = [set() for _ in self.capacity]  # flows per constraint
        self._flows: dict[int, Flow] = {}
        self._ids = itertools.count()
        self._dirty_links: set[int] = set()
        self._solve_pending = False
        self._heap: list[tuple[float, int, int]] = []  # (finish time, flow id, version)
        self._wake_at = math.inf
        self._routes: dict[tuple, tuple[np.ndarray, np.ndarray, float]] = {}
        self.solves = 0
        self.flow_events = 0
        self.check_each_solve = False  # --check: verify rates and bytes after every solve

    # --- building flows ------------------------------------------------------------------
    def path(self, src: str, dst: str,
             flow_key: str | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        """Constraint indices, coefficients and latency (s) of the route src → dst (cached).

        With a ``flow_key`` the route is the flow's ECMP choice among equal-cost paths
        (:meth:`simcluster.routing.Router.ecmp`); without, the pair's default route.
        """
        route = (self.router.route(src, dst) if flow_key is None
                 else self.router.ecmp(src, dst, flow_key))
        key = (src, dst, route)
        hit = self._routes.get(key)
        if hit is not None:
            return hit
        links = [self.link_index[e] for e in route]
        coefs = [1.0] * len(links)
        if src in self.disk_index:  # read from a storage server
            links.append(self.disk_index[src])
            coefs.append(1.0 / self._disk_rate[src][0])
        if dst in self.disk_index:  # write to a storage server
            links.append(self.disk_index[dst])
            coefs.append(1.0 / self._disk_rate[dst][1])
        latency = float(self._latency[[self.link_index[e] for e in route]].sum()) if route else 0.0
        hit = (np.array(links, dtype=np.intp), np.array(coefs), latency)
        self._routes[key] = hit
        return hit

    def capacity_of(self, src: str, dst: str) -> float:
        """Uncontended rate of a flow src → dst: its tightest constraint, bytes/s."""
        links, coefs, _ = self.path(src, dst)
        if not len(links):
            return math.inf
        return float(np.min(self.capacity[links] / coefs))

    def transfer(self, src: str, dst: str, nbytes: float, cap: float = math.inf,
                 tag: object = None, flow_key: str | None = None) -> simpy.Event:
        """Move ``nbytes`` from ``src`` to ``dst``; the event fires when the last byte arrives.

        ``flow_key`` selects the flow's ECMP path (see :meth:`path`).
        """
        links, coefs, latency = self.path(src, dst, flow_key)
        return self.start(links, coefs, nbytes, cap=cap, latency=latency, tag=tag).done

    def start(self, links: Sequence[int] | np.ndarray, coefs: Sequence[float] | np.ndarray,
              nbytes: float, cap: float = math.inf, latency: float = 0.0, tag: object = None,
              on_rate: Callable[[Flow], None] | None = None) -> Flow:
        """Start a flow over explicit constraints (a ring stage crosses all its hops at once).

        Repeated constraints are merged (their coefficients add up).
        """
        if not (nbytes >= 0 and cap >= 0):  # also rejects NaN
            raise ValueError(f"a flow needs nbytes >= 0 and cap >= 0, got {nbytes}, {cap}")
        links = np.asarray(links, dtype=np.intp)
        coefs = np.asarray(coefs, dtype=float)
        mult = None
        if len(links) != len(np.unique(links)):  # a link crossed twice carries the bytes twice
            uniq, inverse = np.unique(links, return_inverse=True)
            coefs = np.bincount(inverse, weights=coefs)
            mult = np.bincount(inverse).astype(float)
            links = uniq
        flow = Flow(next(self._ids), links, coefs, nbytes, cap, latency, self.env.event(),
                    self.env.now, tag, on_rate)
        flow.mult = np.ones(len(links)) if mult is None else mult
        flow.size = float(nbytes)
        self.flow_events += 1
        if nbytes <= 0:
            self._finish_later(flow)
            return flow
        self._flows[flow.id] = flow
        for link in links.tolist():
            self._on[link].add(flow.id)
        self._dirty_links.update(links.tolist())
        if not len(links):  # touches nothing: runs at its cap
            self._dirty_links.add(-1 - flow.id)
        self._request_solve()
        return flow

    def stop(self, flow: Flow) -> None:
        """End a flow early (a stream, or a transfer of a stopped job); ``done`` never fires."""
        flow.cancelled = True  # also silences a flow whose last byte is already through
        if flow.id not in self._flows:
            return
        self._advance([flow])
        self._remove(flow)
        self._request_solve()

    @property
    def active(self) -> int:
        """Number of flows in progress."""
        return len(self._flows)

    # --- solving -------------------------------------------------------------------------
    def _request_solve(self) -> None:
        if not self._solve_pending:
            self._solve_pending = True
            self.env.timeout(0).callbacks.append(self._solve_now)

    def _component(self) -> list[Flow]:
        """Flows connected to the dirty constraints through shared constraints.

        With more than :data:`_SEARCH_LIMIT` flows in the network the search would cost as much
        as solving them all, so every flow is solved.
        """
        if len(self._flows) > _SEARCH_LIMIT:
            return list(self._flows.values())
        seen_links = {link for link in self._dirty_links if link >= 0}
        flows: set[int] = {-1 - link for link in self._dirty_links if link < 0}
        frontier = list(seen_links)
        while frontier:
            link = frontier.pop()
            for fid in self._on[link]:
                if fid in flows:
                    continue
                flows.add(fid)
                for other in self._flows[fid].links.tolist():
                    if other not in seen_links:
                        seen_links.add(other)
                        frontier.append(other)
        return [self._flows[f] for f in sorted(flows) if f in self._flows]

    def _advance(self, flows: Sequence[Flow]) -> None:
        """Move every flow's bytes on to now at its current rate."""
        now = self.env.now
        moving = []
        for f in flows:
            dt = now - f.updated
            if dt > 0 and f.rate > 0:
                moved = min(f.rate * dt, f.remaining)
                f.remaining -= moved
                f.sent += moved
                moving.append((f, moved))
            f.updated = now
        if len(moving) == 1:
            self._carry(*moving[0])
        elif moving:  # one scatter-add for all of them
            links = np.concatenate([f.links for f, _ in moving])
            coefs = np.concatenate([f.coefs for f, _ in moving])
            mult = np.concatenate([f.mult for f, _ in moving])
            moved = np.repeat([m for _, m in moving], [len(f.links) for f, _ in moving])
            np.add.at(self.bytes, links, moved * mult)
            np.add.at(self.load, links, moved * coefs)

    def _solve_now(self, _event: object = None) -> None:
        self._solve_pending = False
        flows = self._component()
        self._dirty_links.clear()
        if not flows:
            self._schedule_wake()
            return
        self.solves += 1
        lengths = [len(f.links) for f in flows]
        links = np.concatenate([f.links for f in flows])
        vals = np.concatenate([f.coefs for f in flows])
        rows = np.repeat(np.arange(len(flows)), lengths)
        order, cols = np.unique(links, return_inverse=True)  # constraints in use, renumbered
        caps = np.array([f.cap for f in flows])
        if len(flows) * len(order) <= _DENSE_CELLS:
            incidence = np.zeros((len(flows), len(order)))
            incidence[rows, cols] = vals
            rates = maxmin_dense(incidence, self.capacity[order], caps)
        else:
            incidence = sp.csr_matrix((vals, (rows, cols)), shape=(len(flows), len(order)))
            rates = self._solve(incidence, self.capacity[order], caps)
        now = self.env.now
        # progress is folded in lazily: only a flow whose rate changes is advanced to now (at
        # its old rate); the others keep their stamp, and their finish time stays valid
        changed = [(f, rate) for f, rate in zip(flows, rates.tolist(), strict=True)
                   if rate != f.rate or not f.version]
        self._advance([f for f, _ in changed])
        for f, rate in changed:
            f.rate = rate
            f.version += 1
            if rate > 0 and math.isfinite(f.remaining):
                heapq.heappush(self._heap, (now + f.remaining / rate, f.id, f.version))
            if f.on_rate is not None:
                f.on_rate(f)
        if self.check_each_solve:
            self.check()
        self._schedule_wake()

    def check(self) -> None:
        """Verify the invariants: no constraint carries more than its capacity, no flow beats
        its cap, and every flow's bytes are accounted (sent + remaining = size).

        Raises:
            InvariantViolation: naming the simulated time and the link or flow.
        """
        now = self.env.now
        load = np.zeros(len(self.capacity))
        for f in self._flows.values():
            if math.isfinite(f.rate):
                np.add.at(load, f.links, f.coefs * f.rate)
            if f.rate > f.cap * (1 + 1e-9):
                raise InvariantViolation(f"t={now}: flow {f.id} runs at {f.rate} above its cap "
                                         f"{f.cap}")
            if math.isfinite(f.size) and abs(f.sent + f.remaining - f.size) > 1e-6 * f.size:
                raise InvariantViolation(f"t={now}: flow {f.id} lost bytes: sent {f.sent} + "
                                         f"remaining {f.remaining} != {f.size}")
        over = np.flatnonzero(load > self.capacity * (1 + 1e-9) + 1e-9)
        if len(over):
            i = int(over[0])
            name = ("->".join(self.link_names[i]) if i < len(self.link_names)
                    else f"{self.topology.storage[i - len(self.link_names)]}/disk")
            raise InvariantViolation(f"t={now}: {name} carries {load[i]:.6g} over its capacity "
                                     f"{self.capacity[i]:.6g}")

    # --- completions ---------------------------------------------------------------------
    def _next(self) -> tuple[float, Flow] | None:
        """The earliest live completion (stale heap entries are dropped on the way)."""
        while self._heap:
            t, fid, version = self._heap[0]
            f = self._flows.get(fid)
            if f is not None and f.version == version:
                return t, f
            heapq.heappop(self._heap)
        return None

    def _schedule_wake(self) -> None:
        head = self._next()
        if head is not None and head[0] < self._wake_at:
            t = self._wake_at = head[0]
            self.env.timeout(max(0.0, t - self.env.now)).callbacks.append(
                lambda _e, t=t: self._wake(t))

    def _wake(self, target: float) -> None:
        if target != self._wake_at:
            return  # a stale wake-up: an earlier one was scheduled after it
        now = self.env.now
        self._wake_at = math.inf
        finished = []
        while (head := self._next()) is not None:
            t, f = head
            # coalesce completions within a tolerance relative to the flow's own duration (not
            # to the clock: a 10 ms flow late in a month-long run must not end early)
            if t - now > max(_TOL * (t - f.started), 4 * math.ulp(now)):
                break
            heapq.heappop(self._heap)
            finished.append(f)
        if finished:
            self._advance(finished)
            for f in finished:
                f.sent += f.remaining
                self._carry(f, f.remaining)
                f.remaining = 0.0
                self._remove(f)
                self._finish_later(f)
            self._request_solve()  # the solve reschedules the next wake-up
        else:
            self._schedule_wake()
        if len(self._heap) > 4 * max(len(self._flows), 16):  # drop stale entries
            self._heap = [e for e in self._heap
                          if (f := self._flows.get(e[1])) is not None and f.version == e[2]]
            heapq.heapify(self._heap)

    def _carry(self, flow: Flow, moved: float) -> None:
        self.bytes[flow.links] += moved * flow.mult
        self.load[flow.links] += moved * flow.coefs

    def _remove(self, flow: Flow) -> None:
        del self._flows[flow.id]
        for link in flow.links.tolist():
            self._on[link].discard(flow.id)
        self._dirty_links.update(flow.links.tolist())
        flow.rate = 0.0
        self.flow_events += 1

    def _finish_later(self, flow: Flow) -> None:
        if flow.latency > 0:
            self.env.timeout(flow.latency).callbacks.append(
                lambda _e: None if flow.cancelled else flow.done.succeed(flow))
        else:
            flow.done.succeed(flow)

    # --- metrics -------------------------------------------------------------------------
    def link_table(self, elapsed: float) -> list[dict[str, object]]:
        """Per-constraint bytes and mean utilisation over ``elapsed`` seconds (highest
        utilisation first)."""
        self._advance(list(self._flows.values()))
        rows = []
        n_links = len(self.link_names)
        for i, carried in enumerate(self.bytes.tolist()):
            if carried <= 0:
                continue
            if i < n_links:
                name, kind = "->".join(self.link_names[i]), self.link_kind[i]
            else:
                name, kind = f"{self.topology.storage[i - n_links]}/disk", "disk"
            util = self.load[i] / (self.capacity[i] * elapsed) if elapsed > 0 else 0.0
            rows.append({"link": name, "kind": kind, "bytes": carried, "utilization": util})
        rows.sort(key=lambda r: (-r["utilization"], -r["bytes"]))
        return rows

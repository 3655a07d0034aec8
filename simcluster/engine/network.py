"""The flow-level (fluid) network: max-min fair sharing of directed links among active flows.

Every transfer is a :class:`Flow` over a set of constraints: the directed links of its route
(capacity = line rate × the link kind's efficiency) and, for traffic to or from a storage server,
that server's disk (one constraint that reads and writes share, DESIGN.md). Rates are the weighted
max-min fair allocation with per-flow caps (:mod:`simcluster.perf.fluid`).

Event discipline (DESIGN.md "The fluid solver"):

* a flow starting or ending marks the network dirty and asks for one solve at the current time;
  all changes at one timestamp share that solve;
* a solve re-solves only the flows whose rates can change (incremental, below), or, when
  that set grows large, every flow connected (through shared constraints) to what changed;
* the next completion is one SimPy event; completions within a relative tolerance of each other
  are handled together;
* a flow's route latency is added once, after its last byte (the flow frees its links when its
  bytes are through, and its ``done`` event fires ``latency`` seconds later).

Incremental solves. Max-min fair rates are certified by the bottleneck property (Bertsekas &
Gallager, *Data Networks*, section 6.5.2): a feasible allocation is the max-min fair one iff
every flow below its cap crosses a saturated constraint on which no flow has a higher rate. Each
flow remembers such a constraint (its *bottleneck*). A change (flows starting or ending)
re-solves a small set S of flows, the new ones and those whose bottleneck a change touched, with
every other flow fixed at its rate (its load subtracted from the capacities), then re-checks the
certificate of every flow of S and every flow whose bottleneck saw its load or top rate change
(a flow of unknown bottleneck, after a full solve: any of its constraints). The others'
certificates still hold, so the whole allocation is certified. Flows that fail join S (with, as
a guess that saves rounds, the faster flows held at the other full constraints of flows that
speed up) and S is solved again. A set that grows past :data:`_INC_LIMIT` flows (or half of all
flows) or :data:`_INC_PAIRS` flow-constraint pairs, or takes :data:`_INC_ROUNDS` rounds, falls
back to solving the whole component (numpy), as do changes that touch more than
:data:`_INC_PAIRS` constraints and every change while a flow over more than :data:`_LONG`
constraints (a long ring stage) runs. The answer is the unique max-min allocation, as a
from-scratch solve gives (within the solvers' tolerance :data:`simcluster.perf.fluid.REL_TOL`);
``Network(incremental=False)`` solves every change from scratch.
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
from simcluster.perf.fluid import SOLVERS, maxmin_dense, maxmin_users
from simcluster.routing import Router
from simcluster.topology import Topology

__all__ = ["Flow", "Network"]

_TOL = 1e-9  # relative tolerance for coalescing completions
_DENSE_CELLS = 4096  # components up to this many flow x link cells use the dense solver
_SEARCH_LIMIT = 256  # above this many flows, solve them all instead of searching a component
_INC_LIMIT = 256  # an incremental re-solve of more flows than this falls back to a full solve
_INC_PAIRS = 3072  # ... or of more (flow, constraint) pairs than this
_INC_ROUNDS = 12  # ... or that takes more rounds (solve, check, grow) than this
_LONG = 64  # a flow over more constraints than this (a long ring) turns incremental solves off
_FIND_LIMIT = 4096  # after a full solve, find bottlenecks up front for up to this many flows
# (and 8x as many pairs); the others are checked when a change first touches them
_CERT_TOL = 1e-8  # relative slack of the certificate (saturation, top rate, cap)
_REFRESH = 2048  # recompute the per-constraint load from scratch every this many solves
_UNKNOWN = -2  # Flow.bottleneck when not known (after a full solve)


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
                 "size", "bottleneck", "pairs", "counted")

    def __init__(self, fid: int, links: np.ndarray, coefs: np.ndarray, nbytes: float, cap: float,
                 latency: float, done: simpy.Event, now: float, tag: object = None,
                 on_rate: Callable[[Flow], None] | None = None) -> None:
        self.id, self.links, self.coefs = fid, links, coefs
        self.remaining, self.cap, self.latency = float(nbytes), float(cap), float(latency)
        self.rate, self.updated, self.started = 0.0, now, now
        self.done, self.on_rate, self.tag = done, on_rate, tag
        self.version, self.sent, self.cancelled = 0, 0.0, False
        self.counted = 0.0  # bytes of ``sent`` already added to the network's per-link totals
        self.size = float(nbytes)
        self.mult = np.ones(len(links))
        # a saturated constraint where no flow is faster; -1 at its cap (or not yet solved)
        self.bottleneck = -1
        # (constraint, coefficient), set by start(); its bottleneck first once it has one
        self.pairs: list[tuple[int, float]] = []


class _Residual:
    """The flows of an incremental re-solve as a max-min problem of their own, every other flow
    fixed at its rate (its load taken off the capacities), regrouped by constraint for
    :func:`simcluster.perf.fluid.maxmin_users`. Flows join round by round; those already in
    are not regrouped."""

    __slots__ = ("cap", "use", "users", "free", "caps", "pairs", "flows")

    def __init__(self, cap: list[float], use: list[float]) -> None:
        self.cap, self.use = cap, use
        self.users: dict[int, list[tuple[int, float]]] = {}  # constraint -> [(index, coef)]
        self.free: dict[int, float] = {}  # capacity left by the flows outside the problem
        self.caps: list[float] = []  # rate cap per flow index
        self.flows: list[Flow] = []  # the flows by index
        self.pairs = 0  # (flow, constraint) pairs so far

    def extend(self, flows: Sequence[Flow]) -> None:
        """Add flows (indices follow on from those already in)."""
        cap, use, users, free, caps = self.cap, self.use, self.users, self.free, self.caps
        self.flows.extend(flows)
        for f in flows:
            i = len(caps)
            caps.append(f.cap)
            pairs = f.pairs
            self.pairs += len(pairs)
            r = f.rate  # its own load goes back to the capacity it is solved for
            if not r < math.inf:
                r = 0.0
            for m, a in pairs:
                u = users.get(m)
                if u is None:
                    users[m] = [(i, a)]
                    free[m] = cap[m] - use[m] + a * r
                else:
                    u.append((i, a))
                    free[m] += a * r

    def solve(self) -> list[float]:
        """Max-min rates per flow index."""
        return maxmin_users(self.users.values(), self.free.values(), self.caps)


class Network:
    """Flows over one topology, solved max-min fair, advanced by SimPy events.

    Args:
        env: the SimPy environment.
        topology, router: the cluster and its routes.
        efficiency: achieved fraction of line rate per link kind (default
            :data:`simcluster.hardware.LINK_EFFICIENCY`).
        solver: name of a registered max-min solver (``numpy`` or ``heap``).
        incremental: re-solve only the flows whose rates can change (module docstring); False
            solves the whole touched component on every change (same rates, slower).
    """

    def __init__(self, env: simpy.Environment, topology: Topology, router: Router,
                 efficiency: Mapping[str, float] | None = None, solver: str = "numpy",
                 incremental: bool = True) -> None:
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
        self._latency = [float(graph.edges[e]["latency"]) for e in self.link_names]
        # storage disks: one normalised constraint each (capacity 1; a read of r bytes/s uses
        # r / read_bandwidth of it, a write w / write_bandwidth)
        self.disk_index = {s: n_links + i for i, s in enumerate(topology.storage)}
        self._disk_rate = {s: (graph.nodes[s]["read_bandwidth"], graph.nodes[s]["write_bandwidth"])
                           for s in topology.storage}
        self.capacity = np.array(cap + [1.0] * len(topology.storage), dtype=float)
        # per-constraint totals (the properties bytes, load), folded in lazily: a flow's sent
        # bytes are added when it ends or when the totals are read
        self._bytes = np.zeros(len(self.capacity))
        self._load = np.zeros(len(self.capacity))
        self._on: list[dict[int, Flow]] = [{} for _ in self.capacity]  # flows per constraint
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
        self.incremental = incremental
        self._cap = self.capacity.tolist()
        self._use = [0.0] * len(self._cap)  # sum of coefficient x rate per constraint
        self._added: list[Flow] = []  # flows started since the last solve
        self._held: list[dict[int, Flow]] = [{} for _ in self._cap]  # flows by bottleneck
        self._unknown: set[int] = set()  # flows whose bottleneck is not known
        self.incremental_solves = 0  # solves answered incrementally (the others: full)
        self._long = 0  # active flows over more than _LONG constraints
        self._use_stale = False  # _use lacks long flows: recompute before the next increment

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
        latency = float(sum(self._latency[i] for i in links))
        coefs = [1.0] * len(links)
        if src in self.disk_index:  # read from a storage server
            links.append(self.disk_index[src])
            coefs.append(1.0 / self._disk_rate[src][0])
        if dst in self.disk_index:  # write to a storage server
            links.append(self.disk_index[dst])
            coefs.append(1.0 / self._disk_rate[dst][1])
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
        ids = links.tolist()
        mult = None
        if len(set(ids)) != len(ids):  # a link crossed twice carries the bytes twice
            uniq, inverse = np.unique(links, return_inverse=True)
            coefs = np.bincount(inverse, weights=coefs)
            mult = np.bincount(inverse).astype(float)
            links = uniq
            ids = links.tolist()
        flow = Flow(next(self._ids), links, coefs, nbytes, cap, latency, self.env.event(),
                    self.env.now, tag, on_rate)
        flow.mult = np.ones(len(links)) if mult is None else mult
        flow.size = float(nbytes)
        self.flow_events += 1
        if nbytes <= 0:
            self._finish_later(flow)
            return flow
        self._flows[flow.id] = flow
        if len(ids) > _LONG:  # no pairs: no incremental solves while it runs
            self._long += 1
        else:
            flow.pairs = list(zip(ids, coefs.tolist(), strict=True))
        for link in ids:
            self._on[link][flow.id] = flow
        self._dirty_links.update(ids)
        if not ids:  # touches nothing: runs at its cap
            self._dirty_links.add(-1 - flow.id)
        self._added.append(flow)
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

    def _component(self, dirty: set[int]) -> list[Flow]:
        """Flows connected to the dirty constraints through shared constraints.

        With more than :data:`_SEARCH_LIMIT` flows in the network the search would cost as much
        as solving them all, so every flow is solved.
        """
        if len(self._flows) > _SEARCH_LIMIT:
            return list(self._flows.values())
        seen_links = {link for link in dirty if link >= 0}
        flows: set[int] = {-1 - link for link in dirty if link < 0}
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
        for f in flows:
            dt = now - f.updated
            if dt > 0 and f.rate > 0:
                moved = f.rate * dt
                if moved > f.remaining:
                    moved = f.remaining
                f.remaining -= moved
                f.sent += moved
            f.updated = now

    def _solve_now(self, _event: object = None) -> None:
        self._solve_pending = False
        added = [f for f in self._added if f.id in self._flows]
        self._added = []
        dirty, self._dirty_links = self._dirty_links, set()
        result = self._solve_incremental(added, dirty) if self.incremental else None
        if result is None:
            flows = self._component(dirty)
            if not flows:
                self._schedule_wake()
                return
            result = zip(flows, self._solve_full(flows).tolist(), strict=True)
        else:
            self.incremental_solves += 1
        self.solves += 1
        now = self.env.now
        # progress is folded in lazily: only a flow whose rate changes is advanced to now (at
        # its old rate); the others keep their stamp, and their finish time stays valid
        changed = [(f, rate) for f, rate in result if rate != f.rate or not f.version]
        self._advance([f for f, _ in changed])
        use = self._use
        for f, rate in changed:
            delta = (rate if rate < math.inf else 0.0) - (f.rate if f.rate < math.inf else 0.0)
            if delta:
                for m, a in f.pairs:
                    use[m] += a * delta
            f.rate = rate
            f.version += 1
            if rate > 0 and math.isfinite(f.remaining):
                heapq.heappush(self._heap, (now + f.remaining / rate, f.id, f.version))
            if f.on_rate is not None:
                f.on_rate(f)
        if self.solves % _REFRESH == 0:
            self._refresh_use()
        if (self._unknown and self.incremental and not self._long
                and len(self._unknown) <= _FIND_LIMIT
                and sum(len(self._flows[f].pairs) for f in self._unknown) <= 8 * _FIND_LIMIT):
            self._find_bottlenecks()
        if self.check_each_solve:
            self.check()
        self._schedule_wake()

    def _set_bottleneck(self, f: Flow, m: int) -> None:
        if f.bottleneck == m:
            return
        if f.bottleneck >= 0:
            del self._held[f.bottleneck][f.id]
        elif f.bottleneck == _UNKNOWN:
            self._unknown.discard(f.id)
        f.bottleneck = m
        if m >= 0:
            self._held[m][f.id] = f
            pairs = f.pairs  # its bottleneck first: the constraint a check tries first
            if pairs and pairs[0][0] != m:
                i = next(i for i, (k, _a) in enumerate(pairs) if k == m)
                pairs[0], pairs[i] = pairs[i], pairs[0]
        elif m == _UNKNOWN:
            self._unknown.add(f.id)

    def _find_bottlenecks(self) -> None:
        """Give every flow of unknown bottleneck one (after a full solve)."""
        flows, on, cap, use = self._flows, self._on, self._cap, self._use
        low = 1.0 - _CERT_TOL
        top: dict[int, float] = {}
        for fid in list(self._unknown):
            f = flows[fid]
            r = f.rate
            if r >= f.cap * low:
                self._set_bottleneck(f, -1)
                continue
            for m, _a in f.pairs:
                if cap[m] == math.inf or use[m] < cap[m] * low - 1e-300:
                    continue
                t = top.get(m)
                if t is None:
                    t = top[m] = max([g.rate for g in on[m].values()])
                if r >= t * low:
                    self._set_bottleneck(f, m)
                    break

    def _refresh_use(self) -> None:
        """Recompute every constraint's load from the rates (bounds float drift)."""
        use = [0.0] * len(self._cap)
        for f in self._flows.values():
            if 0 < f.rate < math.inf:
                for m, a in f.pairs:
                    use[m] += a * f.rate
        self._use = use

    def _solve_full(self, flows: list[Flow]) -> np.ndarray:
        """Rates of ``flows`` (a whole component) solved from scratch."""
        for f in flows:
            self._set_bottleneck(f, _UNKNOWN)
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
        return rates

    def _solve_incremental(self, added: list[Flow], dirty: set[int]
                           ) -> list[tuple[Flow, float]] | None:
        """New rates of the flows that change, or None when a full solve is the better deal.

        Certified as the module docstring describes: S (the new flows and those whose
        bottleneck a change touched) is solved with everything else fixed; every flow whose
        certificate may have changed is re-checked; failures join S, until none fail.
        """
        if self._long or not self._flows or len(added) > _INC_LIMIT or len(dirty) > _INC_PAIRS:
            return None
        if self._use_stale:
            self._refresh_use()
            self._use_stale = False
        flows, on, cap, use = self._flows, self._on, self._cap, self._use
        limit = min(_INC_LIMIT, max(16, len(flows) // 2))
        group: dict[int, Flow] = {f.id: f for f in added}
        changed_links = {m for m in dirty if m >= 0}
        held = self._held
        for m in changed_links:
            group.update(held[m])
        if len(group) > limit or sum(len(f.pairs) for f in group.values()) > _INC_PAIRS:
            return None
        low, high = 1.0 - _CERT_TOL, 1.0 + _CERT_TOL
        # these (and new flows) speed up: faster flows held at their other full constraints
        # may have to yield (a guess that saves rounds; the certificate decides)
        for f in list(group.values()):
            for m, _a in f.pairs:
                if m != f.bottleneck and use[m] >= cap[m] * low:
                    for g, h in held[m].items():
                        if g not in group and h.rate > f.rate * high:
                            group[g] = h
                            self._yields(h, group)
        problem = _Residual(cap, use)
        for _round in range(_INC_ROUNDS):
            if len(group) > limit:
                return None
            problem.extend(list(group.values())[len(problem.caps):])
            if problem.pairs > _INC_PAIRS:
                return None
            rates = problem.solve()
            solved = problem.flows
            new = dict(zip(group, rates, strict=True))
            delta: dict[int, float] = {}
            for f, r in zip(solved, rates, strict=True):
                o = f.rate
                if r != o:
                    d = (r if r < math.inf else 0.0) - (o if o < math.inf else 0.0)
                    if d:
                        for m, a in f.pairs:
                            delta[m] = delta.get(m, 0.0) + a * d
            failed, witness = self._certify(solved, changed_links.union(delta), new, delta)
            if not failed:
                for f, m in witness:
                    self._set_bottleneck(f, m)
                return list(zip(solved, rates, strict=True))
            grew = False
            for f in failed:
                if f.id not in new:
                    grew = grew or f.id not in group
                    group[f.id] = f
                    # it speeds up: faster flows held at its other full constraints may yield
                    for m, _a in f.pairs:
                        if m != f.bottleneck and use[m] + delta.get(m, 0.0) >= cap[m] * low:
                            for g, h in held[m].items():
                                if g not in group and h.rate > f.rate * high:
                                    group[g] = h
                    continue
                # a re-solved flow held back by a faster fixed flow: that one must slow down
                r = new[f.id]
                for m, _a in f.pairs:
                    if use[m] + delta.get(m, 0.0) < cap[m] * low:
                        continue  # not full: does not hold it back
                    for g, h in on[m].items():
                        if g not in group and h.rate > r * high:
                            group[g] = h
                            grew = True
                            self._yields(h, group)
            if not grew:
                return None
        return None

    def _certify(self, solved: list[Flow], touched: set[int], new: dict[int, float],
                 delta: dict[int, float]) -> tuple[list[Flow], list[tuple[Flow, int]]]:
        """Check the bottleneck certificate of the solved flows and of every flow held at (or,
        of unknown bottleneck, crossing) a touched constraint, at the rates ``new`` of the
        solved flows (by id; the others keep theirs) and the loads ``use + delta``.

        Returns:
            the flows that fail, and a witness ``(flow, constraint or -1 at its cap)`` for each
            flow that passes.
        """
        on, held, unknown, cap, use = self._on, self._held, self._unknown, self._cap, self._use
        low = 1.0 - _CERT_TOL
        candidates = list(solved)
        for m in touched:
            hm = held[m]
            if hm:
                candidates.extend(h for g, h in hm.items() if g not in new)
            if unknown:
                candidates.extend(on[m][g] for g in on[m].keys() & unknown if g not in new)
        top: dict[int, float] = {}
        seen: set[int] = set()
        witness: list[tuple[Flow, int]] = []
        failed: list[Flow] = []
        for f in candidates:
            if f.id in seen:
                continue
            seen.add(f.id)
            r = new.get(f.id, f.rate)
            if r >= f.cap * low:
                witness.append((f, -1))
                continue
            for m, _a in f.pairs:  # its bottleneck (the likeliest witness) first
                c = cap[m]
                if c == math.inf or use[m] + delta.get(m, 0.0) < c * low - 1e-300:
                    continue
                t = top.get(m)
                if t is None:
                    t = top[m] = max([new.get(g, h.rate) for g, h in on[m].items()])
                if r >= t * low:
                    witness.append((f, m))
                    break
            else:
                failed.append(f)
        return failed, witness

    def _yields(self, h: Flow, group: dict[int, Flow]) -> None:
        """Guess for a flow ``h`` that slows down: the flows held at its other full constraints
        (where it was not the fastest) may speed up; they join ``group``."""
        held, cap, use = self._held, self._cap, self._use
        low = 1.0 - _CERT_TOL
        high = 1.0 + _CERT_TOL
        for m, _a in h.pairs:
            if m != h.bottleneck and use[m] >= cap[m] * low:
                for k, f in held[m].items():
                    if k not in group:
                        group[k] = f
                        # it speeds up: faster flows held at its other full constraints yield
                        for m2, _a2 in f.pairs:
                            if m2 != f.bottleneck and use[m2] >= cap[m2] * low:
                                for g, x in held[m2].items():
                                    if g not in group and x.rate > f.rate * high:
                                        group[g] = x

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

    def _carry(self, flow: Flow) -> None:
        """Add the bytes a flow sent since last counted to the per-constraint totals."""
        moved = flow.sent - flow.counted
        if moved > 0:
            self._bytes[flow.links] += moved * flow.mult
            self._load[flow.links] += moved * flow.coefs
            flow.counted = flow.sent

    @property
    def bytes(self) -> np.ndarray:
        """Bytes carried per constraint (links, then storage disks), up to each active flow's
        last update."""
        for f in self._flows.values():
            self._carry(f)
        return self._bytes

    @property
    def load(self) -> np.ndarray:
        """Capacity-weighted use per constraint (the utilisation numerator: bytes for a link,
        seconds of disk time for a disk), up to each active flow's last update."""
        for f in self._flows.values():
            self._carry(f)
        return self._load

    def _remove(self, flow: Flow) -> None:
        del self._flows[flow.id]
        self._carry(flow)
        if len(flow.links) > _LONG:
            self._long -= 1
            self._use_stale = True
        self._set_bottleneck(flow, -1)
        if 0 < flow.rate < math.inf:
            for m, a in flow.pairs:
                self._use[m] -= a * flow.rate
        for link in flow.links.tolist():
            del self._on[link][flow.id]
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
        carried_bytes, load = self.bytes, self.load
        for i, carried in enumerate(carried_bytes.tolist()):
            if carried <= 0:
                continue
            if i < n_links:
                name, kind = "->".join(self.link_names[i]), self.link_kind[i]
            else:
                name, kind = f"{self.topology.storage[i - n_links]}/disk", "disk"
            util = load[i] / (self.capacity[i] * elapsed) if elapsed > 0 else 0.0
            rows.append({"link": name, "kind": kind, "bytes": carried, "utilization": util})
        rows.sort(key=lambda r: (-r["utilization"], -r["bytes"]))
        return rows

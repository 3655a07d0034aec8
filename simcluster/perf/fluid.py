"""Weighted max-min fair rates with per-flow caps: the pure solvers of the fluid network.

A problem is a sparse incidence matrix ``A`` (flows x constraints), constraint capacities ``c``
and per-flow rate caps. ``A[f, l] > 0`` is flow ``f``'s coefficient on constraint ``l``: 1.0 for
an ordinary link (bytes/s of the flow use bytes/s of the link), other positive values for a
normalised constraint, e.g. a storage disk shared by reads and writes as one constraint of
capacity 1.0 with coefficients ``1/read_bw`` and ``1/write_bw``. A flow may touch no constraint.

The allocation is progressive filling (water-filling; Bertsekas & Gallager, *Data Networks*,
section 6.5.2): all unfrozen flows' rates rise together from 0; a constraint saturates when
``sum_f A[f, l] * rate_f == c_l``, which freezes all its flows; a flow also freezes at its cap.
Since unfrozen flows share one rate, a constraint's *level* ``(c_l - frozen use) / (sum of its
unfrozen coefficients)`` is the rate at which it will saturate, and levels only rise as flows
freeze elsewhere. Both solvers return this allocation; they differ in how they find the next
bottlenecks:

* :func:`maxmin_numpy` freezes every *safe* bottleneck of a round at once: a constraint whose
  level is no higher than any level (or cap) of any of its unfrozen flows cannot change before
  the water reaches it. On regular fabrics most bottlenecks are safe together, so few rounds.
* :func:`maxmin_heap` pops one bottleneck at a time from a heap of levels (lazy deletion),
  touching only the constraints of the flows it freezes: good for heterogeneous instances.
* :func:`maxmin_lists` / :func:`maxmin_pairs` / :func:`maxmin_users` fill one bottleneck at
  a time on plain lists, a constraint used by one flow taken as that flow's cap, the next
  bottleneck found by a scan of the levels when few constraints are shared (a heap when many):
  for the few flows of the network's incremental re-solves, where building arrays costs more
  than solving (not in :data:`SOLVERS`).

Infinite capacities never constrain; a flow with no finite constraint runs at its cap (inf if
none). Zero-capacity constraints freeze their flows at rate 0.

>>> import numpy as np, scipy.sparse as sp
>>> a = sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]))  # parking lot, 2 links
>>> maxmin_numpy(a, np.array([10.0, 10.0]), np.full(3, np.inf)).tolist()
[5.0, 5.0, 5.0]
>>> maxmin_heap(a, np.array([10.0, 4.0]), np.array([np.inf, 1.0, np.inf])).tolist()
[2.0, 1.0, 2.0]
>>> sorted(SOLVERS)
['dense', 'heap', 'numpy']
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from simcluster.registry import Registry

__all__ = ["REL_TOL", "SOLVERS", "Solver", "maxmin_dense", "maxmin_heap", "maxmin_lists",
           "maxmin_numpy", "maxmin_pairs", "maxmin_users"]

#: Relative tolerance within which two levels count as equal (one bottleneck, one round).
REL_TOL = 1e-9

Solver = Callable[[sp.csr_matrix, np.ndarray, np.ndarray], np.ndarray]

#: The max-min solvers by name: ``SOLVERS.get(name)(incidence, capacity, caps) -> rates``.
SOLVERS: Registry[Solver] = Registry("fluid solver")


def _prepare(incidence: sp.spmatrix, capacity: np.ndarray, caps: np.ndarray
             ) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Validate and normalise a problem.

    Drops zero entries and infinite-capacity constraints, and renumbers the constraints to the
    ones some flow uses (a whole fabric may be passed while few of its links carry flows).
    """
    a = sp.csr_matrix(incidence, dtype=np.float64, copy=True)
    capacity = np.asarray(capacity, dtype=np.float64).reshape(-1)
    caps = np.asarray(caps, dtype=np.float64).reshape(-1)
    n_flows, n_links = a.shape
    if capacity.shape != (n_links,) or caps.shape != (n_flows,):
        raise ValueError(f"incidence is {a.shape}, but capacity has {capacity.size} entries "
                         f"and caps {caps.size}")
    if np.isnan(capacity).any() or (capacity < 0).any():
        raise ValueError("capacities must be >= 0")
    if np.isnan(caps).any() or (caps < 0).any():
        raise ValueError("rate caps must be >= 0")
    if not np.isfinite(a.data).all() or (a.data < 0).any():
        raise ValueError("incidence coefficients must be finite and >= 0")
    a.data[~np.isfinite(capacity)[a.indices]] = 0.0  # infinite capacity: never a constraint
    a.eliminate_zeros()
    a.sum_duplicates()
    used = np.unique(a.indices)  # keep only constraints some flow uses (renumbered)
    if used.size < n_links:
        renumber = np.zeros(n_links, dtype=a.indices.dtype)
        renumber[used] = np.arange(used.size, dtype=a.indices.dtype)
        a = sp.csr_matrix((a.data, renumber[a.indices], a.indptr), shape=(n_flows, used.size))
        capacity = capacity[used]
    return a, capacity, caps


@SOLVERS.register("numpy")
def maxmin_numpy(incidence: sp.csr_matrix, capacity: np.ndarray, caps: np.ndarray
                 ) -> np.ndarray:
    """Weighted max-min fair rates, freezing every safe bottleneck of a round at once.

    Each round computes every unsaturated constraint's level (remaining capacity over the sum of
    its unfrozen flows' coefficients), each unfrozen flow's lowest level on its path and its cap,
    and freezes (1) all flows of every constraint whose level is no higher (within
    :data:`REL_TOL`) than the path level or cap of each of its unfrozen flows, and (2) every flow
    whose cap is no higher than every level on its path. The global minimum is always safe, so
    each round freezes at least one flow; a fabric of identical links needs a few rounds.

    Args:
        incidence: (n_flows, n_links) sparse coefficients, > 0 where a flow uses a constraint
            (1.0 for a link; e.g. 1/bandwidth in s/byte for a normalised constraint).
        capacity: (n_links,) constraint capacities, >= 0 (bytes/s, or 1.0 when normalised).
        caps: (n_flows,) per-flow rate caps in bytes/s (``np.inf`` for none).

    Returns:
        (n_flows,) rates in bytes/s; ``inf`` for a flow with no finite constraint and no cap.
    """
    a, capacity, caps = _prepare(incidence, capacity, caps)
    n_flows, n_links = a.shape
    at = a.T.tocsr()
    rates = np.zeros(n_flows)
    counts = np.diff(a.indptr)
    frozen = counts == 0  # no finite constraint: runs at its cap
    rates[frozen] = caps[frozen]
    # entries of the still-active flows, grouped by flow (rows) and by constraint (cols)
    rows = np.repeat(np.arange(n_flows), counts)
    r_rows, r_cols = rows, a.indices
    order = np.argsort(a.indices, kind="stable")
    c_rows, c_cols = rows[order], a.indices[order]
    slack = 1.0 + REL_TOL
    while not frozen.all():
        keep = ~frozen[r_rows]
        r_rows, r_cols = r_rows[keep], r_cols[keep]
        keep = ~frozen[c_rows]
        c_rows, c_cols = c_rows[keep], c_cols[keep]
        active = (~frozen).astype(np.float64)
        weight = at @ active  # sum of unfrozen coefficients per constraint
        remaining = np.maximum(capacity - at @ rates, 0.0)  # unfrozen rates are 0 in `rates`
        level = np.full(n_links, np.inf)
        np.divide(remaining, weight, out=level, where=weight > 0)
        # lowest level on each unfrozen flow's path, then with its cap
        starts = _group_starts(r_rows)
        path = np.full(n_flows, np.inf)
        path[r_rows[starts]] = np.minimum.reduceat(level[r_cols], starts)
        flow_level = np.minimum(path, caps)
        flow_level[frozen] = np.inf
        # lowest flow level among each constraint's unfrozen flows
        starts = _group_starts(c_cols)
        lowest = np.full(n_links, np.inf)
        lowest[c_cols[starts]] = np.minimum.reduceat(flow_level[c_rows], starts)
        safe = (weight > 0) & (level <= lowest * slack)
        new = np.zeros(n_flows, dtype=bool)
        new[r_rows[safe[r_cols]]] = True
        new |= ~frozen & (caps <= path * slack)
        if not new.any():  # impossible for valid input: the global minimum is always safe
            raise RuntimeError("max-min solver made no progress (NaN in the problem?)")
        rates[new] = flow_level[new]
        frozen |= new
    return rates


@SOLVERS.register("dense")
def maxmin_dense(incidence: np.ndarray | sp.spmatrix, capacity: np.ndarray, caps: np.ndarray
                 ) -> np.ndarray:
    """Weighted max-min fair rates by plain progressive filling on a dense matrix.

    For the small components that most solves touch (a few flows on a few links) dense numpy
    beats building sparse matrices by an order of magnitude. Each round freezes every unfrozen
    flow whose level (the lowest level on its path, or its cap) equals the global minimum within
    :data:`REL_TOL`; one round per distinct bottleneck level.

    Args:
        incidence: (n_flows, n_links) coefficients, dense or sparse (see :func:`maxmin_numpy`).
        capacity, caps: as for :func:`maxmin_numpy`.
    """
    a = incidence.toarray() if sp.issparse(incidence) else np.asarray(incidence, dtype=float)
    capacity = np.asarray(capacity, dtype=float)
    caps = np.asarray(caps, dtype=float)
    a = np.where(np.isfinite(capacity)[None, :], a, 0.0)
    uses = a > 0
    n_flows = a.shape[0]
    rates = np.zeros(n_flows)
    frozen = ~uses.any(axis=1)
    rates[frozen] = caps[frozen]
    slack = 1.0 + REL_TOL
    while not frozen.all():
        active = ~frozen
        weight = active @ a
        # flows with no finite constraint may run at an infinite rate; they load nothing
        remaining = np.maximum(capacity - np.where(np.isfinite(rates), rates, 0.0) @ a, 0.0)
        level = np.full(len(capacity), np.inf)
        np.divide(remaining, weight, out=level, where=weight > 0)
        path = np.where(uses, level[None, :], np.inf).min(axis=1)
        flow_level = np.minimum(path, caps)
        flow_level[frozen] = np.inf
        new = active & (flow_level <= flow_level.min() * slack)
        if not new.any():  # impossible for valid input
            raise RuntimeError("max-min solver made no progress (NaN in the problem?)")
        rates[new] = flow_level[new]
        frozen |= new
    return rates


def maxmin_lists(paths: Sequence[Sequence[int]], coefs: Sequence[Sequence[float]],
                 capacity: Mapping[int, float] | Sequence[float], caps: Sequence[float]
                 ) -> list[float]:
    """Weighted max-min fair rates of a small problem given as lists, in plain Python.

    The algorithm of :func:`maxmin_heap` (one bottleneck at a time, only the constraints of
    frozen flows updated) without building arrays: for the few flows of an incremental
    re-solve (:class:`simcluster.engine.network.Network`) a numpy call costs more than the
    whole solve. A constraint used by one flow is taken as its rate cap, and with few shared
    constraints the next bottleneck is found by a scan instead of a heap
    (:func:`maxmin_users`). Inputs are not validated.

    Args:
        paths: each flow's constraint ids (no repeats); coefs: its coefficient on each.
        capacity: capacity per constraint id (a mapping or a sequence indexed by id).
        caps: per-flow rate caps (``inf`` for none).

    Returns:
        rates per flow; ``inf`` for a flow with no finite constraint and no cap.

    >>> maxmin_lists([[0, 1], [0], [1]], [[1.0, 1.0], [1.0], [1.0]], [10.0, 4.0],
    ...              [math.inf, 1.0, math.inf])
    [2.0, 1.0, 2.0]
    """
    return maxmin_pairs([list(zip(p, c, strict=True)) for p, c in zip(paths, coefs, strict=True)],
                        capacity, caps)


def maxmin_pairs(flows: Sequence[Sequence[tuple[int, float]]],
                 capacity: Mapping[int, float] | Sequence[float], caps: Sequence[float]
                 ) -> list[float]:
    """:func:`maxmin_lists` with each flow given as ``(constraint, coefficient)`` pairs.

    Regroups the pairs by constraint (dropping zero coefficients) and solves with
    :func:`maxmin_users`; a capacity below zero (float noise in a residual) counts as zero.
    """
    users: dict[int, list[tuple[int, float]]] = {}
    cap_of: list[float] = []  # in the order of users
    for f, pairs in enumerate(flows):
        for m, a in pairs:
            if a > 0:
                u = users.get(m)
                if u is None:
                    users[m] = [(f, a)]
                    cap_of.append(capacity[m])
                else:
                    u.append((f, a))
    return maxmin_users(users.values(), cap_of, caps)


def maxmin_users(users: Iterable[Sequence[tuple[int, float]]], capacity: Iterable[float],
                 caps: Sequence[float]) -> list[float]:
    """The solver of :func:`maxmin_lists` on a problem given by constraint.

    A constraint used by one flow only is that flow's rate cap (``capacity / coefficient``):
    it saturates exactly when the flow reaches that rate. Only constraints shared by several
    flows take part in the filling, renumbered to list indices, so that a small problem (the
    few flows of an incremental re-solve) costs one pass over its pairs and a short filling.

    Args:
        users: per constraint, its flows as ``(flow index, coefficient > 0)`` pairs.
        capacity: per constraint, in the order of ``users``; below zero counts as zero, inf
            never binds.
        caps: per-flow rate caps (``inf`` for none), indexed by flow index.

    Returns:
        rates per flow index; ``inf`` for a flow with no finite constraint and no cap.

    >>> maxmin_users([[(0, 1.0), (1, 1.0)], [(0, 1.0), (2, 1.0)]], [10.0, 4.0],
    ...              [math.inf, math.inf, math.inf])
    [2.0, 8.0, 2.0]
    """
    inf = math.inf
    fill = _Filling(list(caps))  # flows never frozen below keep their cap (inf: unconstrained)
    rates, own = fill.rates, fill.own
    remaining, weight, left, shared = fill.remaining, fill.weight, fill.left, fill.shared
    for u, c in zip(users, capacity, strict=True):
        if len(u) == 1:  # one flow: a rate cap
            f, a = u[0]
            if c < rates[f] * a:
                rates[f] = c / a if c > 0.0 else 0.0
            continue
        if c == inf:
            continue
        j = len(remaining)
        w = 0.0
        for f, a in u:
            own[f].append((j, a))
            w += a
        remaining.append(c if c > 0.0 else 0.0)
        weight.append(w)
        left.append(len(u))
        shared.append(u)
    if not remaining:
        return rates
    fill.exact = list(weight)
    fill.current = [c / w for c, w in zip(remaining, weight, strict=True)]
    if len(remaining) <= _SCAN:
        return fill.by_scan()
    return fill.by_heap()


# Up to this many shared constraints, the next bottleneck is found by a scan (min() over the
# levels, a C loop) instead of a heap: measured on the re-solves of benchmarks/bench_network.py
# (~10 shared constraints each), the scan costs ~18% less than the heap's pops of tuples.
_SCAN = 64


class _Filling:
    """Progressive filling over the shared constraints of :func:`maxmin_users`."""

    __slots__ = ("rates", "own", "remaining", "weight", "left", "shared", "exact", "current",
                 "frozen")

    def __init__(self, rates: list[float]) -> None:
        self.rates = rates
        self.own: list[list[tuple[int, float]]] = [[] for _ in rates]  # flow -> [(j, coef)]
        self.remaining: list[float] = []  # capacity not yet used by frozen flows, per j
        self.weight: list[float] = []  # sum of the unfrozen flows' coefficients, per j
        self.left: list[int] = []  # unfrozen flows per j (exact zero test)
        self.shared: list[Sequence[tuple[int, float]]] = []  # its (flow, coef) pairs, per j
        self.exact: list[float] = []  # each weight when last summed exactly (cancellation)
        self.current: list[float] = []  # level per j (inf once all its flows are frozen)
        self.frozen = [False] * len(rates)

    def freeze(self, newly: Sequence[int], level: float) -> list[int]:
        """Freeze flows at ``level``; the shared constraints whose (finite) level changed."""
        rates, frozen, remaining, weight, left = (self.rates, self.frozen, self.remaining,
                                                   self.weight, self.left)
        touched = set()
        for f in newly:
            frozen[f] = True
            rates[f] = level
            for j, a in self.own[f]:
                remaining[j] -= a * level
                weight[j] -= a
                left[j] -= 1
                touched.add(j)
        current, exact = self.current, self.exact
        changed = []
        for j in touched:
            if not left[j]:
                current[j] = math.inf
                continue
            if weight[j] < 1e-6 * exact[j]:  # mixed coefficients cancelled: re-sum
                weight[j] = exact[j] = sum(a for f, a in self.shared[j] if not frozen[f])
            r = remaining[j]
            new = (r if r > 0.0 else 0.0) / weight[j]
            if new != current[j]:
                current[j] = new
                changed.append(j)
        return changed

    def by_scan(self) -> list[float]:
        """Next bottleneck by a scan of the levels and a sorted list of caps (few constraints)."""
        inf, current, frozen, shared = math.inf, self.current, self.frozen, self.shared
        # a flow on no shared constraint already has its rate: only the others' caps can bind
        capped = sorted((c, f) for f, c in enumerate(self.rates) if c != inf and self.own[f])
        ci, nc = 0, len(capped)
        while True:
            level = min(current)
            while ci < nc and frozen[capped[ci][1]]:
                ci += 1
            if ci < nc and capped[ci][0] <= level:
                level, f = capped[ci]
                ci += 1
                self.freeze((f,), level)
            elif level == inf:
                return self.rates
            else:
                self.freeze([f for f, _ in shared[current.index(level)] if not frozen[f]], level)

    def by_heap(self) -> list[float]:
        """Next bottleneck from a heap of levels and caps, stale entries skipped (lazy)."""
        inf, current, frozen, shared, left = (math.inf, self.current, self.frozen, self.shared,
                                              self.left)
        # (level, j) for shared constraint j, valid while current[j] == level; (cap, -1 - f)
        heap = [(level, j) for j, level in enumerate(current)]
        heap.extend((c, -1 - f) for f, c in enumerate(self.rates) if c != inf and self.own[f])
        heapq.heapify(heap)
        while heap:
            level, idx = heapq.heappop(heap)
            if idx < 0:
                if frozen[-1 - idx]:
                    continue
                newly: Sequence[int] = (-1 - idx,)
            else:
                if current[idx] != level or not left[idx]:
                    continue
                newly = [f for f, _ in shared[idx] if not frozen[f]]
            for j in self.freeze(newly, level):
                heapq.heappush(heap, (current[j], j))
        return self.rates


def _group_starts(keys: np.ndarray) -> np.ndarray:
    """Start offsets of the runs of equal values in a grouped (e.g. sorted) array."""
    if keys.size == 0:
        return np.zeros(0, dtype=np.intp)
    return np.concatenate(([0], np.flatnonzero(keys[1:] != keys[:-1]) + 1))


@SOLVERS.register("heap")
def maxmin_heap(incidence: sp.csr_matrix, capacity: np.ndarray, caps: np.ndarray
                ) -> np.ndarray:
    """Weighted max-min fair rates by classic progressive filling, one bottleneck at a time.

    A heap holds each constraint's level and each finite cap; stale levels are skipped when
    popped (lazy deletion). Popping a constraint freezes its unfrozen flows at its level and
    updates only the constraints those flows use; popping a cap freezes that flow. Work is
    O(nnz log nnz), independent of how regular the instance is.

    Args:
        incidence: (n_flows, n_links) sparse coefficients, > 0 where a flow uses a constraint
            (1.0 for a link; e.g. 1/bandwidth in s/byte for a normalised constraint).
        capacity: (n_links,) constraint capacities, >= 0 (bytes/s, or 1.0 when normalised).
        caps: (n_flows,) per-flow rate caps in bytes/s (``np.inf`` for none).

    Returns:
        (n_flows,) rates in bytes/s; ``inf`` for a flow with no finite constraint and no cap.
    """
    a, capacity, caps = _prepare(incidence, capacity, caps)
    n_flows, n_links = a.shape
    at = a.T.tocsr()
    f_ptr, f_links, f_coef = a.indptr.tolist(), a.indices.tolist(), a.data.tolist()
    l_ptr, l_flows, l_coef = at.indptr.tolist(), at.indices.tolist(), at.data.tolist()
    remaining = capacity.tolist()
    weight = np.asarray(a.sum(axis=0)).reshape(-1).tolist()
    exact = list(weight)  # each weight when last summed exactly (guards cancellation)
    users = np.diff(at.indptr).tolist()  # unfrozen flows per constraint (exact zero test)
    current = [remaining[m] / weight[m] if users[m] else np.inf for m in range(n_links)]
    rates = caps.tolist()  # flows never frozen below keep their cap (inf: unconstrained)
    frozen = [False] * n_flows
    # (level, m) for constraint m, valid while current[m] == level; (cap, -1 - f) for flow f
    heap = [(level, m) for m, level in enumerate(current) if users[m]]
    heap.extend((c, -1 - f) for f, c in enumerate(rates) if c != np.inf)
    heapq.heapify(heap)
    while heap:
        level, idx = heapq.heappop(heap)
        if idx < 0:
            if frozen[-1 - idx]:
                continue
            newly = [-1 - idx]
        else:
            if not users[idx] or current[idx] != level:
                continue
            newly = [f for f in l_flows[l_ptr[idx]:l_ptr[idx + 1]] if not frozen[f]]
        touched: set[int] = set()
        for f in newly:
            frozen[f] = True
            rates[f] = level
            for k in range(f_ptr[f], f_ptr[f + 1]):
                m, coef = f_links[k], f_coef[k]
                remaining[m] -= coef * level
                weight[m] -= coef
                users[m] -= 1
                touched.add(m)
        for m in touched:
            if not users[m]:
                current[m] = np.inf
                continue
            if weight[m] < 1e-6 * exact[m]:  # mixed coefficients cancelled: re-sum
                weight[m] = exact[m] = sum(
                    l_coef[k] for k in range(l_ptr[m], l_ptr[m + 1]) if not frozen[l_flows[k]])
            new = (remaining[m] if remaining[m] > 0.0 else 0.0) / weight[m]
            if new != current[m]:
                current[m] = new
                heapq.heappush(heap, (new, m))
    return np.array(rates, dtype=np.float64)

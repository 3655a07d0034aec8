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
* :func:`maxmin_lists` / :func:`maxmin_pairs` run the heap algorithm on plain lists, after
  dropping the constraints that cannot bind: for the few flows of the network's incremental
  re-solves, where building arrays costs more than solving (not in :data:`SOLVERS`).

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
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from simcluster.registry import Registry

__all__ = ["REL_TOL", "SOLVERS", "Solver", "maxmin_dense", "maxmin_heap", "maxmin_lists",
           "maxmin_numpy", "maxmin_pairs"]

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

    The algorithm of :func:`maxmin_heap` (one bottleneck per pop from a heap of levels, lazy
    deletion, only the constraints of frozen flows updated) without building arrays: for the
    few flows of an incremental re-solve (:class:`simcluster.engine.network.Network`) a numpy
    call costs more than the whole solve. Constraints that cannot bind are dropped first
    (:func:`maxmin_pairs`). Inputs are not validated.

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

    Before the heap, every constraint that cannot bind is dropped: with ``bound_f`` the rate a
    flow would get alone (its cap, or its tightest ``capacity / coefficient``), a constraint
    with ``sum_f coef_f * bound_f < capacity`` is never full, so the max-min rates are the same
    without it. Dropping it changes no bound: a flow's tightest constraint carries at least
    ``coef * bound = capacity`` and is never dropped.
    """
    n = len(flows)
    inf = math.inf
    cap_of: dict[int, float] = {}  # capacities in use; below zero (float noise) counts as zero
    own: list[list[tuple[int, float]]] = []
    bound: list[float] = []
    for f in range(n):
        b = caps[f]
        kept = []
        for m, a in flows[f]:
            if a > 0:
                c = cap_of.get(m)
                if c is None:
                    c = capacity[m]
                    if c < 0.0:
                        c = 0.0
                    cap_of[m] = c
                if c != inf:
                    kept.append((m, a))
                    if c < b * a:
                        b = c / a
        own.append(kept)
        bound.append(b)
    load = dict.fromkeys(cap_of, 0.0)
    for f in range(n):
        b = bound[f]
        for m, a in own[f]:
            load[m] += a * b
    keep = 1.0 - 4 * REL_TOL
    loose = {m for m, x in load.items() if x < cap_of[m] * keep}
    if loose:
        own = [[(m, a) for m, a in pairs if m not in loose] for pairs in own]
    capacity = cap_of
    rates = list(caps)  # flows never frozen below keep their cap (inf: unconstrained)
    frozen = [False] * n
    remaining: dict[int, float] = {}
    weight: dict[int, float] = {}
    users: dict[int, list[tuple[int, float]]] = {}  # constraint -> [(flow, coef)]
    for f, pairs in enumerate(own):
        for m, a in pairs:
            if m in users:
                users[m].append((f, a))
                weight[m] += a
            else:
                users[m] = [(f, a)]
                weight[m] = a
                remaining[m] = capacity[m]
    exact = dict(weight)
    left = {m: len(u) for m, u in users.items()}  # unfrozen flows per constraint
    current = {m: (remaining[m] if remaining[m] > 0.0 else 0.0) / weight[m] for m in users}
    heap = [(level, m) for m, level in current.items()]
    heap.extend((c, -1 - f) for f, c in enumerate(rates) if c != inf and own[f])
    heapq.heapify(heap)
    while heap:
        level, idx = heapq.heappop(heap)
        if idx < 0:
            if frozen[-1 - idx]:
                continue
            newly = [-1 - idx]
        else:
            if not left[idx] or current[idx] != level:
                continue
            newly = [f for f, _ in users[idx] if not frozen[f]]
        touched = set()
        for f in newly:
            frozen[f] = True
            rates[f] = level
            for m, a in own[f]:
                remaining[m] -= a * level
                weight[m] -= a
                left[m] -= 1
                touched.add(m)
        for m in touched:
            if not left[m]:
                current[m] = inf
                continue
            if weight[m] < 1e-6 * exact[m]:  # mixed coefficients cancelled: re-sum
                weight[m] = exact[m] = sum(a for f, a in users[m] if not frozen[f])
            new = (remaining[m] if remaining[m] > 0.0 else 0.0) / weight[m]
            if new != current[m]:
                current[m] = new
                heapq.heappush(heap, (new, m))
    return rates


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

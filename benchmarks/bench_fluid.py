"""Benchmark of the max-min solvers (simcluster.perf.fluid) against a plain full re-solve.

Run ``python benchmarks/bench_fluid.py`` (``--quick`` for k=8 only). On k=16 and k=32 k-ary
fat-trees, 1k and 10k random host-to-host flows (one GPU per host, source and destination on
different hosts, one directed link per graph edge with its bandwidth as capacity, no rate
caps) are solved by:

* ``numpy``: :func:`~simcluster.perf.fluid.maxmin_numpy` (every safe bottleneck per round);
* ``heap``: :func:`~simcluster.perf.fluid.maxmin_heap` (one bottleneck per pop, incremental);
* ``baseline``: :func:`plain_full_resolve` below, the textbook progressive filling loop: each
  round recomputes every link's level from scratch and freezes only the flows of the globally
  lowest level (and flows capped below it), so it needs one round per distinct bottleneck level.

All three answers are checked to agree (1e-9 relative). A last line times a staircase chain
(:func:`staircase`), the instance where safe bottlenecks come one at a time and the heap wins.
Times are wall seconds per solve, the best of a few repeats, all measured in one run; ratios
are baseline time / solver time (higher is faster).

Routes come from :class:`simcluster.routing.Router`, except inter-pod routes of the k-ary
fat-tree: Router resolves those with networkx shortest paths (about 15 ms a route at
k=16, 150 ms at k=32), so they are built here in closed form (host NIC, edge, aggregation a of
the source pod, core a*k/2 + c, aggregation a of the destination pod, edge, NIC) with the
ECMP choice among the (k/2)^2 paths made by ``Router.choose``, as Router does.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from simcluster.perf.fluid import REL_TOL, maxmin_heap, maxmin_numpy
from simcluster.rng import Streams
from simcluster.routing import Router
from simcluster.topology import Topology, fat_tree


def plain_full_resolve(incidence: sp.csr_matrix, capacity: np.ndarray, caps: np.ndarray
                       ) -> np.ndarray:
    """Progressive filling, one water level per round, every level recomputed each round.

    The reference a simulator without a specialised solver would write: per round, sum every
    link's frozen load and unfrozen coefficients over the whole matrix, take the lowest level
    (or cap) as the new water level, freeze the flows of every link at that level (within
    REL_TOL) and every flow capped at or below it. Infinite capacities are not handled.
    """
    a = sp.csr_matrix(incidence, dtype=np.float64)
    at = a.T.tocsr()
    n_flows = a.shape[0]
    rates = np.zeros(n_flows)
    frozen = np.diff(a.indptr) == 0
    rates[frozen] = caps[frozen]
    while not frozen.all():
        weight = at @ (~frozen).astype(np.float64)
        remaining = np.maximum(capacity - at @ rates, 0.0)
        level = np.full(capacity.shape, np.inf)
        np.divide(remaining, weight, out=level, where=weight > 0)
        water = min(level.min(), caps[~frozen].min())
        bottleneck = (level <= water * (1 + REL_TOL)).astype(np.float64)
        new = ~frozen & (((a @ bottleneck) > 0) | (caps <= water * (1 + REL_TOL)))
        rates[new] = np.minimum(water, caps[new])
        frozen |= new
    return rates


def fat_tree_route(topology: Topology, router: Router, src: str, dst: str) -> list[tuple]:
    """Directed edges of a route between two GPUs of different hosts of a k-ary fat-tree."""
    nodes = topology.graph.nodes
    up, down = nodes[src]["nic"], nodes[dst]["nic"]
    leaf_s = next(n for n in topology.graph.successors(up) if nodes[n]["kind"] == "leaf")
    leaf_d = next(n for n in topology.graph.successors(down) if nodes[n]["kind"] == "leaf")
    p, q = nodes[leaf_s]["pod"], nodes[leaf_d]["pod"]
    if p == q:  # the closed form of Router covers it
        return list(router.route(src, dst))
    half = sum(1 for n in topology.graph.successors(leaf_s) if nodes[n]["kind"] == "spine")
    options = [(a, c) for a in range(half) for c in range(half)]
    a, c = router.choose(src, dst, options)
    path = [src, up, leaf_s, f"spine{p * half + a}", f"core{a * half + c}",
            f"spine{q * half + a}", leaf_d, down, dst]
    edges = list(zip(path[:-1], path[1:], strict=True))
    assert all(topology.graph.has_edge(*e) for e in edges), edges
    return edges


def build(k: int, n_flows: int) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, float]:
    """The incidence, capacities and caps of ``n_flows`` random flows on a k-ary fat-tree."""
    start = time.perf_counter()
    topology = fat_tree(k)
    router = Router(topology)
    link = {e: i for i, e in enumerate(topology.graph.edges)}
    capacity = np.array([d["bandwidth"] for *_, d in topology.graph.edges(data=True)])
    rng = Streams(0).get("bench")
    n_hosts = len(topology.hosts)
    src = rng.integers(0, n_hosts, n_flows)
    dst = (src + rng.integers(1, n_hosts, n_flows)) % n_hosts  # never the source host
    rows, cols = [], []
    for f, (s, d) in enumerate(zip(src.tolist(), dst.tolist(), strict=True)):
        gs = topology.gpus[topology.gpus_of_host(s)[0]]
        gd = topology.gpus[topology.gpus_of_host(d)[0]]
        ids = [link[e] for e in fat_tree_route(topology, router, gs, gd)]
        rows += [f] * len(ids)
        cols += ids
    incidence = sp.csr_matrix((np.ones(len(rows)), (rows, cols)),
                              shape=(n_flows, len(link)))
    return incidence, capacity, np.full(n_flows, np.inf), time.perf_counter() - start


def staircase(n: int) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """A chain of n links where each bottleneck unlocks only the next: numpy's worst case.

    Link i has capacity 3 + i/n; flow i < n-1 crosses links i and i+1; one more flow per link
    crosses only that link. Each link's level is just above its predecessor's and they share
    a flow, so only the lowest unsaturated link is safe in each round: about n rounds of the
    vectorised solver, each over the whole problem, against n cheap pops of the heap.
    """
    rows = [*np.repeat(np.arange(n - 1), 2).tolist(), *range(n - 1, 2 * n - 1)]
    cols = [c for i in range(n - 1) for c in (i, i + 1)] + list(range(n))
    incidence = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(2 * n - 1, n))
    return incidence, 3 + np.arange(n) / n, np.full(2 * n - 1, np.inf)


def timed(solve: Callable, args: tuple, budget: float = 2.0, most: int = 5
          ) -> tuple[float, np.ndarray]:
    """Best wall time of up to ``most`` solves (stops once ``budget`` seconds are spent)."""
    best, spent, out = np.inf, 0.0, None
    for _ in range(most):
        t0 = time.perf_counter()
        out = solve(*args)
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
        if spent > budget:
            break
    return best, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="k=8 only (a smoke run)")
    args = parser.parse_args(argv)
    cases = [(8, 1000), (8, 10_000)] if args.quick else [
        (16, 1000), (16, 10_000), (32, 1000), (32, 10_000)]
    print(f"python {' '.join(sys.argv)}\n")
    print("| k | hosts | links (used) | flows | nnz | distinct rates | baseline s | numpy s "
          "| heap s | numpy speed-up | heap speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for k, n in cases:
        incidence, capacity, caps, _ = build(k, n)
        problem = (incidence, capacity, caps)
        t_base, r_base = timed(plain_full_resolve, problem)
        t_np, r_np = timed(maxmin_numpy, problem)
        t_heap, r_heap = timed(maxmin_heap, problem)
        for r in (r_np, r_heap):
            np.testing.assert_allclose(r, r_base, rtol=1e-9)
        distinct = np.unique(np.round(r_heap / r_heap.max(), 9)).size
        used = np.unique(incidence.indices).size
        print(f"| {k} | {k ** 3 // 4} | {capacity.size} ({used}) | {n} | {incidence.nnz} "
              f"| {distinct} "
              f"| {t_base:.4f} | {t_np:.4f} | {t_heap:.4f} | {t_base / t_np:.1f}x "
              f"| {t_base / t_heap:.1f}x |", flush=True)
    n = 500 if args.quick else 2000
    problem = staircase(n)
    times = {}
    for name, solve in [("baseline", plain_full_resolve), ("numpy", maxmin_numpy),
                        ("heap", maxmin_heap)]:
        times[name], _ = timed(solve, problem)
    print(f"\nStaircase chain of {n} links ({problem[0].shape[0]} flows, ~{n} numpy rounds): "
          + ", ".join(f"{name} {t:.4f} s ({times['baseline'] / t:.1f}x)"
                      for name, t in times.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

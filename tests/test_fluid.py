"""The max-min solvers of simcluster.perf.fluid: textbook instances and properties."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from simcluster.perf import fluid
from simcluster.perf.fluid import (
    SOLVERS,
    maxmin_dense,
    maxmin_heap,
    maxmin_lists,
    maxmin_numpy,
    maxmin_pairs,
)

INF = np.inf
RTOL = 1e-9
solvers = pytest.mark.parametrize("solve", [maxmin_numpy, maxmin_heap], ids=["numpy", "heap"])


def problem(paths, n_links, coef=None):
    """Incidence of flows given as lists of link ids (coefficient 1.0 unless given)."""
    a = sp.lil_matrix((len(paths), n_links))
    for f, path in enumerate(paths):
        for link in path:
            a[f, link] = 1.0 if coef is None else coef[f]
    return a.tocsr()


def check_maxmin(a, capacity, caps, rates):
    """Feasibility and the max-min certificate (bottleneck characterisation).

    Fairness is over rates (all unfrozen flows rise together); coefficients only weigh how much
    of a constraint a flow uses. So an allocation is max-min fair iff it is feasible and every
    flow below its cap has a saturated constraint on which no other flow has a higher rate.
    """
    a = sp.csr_matrix(a)
    finite = np.isfinite(capacity)
    load = a.T @ np.where(np.isfinite(rates), rates, 0.0)
    scale = max(1.0, float(np.max(capacity[finite], initial=0.0)))
    assert np.all(rates >= 0)
    assert np.all(rates <= caps * (1 + RTOL) + RTOL * scale)
    assert np.all(load[finite] <= capacity[finite] * (1 + RTOL) + 1e-12 * scale)
    saturated = finite & (load >= capacity * (1 - RTOL) - 1e-12 * scale)
    for f in range(a.shape[0]):
        if rates[f] >= caps[f] * (1 - RTOL):
            continue
        links = a.indices[a.indptr[f]:a.indptr[f + 1]]
        assert links.size, f"flow {f} below its cap but uses no link"
        ok = False
        for link in links[saturated[links]]:
            others = a.T.tocsr()[link].indices
            if np.all(rates[f] >= rates[others] * (1 - RTOL) - 1e-12 * scale):
                ok = True
                break
        assert ok, f"flow {f} (rate {rates[f]}) has no bottleneck"


def test_registry_names():
    assert SOLVERS.names() == ["dense", "heap", "numpy"]
    assert SOLVERS.get("numpy") is maxmin_numpy and SOLVERS.get("heap") is maxmin_heap


@solvers
@pytest.mark.parametrize("cap", [INF, 2.0, 3.0, 5.0])
def test_one_flow_alone_gets_its_bottleneck_or_cap(solve, cap):
    capacity = np.array([10.0, 3.0, 7.0, 1.0])  # the flow uses links 0..2, not link 3
    rates = solve(problem([[0, 1, 2]], 4), capacity, np.array([cap]))
    assert rates == pytest.approx([min(3.0, cap)], rel=RTOL)


@solvers
@pytest.mark.parametrize("n", [1, 2, 3, 7, 100])
def test_n_equal_flows_on_one_link_get_one_nth(solve, n):
    rates = solve(problem([[0]] * n, 1), np.array([1.0]), np.full(n, INF))
    assert rates == pytest.approx(np.full(n, 1.0 / n), rel=RTOL)


@solvers
@pytest.mark.parametrize("n", [1, 2, 5, 20])
def test_parking_lot(solve, n):
    # n links of capacity C in a line; flow 0 crosses all of them, flow i+1 only link i.
    # Every link carries exactly two flows, so all levels are C/2 and every link saturates at
    # once when the common rate reaches C/2: the long flow and each short flow get C/2.
    c = 8.0
    paths = [list(range(n))] + [[i] for i in range(n)]
    rates = solve(problem(paths, n), np.full(n, c), np.full(n + 1, INF))
    assert rates == pytest.approx(np.full(n + 1, c / 2), rel=RTOL)
    # With link 0 halved (C/2), link 0 saturates first at C/4 (its two flows freeze there);
    # on every other link the short flow then takes the rest, C - C/4 = 3C/4.
    capacity = np.full(n, c)
    capacity[0] = c / 2
    rates = solve(problem(paths, n), capacity, np.full(n + 1, INF))
    assert rates == pytest.approx([c / 4, c / 4] + [3 * c / 4] * (n - 1), rel=RTOL)


@solvers
def test_flows_with_different_bottlenecks(solve):
    # Links L0 (cap 1), L1 (cap 2), L2 (cap 3); flows A: L0+L1, B: L0, C: L1+L2, D: L2, E: L1.
    # Levels: L0 1/2 (A, B), L1 2/3 (A, C, E), L2 3/2 (C, D). L0 saturates first: A = B = 1/2.
    # Then L1 has 2 - 1/2 = 3/2 for C and E: 3/4 each (below L2's 3/2). L2 is left
    # 3 - 3/4 = 9/4 for D.
    paths = [[0, 1], [0], [1, 2], [2], [1]]
    capacity = np.array([1.0, 2.0, 3.0])
    rates = solve(problem(paths, 3), capacity, np.full(5, INF))
    assert rates == pytest.approx([0.5, 0.5, 0.75, 2.25, 0.75], rel=RTOL)
    check_maxmin(problem(paths, 3), capacity, np.full(5, INF), rates)


@solvers
def test_caps_respected_and_leftover_redistributed(solve):
    a = problem([[0]] * 3, 1)
    capacity = np.array([10.0])
    assert solve(a, capacity, np.array([1.0, INF, INF])) == pytest.approx([1.0, 4.5, 4.5])
    assert solve(a, capacity, np.array([1.0, 2.0, INF])) == pytest.approx([1.0, 2.0, 7.0])
    assert solve(a, capacity, np.array([5.0, 5.0, 5.0])) == pytest.approx([10 / 3] * 3)
    assert solve(a, capacity, np.array([0.0, 1.0, 2.0])) == pytest.approx([0.0, 1.0, 2.0])


@solvers
def test_weighted_disk_constraint(solve):
    # One disk: reads at up to R, writes at up to W, sharing one normalised constraint
    # rate_read / R + rate_write / W <= 1. Link 1 is a 1 GB/s network link.
    big_r, big_w = 4e9, 2e9
    a = sp.csr_matrix(np.array([[1 / big_r, 0.0], [1 / big_w, 0.0]]))  # reader, writer
    capacity = np.array([1.0, 1e9])
    # both rise together to t with t/R + t/W = 1: t = RW / (R + W)
    rates = solve(a, capacity, np.full(2, INF))
    assert rates == pytest.approx([big_r * big_w / (big_r + big_w)] * 2, rel=RTOL)
    # a reader capped at 0.5 GB/s leaves the writer (1 - 0.5/R)·W
    rates = solve(a, capacity, np.array([0.5e9, INF]))
    assert rates == pytest.approx([0.5e9, (1 - 0.5e9 / big_r) * big_w], rel=RTOL)
    # the reader also crosses the 1 GB/s link: it stops at 1 GB/s; the writer gets the rest
    a = sp.csr_matrix(np.array([[1 / big_r, 1.0], [1 / big_w, 0.0]]))
    rates = solve(a, capacity, np.full(2, INF))
    assert rates == pytest.approx([1e9, (1 - 1e9 / big_r) * big_w], rel=RTOL)
    check_maxmin(a, capacity, np.full(2, INF), rates)


@solvers
def test_zero_capacity_link(solve):
    # A crosses the dead link 0 and link 1; B only link 1; C only link 0.
    rates = solve(problem([[0, 1], [1], [0]], 2), np.array([0.0, 10.0]), np.full(3, INF))
    assert rates.tolist() == [0.0, 10.0, 0.0]


@solvers
def test_flows_without_links_and_infinite_capacity(solve):
    a = problem([[], [], [0], [0, 1], [1]], 2)
    rates = solve(a, np.array([INF, 6.0]), np.array([3.0, INF, INF, INF, 1.0]))
    assert rates.tolist() == [3.0, INF, INF, 5.0, 1.0]


@solvers
def test_empty_problem(solve):
    assert solve(sp.csr_matrix((0, 3)), np.ones(3), np.zeros(0)).shape == (0,)


@solvers
def test_bad_shapes_and_values_are_rejected(solve):
    a = problem([[0]], 1)
    with pytest.raises(ValueError):
        solve(a, np.ones(2), np.ones(1))
    with pytest.raises(ValueError):
        solve(a, np.array([-1.0]), np.ones(1))
    with pytest.raises(ValueError):
        solve(a, np.ones(1), np.array([np.nan]))


@solvers
def test_regular_fabric_with_float_jitter(solve):
    # 64 links whose capacities differ by float rounding only, 3 flows each plus one flow
    # across all of them: every flow gets capacity / 4.
    n = 64
    capacity = np.array([0.1 * 3 if i % 2 else 0.3 for i in range(n)]) * 1e10
    paths = [list(range(n))] + [[i] for i in range(n) for _ in range(3)]
    rates = solve(problem(paths, n), capacity, np.full(len(paths), INF))
    assert rates == pytest.approx(np.full(len(paths), 0.3e10 / 4), rel=RTOL)


def test_staircase_chain_agrees():
    # the numpy solver's worst case: one safe bottleneck per round along a chain of links
    n = 40
    paths = [[i, i + 1] for i in range(n - 1)] + [[i] for i in range(n)]
    a, capacity, caps = problem(paths, n), 3 + np.arange(n) / n, np.full(2 * n - 1, INF)
    heap, vec = maxmin_heap(a, capacity, caps), maxmin_numpy(a, capacity, caps)
    np.testing.assert_allclose(vec, heap, rtol=RTOL)
    check_maxmin(a, capacity, caps, vec)


@st.composite
def instances(draw):
    n_flows = draw(st.integers(1, 25))
    n_links = draw(st.integers(1, 10))
    capacity = np.array(draw(st.lists(
        st.one_of(st.just(0.0), st.just(INF), st.sampled_from([1.0, 2.0, 10.0]),
                  st.floats(0.01, 100.0)), min_size=n_links, max_size=n_links)))
    caps = np.array(draw(st.lists(
        st.one_of(st.just(INF), st.just(0.0), st.floats(0.01, 50.0)),
        min_size=n_flows, max_size=n_flows)))
    coef = st.one_of(st.just(1.0), st.sampled_from([0.25, 0.5, 2.0, 3.0]), st.floats(0.1, 10.0))
    a = np.zeros((n_flows, n_links))
    for f in range(n_flows):
        links = draw(st.lists(st.integers(0, n_links - 1), max_size=min(n_links, 5), unique=True))
        for link in links:
            a[f, link] = draw(coef)
    return sp.csr_matrix(a), capacity, caps


@settings(deadline=None, max_examples=100)
@given(instances())
def test_solvers_agree_and_are_max_min_fair(instance):
    a, capacity, caps = instance
    heap = maxmin_heap(a, capacity, caps)
    finite = np.isfinite(heap)
    scale = max(1.0, float(np.max(heap[finite], initial=0.0)))
    check_maxmin(a, capacity, caps, heap)
    paths = [a.indices[a.indptr[f]:a.indptr[f + 1]].tolist() for f in range(a.shape[0])]
    coefs = [a.data[a.indptr[f]:a.indptr[f + 1]].tolist() for f in range(a.shape[0])]
    lists = np.array(maxmin_lists(paths, coefs, capacity.tolist(), caps.tolist()))
    for other in (maxmin_numpy(a, capacity, caps), maxmin_dense(a, capacity, caps), lists):
        assert np.array_equal(np.isinf(heap), np.isinf(other))
        np.testing.assert_allclose(other[finite], heap[finite], rtol=RTOL, atol=RTOL * scale)
        check_maxmin(a, capacity, caps, other)


def test_lists_solver_treats_a_negative_residual_as_zero_and_drops_loose_links():
    # maxmin_pairs gets residual capacities; float noise can make one slightly negative. The
    # capped flow on that full link must get 0, not its cap (the link is not "loose").
    rates = maxmin_pairs([[(0, 1.0), (1, 1.0)], [(1, 1.0)]], {0: -1e-6, 1: 10.0}, [3.0, INF])
    assert rates == [0.0, 10.0]
    # link 1 (capacity 100) can never fill: it is dropped, the rates are those with it
    paths = [[0, 1], [0], [1]]
    capacity = np.array([4.0, 100.0])
    rates = maxmin_lists(paths, [[1.0, 1.0], [1.0], [1.0]], capacity.tolist(), [INF] * 3)
    assert rates == pytest.approx([2.0, 2.0, 98.0], rel=RTOL)
    check_maxmin(problem(paths, 2), capacity, np.full(3, INF), np.array(rates))


@pytest.mark.parametrize("scan", [0, 10_000], ids=["heap", "scan"])
def test_list_solver_finds_bottlenecks_by_heap_and_by_scan_alike(monkeypatch, scan):
    # maxmin_users picks its next bottleneck by a scan of the levels for few shared constraints
    # and from a heap for many; both must give the max-min rates of the array solvers, on
    # random instances with mixed coefficients, zero and infinite capacities and caps.
    monkeypatch.setattr(fluid, "_SCAN", scan)
    rng = np.random.default_rng(11)
    for _ in range(25):
        n_links, n_flows = int(rng.integers(2, 90)), int(rng.integers(1, 160))
        capacity = rng.choice([0.0, INF, 1.0, 10.0, 37.5], size=n_links, p=[.05, .05, .3, .3, .3])
        caps = np.where(rng.random(n_flows) < 0.3, rng.uniform(0.0, 5.0, n_flows), INF)
        paths = [rng.choice(n_links, size=int(rng.integers(1, min(n_links, 5) + 1)),
                            replace=False).tolist() for _ in range(n_flows)]
        coefs = [np.where(rng.random(len(p)) < 0.7, 1.0, rng.uniform(0.1, 4.0, len(p))).tolist()
                 for p in paths]
        rows = np.repeat(np.arange(n_flows), [len(p) for p in paths])
        a = sp.csr_matrix((np.concatenate(coefs), (rows, np.concatenate(paths))),
                          shape=(n_flows, n_links))
        rates = np.array(maxmin_lists(paths, coefs, capacity.tolist(), caps.tolist()))
        want = maxmin_heap(a, capacity, caps)
        assert np.array_equal(np.isinf(rates), np.isinf(want))
        finite = np.isfinite(want)
        np.testing.assert_allclose(rates[finite], want[finite], rtol=RTOL, atol=1e-12)
        check_maxmin(a, capacity, caps, rates)

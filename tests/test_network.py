"""The flow-level network and collectives against closed forms (DESIGN.md section 4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from simcluster.engine.collectives import run_collective
from simcluster.engine.network import Network
from simcluster.hardware import NVLS_EFFICIENCY, node_spec
from simcluster.perf.collectives import busbw
from simcluster.perf.fluid import maxmin_numpy
from simcluster.rng import Streams
from simcluster.routing import Router
from simcluster.topology import gpu_cluster

NDR = 50e9 * 0.96      # one rail: NDR line rate × InfiniBand efficiency (hardware.py)
NVLINK = 370e9         # H100 NVLink4, NCCL's achieved rate
A = "rack0/node0/gpu0"
B = "rack0/node1/gpu0"
HOP = 2.7e-6           # GPU->NIC->leaf->NIC->GPU: NCCL's NET ring step (hardware.py)


def network(nodes=2, **kw):
    topo = gpu_cluster(node_spec("H100-SXM"), nodes=nodes, **kw)
    env = simpy.Environment()
    return env, Network(env, topo, Router(topo))


def finish_times(env, events):
    times = {}
    for i, ev in enumerate(events):
        ev.callbacks.append(lambda _e, i=i: times.__setitem__(i, env.now))
    env.run()
    return [times[i] for i in range(len(events))]


def test_one_flow_alone_takes_size_over_bandwidth_plus_latency():
    env, net = network()
    [t] = finish_times(env, [net.transfer(A, B, 1e9)])
    assert t == pytest.approx(1e9 / NDR + HOP, rel=1e-12)


def test_n_equal_flows_share_a_link_equally_and_conserve_bytes():
    env, net = network()
    times = finish_times(env, [net.transfer(A, B, 1e9) for _ in range(4)])
    assert times == pytest.approx([4e9 / NDR + HOP] * 4, rel=1e-9)
    # every byte crossed each link of the route exactly once
    links, _, _ = net.path(A, B)
    assert net.bytes[links] == pytest.approx(np.full(len(links), 4e9))
    assert net.solves == 1  # four starts at one timestamp: one solve; one coalesced completion


def test_a_short_flow_leaves_and_the_long_one_speeds_up():
    env, net = network()
    short, long_ = net.transfer(A, B, 1e9), net.transfer(A, B, 3e9)
    t_short, t_long = finish_times(env, [short, long_])
    assert t_short == pytest.approx(2e9 / NDR + HOP)          # half the rate until it is done
    assert t_long == pytest.approx(4e9 / NDR + HOP)           # then the whole link


def test_link_bytes_and_utilisation_are_exact_while_flows_run():
    # Per-link totals are folded in when a flow ends or when they are read: read mid-run, they
    # hold the bytes of the finished flow and those the running one moved until then.
    env, net = network()
    short, long_ = net.transfer(A, B, 1e9), net.transfer(A, B, 3e9)
    links, _, _ = net.path(A, B)
    env.run(until=short)  # 2 GB through the shared route by 2e9 / NDR, then the full rate
    env.run(until=env.now + 1e9 / NDR)
    # up to each flow's last update: the long one was advanced when it sped up
    assert net.bytes[links] == pytest.approx(np.full(len(links), 2e9), rel=1e-12)
    rows = {r["link"]: r for r in net.link_table(env.now)}  # advances every flow to now
    moved = 2e9 + (env.now - 2e9 / NDR) * NDR
    assert net.bytes[links] == pytest.approx(np.full(len(links), moved), rel=1e-9)
    first = "->".join(net.link_names[links[0]])
    assert rows[first]["bytes"] == pytest.approx(moved, rel=1e-9)
    assert rows[first]["utilization"] == pytest.approx(
        moved / (net.capacity[links[0]] * env.now), rel=1e-9)
    env.run(until=long_)
    assert net.bytes[links] == pytest.approx(np.full(len(links), 4e9), rel=1e-12)


def test_storage_disk_is_one_constraint_for_reads_and_writes():
    # 4 hosts each write 10 GB to and read 10 GB from one server: 8 flows, each well under its
    # NICs' rate, so the disk binds: 4x/W + 4x/R = 1 at a common rate x
    env, net = network(nodes=4)
    disk = net.topology.graph.nodes["storage0"]
    x = 1 / (4 / disk["write_bandwidth"] + 4 / disk["read_bandwidth"])
    events, latency = [], []
    for h in range(4):
        host = f"rack0/node{h}"
        events += [net.transfer(host, "storage0", 10e9), net.transfer("storage0", host, 10e9)]
        latency += [net.path(host, "storage0")[2], net.path("storage0", host)[2]]
    times = finish_times(env, events)
    assert times == pytest.approx([10e9 / x + lat for lat in latency], rel=1e-9)


def test_processor_sharing_on_one_link_matches_mg1_ps():
    """Poisson flow arrivals on one bottleneck: E[T] = E[S]/(1-ρ) for any size distribution
    (M/G/1-PS). Sizes are lognormal (σ = 1): the insensitivity is part of what is tested. Each of
    R replications gives one mean of T/(size/C); their 99% t-interval must contain 1/(1-ρ)."""
    rho, n, reps = 0.5, 4000, 6
    mean_size = 48e6                         # 1 ms alone on one rail
    def one_run(rep):
        env, net = network()
        rng = Streams(rep).get("flows")
        ratios = []

        def source():
            for _ in range(n):
                yield env.timeout(rng.exponential(1e-3 / rho))
                size = mean_size * math.exp(rng.normal(-0.5, 1.0))
                start = env.now
                done = net.transfer(A, B, size)
                done.callbacks.append(lambda _e, s=size, t0=start:
                                      ratios.append((env.now - t0 - HOP) / (s / NDR)))

        env.process(source())
        env.run()
        return np.mean(ratios[500:])

    means = [one_run(rep) for rep in range(reps)]
    mean = np.mean(means)
    half = stats.t.ppf(0.995, reps - 1) * np.std(means, ddof=1) / math.sqrt(reps)
    assert half < 0.1 * 2.0
    assert abs(mean - 1 / (1 - rho)) <= half, f"{mean:.3f} ± {half:.3f} vs 2"


def run(net, gpus, op, size, **kw):
    proc = net.env.process(run_collective(net, gpus, op, size, **kw))
    net.env.run()
    return proc.value


# NCCL's protocol model (perf/collectives.py, from NVIDIA/nccl src/graph/tuning.cc): the chosen
# protocol reaches a fraction of the link bandwidth B (LL128 0.92, Simple 1) and its α is NCCL's
# base latency + per-step costs, not the router's ring/LL hop: on 2 nodes 2N = 4 of the 30
# all-reduce steps cross the network (LL128 4.0 µs, Simple 14 µs), the rest NVLink (1.9, 3.4 µs)
@pytest.mark.parametrize("size, proto, frac, latency_us", [
    (1e6, "LL128", 0.92, 14.0 + 26 * 1.9 + 4 * 4.0),
    (1e9, "Simple", 1.0, 1.4 * (8.4 + 26 * 3.4 + 4 * 14.0))])  # x 1.4: ring plateau (tuning.cc)
def test_ring_allreduce_matches_alpha_beta(size, proto, frac, latency_us):
    env, net = network()
    result = run(net, range(16), "all_reduce", size, algo="ring")
    expected = 2 * 15 / 16 * size / (frac * min(NVLINK, 8 * NDR)) + latency_us * 1e-6
    assert result.protocol == proto
    assert result.time_s == pytest.approx(expected, rel=0.01)
    assert result.flows == 8  # one flow per channel (rail)


def test_reduce_scatter_all_gather_and_tree_match_alpha_beta():
    size = 1e9
    for op in ("reduce_scatter", "all_gather"):
        env, net = network()
        t = run(net, range(16), op, size).time_s
        # Simple: base 8.4 µs, 14 NVLink steps of 3.4 µs, N - 1 = 1 network step of 14 µs
        latency = (8.4 + 14 * 3.4 + 14.0) * 1e-6
        assert t == pytest.approx(15 / 16 * size / min(NVLINK, 8 * NDR) + latency, rel=0.01)
    env, net = network()
    t = run(net, range(16), "all_reduce", size, algo="tree", proto="Simple").time_s
    # NCCL's tree: 0.92 of B; Simple latency 2((g-1) + log2 N) steps of 28 µs
    latency = 2 * (7 + 1) * 28e-6
    assert t == pytest.approx(2 * size / (0.92 * min(NVLINK, 8 * NDR)) + latency, rel=0.01)


def test_all_to_all_matches_alpha_beta():
    env, net = network()
    size = 1e9
    t = run(net, range(16), "all_to_all", size).time_s
    # each GPU sends S/16 to each of the 8 GPUs of the other node over its own rail
    assert t == pytest.approx(8 * size / 16 / NDR + 15 * HOP, rel=0.01)


def test_single_node_is_alpha_beta_on_nvlink_and_nvls_exceeds_it():
    env, net = network(nodes=1)
    size = 2**30
    ring = run(net, range(8), "all_reduce", size)
    # NCCL's Simple protocol at this size: base 8.4 µs + 14 NVLink steps of 3.4 µs
    assert ring.protocol == "Simple"
    assert ring.time_s == pytest.approx(2 * 7 / 8 * size / NVLINK + (8.4 + 14 * 3.4) * 1e-6,
                                        rel=1e-9)
    env, net = network(nodes=1)
    nvls = run(net, range(8), "all_reduce", size, nvls=True)
    assert nvls.algorithm == "nvls"
    # NVLink SHARP: busbw above the link rate, ~480 GB/s on 8 H100 (NVIDIA/nccl-tests#212)
    assert busbw("all_reduce", 8, size, nvls.time_s) == pytest.approx(
        1.75 * NVLS_EFFICIENCY * 450e9, rel=0.01)
    assert busbw("all_reduce", 8, size, nvls.time_s) > NVLINK


@pytest.mark.parametrize("op", ["all_reduce", "reduce_scatter", "all_gather", "broadcast"])
@pytest.mark.parametrize("nodes", [1, 2, 4])
def test_busbw_never_exceeds_the_bottleneck_without_nvls(op, nodes):
    env, net = network(nodes=nodes)
    gpus = range(8 * nodes)
    for size in (2**20, 2**28):
        t = run(net, gpus, op, size).time_s
        limit = NVLINK if nodes == 1 else min(NVLINK, 8 * NDR)
        assert busbw(op, len(gpus), size, t) <= limit * (1 + 1e-9)


def test_two_jobs_whose_rings_share_one_link_each_see_half_of_it():
    # a fat-tree where each leaf has a single uplink (oversubscription 8): nodes 0 and 1 in two
    # racks; job A holds GPUs 0-3 of both nodes, job B GPUs 4-7. Every ring hop between the
    # nodes crosses the two leaf uplinks, so A's 4 rings alone share C = 48 GB/s, and with B
    # running at the same time the 8 rings share it.
    def setup():
        return network(nodes=2, fabric="fat_tree", nodes_per_rack=1, oversubscription=8.0)

    a, b = [0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]
    size = 1e9
    # NCCL's Simple latency: base 8.4 µs, 10 NVLink steps of 3.4 µs, 2N = 4 network steps of the
    # hop (via a spine: 2.7 µs + 2 × 0.9 µs) + Simple's 11.3 µs over LL
    alpha = (8.4 + 10 * 3.4 + 4 * (4.5 + 11.3)) * 1e-6

    env, net = setup()
    alone = run(net, a, "all_reduce", size, algo="ring").time_s
    assert alone == pytest.approx(2 * 7 / 8 * size / NDR + alpha, rel=0.01)

    env, net = setup()
    pa = env.process(run_collective(net, a, "all_reduce", size, algo="ring"))
    pb = env.process(run_collective(net, b, "all_reduce", size, algo="ring"))
    env.run()
    for p in (pa, pb):
        assert p.value.time_s == pytest.approx(2 * 7 / 8 * size / (NDR / 2) + alpha, rel=0.01)


def test_ecmp_spreads_flows_deterministically():
    topo = gpu_cluster(node_spec("H100-SXM"), nodes=4, nodes_per_rack=2)
    src, dst = "rack0/node0/gpu0", "rack1/node0/gpu0"
    r1, r2 = Router(topo, seed=5), Router(topo, seed=5)
    options = r1.paths(src, dst)
    assert len(options) > 1                       # several spines: equal-cost paths
    chosen = [r1.ecmp(src, dst, f"flow{i}") for i in range(200)]
    assert chosen == [r2.ecmp(src, dst, f"flow{i}") for i in range(200)]
    counts = np.array([chosen.count(p) for p in options])
    # 200 flows over k paths: each count is Binomial(200, 1/k); 5 sd covers any fair hash
    k = len(options)
    sd = math.sqrt(200 * (1 / k) * (1 - 1 / k))
    assert (np.abs(counts - 200 / k) < 5 * sd).all() and (counts > 0).all()
    other = [Router(topo, seed=6).ecmp(src, dst, f"flow{i}") for i in range(200)]
    assert other != chosen                        # the seed matters


flow_specs = st.lists(st.tuples(st.integers(0, 31), st.integers(0, 31),
                                st.floats(1e6, 5e9), st.floats(0, 0.2)),
                      min_size=1, max_size=30)


@settings(max_examples=40, deadline=None)
@given(flow_specs, st.sampled_from([0.0, 1e7]))
def test_random_flows_conserve_bytes_and_never_beat_running_alone(specs, offset):
    # offset: the same flows a hundred days into a run, where float spacing is coarser; a
    # completion tolerance relative to the clock instead of the flow would end flows early
    topo = gpu_cluster(node_spec("H100-SXM"), nodes=4, nodes_per_rack=2, fabric="fat_tree",
                       oversubscription=2.0)
    env = simpy.Environment(initial_time=offset)
    net = Network(env, topo, Router(topo))
    expected = np.zeros(len(net.capacity))
    finished = []

    def launch(a, b, size, delay):
        yield env.timeout(delay)
        start = env.now
        links, _, latency = net.path(topo.gpus[a], topo.gpus[b])
        expected[links] += size
        yield net.transfer(topo.gpus[a], topo.gpus[b], size)
        finished.append((env.now - start - latency, size / net.capacity_of(topo.gpus[a],
                                                                          topo.gpus[b])))

    for a, b, size, delay in specs:
        env.process(launch(a, b, size, delay))
    env.run()
    assert len(finished) == len(specs)                      # every flow ends exactly once
    np.testing.assert_allclose(net.bytes, expected, rtol=1e-9, atol=1.0)
    slack = 16 * math.ulp(offset + 1.0)                     # float spacing of the clock
    for took, alone in finished:                            # never faster than alone
        assert took >= alone * (1 - 1e-9) - slack
    assert net.active == 0


def test_all_to_all_on_an_uneven_placement_moves_every_byte():
    # 6 GPUs on node 0, 2 on node 1, S per rank: node 0 sends 6 × 2 · S/8 and node 1 sends
    # 2 × 6 · S/8 off-node, 3S in all; each inter-node flow ends on exactly one leaf->NIC link
    env, net = network()
    size = 1e9
    run(net, [0, 1, 2, 3, 4, 5, 8, 9], "all_to_all", size)
    graph = net.topology.graph
    down = [i for i, (u, v) in enumerate(net.link_names)
            if graph.nodes[u]["kind"] == "leaf" and graph.nodes[v]["kind"] == "nic"]
    assert net.bytes[down].sum() == pytest.approx(3 * size)
    assert net.active == 0


def test_nvls_only_where_nvswitches_can_reduce():
    from simcluster.perf.collectives import algorithm_times
    from simcluster.perf.iteration import fabric_of
    for gpu, offered in (("A100-80GB", False), ("H100-SXM", True)):
        topo = gpu_cluster(node_spec(gpu), nodes=1)
        fabric = fabric_of(range(8), topo, Router(topo))
        assert ("nvls" in algorithm_times("all_reduce", 1e9, fabric, nvls=True)) == offered


def scratch_rates(net):
    """Every active flow's rate solved from scratch by maxmin_numpy (the reference)."""
    flows = sorted(net._flows.values(), key=lambda f: f.id)
    rows = np.repeat(np.arange(len(flows)), [len(f.links) for f in flows])
    cols = np.concatenate([f.links for f in flows]) if flows else np.zeros(0, dtype=int)
    vals = np.concatenate([f.coefs for f in flows]) if flows else np.zeros(0)
    a = sp.csr_matrix((vals, (rows, cols)), shape=(len(flows), len(net.capacity)))
    caps = np.array([f.cap for f in flows])
    return np.array([f.rate for f in flows]), maxmin_numpy(a, net.capacity, caps)


# (delay before start, src, dst, size, cap as a fraction of one rail or None, stop after s)
churn = st.lists(st.tuples(st.floats(0, 0.05), st.integers(0, 32), st.integers(0, 32),
                           st.floats(1e6, 2e9), st.one_of(st.none(), st.floats(0.05, 1.5)),
                           st.one_of(st.none(), st.floats(0, 0.05))),
                 min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(churn)
def test_incremental_rates_equal_a_from_scratch_solve_after_every_change(specs):
    # Random starts, completions and early stops, with rate caps, on an oversubscribed
    # fat-tree with a storage server (index 32: its disk is a weighted constraint shared by
    # reads and writes). After every solve the incremental rates of all active flows must be
    # those of a from-scratch maxmin_numpy solve; the finish times must be those of a network
    # that solves every change from scratch.
    topo = gpu_cluster(node_spec("H100-SXM"), nodes=4, nodes_per_rack=2, fabric="fat_tree",
                       oversubscription=2.0)
    ends = [*topo.gpus, "storage0"]
    results = []
    for incremental in (True, False):
        env = simpy.Environment()
        net = Network(env, topo, Router(topo), incremental=incremental)
        done = {}

        def launch(i, delay, a, b, size, cap, stop_after, net=net, env=env, done=done):
            yield env.timeout(delay)
            if a == b:
                b = (b + 1) % len(ends)
            links, coefs, latency = net.path(ends[a], ends[b])
            flow = net.start(links, coefs, size, cap=math.inf if cap is None else cap * NDR,
                             latency=latency)
            flow.done.callbacks.append(lambda _e: done.__setitem__(i, env.now))
            if stop_after is not None:
                yield env.timeout(stop_after)
                net.stop(flow)

        for i, spec in enumerate(specs):
            env.process(launch(i, *spec))
        checked = 0
        while env.peek() < math.inf:
            env.step()
            if not net._solve_pending:
                got, want = scratch_rates(net)
                np.testing.assert_allclose(got, want, rtol=1e-7)
                checked += 1
        assert net.active == 0 and checked > 0
        results.append((done, net.incremental_solves))
    (inc, n_inc), (full, n_full) = results
    assert n_full == 0
    assert inc.keys() == full.keys()
    for i, t in full.items():
        assert inc[i] == pytest.approx(t, rel=1e-7, abs=1e-12)


def test_incremental_solves_under_heavy_churn_equal_from_scratch_solves():
    # The benchmark's closed loop, smaller: 200 flows between random GPUs of different nodes
    # of a 16-node rail-optimised cluster, every finished flow replaced by a new one, a third
    # of them capped. Most solves must be incremental (that is the point) and every one must
    # give the rates of a from-scratch solve of all active flows.
    topo = gpu_cluster(node_spec("H100-SXM"), nodes=16)
    env = simpy.Environment()
    net = Network(env, topo, Router(topo))
    rng = Streams(3).get("churn")
    gpus, left = topo.gpus, [700]

    def start_one(_event=None):
        if left[0] <= 0:
            return
        left[0] -= 1
        a, b = rng.integers(0, len(gpus), size=2)
        while topo.gpu_host[a] == topo.gpu_host[b]:
            b = rng.integers(0, len(gpus))
        cap = NDR * rng.uniform(0.05, 0.5) if rng.random() < 1 / 3 else math.inf
        net.transfer(gpus[a], gpus[b], float(rng.exponential(50e6)), cap=cap
                     ).callbacks.append(start_one)

    for _ in range(200):
        start_one()
    worst = 0.0
    while env.peek() < math.inf:
        env.step()
        if not net._solve_pending and net.active:
            got, want = scratch_rates(net)
            worst = max(worst, float(np.max(np.abs(got - want) / want)))
    assert worst < 1e-7
    assert net.solves > 900 and net.incremental_solves > 0.9 * net.solves


def test_a_long_ring_flow_pauses_incremental_solves_and_rates_stay_exact():
    # A flow over more than 64 constraints (a long ring stage) turns incremental solves off
    # while it runs; the loads are rebuilt when it ends. Rates equal from-scratch solves
    # throughout, and solves are incremental again after it ends.
    topo = gpu_cluster(node_spec("H100-SXM"), nodes=16)
    env = simpy.Environment()
    net = Network(env, topo, Router(topo))
    gpus = topo.gpus
    ring = np.unique(np.concatenate([net.path(gpus[8 * i + r], gpus[(8 * i + 8 + r) % 128])[0]
                                     for i in range(16) for r in (0, 1)]))  # two rails
    assert len(ring) > 64
    rng = Streams(5).get("ring")
    phases = []

    def traffic():
        for _ in range(120):
            yield env.timeout(rng.exponential(2e-4))
            a, b = rng.integers(0, len(gpus), size=2)
            if topo.gpu_host[a] != topo.gpu_host[b]:
                net.transfer(gpus[a], gpus[b], float(rng.exponential(20e6)))

    def long_flow():
        yield env.timeout(5e-3)
        before = net.incremental_solves
        flow = net.start(ring, np.ones(len(ring)), math.inf, cap=0.4 * NDR)
        yield env.timeout(5e-3)
        phases.append(net.incremental_solves - before)
        net.stop(flow)
        before = net.incremental_solves
        yield env.timeout(1e-2)
        phases.append(net.incremental_solves - before)

    env.process(traffic())
    env.process(long_flow())
    while env.peek() < math.inf:
        env.step()
        if not net._solve_pending and net.active:
            got, want = scratch_rates(net)
            np.testing.assert_allclose(got, want, rtol=1e-7)
    during, after = phases
    assert during == 0 and after > 0

"""Network and engine benchmarks (issue 3 performance targets; issue 2 engine throughput).

    python benchmarks/bench_network.py            # all
    python benchmarks/bench_network.py --quick    # smaller sizes

Prints a markdown table. Measures, in one run:

* flow events (a flow starting or finishing) per wall-second with ~1,000 concurrent flows on a
  64-node rail-optimised H100 cluster: a closed loop where every finished flow starts a new one
  between random GPUs of different nodes; once with incremental solves (the default) and once,
  shorter, with ``Network(incremental=False)`` (every change re-solves the whole component, as
  before incremental solves existed), so that one run gives the speed-up;
* wall time of 100 iterations of one 1,024-GPU data-parallel job (GPT-2 1.5B) at `iteration`
  fidelity on a 128-node rail-optimised cluster, and the same job at `coarse` fidelity;
* engine throughput: jobs per wall-second of an M/M/8 queue (duration fidelity) and of the
  quickstart scenario (coarse fidelity, with network loading and checkpoint flows).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import simpy

import simcluster
from simcluster.engine.network import Network
from simcluster.hardware import node_spec
from simcluster.rng import Streams
from simcluster.routing import Router
from simcluster.topology import gpu_cluster

ROOT = Path(__file__).resolve().parent.parent


def flow_events(concurrent: int, events: int, incremental: bool = True
                ) -> tuple[float, int, int, float]:
    """Flow events per wall-second, solves, how many of them were incremental, and flow events
    per CPU-second of this process (less sensitive than wall time to other work on the
    machine)."""
    topo = gpu_cluster(node_spec("H100-SXM"), nodes=64)
    env = simpy.Environment()
    net = Network(env, topo, Router(topo), incremental=incremental)
    rng = Streams(0).get("bench")
    gpus = topo.gpus
    done = {"n": 0}

    def start_one():
        a, b = rng.integers(0, len(gpus), size=2)
        while topo.gpu_host[a] == topo.gpu_host[b]:
            b = rng.integers(0, len(gpus))
        ev = net.transfer(gpus[a], gpus[b], float(rng.exponential(50e6)))
        ev.callbacks.append(finished)

    def finished(_event):
        done["n"] += 1
        if done["n"] < events:
            start_one()

    for _ in range(concurrent):
        start_one()
    t0, c0 = time.perf_counter(), time.process_time()
    env.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return net.flow_events / wall, net.solves, net.incremental_solves, net.flow_events / cpu


def big_job(fidelity: str, iterations: int, nodes: int) -> float:
    scenario = simcluster.scenario_from_dict({
        "run": {"fidelity": fidelity},
        "cluster": {"nodes": nodes, "storage": {"servers": 4}},
        "workload": {"jobs": [{"model": "gpt2-1.5b", "gpus": nodes * 8,
                               "iterations": iterations}], "checkpoint_interval": 0},
    })
    t0 = time.perf_counter()
    result = simcluster.run(scenario)
    assert result.jobs["state"].iloc[0] == "completed"
    return time.perf_counter() - t0


def engine(path_or_scenario, seed: int = 1) -> tuple[float, int]:
    t0 = time.perf_counter()
    result = simcluster.run(path_or_scenario, seed=seed)
    wall = time.perf_counter() - t0
    return len(result.jobs) / wall, len(result.jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    q = args.quick
    rows = []
    concurrent = 200 if q else 1000
    rate, solves, inc, cpu = flow_events(concurrent, 2000 if q else 20000)
    rows.append((f"flow events per wall-second, ~{concurrent:,} concurrent flows (64 nodes)",
                 f"{rate:,.0f}", ">= 2,000",
                 f"{solves:,} solves, {inc:,} incremental; {cpu:,.0f} per CPU-second"))
    full, solves, _, cpu_full = flow_events(concurrent, 500 if q else 2000, incremental=False)
    rows.append(("same loop, every change re-solved in full (`incremental=False`)",
                 f"{full:,.0f}", "", f"{solves:,} solves; {cpu_full:,.0f} per CPU-second; "
                 f"incremental is {cpu / cpu_full:.1f}x"))
    nodes = 16 if q else 128
    wall = big_job("iteration", 100, nodes)
    rows.append((f"100 iterations, {nodes * 8}-GPU DP job, iteration fidelity", f"{wall:.2f} s",
                 "< 10 s", "GPT-2 1.5B, rail-optimised"))
    wall_c = big_job("coarse", 100, nodes)
    rows.append(("same job, coarse fidelity", f"{wall_c:.2f} s", "", ""))
    mm8 = simcluster.scenario_from_dict({
        "run": {"fidelity": "duration"},
        "cluster": {"nodes": 1, "gpus_per_node": 8, "storage": {"servers": 0}},
        "workload": {"arrivals": {"kind": "poisson", "rate": 6.4},
                     "count": 5000 if q else 50000, "checkpoint_interval": 0,
                     "mix": [{"model": "mlp", "run_time": {"kind": "exponential",
                                                             "mean": 1.0}}]}})
    jps, n = engine(mm8)
    rows.append((f"M/M/8 queue, duration fidelity ({n:,} jobs)", f"{jps:,.0f} jobs/s", "", ""))
    jps, n = engine(ROOT / "scenarios" / "quickstart.toml")
    rows.append((f"quickstart, coarse fidelity ({n} jobs)", f"{jps:,.0f} jobs/s", "", ""))
    print("| measurement | result | target | note |")
    print("|---|---:|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()

"""Failure processes: one superposed exponential timeout per kind vs one process per component.

Usage::

    python benchmarks/bench_failures.py            # prints a Markdown table

A 4,096-GPU cluster (512 nodes) with one long 8-GPU job (so the failure processes stay alive)
and GPU failures at MTBF 5,000 h for a simulated year, ~7,000 failures, run two ways in one
invocation: ``exponential`` (one SimPy timeout per next failure of the kind: an exponential of
rate N·λ, component picked uniformly) and ``weibull`` with shape 1 + 1e-9 (one renewal process
per GPU: 4,096 pending timeouts, the same failure law to within 1e-9). Wall time of
``Simulation.run`` (building included) and failures per wall-second; the two compare like with
like because they run back to back on the same machine.
"""

from __future__ import annotations

import time

import simcluster
from simcluster.engine.simulation import Simulation


def case(distribution: str) -> dict:
    process = {"component": "gpu", "mtbf": "5000h", "distribution": distribution,
               "repair": {"kind": "constant", "value": "4h"}}
    if distribution == "weibull":
        process["shape"] = 1.0 + 1e-9
    s = simcluster.scenario_from_dict({
        "run": {"fidelity": "duration", "horizon": "365d"},
        "cluster": {"nodes": 512, "storage": {"servers": 0}},
        "workload": {"jobs": [{"model": "mlp", "gpus": 8, "run_time": "100000h"}]},
        "failures": {"processes": [process], "checkpoint": {"write": 60, "read": 0}},
    })
    start = time.perf_counter()
    r = Simulation(s).run()
    wall = time.perf_counter() - start
    return {"case": distribution, "failures": r.meta["failures_gpu"], "wall_s": wall,
            "failures_per_s": r.meta["failures_gpu"] / wall}


def main() -> None:
    rows = [case("exponential"), case("weibull")]
    print("| case | failures | wall (s) | failures per wall-s |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['case']} | {r['failures']:,} | {r['wall_s']:.2f} | "
              f"{r['failures_per_s']:,.0f} |")
    print(f"\nratio of wall times (weibull / exponential): "
          f"{rows[1]['wall_s'] / rows[0]['wall_s']:.2f}")


if __name__ == "__main__":
    main()

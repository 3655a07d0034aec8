"""Sweep speed: local workers vs one, and the per-run overhead of the Dask backend.

Usage::

    python benchmarks/bench_sweep.py            # prints a Markdown table for benchmarks/README.md
    python benchmarks/bench_sweep.py --runs 20  # fewer runs

All figures come from one invocation, so their ratios compare like with like. Every backend's
runs table must be identical to the serial one (the script stops otherwise). Wall times include
starting the pool or cluster, as a user of ``simcluster sweep`` would see them.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd

import simcluster

ROOT = Path(__file__).resolve().parent.parent


def timed(scenario, grid, reps, **kwargs) -> tuple[float, pd.DataFrame]:
    started = time.perf_counter()
    result = simcluster.sweep(scenario, grid, replications=reps, **kwargs)
    return time.perf_counter() - started, result.runs


def tiny_scenario() -> simcluster.Scenario:
    """One one-minute job on one GPU: the run itself costs almost nothing."""
    return simcluster.scenario_from_dict({
        "run": {"fidelity": "duration"},
        "cluster": {"nodes": 1, "gpus_per_node": 1, "storage": {"servers": 0}},
        "workload": {"checkpoint_interval": 0,
                     "jobs": [{"model": "mlp", "gpus": 1, "run_time": "1min"}]},
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="runs per sweep (even)")
    parser.add_argument("--jobs", type=int, default=300, help="jobs per quickstart run")
    args = parser.parse_args(argv)
    reps = args.runs // 2
    quickstart = simcluster.load_scenario(ROOT / "scenarios" / "quickstart.toml",
                                          [f"workload.count={args.jobs}"])
    grid = {"cluster.nodes": [4, 5]}
    tiny_grid, tiny_reps = {"run.seed": [0, 1]}, 4 * reps
    backends = {
        "serial (in-process)": ({"executor": "serial"}, 1),
        "local, 1 worker": ({"executor": "local", "workers": 1}, 1),
        "local, 2 workers": ({"executor": "local", "workers": 2}, 2),
        "dask LocalCluster, 2 workers": (None, 2),
    }
    rows, reference, startup = {}, None, 0.0
    for name, (kwargs, workers) in backends.items():
        if kwargs is None:  # a running cluster, as with --scheduler; its start timed apart
            import distributed

            started = time.perf_counter()
            cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                               dashboard_address=None, host="127.0.0.1")
            client = distributed.Client(cluster)
            startup = time.perf_counter() - started
            kwargs = {"executor": client}
        wall, runs = timed(quickstart, grid, reps, **kwargs)
        wall_tiny, tiny = timed(tiny_scenario(), tiny_grid, tiny_reps, **kwargs)
        if reference is None:
            reference = (runs, tiny)
        else:
            pd.testing.assert_frame_equal(reference[0], runs, check_exact=True)
            pd.testing.assert_frame_equal(reference[1], tiny, check_exact=True)
        rows[name] = (wall, wall_tiny, workers)
    client.close()
    cluster.close()

    serial, one = rows["serial (in-process)"], rows["local, 1 worker"]
    n, n_tiny = 2 * reps, 2 * tiny_reps
    print(f"{n}-run sweeps of the quickstart with {args.jobs} jobs (cluster.nodes = 4, 5); "
          f"{n_tiny}-run sweeps of a one-job scenario for the overhead; {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, simcluster {simcluster.__version__}; identical "
          "runs tables on every backend\n")
    print("| backend | quickstart sweep wall (s) | speed-up vs 1 worker | "
          "tiny-run sweep wall (s) | overhead per run vs in-process (ms of worker time) |")
    print("|---|---:|---:|---:|---:|")
    for name, (wall, wall_tiny, workers) in rows.items():
        overhead = (wall_tiny * workers - serial[1]) / n_tiny * 1e3
        print(f"| {name} | {wall:.2f} | {one[0] / wall:.2f}x | {wall_tiny:.2f} | "
              f"{overhead:+.1f} |")
    print(f"\nstarting the Dask LocalCluster (2 worker processes) took {startup:.2f} s "
          "(not in the table)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

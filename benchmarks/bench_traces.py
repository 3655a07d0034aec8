"""Scale: the full Philly replay, a synthetic million-job workload, and bare SimPy M/M/c.

Usage::

    python benchmarks/bench_traces.py                 # all cases; prints a Markdown table
    python benchmarks/bench_traces.py --jobs 200000   # a smaller synthetic workload
    python benchmarks/bench_traces.py --case mmc      # one case, one JSON line

Each case runs in its own Python process (started by this script, one after another), so its
peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own; wall time is
``Simulation.run`` plus building the simulation (the trace is read while the run goes, so reading
it is included), not the interpreter start. All cases of one invocation run on the same machine
within minutes of each other, so their ratios compare like with like.

Cases:
- ``philly_fifo``, ``philly_las``: the full ``philly_rfold`` trace (111,549 jobs) replayed at
  ``duration`` fidelity on ``scenarios/philly_replay.toml`` (the cluster sized as Philly's);
  queue policy FIFO and LAS.
- ``synthetic``: ``--jobs`` jobs (default 1,000,000) from the ``philly`` preset on the same
  cluster, ``duration`` fidelity, FIFO.
- ``mmc``: a bare SimPy M/M/c queue (c = 64, load 0.9, ``simpy.Resource``), customers per
  wall-second: the floor cost of one job's events in SimPy alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT.parent / "shared" / "data" / "traces"
CASES = ("philly_fifo", "philly_las", "synthetic", "mmc")


def _maxrss_mb() -> float:
    # ru_maxrss is KiB on Linux (bytes on macOS)
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _philly_scenario(queue: str, synthetic_jobs: int | None = None):
    import simcluster

    os.environ.setdefault("SIMCLUSTER_DATA", str(TRACES))
    overrides = ["run.fidelity=duration", f"policy.queue={queue}", "workload.checkpoint_interval=0"]
    scenario = simcluster.load_scenario(ROOT / "scenarios/philly_replay.toml", overrides)
    if synthetic_jobs is None:
        return scenario
    data = scenario.model_dump(mode="json", exclude_unset=True)
    data["workload"] = {"arrivals": {"kind": "preset", "preset": "philly"},
                        "count": synthetic_jobs, "checkpoint_interval": 0}
    data.get("run", {}).pop("horizon", None)
    return simcluster.scenario_from_dict(data)


def _run_sim(scenario) -> dict:
    from simcluster.engine.simulation import Simulation

    started = time.perf_counter()
    results = Simulation(scenario).run()
    wall = time.perf_counter() - started
    jobs = results.jobs
    done = int((jobs["state"] == "completed").sum())
    return {"jobs": len(jobs), "completed": done, "wall_s": wall,
            "jobs_per_s": len(jobs) / wall, "peak_rss_mb": _maxrss_mb(),
            "mean_jct_s": float(jobs["jct_s"].mean()),
            "simulated_days": float(results.meta["end_s"]) / 86400}


def _mmc(customers: int = 200_000, c: int = 64, rho: float = 0.9) -> dict:
    """Bare SimPy M/M/c: Poisson arrivals at rate rho*c, exp(1) service, one Resource."""
    import numpy as np
    import simpy

    rng = np.random.Generator(np.random.PCG64(1))
    inter = rng.exponential(1 / (rho * c), customers)
    service = rng.exponential(1.0, customers)
    env = simpy.Environment()
    servers = simpy.Resource(env, capacity=c)
    done = [0]

    def customer(s):
        with servers.request() as req:
            yield req
            yield env.timeout(s)
        done[0] += 1

    def source():
        for i in range(customers):
            yield env.timeout(inter[i])
            env.process(customer(service[i]))

    started = time.perf_counter()
    env.process(source())
    env.run()
    wall = time.perf_counter() - started
    return {"jobs": done[0], "wall_s": wall, "jobs_per_s": done[0] / wall,
            "peak_rss_mb": _maxrss_mb()}


def run_case(case: str, jobs: int) -> dict:
    if case == "mmc":
        return _mmc()
    if case == "synthetic":
        return _run_sim(_philly_scenario("fifo", synthetic_jobs=jobs))
    return _run_sim(_philly_scenario(case.removeprefix("philly_")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=CASES, help="run one case in this process")
    parser.add_argument("--jobs", type=int, default=1_000_000, help="synthetic workload size")
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps({"case": args.case, **run_case(args.case, args.jobs)}))
        return 0
    rows = {}
    for case in CASES:
        out = subprocess.run([sys.executable, __file__, "--case", case, "--jobs", str(args.jobs)],
                             capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            print(f"{case} failed:\n{out.stderr}", file=sys.stderr)
            continue
        rows[case] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"# {case}: {rows[case]}", file=sys.stderr)
    mmc = rows.get("mmc", {}).get("jobs_per_s", float("nan"))
    print(f"Python {platform.python_version()}, {os.cpu_count()} cores\n")
    print("| case | jobs | wall (s) | jobs per wall-s | vs bare SimPy M/M/c | peak RSS (MB) "
          "| mean JCT (h) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for case, r in rows.items():
        jct = r.get("mean_jct_s")
        print(f"| {case} | {r['jobs']:,} | {r['wall_s']:.1f} | {r['jobs_per_s']:,.0f} | "
              f"{r['jobs_per_s'] / mmc:.3g} | {r['peak_rss_mb']:,.0f} | "
              f"{'' if jct is None else f'{jct / 3600:,.2f}'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Capacity planning for a year of workload growth: how many GPUs per quarter, and what they cost.

The workload is the quickstart's mix of training jobs (scenarios/quickstart.toml), arriving as a
Poisson stream whose rate grows quarter by quarter as forecast below. For each quarter,
``simcluster.plan`` finds the smallest number of DGX H100 nodes for which the 95th-percentile wait
stays under the target with 95% confidence (one-sided bound over the replications, the same
seeds in every quarter and at every size), and reports the cost of running that cluster for the
quarter: on-demand rental, and total cost of ownership (purchase amortised over five years,
plus electricity at the facility's PUE).

Run it (about a minute on two cores; ``--quick`` for a smoke test)::

    python scenarios/capacity_planning.py
    python scenarios/capacity_planning.py --target 30min --replications 10 --backend dask
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

import pandas as pd

import simcluster

HERE = Path(__file__).resolve().parent
QUARTER_S = 365 * 86400 / 4

# Forecast of job arrivals per day, one figure per quarter (+30% per quarter).
FORECAST = {"Q1": 100, "Q2": 130, "Q3": 170, "Q4": 220}


def quarter_scenario(rate_per_day: float, horizon: str, warmup: str) -> simcluster.Scenario:
    """The quickstart cluster and job mix, with arrivals at ``rate_per_day`` over ``horizon``."""
    data = tomllib.loads((HERE / "quickstart.toml").read_text())
    data["name"] = f"growth-{rate_per_day:g}-per-day"
    data["run"].update(horizon=horizon, warmup=warmup)
    data["workload"].pop("count", None)
    data["workload"]["arrivals"] = {"kind": "poisson", "rate": f"{rate_per_day}/day"}
    return simcluster.scenario_from_dict(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="1h", help="p95 wait target (default 1h)")
    parser.add_argument("--replications", type=int, default=5)
    parser.add_argument("--backend", default="local", choices=["local", "serial", "dask"])
    parser.add_argument("--workers", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true",
                        help="two quarters, short runs, two replications (a smoke test)")
    args = parser.parse_args(argv)
    forecast = dict(list(FORECAST.items())[:2]) if args.quick else FORECAST
    horizon, warmup = ("12h", "2h") if args.quick else ("2d", "6h")
    replications = 2 if args.quick else args.replications

    rows, previous = [], 0
    for quarter, rate in forecast.items():
        result = simcluster.plan(
            quarter_scenario(rate, horizon, warmup), "cluster.nodes", f"p95_wait_s<={args.target}",
            low=max(previous, 1), replications=replications, seed=args.seed,
            executor=args.backend, workers=args.workers)
        if result.answer is None:
            print(result.report(), file=sys.stderr)
            return 1
        row = result.evidence.set_index("value").loc[result.answer]
        cost = result.cost
        rows.append({
            "quarter": quarter, "jobs_per_day": rate, "nodes": result.answer,
            "gpus": int(cost["cluster_gpus"]), "add_nodes": result.answer - previous,
            "p95_wait_h": row["mean"] / 3600, "p95_bound_h": row["bound"] / 3600,
            "on_demand_usd": cost["cost_usd_per_year"] / 4,
            "tco_usd": cost["tco_usd_per_year"] / 4,
        })
        previous = result.answer
    table = pd.DataFrame(rows)
    print(f"GPUs per quarter for p95 wait <= {args.target} (95% one-sided bound, "
          f"{replications} replications per size)")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    print(f"year: on-demand ${table['on_demand_usd'].sum():,.0f}, "
          f"total cost of ownership ${table['tco_usd'].sum():,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

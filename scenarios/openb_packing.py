"""GPU allocation ratio of placement policies as arrived GPU demand grows to 130% of capacity.

The openb pods on the openb GPU nodes (scenarios/openb_packing.toml; Weng et al., ATC'23): pods
are drawn with replacement from the trace, arrive one by one and never leave; a pod that does
not fit fails. For each placement policy this prints, and writes to ``allocation.csv``
(columns ``policy, arrived_demand_pct, allocated_pct``), the share of the cluster's GPUs
allocated as the arrived demand grows (:func:`simcluster.experiment.packing.allocation_curve`).

Run it::

    python scenarios/openb_packing.py --data-dir ../shared/data/traces
    python scenarios/openb_packing.py --data-dir ../shared/data/traces --scale 1 \\
        --policies best_fit,random        # the whole cluster (fgd is slow at full scale)

``--scale`` keeps that fraction of the nodes of each kind (default 0.1: ~620 GPUs, ~1,000 pods;
the fgd policy's cost grows with GPUs x pods).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import simcluster
from simcluster.experiment.packing import allocation_curve
from simcluster.scenario_traces import DATA_ENV

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help=f"trace directory (default ${DATA_ENV} "
                                                      "or ./data)")
    parser.add_argument("--policies", default="fgd,best_fit,random",
                        help="placement policies, comma-separated")
    parser.add_argument("--scale", type=float, default=0.1,
                        help="fraction of the openb nodes of each kind to keep (0 < s <= 1)")
    parser.add_argument("--step", type=float, default=5.0, help="demand step (percent)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("allocation.csv"))
    args = parser.parse_args(argv)
    if args.data_dir is not None:
        os.environ[DATA_ENV] = str(args.data_dir)
    try:
        scenario = simcluster.load_scenario(HERE / "openb_packing.toml",
                                            [f"cluster.nodes_from.scale={args.scale}"])
        curve = allocation_curve(scenario, args.policies.split(","), max_demand=1.3,
                                 step=args.step / 100.0, seed=args.seed)
    except simcluster.UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = curve.pivot(index="arrived_demand_pct", columns="policy", values="allocated_pct")
    print("GPU allocation ratio (% of GPUs) by arrived GPU demand (% of GPUs)")
    print(table.round(2).to_string())
    curve[["policy", "arrived_demand_pct", "allocated_pct"]].to_csv(args.out, index=False)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

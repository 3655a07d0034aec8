"""GPU allocation ratio of placement policies as arrived GPU demand grows to 130% of capacity.

The openb pods on the openb GPU nodes (scenarios/openb_packing.toml; Weng et al., ATC'23): pods
are drawn with replacement from the trace, arrive one by one and never leave; a pod that does
not fit fails. For each placement policy this prints, and writes to ``allocation.csv``
(columns ``policy, arrived_demand_pct, allocated_pct``), the share of the cluster's GPUs
allocated as the arrived demand grows (:func:`simcluster.experiment.packing.allocation_curve`).

FGD's target workload is the trace's pod list, task types weighted by popularity (Weng et al.
§3.2/§5: built from the workload's pods); ``--fgd-target observed`` uses the pods running at
each placement instead.

Run it::

    python scenarios/openb_packing.py --data-dir ../shared/data/traces   # the whole cluster
    python scenarios/openb_packing.py --data-dir ../shared/data/traces --scale 0.1

``--scale`` keeps that fraction of the nodes of each kind (default 1: 1,213 nodes, 6,212 GPUs,
~10,000 pods; about a minute for the three policies).

GPU-type constraints (issue 6): ``--pods`` picks another pod list, e.g. the one where a third of
the pods name GPU models (``gpu_spec``: ``T4``, ``V100M16|V100M32``, ...), and
``--gpu-constraints`` makes them bind: each pod may then only use GPUs of a node whose model
(its pool's label) is one it names (``[workload.trace] gpu_labels``)::

    python scenarios/openb_packing.py --data-dir ../shared/data/traces --step 10 \
        --pods alibaba_pai_v2023_openb/openb_pod_list_gpuspec33.csv --gpu-constraints
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

import simcluster
from simcluster.experiment.packing import allocation_curve, trace_target
from simcluster.scenario import Scenario
from simcluster.scenario_traces import DATA_ENV

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help=f"trace directory (default ${DATA_ENV} "
                                                      "or ./data)")
    parser.add_argument("--policies", default="fgd,best_fit,random",
                        help="placement policies, comma-separated")
    parser.add_argument("--fgd-target", choices=("trace", "observed"), default="trace",
                        help="FGD's target workload: the trace's pods, or the running pods")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of the openb nodes of each kind to keep (0 < s <= 1)")
    parser.add_argument("--step", type=float, default=5.0, help="demand step (percent)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pods", help="pod list, relative to the data directory (default: "
                                       "the scenario's openb_pod_list_default.csv)")
    parser.add_argument("--gpu-constraints", action="store_true",
                        help="pods keep their gpu_spec as a constraint on the nodes' GPU models")
    parser.add_argument("--out", type=Path, default=Path("allocation.csv"))
    args = parser.parse_args(argv)
    if args.data_dir is not None:
        os.environ[DATA_ENV] = str(args.data_dir)
    try:
        scenario = simcluster.load_scenario(HERE / "openb_packing.toml", overrides(args))
        curve = pd.concat([
            allocation_curve(with_target(scenario, name, args.fgd_target, args.seed), [name],
                             max_demand=1.3, step=args.step / 100.0, seed=args.seed)
            for name in args.policies.split(",")], ignore_index=True)
    except simcluster.UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = curve.pivot(index="arrived_demand_pct", columns="policy", values="allocated_pct")
    print("GPU allocation ratio (% of GPUs) by arrived GPU demand (% of GPUs)")
    print(table.round(2).to_string())
    curve[["policy", "arrived_demand_pct", "allocated_pct"]].to_csv(args.out, index=False)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set``-style overrides the command line asks for."""
    out = [f"cluster.nodes_from.scale={args.scale}"]
    if args.pods:
        out.append(f"workload.trace.path={args.pods}")
    if args.gpu_constraints:
        out.append("workload.trace.gpu_labels=true")
    return out


def with_target(scenario: Scenario, policy: str, target: str, seed: int) -> Scenario:
    """The scenario with FGD's ``target`` placement parameter (other policies take none)."""
    params = ({"target": trace_target(scenario, seed)} if policy == "fgd" and target == "trace"
              else {})
    return scenario.model_copy(update={"policy": scenario.policy.model_copy(
        update={"placement_params": params})})


if __name__ == "__main__":
    sys.exit(main())

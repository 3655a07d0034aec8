"""The ``simcluster`` command: argument parsing and printing only.

User errors (bad scenario, unknown name, missing file) print one clear message and exit with
code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from simcluster.engine.simulation import build_topology
from simcluster.errors import UserError
from simcluster.experiment.run import load_scenario, run
from simcluster.metrics.summary import METRICS
from simcluster.topology import describe
from simcluster.units import format_quantity

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simcluster", description="Discrete-event simulator of GPU clusters.")
    sub = parser.add_subparsers(dest="command", required=True)

    def scenario_command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("scenario", help="scenario TOML file")
        p.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE", help="override a scenario key, e.g. cluster.nodes=8")
        return p

    p_run = scenario_command("run", "run a scenario and print its summary")
    p_run.add_argument("--seed", type=int, help="root seed (default: run.seed of the scenario)")
    p_run.add_argument("--out", type=Path, help="write summary.json, jobs.csv, utilization.csv "
                                                "and scenario.resolved.json to this directory")
    p_run.add_argument("--json", action="store_true", help="print the summary as JSON")
    p_run.add_argument("--check", action="store_true",
                       help="verify allocation invariants after every scheduling pass")
    scenario_command("check", "validate a scenario without running it")
    p_topo = scenario_command("topology", "describe the scenario's cluster topology")
    p_topo.add_argument("--json", action="store_true", help="print as JSON")
    return parser


def _format_value(name: str, value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if name.endswith("_s"):
        return f"{value:,.1f}  ({format_quantity(value, 'time')})" if value >= 60 else \
            f"{value:,.3f}"
    if name.startswith("jobs_"):
        return f"{int(value):,}"
    if name in ("gpu_util", "gpu_compute_util"):
        return f"{value:.1%}"
    return f"{value:,.2f}"


def _print_summary(summary: dict, header: str) -> None:
    print(header)
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        print(f"  {key:<{width}}  {_format_value(key, value):<28} {METRICS.get(key, '')}")


def _cmd_run(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario, args.overrides)
    results = run(scenario, seed=args.seed, check=args.check)
    summary = results.summary()
    if args.out is not None:
        try:
            paths = results.save(args.out)
        except OSError as err:
            raise UserError(f"--out {args.out}: cannot write results ({err.strerror})") from None
    if args.json:
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                 for k, v in summary.items()}
        print(json.dumps({"scenario": scenario.name, "seed": results.seed, **clean}, indent=2))
    else:
        wall = results.meta.get("wall_s", 0.0)
        _print_summary(summary, f"{scenario.name}: seed {results.seed}, "
                                f"{summary['jobs_submitted']} jobs, "
                                f"simulated {format_quantity(summary['sim_time_s'], 'time')} "
                                f"in {wall:.2f} s")
    if args.out is not None:
        print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario, args.overrides)
    topology = build_topology(scenario.cluster)
    print(f"{args.scenario}: ok ({scenario.cluster.nodes} nodes, {len(topology.gpus)} "
          f"{scenario.cluster.gpu} GPUs, {scenario.policy.queue} + {scenario.policy.placement})")
    return 0


def _cmd_topology(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario, args.overrides)
    info = describe(build_topology(scenario.cluster))
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    for key, value in info.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k:<12} {v}")
        elif "bandwidth" in key and isinstance(value, float):
            print(f"{key}: {format_quantity(value, 'bandwidth')}")
        else:
            print(f"{key}: {value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``simcluster`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    commands = {"run": _cmd_run, "check": _cmd_check, "topology": _cmd_topology}
    try:
        return commands[args.command](args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``simcluster`` command: argument parsing and printing only.

User errors (bad scenario, unknown name, missing file) print one clear message and exit with
code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tomllib
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import ModuleType

from simcluster.errors import InvariantViolation, UserError
from simcluster.experiment import estimate_checkpoint, estimate_serve, estimate_train
from simcluster.experiment.executors import BACKENDS
from simcluster.perf.collectives import OPS
from simcluster.scenario_traces import DATA_ENV
from simcluster.units import format_quantity, parse

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
        p.add_argument("--allow-import", action="store_true",
                       help="let the scenario name policies as module:Class (imports, so runs, "
                            "that module's code)")
        p.add_argument("--data-dir", type=Path, metavar="DIR",
                       help=f"directory trace paths are relative to (default: ${DATA_ENV}, "
                            "else ./data)")
        p.add_argument("--on-bad-row", choices=("error", "skip"),
                       help="malformed trace rows: stop with file and line (error), or skip "
                            "and count them (skip); overrides workload.trace.on_bad_row")
        return p

    p_run = scenario_command("run", "run a scenario and print its summary")
    p_run.add_argument("--seed", type=_seed, help="root seed (default: run.seed of the scenario)")
    p_run.add_argument("--out", type=Path, help="write summary.json, jobs.csv, utilization.csv "
                                                "and scenario.resolved.json to this directory")
    p_run.add_argument("--json", action="store_true", help="print the summary as JSON")
    p_run.add_argument("--check", action="store_true",
                       help="verify allocation invariants after every scheduling pass")
    p_run.add_argument("--max-wall", type=_wall, metavar="SECONDS",
                       help="stop after this much wall-clock time (s, or e.g. 10min) and keep "
                            "the results so far, marked partial")
    p_run.add_argument("--quiet", action="store_true",
                       help="no progress line (it is drawn only on a terminal anyway)")
    p_run.add_argument("--report", action="store_true",
                       help="also write report.html (plots and summary) to the --out directory")
    p_run.add_argument("--trace-events", type=Path, metavar="FILE",
                       help="write every scheduling decision with its reason to FILE (CSV: "
                            "t, event, job, gpus, detail)")
    p_run.add_argument("--perfetto", type=Path, metavar="FILE",
                       help="write a Chrome-trace JSON of jobs on GPUs and in the queue (open "
                            "it in ui.perfetto.dev)")
    p_report = sub.add_parser("report", help="rebuild report.html from a saved run directory")
    p_report.add_argument("directory", type=Path, help="a directory written by run --out")
    scenario_command("check", "validate a scenario without running it")
    p_schema = sub.add_parser("schema", help="print the JSON Schema of the scenario file")
    p_schema.add_argument("--out", type=Path, help="write it to this file instead")
    p_topo = scenario_command("topology", "describe the scenario's cluster topology")
    p_topo.add_argument("--json", action="store_true", help="print as JSON")
    _collective_command(sub)
    _experiment_commands(scenario_command)
    _estimate_command(sub)
    _validate_command(sub)
    _fit_command(sub)
    return parser


def _validate_command(sub) -> None:
    """``validate``: rerun every comparison of a model with an outside reference."""
    p = sub.add_parser("validate", help="compare the models with published figures and closed "
                                        "forms; print where they agree and by how much")
    p.add_argument("--quick", action="store_true", help="the quick cases, smaller samples "
                                                        "(under a minute)")
    p.add_argument("--case", dest="cases", action="append", metavar="NAME",
                   help="run only this case (repeatable)")
    p.add_argument("--out", type=Path, help="write validation.csv, .json and .html here")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.add_argument("--readme", type=Path, metavar="README",
                   help="rewrite the fidelity-envelope block of this README from the run")
    p.add_argument("--write-baseline", type=Path, metavar="FILE",
                   help="record pass/fail per case (the test suite's regression baseline)")
    p.add_argument("--data-dir", type=Path, metavar="DIR",
                   help="where the public traces are (default: $SIMCLUSTER_DATA, else ./data); "
                        "cases whose trace is missing are skipped")


def _fit_command(sub) -> None:
    """``fit``: a trace file -> a workload preset JSON (simcluster.workload.fit)."""
    p = sub.add_parser("fit", help="fit arrivals, job sizes and run times of a trace; write a "
                                   "preset JSON for [workload.arrivals] kind = \"preset\"")
    p.add_argument("format", help="trace format (as in [workload.trace], e.g. philly_rfold)")
    p.add_argument("path", type=Path, help="the trace file")
    p.add_argument("--out", type=Path, required=True, help="preset file to write (.json)")
    p.add_argument("--name", help="preset name (default: the --out file's stem)")
    p.add_argument("--start", metavar="DATETIME",
                   help="clock time of the trace's first submission, e.g. '2017-09-04 10:30' "
                        "(places the daily and weekly cycles; default: a Monday 00:00)")
    p.add_argument("--on-bad-row", dest="fit_bad_row", choices=["error", "skip"],
                   default="error",
                   help="a malformed row stops the fit (error) or is skipped and counted")


def _cmd_fit(args: argparse.Namespace) -> int:
    from simcluster.workload.fit import fit, save_preset
    from simcluster.workload.traces import trace_frame  # noqa: PLC0415 (part A's loaders)

    origin = 0.0
    if args.start:
        try:
            start = datetime.fromisoformat(args.start)
        except ValueError:
            raise UserError(f"--start: expected a date and time like '2017-09-04 10:30', got "
                            f"{args.start!r}") from None
        origin = start.weekday() * 86400.0 + start.hour * 3600.0 + start.minute * 60.0 \
            + start.second
    if args.out.suffix != ".json":
        raise UserError(f"--out: expected a .json file name, got {str(args.out)!r}")
    name = args.name or args.out.stem
    f = fit(trace_frame(args.format, args.path, on_bad_row=args.fit_bad_row), name=name,
            source=f"{args.format}: {args.path.name}", origin_s=origin)
    save_preset(f, args.out)
    print(f"{name}: {f.jobs:,} jobs, {f.rate_per_s * 86400:,.1f} jobs/day, "
          f"{len(f.sizes)} job sizes, {len(f.classes)} run-time classes -> {args.out}")
    return 0


# `simcluster estimate <what>`: each module gives HELP, add_arguments(parser),
# estimate(args) -> dict (the --json object) and format_text(dict) -> str.
ESTIMATES: dict[str, ModuleType] = {}
ESTIMATES["train"] = estimate_train
ESTIMATES["serve"] = estimate_serve
ESTIMATES["checkpoint"] = estimate_checkpoint


def _estimate_command(sub) -> None:
    """``estimate train|serve|checkpoint``: answers in closed form from the models (< 1 s)."""
    p = sub.add_parser("estimate", help="quick answers from the models: "
                                        + ", ".join(ESTIMATES))
    what = p.add_subparsers(dest="estimate", required=True)
    for name, module in ESTIMATES.items():
        q = what.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(q)
        q.add_argument("--json", action="store_true", help="print one JSON object")


def _cmd_estimate(args: argparse.Namespace) -> int:
    module = ESTIMATES[args.estimate]
    result = module.estimate(args)
    print(json.dumps(result, indent=2) if args.json else module.format_text(result))
    return 0


def _experiment_commands(scenario_command) -> None:
    """``sweep`` and ``plan``: many runs on a local process pool or a Dask cluster."""
    def backend_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--replications", type=int, default=5, metavar="N",
                       help="runs per point; replication i uses the same seed everywhere")
        p.add_argument("--seed", type=_seed, help="root seed of the replications")
        p.add_argument("--out", type=Path, help="results directory (rerun to resume)")
        p.add_argument("--backend", choices=BACKENDS,
                       help="local process pool (default), serial, or dask (a local Dask "
                            "cluster, or the one at --scheduler)")
        p.add_argument("--workers", type=int, help="worker processes (default: cores)")
        p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address")

    p_sweep = scenario_command("sweep", "run a grid of scenario keys with replications")
    p_sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                         help="a grid axis: KEY=V1,V2,... or KEY=LO:HI[:STEP]; repeatable")
    p_sweep.add_argument("--metric", action="append", metavar="NAME",
                         help="metric to print (repeatable; default: waits, util, cost)")
    backend_options(p_sweep)
    p_plan = scenario_command("plan", "find the smallest value of a key that meets a target")
    p_plan.add_argument("--vary", required=True, metavar="KEY=LO:HI",
                        help="the key to search and its range, e.g. cluster.nodes=1:64")
    p_plan.add_argument("--target", required=True, metavar="METRIC<=VALUE",
                        help="e.g. 'p95_wait_s<=3600' or 'gpu_util>=0.6'")
    p_plan.add_argument("--confidence", type=float, default=0.95,
                        help="level of the one-sided bound that must meet the target")
    backend_options(p_plan)


def _collective_command(sub) -> None:
    """``collective``: a simulated nccl-tests."""
    p = sub.add_parser("collective", help="time a collective over message sizes (nccl-tests)")
    system = p.add_mutually_exclusive_group(required=True)
    system.add_argument("--topology", metavar="SCENARIO", help="use this scenario's cluster")
    system.add_argument("--gpu", help="GPU type; node defaults from its generation")
    p.add_argument("--nodes", type=int, default=1, help="nodes (with --gpu)")
    p.add_argument("--gpus-per-node", type=int, help="GPUs per node (with --gpu)")
    p.add_argument("--nic", help="compute NIC type, e.g. NDR, XDR (with --gpu)")
    p.add_argument("--op", default="all_reduce", choices=OPS)
    p.add_argument("--algo", default="auto", help="auto, ring, tree, hierarchical, nvls")
    p.add_argument("--proto", default="auto",
                   help="auto, LL, LL128, Simple (as NCCL_PROTO forces it)")
    p.add_argument("--nvls", action="store_true", help="allow NVLink SHARP inside a node")
    p.add_argument("--min-bytes", "-b", default="8M", help="smallest size (8, 64K, 8M, 1G)")
    p.add_argument("--max-bytes", "-e", default="1G", help="largest size")
    p.add_argument("--factor", "-f", type=float, default=2.0, help="size multiplier")
    p.add_argument("--json", action="store_true", help="one JSON object per size")


def _cmd_collective(args: argparse.Namespace) -> int:
    from simcluster.engine.simulation import build_topology
    from simcluster.experiment.collective import collective_sweep, parse_size, sizes
    from simcluster.experiment.run import load_scenario, scenario_from_dict
    from simcluster.hardware import NICS

    if args.topology:
        scenario = load_scenario(args.topology)
        topology, efficiency = build_topology(scenario.cluster), scenario.network.efficiency
    else:
        if args.nodes < 1 or (args.gpus_per_node is not None and args.gpus_per_node < 1):
            raise UserError("--nodes and --gpus-per-node must be at least 1")
        cluster = {"gpu": args.gpu, "nodes": args.nodes, "gpus_per_node": args.gpus_per_node,
                   "storage": {"servers": 0}}
        data = {"cluster": cluster, "workload": {"jobs": [{"run_time": 1}]}}
        scenario = scenario_from_dict(data, source="command line")
        topology = build_topology(scenario.cluster, NICS.get(args.nic, "--nic")
                                  if args.nic else None)
        efficiency = {}
    table = collective_sweep(topology, args.op,
                             sizes(parse_size(args.min_bytes), parse_size(args.max_bytes),
                                   args.factor), args.algo, args.nvls, efficiency,
                             proto=args.proto)
    if args.json:
        for row in table.drop(columns="flows").to_dict("records"):
            print(json.dumps(row))
        return 0
    print(f"# {args.op} on {len(topology.gpus)} GPUs ({len(topology.hosts)} nodes); "
          f"busbw as nccl-tests defines it")
    print(f"#{'size (B)':>14} {'time (us)':>12} {'algbw (GB/s)':>13} {'busbw (GB/s)':>13}  algo"
          f"  protocol")
    for r in table.itertuples():
        print(f"{r.size_bytes:>15} {r.time_s * 1e6:>12.2f} {r.algbw_GBps:>13.2f} "
              f"{r.busbw_GBps:>13.2f}  {r.algorithm:<5} {r.protocol}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from simcluster import __version__
    from simcluster.validation.cases import check_names, run_cases
    from simcluster.validation.output import format_table, update_readme, write_outputs

    names = check_names(args.cases) if args.cases else None
    progress = (lambda name: print(f"  {name} ...", file=sys.stderr)) \
        if sys.stderr.isatty() and not args.json else None
    before = os.environ.get("SIMCLUSTER_DATA")
    try:
        if args.data_dir is not None:
            os.environ["SIMCLUSTER_DATA"] = str(args.data_dir)  # the trace cases read it
        report = run_cases(quick=args.quick, names=names, progress=progress)
    finally:
        if before is None:
            os.environ.pop("SIMCLUSTER_DATA", None)
        else:
            os.environ["SIMCLUSTER_DATA"] = before
    if args.json:
        print(report.table.to_json(orient="records", indent=2))
    else:
        print(format_table(report))
    if args.out:
        for path in write_outputs(report, args.out, __version__):
            print(f"wrote {path}", file=sys.stderr)
    if args.readme:
        try:
            update_readme(args.readme, report, __version__)
        except (OSError, ValueError) as err:
            raise UserError(f"--readme: {err}") from None
    if args.write_baseline:
        statuses = dict(zip(report.table["case"], report.table["status"], strict=True))
        args.write_baseline.write_text(json.dumps(statuses, indent=1, sort_keys=True) + "\n")
    return 0 if not (report.table["status"] == "error").any() else 1


def _seed(text: str) -> int:
    """A root seed: a non-negative integer (argparse reports anything else, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def _format_value(name: str, value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if name.endswith("_s"):
        return f"{value:,.1f}  ({format_quantity(value, 'time')})" if value >= 60 else \
            f"{value:,.3f}"
    if name.startswith(("jobs_", "trace_")):
        return f"{int(value):,}"
    if name in ("gpu_util", "gpu_compute_util"):
        return f"{value:.1%}"
    return f"{value:,.2f}"


def _print_summary(summary: dict, header: str) -> None:
    from simcluster.metrics.summary import METRICS

    print(header)
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        if key.startswith("failures_") and not summary.get("failures"):
            continue  # per-kind counts only when something failed (all are in --json, --out)
        print(f"  {key:<{width}}  {_format_value(key, value):<28} {METRICS.get(key, '')}")


def _cmd_run(args: argparse.Namespace) -> int:
    from simcluster.engine.progress import Progress
    from simcluster.engine.simulation import build_topology
    from simcluster.experiment.run import load_scenario, run
    from simcluster.metrics.serving import format_services
    from simcluster.report.html import write_report
    from simcluster.report.trace import write_chrome_trace

    if args.report and args.out is None:
        raise UserError("--report needs --out DIR: the report is written to that directory")
    scenario = load_scenario(args.scenario, args.overrides, args.allow_import)
    results = run(scenario, seed=args.seed, check=args.check, max_wall_s=args.max_wall,
                  progress=None if args.quiet else Progress(),
                  trace_events=bool(args.trace_events or args.perfetto))
    summary = results.summary()
    for flag, path, write in (
            ("--trace-events", args.trace_events,
             lambda p: results.events.to_csv(p, index=False)),
            ("--perfetto", args.perfetto,
             lambda p: write_chrome_trace(results, p, build_topology(scenario.cluster)))):
        if path is not None:
            try:
                write(path)
            except OSError as err:  # the results are kept: --out below still writes them
                print(f"error: {flag} {path}: cannot write ({err.strerror})", file=sys.stderr)
    if args.out is not None:
        try:
            paths = results.save(args.out)
        except OSError as err:
            raise UserError(f"--out {args.out}: cannot write results ({err.strerror})") from None
        if args.report:
            try:
                paths.append(write_report(results, args.out,
                                          topology=build_topology(scenario.cluster)))
            except OSError as err:
                raise UserError(f"--out {args.out}: cannot write the report "
                                f"({err.strerror})") from None
    if args.json:
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                 for k, v in summary.items()}
        services = results.services()  # inference services (issue 7)
        if not services.empty:
            clean["services"] = json.loads(services.to_json(orient="records"))
        print(json.dumps({"scenario": scenario.name, "seed": results.seed,
                          "partial": bool(results.meta.get("partial")), **clean}, indent=2))
    else:
        wall = results.meta.get("wall_s", 0.0)
        _print_summary(summary, f"{scenario.name}: seed {results.seed}, "
                                f"{summary['jobs_submitted']} jobs, "
                                f"simulated {format_quantity(summary['sim_time_s'], 'time')} "
                                f"in {wall:.2f} s")
        if not results.requests.empty:  # inference services (issue 7)
            print(format_services(results.services()))
    _warn(results, summary)
    if args.out is not None:
        print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0


def _warn(results, summary: dict) -> None:
    """Warnings on stderr: a run cut short by --max-wall, a queue that stopped moving."""
    if results.meta.get("partial"):
        print(f"warning: --max-wall stopped the run after {results.meta.get('wall_s', 0):.1f} s "
              f"at simulated time {format_quantity(summary['sim_time_s'], 'time')}; results are "
              f"partial ({summary['jobs_running_at_end']} jobs running, "
              f"{summary['jobs_queued_at_end']} queued)", file=sys.stderr)
    if summary.get("jobs_stuck"):
        policy = results.scenario.get("policy", {})
        print(f"warning: the queue stopped moving: {summary['jobs_stuck']} jobs stayed queued on "
              f"an idle cluster ({policy.get('queue')} + {policy.get('placement')} could not "
              f"place them; see the reason column of jobs.csv)", file=sys.stderr)
    if summary.get("trace_rows_skipped"):  # issue 6: malformed trace rows skipped
        first = "; ".join(results.meta.get("trace_bad_rows", [])[:3])
        print(f"warning: {summary['trace_rows_skipped']} malformed trace rows skipped "
              f"(first: {first})", file=sys.stderr)


def _wall(text: str) -> float:
    """A wall-clock limit: positive seconds, or a time with a unit (argparse reports errors)."""
    try:
        value = parse(text, "time")
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"expected a positive time, got {text!r}")
    return value


def _cmd_check(args: argparse.Namespace) -> int:
    from simcluster.engine.simulation import build_topology
    from simcluster.experiment.run import load_scenario

    scenario = load_scenario(args.scenario, args.overrides, args.allow_import)
    topology = build_topology(scenario.cluster)
    # GPUs per catalog type, and per pool label where pools have one (e.g. openb's T4, P100)
    kinds = Counter(zip((topology.gpu_type(g) for g in range(len(topology.gpus))),
                        topology.gpu_labels, strict=True))
    gpus = " + ".join(f"{n} {t}" + (f" ({label})" if label else "")
                      for (t, label), n in kinds.items())
    print(f"{args.scenario}: ok ({len(topology.hosts)} nodes, {gpus} GPUs, "
          f"{scenario.policy.queue} + {scenario.policy.placement})")
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from simcluster.scenario import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.out is None:
        print(text, end="")
        return 0
    try:
        args.out.write_text(text)
    except OSError as err:
        raise UserError(f"--out {args.out}: cannot write the schema ({err.strerror})") from None
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from simcluster.report.html import rebuild_report

    for name in ("scenario.resolved.json", "jobs.csv", "utilization.csv"):
        if not (args.directory / name).is_file():
            raise UserError(f"{args.directory}: no saved run here (missing {name}); write one "
                            f"with 'simcluster run SCENARIO --out {args.directory}'")
    try:
        path = rebuild_report(args.directory, _saved_topology(args.directory))
    except OSError as err:
        raise UserError(f"{args.directory}: cannot rebuild the report ({err.strerror})") from None
    print(f"wrote {path}", file=sys.stderr)
    return 0


def _saved_topology(directory: Path):
    """The cluster of a saved run, to draw it; None if the saved scenario no longer loads
    (e.g. it names a policy module that is not importable here): the page then goes without."""
    from simcluster.engine.simulation import build_topology
    from simcluster.experiment.run import scenario_from_dict

    try:
        saved = json.loads((directory / "scenario.resolved.json").read_text())
        scenario = scenario_from_dict(saved.get("scenario", saved),
                                      source=str(directory / "scenario.resolved.json"))
        return build_topology(scenario.cluster)
    except (UserError, ValueError, OSError):
        return None


def _cmd_topology(args: argparse.Namespace) -> int:
    from simcluster.engine.simulation import build_topology
    from simcluster.experiment.run import load_scenario
    from simcluster.topology import describe

    scenario = load_scenario(args.scenario, args.overrides, args.allow_import)
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


def _cmd_sweep(args: argparse.Namespace) -> int:
    from simcluster.experiment.run import load_scenario
    from simcluster.experiment.sweep import parse_grid_spec, sweep

    scenario = load_scenario(args.scenario, args.overrides, args.allow_import)
    grid = dict(parse_grid_spec(spec) for spec in args.grid)
    try:
        result = sweep(scenario, grid, replications=args.replications, seed=args.seed,
                       executor=args.backend, workers=args.workers, scheduler=args.scheduler,
                       out=args.out, progress=sys.stderr.isatty())
    except KeyboardInterrupt:
        if args.out is not None:
            print(f"finished runs are in {args.out}; rerun the same command to resume",
                  file=sys.stderr)
        raise
    metrics = args.metric or ["mean_wait_s", "p95_wait_s", "gpu_util", "cost_usd"]
    table = result.summary(metrics)
    table["value"] = [f"{m:,.4g} ± {h:,.3g}" for m, h in zip(table["mean"], table["half_width"],
                                                             strict=True)]
    index = [*result.keys, "n"] if result.keys else ["n"]
    wide = table.reset_index().pivot_table(index=index, columns="metric", values="value",
                                           aggfunc="first", sort=False)
    print(f"{scenario.name}: {len(result.runs)} runs ({result.computed} computed now), "
          f"mean ± 95% half-width")
    print(wide[metrics].to_string())
    if args.out is not None:
        print(f"results in {args.out} (simcluster.load_results)", file=sys.stderr)
    if len(result.failed):
        print(f"{len(result.failed)} runs failed:", file=sys.stderr)
        print(result.failed.to_string(index=False), file=sys.stderr)
        return 1
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from simcluster.experiment.plan import plan
    from simcluster.experiment.run import load_scenario

    scenario = load_scenario(args.scenario, args.overrides, args.allow_import)
    result = plan(scenario, args.vary, args.target, replications=args.replications,
                  confidence=args.confidence, seed=args.seed, executor=args.backend,
                  workers=args.workers, scheduler=args.scheduler, out=args.out,
                  progress=sys.stderr.isatty())
    print(result.report())
    return 0 if result.answer is not None else 1


def _trace_options(args: argparse.Namespace) -> None:
    """``--data-dir`` and ``--on-bad-row`` (issue 6): the data directory is handed on through
    ``$SIMCLUSTER_DATA`` (so sweep workers see it too); ``--on-bad-row`` becomes an override
    when the scenario replays a trace."""
    if getattr(args, "data_dir", None) is not None:
        os.environ[DATA_ENV] = str(args.data_dir)
    if getattr(args, "on_bad_row", None) is not None:
        try:
            data = tomllib.loads(Path(args.scenario).read_text())
        except (OSError, tomllib.TOMLDecodeError):
            return  # loading the scenario reports it
        if isinstance(data.get("workload", {}).get("trace"), dict):
            args.overrides.append(f"workload.trace.on_bad_row={args.on_bad_row}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``simcluster`` console script; returns the exit code.

    Each command imports what it needs when it runs, so light commands (``estimate``) start
    fast."""
    args = _parser().parse_args(argv)
    _trace_options(args)
    commands = {"run": _cmd_run, "check": _cmd_check, "schema": _cmd_schema,
                "topology": _cmd_topology, "report": _cmd_report,
                "sweep": _cmd_sweep, "plan": _cmd_plan, "collective": _cmd_collective,
                "estimate": _cmd_estimate, "fit": _cmd_fit,
                "validate": _cmd_validate}
    try:
        return commands[args.command](args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except InvariantViolation as err:  # a bug in the engine or a policy, caught by --check
        print(f"invariant violated (a bug; please report it with the scenario and seed): {err}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader closed the pipe (`simcluster run ... | head`): not an
        # error; point stdout at /dev/null so the interpreter's final flush stays quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

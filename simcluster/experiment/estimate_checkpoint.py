"""``simcluster estimate checkpoint``: optimal checkpoint interval, expected waste and ETTR, and
the same figures simulated.

Closed forms from :mod:`simcluster.perf.checkpointing` (Young 1974; Daly 2006), then
``--replications`` short simulations of one job checkpointing at Daly's interval under
exponential failures. The job's failures are a Poisson process of rate gpus / GPU-MTBF (or
nodes / node-MTBF); the simulated job holds 8 GPUs of a 16-GPU cluster whose GPUs each fail at
rate 1 / (8·M), so it sees the same rate 1/M (superposition) at a fraction of the cost, and the
spare node lets it restart at once on healthy GPUs. Each replication runs a fixed amount of work
(a whole number of intervals, at least 20 MTBFs); the simulated ETTR is work / mean wall time,
with a Student-t interval on the mean wall time (scipy.stats) carried through that ratio.

>>> import argparse
>>> p = argparse.ArgumentParser(); add_arguments(p)
>>> r = estimate(p.parse_args(["--gpus", "16384", "--gpu-mtbf-hours", "50000",
...                            "--checkpoint-s", "60", "--restart-s", "600",
...                            "--replications", "4"]))
>>> round(r["daly_interval_s"])
1109
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np

from simcluster.errors import UserError
from simcluster.perf.checkpointing import (
    daly_interval,
    expected_ettr,
    expected_segment_s,
    young_interval,
)
from simcluster.rng import digest
from simcluster.units import format_quantity, parse

__all__ = ["HELP", "add_arguments", "estimate", "format_text", "simulate_walls"]

HELP = ("optimal checkpoint interval (Young, Daly), expected waste and effective training time "
        "ratio under failures, checked by simulation")

_SIM_GPUS = 8  # GPUs of the simulated job (one node); a second node is the spare
_MIN_MTBFS = 20  # work per replication, in job MTBFs (enough failures to average over)
_MAX_SEGMENTS = 2000  # cap on checkpoint intervals per replication (keeps it fast)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``estimate checkpoint``."""
    p.add_argument("--gpus", type=int, required=True, help="GPUs of the job")
    p.add_argument("--gpu-mtbf-hours", type=float, help="mean time between failures of one GPU")
    p.add_argument("--node-mtbf-hours", type=float,
                   help="or of one node (with --gpus-per-node)")
    p.add_argument("--gpus-per-node", type=int, default=8, help="GPUs per node (default 8)")
    p.add_argument("--checkpoint-s", type=float, help="time to write one checkpoint (s)")
    p.add_argument("--checkpoint-bytes",
                   help="or checkpoint size (bytes, or e.g. 2.5TB) with --storage-bandwidth")
    p.add_argument("--storage-bandwidth", help="write bandwidth (bytes/s, or e.g. 100GBps)")
    p.add_argument("--restart-s", type=float, default=0.0,
                   help="time to resume after a failure, checkpoint read included (s)")
    p.add_argument("--replications", type=int, default=20,
                   help="simulated replications (default 20)")


def _inputs(args: argparse.Namespace) -> tuple[float, float, float]:
    """(job MTBF, checkpoint time, restart time), all s."""
    if args.gpus is None or args.gpus < 1:
        raise UserError(f"--gpus: expected a positive number of GPUs, got {args.gpus!r}")
    if (args.gpu_mtbf_hours is None) == (args.node_mtbf_hours is None):
        raise UserError("give exactly one of --gpu-mtbf-hours and --node-mtbf-hours")
    if args.gpu_mtbf_hours is not None:
        if not args.gpu_mtbf_hours > 0:
            raise UserError(f"--gpu-mtbf-hours: expected > 0, got {args.gpu_mtbf_hours}")
        mtbf = args.gpu_mtbf_hours * 3600.0 / args.gpus
    else:
        if not args.node_mtbf_hours > 0 or not args.gpus_per_node >= 1:
            raise UserError("--node-mtbf-hours and --gpus-per-node: expected > 0, got "
                            f"{args.node_mtbf_hours}, {args.gpus_per_node}")
        nodes = math.ceil(args.gpus / args.gpus_per_node)
        mtbf = args.node_mtbf_hours * 3600.0 / nodes
    if args.checkpoint_s is not None:
        if args.checkpoint_bytes is not None:
            raise UserError("give --checkpoint-s or --checkpoint-bytes, not both")
        delta = args.checkpoint_s
    elif args.checkpoint_bytes is not None and args.storage_bandwidth is not None:
        bandwidth = parse(args.storage_bandwidth, "bandwidth")
        if not (bandwidth > 0 and math.isfinite(bandwidth)):
            raise UserError(f"--storage-bandwidth: expected a positive rate, got "
                            f"{args.storage_bandwidth!r}")
        delta = parse(args.checkpoint_bytes, "bytes") / bandwidth
    else:
        raise UserError("give --checkpoint-s, or --checkpoint-bytes with --storage-bandwidth")
    if not delta >= 0 or not args.restart_s >= 0:
        raise UserError(f"--checkpoint-s/--restart-s: expected >= 0, got {delta}, "
                        f"{args.restart_s}")
    if args.replications < 2:
        raise UserError(f"--replications: expected at least 2, got {args.replications}")
    return mtbf, delta, args.restart_s


def simulate_walls(mtbf: float, tau: float, delta: float, restart: float, segments: int,
                   replications: int, seed: int = 1) -> np.ndarray:
    """Wall times (s) of a job of ``segments`` × ``tau`` s of work, checkpointing every
    ``tau`` s (``delta`` s per write), restarting in ``restart`` s, under exponential
    failures of mean ``mtbf`` — one full simulation per replication."""
    from simcluster.experiment.run import run, scenario_from_dict  # the engine, when simulating

    walls = []
    for r in range(replications):
        scenario = scenario_from_dict({
            "run": {"fidelity": "duration", "seed": seed + r},
            "cluster": {"nodes": 2, "gpus_per_node": _SIM_GPUS, "storage": {"servers": 0}},
            "workload": {"checkpoint_interval": tau, "jobs": [
                {"model": "mlp", "gpus": _SIM_GPUS, "run_time": segments * tau}]},
            "policy": {"preemption": {"restart": restart}},
            "failures": {
                "processes": [{"component": "gpu", "mtbf": _SIM_GPUS * mtbf,
                               "repair": {"kind": "constant", "value": 60.0}}],
                "checkpoint": {"policy": "fixed_time", "write": delta, "read": 0.0}},
        })
        jobs = run(scenario).jobs
        walls.append(float(jobs["run_s"].iloc[0]))
    return np.array(walls)


def expected_sim_wall(mtbf: float, tau: float, delta: float, restart: float,
                      segments: int) -> float:
    """Exact expected wall time of :func:`simulate_walls`' job: Daly's per-segment expectation
    summed over its segments (the last one writes no checkpoint)."""
    return ((segments - 1) * expected_segment_s(tau, delta, restart, mtbf)
            + expected_segment_s(tau, 0.0, restart, mtbf))


def estimate(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--json`` object."""
    mtbf, delta, restart = _inputs(args)
    young = young_interval(delta, mtbf) if delta > 0 else math.inf
    daly = daly_interval(delta, mtbf) if delta > 0 else math.inf
    tau = daly if math.isfinite(daly) else mtbf
    ettr = expected_ettr(tau, delta, restart, mtbf)
    segments = max(1, min(_MAX_SEGMENTS, math.ceil(_MIN_MTBFS * mtbf / tau)))
    # seeded from the inputs: runs are reproducible, and different inputs do not all share
    # one draw of luck (the runs are scale-free: M, τ, δ, R only scale the same draws)
    seed = digest(f"{mtbf!r}/{tau!r}/{delta!r}/{restart!r}") % 2**31
    walls = simulate_walls(mtbf, tau, delta, restart, segments, args.replications, seed)
    work = segments * tau
    n = len(walls)
    from scipy import stats  # (slow to import; the closed forms above do not need it)

    half = float(stats.t.ppf(0.975, n - 1)) * float(walls.std(ddof=1)) / math.sqrt(n)
    mean = float(walls.mean())
    low_wall = max(mean - half, work)
    return {
        "young_interval_s": young, "daly_interval_s": daly,
        "expected_ettr": ettr, "expected_waste": 1.0 - ettr,
        "simulated_ettr": work / mean,
        "simulated_ettr_ci": [work / (mean + half), work / low_wall],
        "job_mtbf_s": mtbf, "checkpoint_s": delta, "restart_s": restart,
        "simulated_interval_s": tau, "simulated_work_s": work, "replications": n,
        "simulated_expected_ettr": work / expected_sim_wall(mtbf, tau, delta, restart,
                                                           segments),
    }


def format_text(r: dict[str, Any]) -> str:
    """Human-readable lines."""
    def t(x: float) -> str:
        return format_quantity(x, "time") if math.isfinite(x) else "never"

    lo, hi = r["simulated_ettr_ci"]
    return "\n".join([
        f"job MTBF            {t(r['job_mtbf_s'])}  (checkpoint {t(r['checkpoint_s'])}, "
        f"restart {t(r['restart_s'])})",
        f"Young interval      {t(r['young_interval_s'])}",
        f"Daly interval       {t(r['daly_interval_s'])}",
        f"expected waste      {r['expected_waste']:.2%}  (Daly's expected wall time)",
        f"expected ETTR       {r['expected_ettr']:.4f}",
        f"simulated ETTR      {r['simulated_ettr']:.4f}  (95% CI {lo:.4f} – {hi:.4f}; "
        f"{r['replications']} replications of {t(r['simulated_work_s'])} of work at the Daly "
        f"interval; exact expectation for that run {r['simulated_expected_ettr']:.4f})",
    ])

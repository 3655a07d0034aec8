"""Failure cases: the engine's failures and checkpoint/restart against Daly's expected wall time,
and failure counts against the configured rate."""

from __future__ import annotations

import math

import numpy as np

from simcluster.experiment.estimate_checkpoint import expected_sim_wall, simulate_walls
from simcluster.experiment.run import run, scenario_from_dict
from simcluster.perf.checkpointing import daly_interval
from simcluster.validation.cases import Outcome, case

__all__: list[str] = []


def _daly_case(multiple: float, quick: bool) -> Outcome:
    # a job MTBF of 3 h, 60 s checkpoints, 600 s restarts (a 16k-GPU job at 50k h GPU MTBF)
    mtbf, delta, restart = 3 * 3600.0, 60.0, 600.0
    tau = multiple * daly_interval(delta, mtbf)
    segments = math.ceil(20 * mtbf / tau)
    reps = 60 if quick else 400
    walls = simulate_walls(mtbf, tau, delta, restart, segments, reps, seed=1000)
    return Outcome(float(walls.mean()), expected_sim_wall(mtbf, tau, delta, restart, segments),
                   detail=f"{reps} replications, sd of mean "
                          f"{walls.std(ddof=1) / math.sqrt(reps):.0f} s")


@case("daly_wall_time_at_optimum")
def _daly_opt(quick: bool) -> Outcome:
    return _daly_case(1.0, quick)


@case("daly_wall_time_at_4x")
def _daly_4x(quick: bool) -> Outcome:
    return _daly_case(4.0, quick)


@case("failure_count_rate")
def _count(quick: bool) -> Outcome:
    # 512 GPUs of MTBF 1,000 h for 30 days: E[failures] = 512 · 720 / 1000 = 368.6 (repairs
    # of 1 h take a GPU out of the exposed population: rate (N - down)·λ, ~0.1% lower)
    days = 20.0 if quick else 30.0
    scenario = scenario_from_dict({
        "run": {"fidelity": "duration", "horizon": days * 86400.0},
        "cluster": {"nodes": 64, "storage": {"servers": 0}},
        "workload": {"checkpoint_interval": 0, "jobs": [
            {"model": "mlp", "gpus": 1, "run_time": days * 86400.0 * 2}]},
        "failures": {"processes": [{"component": "gpu", "mtbf": "1000h",
                                    "repair": {"kind": "constant", "value": 3600.0}}]},
    })
    counts = []
    for seed in range(6 if quick else 10):
        counts.append(run(scenario, seed=seed).summary()["failures"])
    gpus = 64 * 8
    expected = gpus * days * 24 / 1000.0
    return Outcome(float(np.mean(counts)), expected, detail=f"counts {counts}")

"""Scheduling cases: published policy rankings reproduced on the public traces.

A ranking is a yes/no fact: the simulated value is 1 when it holds, 0 when it does not, against
a reference of 1 (absolute tolerance 0). The traces are read from the data directory
(``--data-dir`` or ``SIMCLUSTER_DATA``); without them the cases are skipped.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pandas as pd

from simcluster.experiment.packing import allocation_curve, trace_target
from simcluster.experiment.run import load_scenario, run, scenario_from_dict
from simcluster.scenario import Scenario
from simcluster.scenario_traces import resolve_data_path
from simcluster.validation.cases import Outcome, Unavailable, case

__all__: list[str] = []

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def _need(relative: str) -> Path:
    path = resolve_data_path(relative)
    if not path.exists():
        raise Unavailable(f"trace {path} not found (set --data-dir or SIMCLUSTER_DATA)")
    return path


def _scenario_file(name: str) -> Path:
    path = SCENARIOS / name
    if not path.exists():  # an installed package without the repository's scenarios
        raise Unavailable(f"scenario {path} not found (run from a clone of the repository)")
    return path


def _philly_jct(quick: bool) -> dict[str, float]:
    _need("philly_rfold/philly_trace.csv")
    data = tomllib.loads(_scenario_file("philly_replay.toml").read_text())
    data["cluster"] = {"nodes": 8, "gpus_per_node": 8, "fabric": "fat_tree",
                       "storage": {"servers": 0}}  # a busy slice of the cluster
    window = ["45d", "45.2d"] if quick else ["45d", "46d"]
    data["workload"]["trace"]["transforms"] = {"window": window, "max_gpus": 8}
    jct = {}
    for queue in ("fifo", "las", "srtf"):
        data["policy"]["queue"] = queue
        jct[queue] = run(scenario_from_dict(data, source="validation")).summary()["mean_jct_s"]
    return jct


@case("philly_las_srtf_beat_fifo")
def _philly(quick: bool) -> Outcome:
    jct = _philly_jct(quick)
    holds = jct["las"] < jct["fifo"] and jct["srtf"] < jct["fifo"]
    return Outcome(1.0 if holds else 0.0,
                   detail=", ".join(f"{q} {v / 3600:.1f} h" for q, v in jct.items()))


def _openb(quick: bool):
    """Allocated % of GPUs at >= 100% arrived demand, per policy: the committed scenario (the
    nodes' CPUs and memory, the pods' requests) on a sample of each kind of openb node, FGD
    with the trace's pods as its target workload (as scenarios/openb_packing.py runs it)."""
    _need("alibaba_pai_v2023_openb/openb_pod_list_default.csv")
    scale = 0.03 if quick else 0.1
    s = load_scenario(_scenario_file("openb_packing.toml"),
                      [f"cluster.nodes_from.scale={scale}"])
    target = trace_target(s)
    curve = pd.concat([allocation_curve(_placement(s, name, target), [name], step=0.1, seed=2)
                       for name in ("fgd", "best_fit", "random")])
    table = curve.pivot(index="arrived_demand_pct", columns="policy", values="allocated_pct")
    return table.loc[table.index >= 100]


def _placement(s: Scenario, name: str, target: list[dict]) -> Scenario:
    params = {"target": target} if name == "fgd" else {}
    return s.model_copy(update={"policy": s.policy.model_copy(
        update={"placement": name, "placement_params": params})})


@case("openb_bestfit_beats_random")
def _openb_bf(quick: bool) -> Outcome:
    near = _openb(quick)
    holds = bool((near["best_fit"] > near["random"]).all())
    return Outcome(1.0 if holds else 0.0, detail=_allocated(near))


@case("openb_fgd_beats_bestfit")
def _openb_fgd(quick: bool) -> Outcome:
    near = _openb(quick)
    holds = bool((near["fgd"] > near["best_fit"]).all())
    return Outcome(1.0 if holds else 0.0, detail=_allocated(near))


def _allocated(near) -> str:
    last = near.iloc[-1]
    return (f"allocated at {near.index[-1]:.0f}% demand: fgd {last['fgd']:.2f}%, best_fit "
            f"{last['best_fit']:.2f}%, random {last['random']:.2f}%")



"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

import simcluster

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
TRACES = ROOT.parent / "shared" / "data" / "traces"


def queue_scenario(c: int, rho: float, n: int, service: dict | None = None):
    """c single-GPU servers, Poisson arrivals at rate rho·c, n `duration` jobs, FIFO.

    Service times have mean 1 s (exponential unless ``service`` says otherwise).
    """
    service = service or {"kind": "exponential", "mean": 1.0}
    return simcluster.scenario_from_dict({
        "run": {"fidelity": "duration"},
        "cluster": {"nodes": 1, "gpus_per_node": c, "storage": {"servers": 0}},
        "workload": {"arrivals": {"kind": "poisson", "rate": rho * c}, "count": n,
                     "checkpoint_interval": 0,
                     "mix": [{"model": "mlp", "gpus": 1, "run_time": service}]},
        "policy": {"queue": "fifo", "placement": "first_fit"},
    })


@pytest.fixture
def quickstart():
    return simcluster.load_scenario(SCENARIOS / "quickstart.toml")

"""Shared scenario builders for the policy tests."""

from __future__ import annotations

import simcluster


def heavy_tailed(queue: str, params: dict | None = None, n: int = 300, seed: int = 1,
                 rate: str = "8/h", **policy) -> simcluster.Scenario:
    """Two DGX nodes (16 GPUs), Poisson arrivals of 1-8 GPU jobs with lognormal(σ=1.5) run
    times (mean ≈ 3.1 × median): offered load ≈ 0.85. `duration` fidelity: speed is placement-
    blind, so only the queue policy differs between runs with one seed (common random numbers).
    """
    return simcluster.scenario_from_dict({
        "run": {"fidelity": "duration", "seed": seed},
        "cluster": {"nodes": 2, "storage": {"servers": 0}},
        "workload": {
            "arrivals": {"kind": "poisson", "rate": rate}, "count": n,
            "checkpoint_interval": "10min",
            "mix": [{"model": "mlp", "gpus": [1, 2, 4], "tenant": "a",
                     "run_time": {"kind": "lognormal", "median": "10min", "sigma": 1.5}},
                    {"model": "mlp", "gpus": [1, 8], "tenant": "b",
                     "run_time": {"kind": "lognormal", "median": "10min", "sigma": 1.5}}]},
        "policy": {"queue": queue, "queue_params": params or {}, "placement": "pack", **policy},
    })

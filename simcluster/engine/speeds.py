"""Relative speeds of models on the GPU types of a mixed cluster, from the perf model.

The speed of a model on a GPU type is the inverse of its single-GPU iteration time there (the
compute roofline of :mod:`simcluster.perf`), relative to the slowest type in the cluster, so 1.0
is the slowest and a homogeneous cluster has no table at all.
"""

from __future__ import annotations

from collections.abc import Callable

from simcluster.engine.training import PerfModel
from simcluster.perf.models import MODELS
from simcluster.topology import Topology

__all__ = ["relative_speeds"]


def relative_speeds(topology: Topology, perf: PerfModel) -> Callable[[str, str], float] | None:
    """``speed(model, gpu_type)`` for a cluster with several GPU types, else None."""
    first: dict[str, int] = {}
    for g in range(len(topology.gpus)):
        first.setdefault(topology.gpu_type(g), g)
    if len(first) < 2:
        return None
    cache: dict[str, dict[str, float]] = {}

    def speed(model: str, gpu_type: str) -> float:
        table = cache.get(model)
        if table is None:
            spec = MODELS.get(model)
            times = {t: perf.iteration(spec, (g,), 1.0).compute_s for t, g in first.items()}
            slowest = max(times.values())
            table = cache[model] = {t: slowest / s for t, s in times.items()}
        return table.get(gpu_type, 1.0)

    return speed

"""Relative speeds of models on the GPU types of a mixed cluster: perf model or measured table.

The speed of a model on a GPU type is the inverse of its single-GPU iteration time there (the
compute roofline of :mod:`simcluster.perf`), relative to the slowest type in the cluster, so 1.0
is the slowest and a homogeneous cluster has no table at all.

A throughput table (``cluster.throughputs``) replaces the perf model for the models it covers on
every GPU type of the cluster; other models keep the perf model. The table is read from the
user's path (nothing is bundled). Gavel's ``simulation_throughputs.json`` (Narayanan et al.,
OSDI 2020; repo stanford-futuredata/gavel, ``scheduler/simulation_throughputs.json``, MIT) has
the schema ``{gpu_type: {"('<job type>', <scale factor>)": {"null": <steps/s alone>, ...}}}``;
the single-GPU (scale factor 1) "null" entry is used. A plain ``{job type: {gpu type: x}}`` file
works too.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from pathlib import Path

from simcluster.engine.training import PerfModel
from simcluster.errors import UserError
from simcluster.perf.models import MODELS
from simcluster.scenario import ThroughputsConfig
from simcluster.topology import Topology

__all__ = ["load_throughputs", "relative_speeds"]


def load_throughputs(path: str | Path) -> dict[str, dict[str, float]]:
    """``{job type: {gpu type: throughput}}`` from a Gavel or plain JSON throughput file.

    Raises:
        UserError: missing or unreadable file, or neither schema.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"cluster.throughputs: cannot read {str(path)!r}: {err}") from None
    table: dict[str, dict[str, float]] = {}
    try:
        for outer, entries in data.items():
            for inner, value in entries.items():
                if isinstance(value, dict):  # Gavel: gpu type -> "('job', sf)" -> {"null": x}
                    job, scale = ast.literal_eval(inner)
                    if scale == 1 and value.get("null") is not None:
                        table.setdefault(str(job), {})[str(outer)] = float(value["null"])
                else:  # plain: job -> gpu type -> x
                    table.setdefault(str(outer), {})[str(inner)] = float(value)
    except (AttributeError, TypeError, ValueError, SyntaxError) as err:
        raise UserError(f"cluster.throughputs: {str(path)!r} is neither Gavel's schema nor "
                        f"{{job: {{gpu: throughput}}}}: {err}") from None
    return table


def relative_speeds(topology: Topology, perf: PerfModel,
                    throughputs: ThroughputsConfig | None = None
                    ) -> Callable[[str, str], float] | None:
    """``speed(model, gpu_type)`` for a cluster with several GPU types, else None."""
    first: dict[str, int] = {}
    for g in range(len(topology.gpus)):
        first.setdefault(topology.gpu_type(g), g)
    if len(first) < 2:
        return None
    measured = load_throughputs(throughputs.path) if throughputs is not None else {}
    cache: dict[str, dict[str, float]] = {}

    def from_table(model: str) -> dict[str, float] | None:
        row = measured.get(throughputs.models.get(model, model)) if measured else None
        if row is None:
            return None
        rates = {t: row.get(throughputs.gpus.get(t, t)) for t in first}
        if any(r is None or r <= 0 for r in rates.values()):
            return None  # the table misses a type of this cluster: perf model instead
        return rates

    def speed(model: str, gpu_type: str) -> float:
        table = cache.get(model)
        if table is None:
            rates = from_table(model)
            if rates is None:
                spec = MODELS.get(model)
                rates = {t: 1.0 / perf.iteration(spec, (g,), 1.0).compute_s
                         for t, g in first.items()}
            slowest = min(rates.values())
            table = cache[model] = {t: r / slowest for t, r in rates.items()}
        return table.get(gpu_type, 1.0)

    return speed

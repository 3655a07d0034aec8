"""One run of an experiment as a self-contained task: seeds, keys, and the worker function.

Replication ``i`` of an experiment with root seed ``r`` uses the seed spawned for child ``i`` of
``numpy.random.SeedSequence(r)``, whatever the grid point: every alternative sees the same random
streams in the same replication (common random numbers), and the seed does not depend on how many
replications or points there are. A task carries its resolved scenario and seed, so running it
anywhere (another process, a Dask worker on another machine) gives the same numbers.

>>> replication_seed(1, 0) == replication_seed(1, 0) != replication_seed(1, 1)
True
>>> run_key({"cluster.nodes": 4}, 0, 17) == run_key({"cluster.nodes": 4}, 0, 17)
True
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from simcluster.engine.simulation import Simulation
from simcluster.metrics.results import package_versions
from simcluster.scenario import Scenario

__all__ = [
    "RunTask", "execute", "new_record", "package_versions", "record_failure", "replication_seed",
    "run_key",
]



def replication_seed(root: int, replication: int) -> int:
    """The root seed of replication ``replication`` (a 63-bit integer), spawned from ``root``."""
    seq = np.random.SeedSequence(int(root), spawn_key=(int(replication),))
    return int(seq.generate_state(1, np.uint64)[0] >> np.uint64(1))


def run_key(point: dict[str, Any], replication: int, seed: int) -> str:
    """A stable digest of (grid point, replication, seed): the run's name in a results store."""
    text = json.dumps({"point": point, "replication": replication, "seed": seed},
                      sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


@dataclass(frozen=True)
class RunTask:
    """Everything one run needs.

    Attributes:
        key: the run's store key (:func:`run_key`).
        point: grid values by dotted key (empty for plain replications).
        replication: replication index.
        seed: the run's root seed.
        scenario: the point's resolved scenario.
        keep_jobs: return the jobs table too (for a results store).
    """

    key: str
    point: dict[str, Any]
    replication: int
    seed: int
    scenario: Scenario = field(repr=False)
    keep_jobs: bool = False


def _json_safe(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}


def new_record(task: RunTask) -> dict[str, Any]:
    """The record of ``task`` before it runs (status ``"ok"``, empty summary)."""
    return {
        "key": task.key, "point": task.point, "replication": task.replication,
        "seed": task.seed, "status": "ok", "error": None, "traceback": None,
        "summary": {}, "cluster_gpus": None, "wall_s": None,
        "scenario": task.scenario.model_dump(mode="json"), "versions": package_versions(),
    }


def record_failure(record: dict[str, Any], err: BaseException) -> dict[str, Any]:
    """Mark ``record`` as failed with ``err`` (its type, message and traceback)."""
    record.update(status="error", error=f"{type(err).__name__}: {err}",
                  traceback="".join(traceback.format_exception(err)), summary={})
    return record


def execute(task: RunTask) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """Run one task; never raises for a failing simulation.

    Returns:
        The run record (JSON-ready: key, point, replication, seed, status ``"ok"`` or
        ``"error"``, error text and traceback, summary, ``cluster_gpus``, resolved scenario,
        package versions, ``wall_s``) and the jobs table (None if not kept or failed).
    """
    started = time.perf_counter()
    record = new_record(task)
    jobs = None
    try:
        results = Simulation(task.scenario, seed=task.seed).run()
        record["summary"] = _json_safe(results.summary())
        record["cluster_gpus"] = results.meta.get("gpus")
        if task.keep_jobs:
            jobs = results.jobs
    except Exception as err:  # a failing run is recorded with its seed; the sweep goes on
        record_failure(record, err)
    record["wall_s"] = time.perf_counter() - started
    return record, jobs

"""A resumable on-disk store of runs: one JSON record and one jobs CSV per finished run.

Layout of a store directory::

    experiment.json          the base scenario (resolved) every run in it derives from
    runs/<key>.json          one run: grid point, replication, seed, status, error, summary,
                             resolved scenario, package versions
    runs/<key>.jobs.csv      that run's jobs table (finished runs only)

``<key>`` is a digest of (grid point, replication, seed). Files are written to a temporary name
and renamed, the JSON record last, so a run is in the store completely or not at all: a crash or
Ctrl-C loses at most the runs in flight. A failed run's record (status ``"error"``) is kept for
the report and retried on the next run of the same experiment.

>>> import tempfile
>>> store = ResultStore(tempfile.mkdtemp())
>>> store.finished()
{}
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from simcluster.errors import UserError
from simcluster.metrics.summary import METRICS

__all__ = ["ResultStore", "load_results", "runs_table"]

_RUN_COLUMNS = ("replication", "seed", "status", "error", "cluster_gpus")


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


class ResultStore:
    """The runs of one experiment in ``directory`` (created if missing)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.runs = self.directory / "runs"
        try:
            self.runs.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"{self.directory}: cannot create results directory "
                            f"({err.strerror})") from None

    def claim(self, base_scenario: Mapping[str, Any]) -> None:
        """Tie the directory to one base scenario; refuse a directory holding another one."""
        path = self.directory / "experiment.json"
        if path.exists():
            stored = json.loads(path.read_text()).get("scenario")
            if stored != json.loads(json.dumps(base_scenario)):
                raise UserError(f"{self.directory}: holds results of a different scenario; "
                                "use a new output directory (or delete this one)")
            return
        text = json.dumps({"scenario": base_scenario}, indent=1, sort_keys=True) + "\n"
        _atomic_write(path, lambda p: p.write_text(text))

    def finished(self) -> dict[str, dict[str, Any]]:
        """Every stored run record by key (successful and failed)."""
        records = {}
        for path in sorted(self.runs.glob("*.json")):
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # unreadable: treated as not run
            records[record["key"]] = record
        return records

    def write(self, record: Mapping[str, Any], jobs: pd.DataFrame | None) -> None:
        """Store one run: its jobs table first, then its record (the commit point)."""
        key = record["key"]
        if jobs is not None:
            _atomic_write(self.runs / f"{key}.jobs.csv", lambda p: jobs.to_csv(p, index=False))
        text = json.dumps(record, indent=1, allow_nan=False) + "\n"
        _atomic_write(self.runs / f"{key}.json", lambda p: p.write_text(text))

    def jobs(self, key: str) -> pd.DataFrame:
        """The stored jobs table of run ``key``."""
        return pd.read_csv(self.runs / f"{key}.jobs.csv")


def runs_table(records: list[Mapping[str, Any]]) -> pd.DataFrame:
    """The tidy table of run records: grid keys, replication, seed, status, error, metrics.

    Missing metrics (a failed run, an empty percentile) are NaN. Metric columns come in
    :data:`~simcluster.metrics.summary.METRICS` order, then any others in record order.
    """
    rows, metrics = [], {}
    for record in records:
        summary = {k: (math.nan if v is None else v) for k, v in record["summary"].items()}
        metrics.update(dict.fromkeys(summary))
        rows.append({**record["point"], **{c: record.get(c) for c in _RUN_COLUMNS}, **summary})
    points = list(dict.fromkeys(k for r in records for k in r["point"]))
    ordered = [m for m in METRICS if m in metrics] + [m for m in metrics if m not in METRICS]
    return pd.DataFrame(rows, columns=[*points, *_RUN_COLUMNS, *ordered])


def _sorted(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    try:
        return table.sort_values(keys, kind="stable").reset_index(drop=True)
    except TypeError:  # mixed types in a grid column
        order = table[keys].astype(str)
        return table.loc[order.sort_values(keys, kind="stable").index].reset_index(drop=True)


def load_results(directory: str | Path, table: str = "runs") -> pd.DataFrame:
    """Read a results store written by ``simcluster.sweep`` (or ``simcluster sweep --out``).

    Args:
        directory: the store directory.
        table: ``"runs"``: one row per run (grid keys, ``replication``, ``seed``, ``status``,
            ``error``, ``cluster_gpus`` and every summary metric); ``"jobs"``: every finished
            run's jobs table, with the grid keys, ``replication`` and ``seed`` in front.

    Returns:
        The table, sorted by grid keys and replication.

    Raises:
        UserError: the directory holds no results store.
    """
    store_dir = Path(directory)
    if not (store_dir / "runs").is_dir():
        raise UserError(f"{store_dir}: not a results directory (no runs/ inside)")
    store = ResultStore(store_dir)
    records = list(store.finished().values())
    points = list(dict.fromkeys(k for r in records for k in r["point"]))
    if table == "runs":
        return _sorted(runs_table(records), [*points, "replication"]) if records else \
            pd.DataFrame(columns=[*_RUN_COLUMNS])
    if table != "jobs":
        raise UserError(f"table {table!r}: expected 'runs' or 'jobs'")
    frames = []
    for record in records:
        if record["status"] != "ok" or not (store.runs / f"{record['key']}.jobs.csv").exists():
            continue
        jobs = store.jobs(record["key"])
        front = {**record["point"], "replication": record["replication"], "seed": record["seed"]}
        for i, (name, value) in enumerate(front.items()):
            jobs.insert(i, name, value)
        frames.append(jobs)
    if not frames:
        return pd.DataFrame()
    return _sorted(pd.concat(frames, ignore_index=True), [*points, "replication", "job_id"])

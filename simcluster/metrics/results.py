"""The result of one run: tables, the resolved scenario, the seed, and the summary.

>>> r = Results.__new__(Results)  # normally made by simcluster.run
"""

from __future__ import annotations

import json
import math
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from simcluster.metrics.serving import service_summary
from simcluster.metrics.summary import power_series, summarize
from simcluster.metrics.tenants import per_tenant

__all__ = ["Results", "package_versions"]

# written and read back when non-empty: inference services (issue 7), the event log (issue 10)
_SERVING_TABLES = ("requests", "replicas", "replica_counts", "events")

# the packages that determine a run's numbers
_PACKAGES = ("simcluster", "numpy", "scipy", "pandas", "simpy", "networkx", "pydantic")


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that determine a run's numbers.

    >>> sorted(package_versions())[:3]
    ['networkx', 'numpy', 'pandas']
    """
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None)
        if version is None:
            try:
                version = metadata.version(name)
            except metadata.PackageNotFoundError:
                version = "unknown"
        versions[name] = str(version)
    return versions


@dataclass
class Results:
    """One run's output.

    Attributes:
        jobs: one row per job (see :data:`simcluster.metrics.records.JOB_COLUMNS`).
        utilization: the cluster-state step function, with ``power_w`` (facility power).
        scenario: the full resolved scenario (a JSON-ready dict).
        seed: the root seed that produced this run.
        meta: cluster constants used by the summaries, and run facts: ``partial`` (stopped
            by a wall-clock limit), ``jobs_stuck``, ``versions`` (of the packages that
            determine the numbers), ``wall_s``.
        links: bytes and mean utilisation of every link and storage disk that carried traffic,
            busiest first (the most congested links).
        requests, replicas, replica_counts: inference services (issue 7; empty without them):
            one row per request, per replica, and the replica count step function
            (:mod:`simcluster.metrics.serving`).
        events: the scheduling event log, when the run kept one (``trace_events=True``;
            :mod:`simcluster.metrics.events`), else empty.
    """

    jobs: pd.DataFrame
    utilization: pd.DataFrame
    scenario: dict[str, Any]
    seed: int
    meta: dict[str, Any] = field(default_factory=dict)
    links: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["link", "kind", "bytes", "utilization"]))
    requests: pd.DataFrame = field(default_factory=pd.DataFrame)
    replicas: pd.DataFrame = field(default_factory=pd.DataFrame)
    replica_counts: pd.DataFrame = field(default_factory=pd.DataFrame)
    events: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self) -> None:
        if "power_w" not in self.utilization and not self.utilization.empty:
            self.utilization = self.utilization.assign(
                power_w=power_series(self.utilization, self.meta))

    def per_tenant(self) -> pd.DataFrame:
        """Per-tenant jobs, waits, completion times, slowdowns, GPU shares and lost work (jobs
        submitted after the warm-up)."""
        return per_tenant(self.jobs, float(self.meta.get("warmup_s", 0.0)))

    def summary(self) -> dict[str, float]:
        """Headline metrics with stable names (:data:`simcluster.metrics.summary.METRICS`)."""
        return summarize(self.jobs, self.utilization, self.meta)

    def services(self) -> pd.DataFrame:
        """Per-service TTFT/TPOT/e2e percentiles, throughput, SLO attainment, goodput,
        GPU-hours and cost (:data:`simcluster.metrics.serving.SERVICE_METRICS`)."""
        if self.requests.empty and self.replicas.empty:
            return pd.DataFrame()
        return service_summary(self.requests, self.replicas, self.replica_counts,
                               float(self.meta.get("end_s", 0.0)),
                               float(self.meta.get("warmup_s", 0.0)))

    def save(self, directory: str | Path) -> list[Path]:
        """Write summary.json, jobs.csv, utilization.csv, links.csv, scenario.resolved.json and
        meta.json (the cluster constants the summaries use; :meth:`load` reads them all back).

        Returns:
            The paths written.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        summary = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                   for k, v in self.summary().items()}
        paths = [out / "summary.json", out / "jobs.csv", out / "utilization.csv",
                 out / "scenario.resolved.json"]
        head = {"seed": self.seed, "partial": bool(self.meta.get("partial", False))}
        paths[0].write_text(json.dumps({**head, **summary}, indent=2) + "\n")
        self.jobs.to_csv(paths[1], index=False)
        self.utilization.to_csv(paths[2], index=False)
        paths.append(out / "links.csv")
        self.links.to_csv(paths[-1], index=False)
        resolved = {"seed": self.seed, "scenario": self.scenario,
                    "versions": self.meta.get("versions") or package_versions()}
        paths[3].write_text(json.dumps(resolved, indent=2, default=str) + "\n")
        paths.append(out / "meta.json")
        paths[-1].write_text(json.dumps(self.meta, indent=2, default=str) + "\n")
        for name in _SERVING_TABLES:  # inference services (issue 7), when there are any
            table = getattr(self, name)
            if not table.empty:
                paths.append(out / f"{name}.csv")
                table.to_csv(paths[-1], index=False)
        return paths

    @classmethod
    def load(cls, directory: str | Path) -> Results:
        """Read back a run written by :meth:`save`.

        ``links.csv`` and ``meta.json`` are optional (older directories lack them); without
        ``meta.json`` the tables load but :meth:`summary` cannot be recomputed, so read the
        saved ``summary.json`` instead.

        Raises:
            FileNotFoundError: a required file is missing.
        """
        src = Path(directory)
        resolved = json.loads((src / "scenario.resolved.json").read_text())
        jobs = pd.read_csv(src / "jobs.csv")
        for column in ("tenant", "model", "state", "reason"):  # empty text reads back as NaN
            if column in jobs:
                jobs[column] = jobs[column].astype(object).fillna("").astype(str)
        utilization = pd.read_csv(src / "utilization.csv")
        meta_path, links_path = src / "meta.json", src / "links.csv"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        results = cls(jobs, utilization, resolved.get("scenario", {}),
                      int(resolved.get("seed", 0)), meta)
        if links_path.exists():
            results.links = pd.read_csv(links_path)
        for name in _SERVING_TABLES:
            if (src / f"{name}.csv").exists():
                setattr(results, name, pd.read_csv(src / f"{name}.csv"))
        return results

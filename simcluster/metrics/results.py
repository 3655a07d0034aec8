"""The result of one run: tables, the resolved scenario, the seed, and the summary.

>>> r = Results.__new__(Results)  # normally made by simcluster.run
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from simcluster.metrics.summary import power_series, summarize

__all__ = ["Results"]


@dataclass
class Results:
    """One run's output.

    Attributes:
        jobs: one row per job (see :data:`simcluster.metrics.records.JOB_COLUMNS`).
        utilization: the cluster-state step function, with ``power_w`` (facility power).
        scenario: the full resolved scenario (a JSON-ready dict).
        seed: the root seed that produced this run.
        meta: cluster constants used by the summaries, and run facts (``partial``).
        links: bytes and mean utilisation of every link and storage disk that carried traffic,
            busiest first (the most congested links).
    """

    jobs: pd.DataFrame
    utilization: pd.DataFrame
    scenario: dict[str, Any]
    seed: int
    meta: dict[str, Any] = field(default_factory=dict)
    links: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["link", "kind", "bytes", "utilization"]))

    def __post_init__(self) -> None:
        if "power_w" not in self.utilization and not self.utilization.empty:
            self.utilization = self.utilization.assign(
                power_w=power_series(self.utilization, self.meta))

    def summary(self) -> dict[str, float]:
        """Headline metrics with stable names (:data:`simcluster.metrics.summary.METRICS`)."""
        return summarize(self.jobs, self.utilization, self.meta)

    def save(self, directory: str | Path) -> list[Path]:
        """Write summary.json, jobs.csv, utilization.csv, links.csv and scenario.resolved.json.

        Returns:
            The paths written.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        summary = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                   for k, v in self.summary().items()}
        paths = [out / "summary.json", out / "jobs.csv", out / "utilization.csv",
                 out / "scenario.resolved.json"]
        paths[0].write_text(json.dumps({"seed": self.seed, **summary}, indent=2) + "\n")
        self.jobs.to_csv(paths[1], index=False)
        self.utilization.to_csv(paths[2], index=False)
        paths.append(out / "links.csv")
        self.links.to_csv(paths[-1], index=False)
        resolved = {"seed": self.seed, "scenario": self.scenario}
        paths[3].write_text(json.dumps(resolved, indent=2, default=str) + "\n")
        return paths

"""Fairness summaries: per-tenant waits and completion times, Jain's index, slowdowns.

A job's *slowdown* is its completion time over its ideal run time (``jct_s / ideal_s``, ≥ 1 when
the ideal is uncontended and packed); its *service rate* is the inverse, the share of full speed
it got from submission to end (Themis' finish-time fairness ρ is the slowdown).

>>> jain_index([1.0, 1.0, 1.0]), jain_index([1.0, 0.0])
(1.0, 0.5)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["POLICY_METRICS", "jain_index", "per_tenant", "policy_metrics", "tenant_fairness"]


def jain_index(values: Sequence[float]) -> float:
    """Jain's fairness index (Σx)² / (n Σx²) of non-negative values (Jain, Chiu & Hawe, DEC
    TR-301, 1984): 1 when all are equal, 1/n when one gets everything; NaN when empty."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if not len(x) or not np.any(x):
        return float("nan")
    return float(x.sum() ** 2 / (len(x) * np.square(x).sum()))


def _slowdown(jobs: pd.DataFrame) -> pd.Series:
    if "ideal_s" not in jobs:
        return pd.Series(np.nan, index=jobs.index)
    return jobs["jct_s"] / jobs["ideal_s"]


def per_tenant(jobs: pd.DataFrame, warmup_s: float = 0.0) -> pd.DataFrame:
    """One row per tenant: jobs, completed, mean and p95 wait (s), mean JCT (s), mean slowdown,
    GPU-hours and share of all GPU-hours, preemptions and lost GPU-hours (jobs submitted after
    ``warmup_s``)."""
    after = jobs[jobs["submit_s"] >= warmup_s]
    rows = []
    total = float(after["gpu_hours"].sum()) or float("nan")
    for tenant, group in after.groupby("tenant", sort=True):
        done = group[group["state"] == "completed"]
        waits = group["wait_s"].dropna()
        rows.append({
            "tenant": tenant, "jobs": len(group), "completed": len(done),
            "mean_wait_s": float(waits.mean()) if len(waits) else float("nan"),
            "p95_wait_s": float(np.percentile(waits, 95)) if len(waits) else float("nan"),
            "mean_jct_s": float(done["jct_s"].mean()) if len(done) else float("nan"),
            "mean_slowdown": float(_slowdown(done).mean()) if len(done) else float("nan"),
            "gpu_hours": float(group["gpu_hours"].sum()),
            "gpu_share": float(group["gpu_hours"].sum()) / total,
            "preemptions": int(group["preemptions"].sum()),
            "lost_gpu_hours": float(group.get("lost_gpu_hours", pd.Series(0.0)).sum()),
        })
    return pd.DataFrame(rows)


def tenant_fairness(jobs: pd.DataFrame, warmup_s: float = 0.0) -> float:
    """Jain's index over tenants of their mean service rate (ideal_s / jct_s of completed jobs):
    1 when every tenant's jobs got the same share of full speed."""
    after = jobs[(jobs["submit_s"] >= warmup_s) & (jobs["state"] == "completed")]
    if after.empty:
        return float("nan")
    rate = 1.0 / _slowdown(after)
    return jain_index(rate.groupby(after["tenant"]).mean().to_numpy())


#: Scheduling-policy metrics (name → meaning), part of :data:`simcluster.metrics.summary.METRICS`.
POLICY_METRICS: dict[str, str] = {
    "preemptions": "times running jobs were stopped and re-queued",
    "lost_gpu_hours": "GPU-hours lost to stops: redone iterations, preemption checkpoints, "
                      "restarts",
    "mean_slowdown": "mean completion time over ideal (uncontended, packed) run time",
    "jain_fairness": "Jain's index over tenants of their mean ideal/completion time (1 = equal)",
    "mean_gpus_fragmented": "time-averaged free GPUs that no queued job can use",
    "fragmentation": "mean_gpus_fragmented as a fraction of all GPUs",
}


def policy_metrics(jobs: pd.DataFrame, util: pd.DataFrame, meta, warmup_s: float = 0.0) -> dict:
    """The :data:`POLICY_METRICS` of a run (jobs submitted after ``warmup_s``)."""
    from simcluster.metrics.summary import time_average

    end = float(meta["end_s"])
    after = jobs[jobs["submit_s"] >= warmup_s]
    done = after[after["state"] == "completed"]
    fragmented = (time_average(util, "gpus_fragmented", end) if "gpus_fragmented" in util
                  else 0.0)
    return {
        "preemptions": int(jobs["preemptions"].sum()),
        "lost_gpu_hours": float(jobs["lost_gpu_hours"].sum()) if "lost_gpu_hours" in jobs
        else 0.0,
        "mean_slowdown": float(_slowdown(done).mean()) if len(done) else float("nan"),
        "jain_fairness": tenant_fairness(jobs, warmup_s),
        "mean_gpus_fragmented": fragmented,
        "fragmentation": fragmented / meta["gpus"],
    }

"""Pure summaries over a run's records, with stable metric names.

Time-weighted figures (utilisation, queue length, power, energy, cost) cover the measured window
from the warm-up (``run.warmup``) to the end; job figures cover jobs submitted after the warm-up.

Metric names are a contract: ``plan`` targets and reports use them. Times in seconds, energy in
kWh, money in US dollars, utilisations as fractions in [0, 1].

>>> import pandas as pd
>>> u = pd.DataFrame({"time_s": [0.0, 10.0], "gpus_allocated": [4.0, 0.0]})
>>> time_average(u, "gpus_allocated", end=20.0)
2.0
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from simcluster.metrics.tenants import POLICY_METRICS, policy_metrics

__all__ = ["METRICS", "STUCK_REASON", "power_series", "summarize", "time_average"]

# how the ``reason`` of a job left queued by a queue that stopped moving (deadlock) begins
STUCK_REASON = "queue stopped moving"

# name -> meaning (units in the name)
METRICS: dict[str, str] = {
    "jobs_submitted": "jobs submitted during the run",
    "jobs_completed": "jobs that finished all their iterations",
    "jobs_rejected": "jobs that can never fit the cluster (rejected at submit)",
    "jobs_queued_at_end": "jobs still waiting at the horizon",
    "jobs_running_at_end": "jobs still running at the horizon",
    "jobs_stuck": "jobs left queued on an idle cluster when no event was left (deadlock)",
    "mean_wait_s": "mean time from submit to first start (started jobs after warm-up)",
    "mean_wait_lower_bound_s": "mean wait counting jobs still queued at the end with their wait "
                               "so far (a lower bound when the queue does not drain)",
    "p50_wait_s": "median wait",
    "p95_wait_s": "95th percentile wait",
    "p99_wait_s": "99th percentile wait",
    "mean_jct_s": "mean job completion time, submit to end (completed jobs after warm-up)",
    "p50_jct_s": "median completion time",
    "p95_jct_s": "95th percentile completion time",
    "mean_run_s": "mean time from first start to end (completed jobs)",
    "makespan_s": "time of the last job end",
    "throughput_jobs_per_h": "jobs completed per simulated hour (after warm-up)",
    "gpu_util": "time-averaged fraction of GPUs allocated",
    "gpu_compute_util": "time-averaged fraction of GPUs computing (not communicating, idle)",
    "mean_queue_len": "time-averaged number of queued jobs",
    "gpu_hours": "GPU-hours allocated to jobs",
    "energy_kwh": "facility energy of the cluster after warm-up (GPUs, hosts, PUE)",
    "mean_power_kw": "mean facility power",
    "cost_usd": "on-demand price of renting the whole cluster after warm-up",
    "tco_usd": "purchase price amortised over the lifetime, plus electricity, after warm-up",
    "sim_time_s": "simulated time covered by the run",
    **POLICY_METRICS,
    "mean_network_wait_s": "mean time a completed job lost to network contention",
    "mean_storage_wait_s": "mean time a completed job waited for storage (checkpoints, data)",
    "max_link_util": "mean utilisation of the busiest link or disk over the run",
    # issue 8: failures and checkpoints (jobs table columns from engine/failures.py Ledger)
    "ettr": "effective training time ratio: kept iteration time / wall time since first "
            "start, GPU-weighted over started jobs",
    "failures": "component failures during the run (all kinds; failures_<kind> by kind)",
    "job_failures": "failures that stopped a job",
    "checkpoint_overhead": "fraction of held GPU time spent in blocking checkpoint writes",
    "mean_time_to_recover_s": "mean time from a failure to the stopped job working again",
}
_KINDS = ("gpu", "host", "nic", "link", "switch", "storage")  # scenario_failures.COMPONENTS
METRICS.update({f"failures_{k}": f"failures of {k} components" for k in _KINDS})
METRICS.update({  # trace replay (issue 6); present only when a [workload.trace] is replayed
    "trace_rows": "trace rows read (rows after a window's end are not read)",
    "trace_jobs": "jobs made from trace rows",
    "trace_rows_skipped": "malformed trace rows skipped (on_bad_row = skip)",
    "trace_rows_filtered": "trace rows left out on purpose (CPU-only, transforms' filters)",
})


def time_average(frame: pd.DataFrame, column: str, end: float, start: float = 0.0) -> float:
    """Time average of a step function (``time_s``, ``column``) over [start, end]."""
    if end <= start or frame.empty:
        return 0.0
    times = np.clip(frame["time_s"].to_numpy(dtype=float), start, end)
    widths = np.diff(np.append(times, end))
    return float(np.dot(frame[column].to_numpy(dtype=float), widths) / (end - start))


def power_series(util: pd.DataFrame, meta: Mapping[str, float]) -> pd.Series:
    """Facility power (W) after each state change: every GPU's idle draw, the computing GPUs'
    extra draw up to their maximum (``gpus_busy_w``, per GPU type; older tables without it use
    one type's figures), the hosts' constant draw, all times the PUE."""
    if "gpus_busy_w" in util:
        busy = util["gpus_busy_w"]
    else:
        busy = util["gpus_computing"] * (meta["gpu_max_w"] - meta["gpu_idle_w"])
    it = meta["gpus"] * meta["gpu_idle_w"] + busy + meta["hosts"] * meta["host_w"]
    return it * meta["pue"]


def _pct(values: pd.Series, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def summarize(jobs: pd.DataFrame, util: pd.DataFrame, meta: Mapping[str, float]) -> dict:
    """Headline metrics of a run (see :data:`METRICS` for names and meanings).

    Args:
        jobs: the jobs table.
        util: the utilisation step function.
        meta: cluster constants: ``gpus``, ``hosts``, ``gpu_idle_w``, ``gpu_max_w``, ``host_w``,
            ``pue``, ``hourly_usd``, ``capex_usd``, ``lifetime_s``, ``usd_per_kwh``, ``end_s``
            (end of the simulated span) and ``warmup_s``.
    """
    end, warm = float(meta["end_s"]), float(meta.get("warmup_s", 0.0))
    after = jobs[jobs["submit_s"] >= warm]
    started = after[after["start_s"].notna()]
    done = after[after["state"] == "completed"]
    # time-weighted figures cover the measured window [warm-up, end]
    span = max(end - warm, 0.0)
    power = power_series(util, meta) if not util.empty else pd.Series(dtype=float)
    energy_j = time_average(util.assign(power=power), "power", end, warm) * span
    energy_kwh = energy_j / 3.6e6
    hours = span / 3600.0
    state = jobs["state"]
    waiting = after[after["start_s"].isna() & (after["state"] != "rejected")]
    censored = pd.concat([started["wait_s"], end - waiting["submit_s"]])
    return {
        "jobs_submitted": int(len(jobs)),
        "jobs_completed": int((state == "completed").sum()),
        "jobs_rejected": int((state == "rejected").sum()),
        "jobs_queued_at_end": int((state == "queued").sum()),
        "jobs_running_at_end": int((state == "running").sum()),
        "jobs_stuck": int(((state == "queued")
                           & jobs["reason"].astype(str).str.startswith(STUCK_REASON)).sum()),
        "mean_wait_s": float(started["wait_s"].mean()) if len(started) else float("nan"),
        "mean_wait_lower_bound_s": float(censored.mean()) if len(censored) else float("nan"),
        "p50_wait_s": _pct(started["wait_s"], 50),
        "p95_wait_s": _pct(started["wait_s"], 95),
        "p99_wait_s": _pct(started["wait_s"], 99),
        "mean_jct_s": float(done["jct_s"].mean()) if len(done) else float("nan"),
        "p50_jct_s": _pct(done["jct_s"], 50),
        "p95_jct_s": _pct(done["jct_s"], 95),
        "mean_run_s": float(done["run_s"].mean()) if len(done) else float("nan"),
        "makespan_s": float(jobs["end_s"].max()) if jobs["end_s"].notna().any() else 0.0,
        "throughput_jobs_per_h": float((jobs["end_s"] >= warm).sum() / hours) if hours else 0.0,
        "gpu_util": time_average(util, "gpus_allocated", end, warm) / meta["gpus"],
        "gpu_compute_util": time_average(util, "gpus_computing", end, warm) / meta["gpus"],
        "mean_queue_len": time_average(util, "jobs_queued", end, warm),
        "gpu_hours": float(jobs["gpu_hours"].sum()),
        "energy_kwh": energy_kwh,
        "mean_power_kw": energy_kwh / hours if hours else 0.0,
        "cost_usd": meta["gpus"] * hours * meta["hourly_usd"],
        "tco_usd": meta["capex_usd"] * span / meta["lifetime_s"]
        + energy_kwh * meta["usd_per_kwh"],
        "sim_time_s": end,
        **policy_metrics(jobs, util, meta, warm),
        "mean_network_wait_s": float(done["network_wait_s"].mean()) if len(done) else 0.0,
        "mean_storage_wait_s": float(done["storage_wait_s"].mean()) if len(done) else 0.0,
        "max_link_util": float(meta.get("max_link_util", 0.0)),
        **_failure_metrics(after, end, meta),
        # trace replay (issue 6): rows read, jobs made, bad rows skipped, rows filtered out
        **{k: int(v) for k, v in meta.items() if k.startswith("trace_") and isinstance(v, int)},
    }


def _failure_metrics(jobs: pd.DataFrame, end: float, meta: Mapping[str, float]) -> dict:
    """ETTR, failures, checkpoint overhead and recovery time (issue 8); NaN/0 without them."""
    if "useful_s" not in jobs:
        return {}
    started = jobs[jobs["start_s"].notna()]
    gpus = started["gpus"].astype(float)
    wall = (started["end_s"].fillna(end).astype(float) - started["start_s"].astype(float))
    useful = float((started["useful_s"] * gpus).sum())
    held = float((started["held_s"] * gpus).sum())
    recover = started["recover_s"].dropna()
    weights = started.loc[recover.index, "failures"]
    out = {
        "ettr": useful / float((wall * gpus).sum()) if (wall * gpus).sum() > 0 else float("nan"),
        "failures": int(meta.get("failures", 0)),
        "job_failures": int(started["failures"].sum()),
        "checkpoint_overhead": float((started["checkpoint_s"] * gpus).sum()) / held
        if held > 0 else 0.0,
        "mean_time_to_recover_s": float((recover * weights).sum() / weights.sum())
        if len(recover) and weights.sum() > 0 else float("nan"),
    }
    out.update({f"failures_{k}": int(meta.get(f"failures_{k}", 0)) for k in _KINDS})
    return out

"""Request-level records of inference services and their pure per-service summaries.

Per request: time to first token (TTFT), time per output token after the first (TPOT, the mean
time between tokens), end-to-end latency and queueing time (arrival to first admission into a
batch). Per service: percentiles, throughput, SLO attainment (fraction of requests meeting every
target), goodput (requests meeting the SLO per second, DistServe's definition), GPU-hours and
cost per million output tokens.

>>> slo_met(0.5, 0.05, 3.0, 1.0, 0.1, None)
True
>>> slo_met(1.5, 0.05, 3.0, 1.0, 0.1, None)
False
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["REPLICA_COLUMNS", "REQUEST_COLUMNS", "SERVICE_METRICS", "format_services",
           "replica_counts", "service_summary", "slo_met"]

REQUEST_COLUMNS = (
    "request_id", "service", "replica", "state", "arrival_s", "queue_s", "ttft_s", "tpot_s",
    "e2e_s", "prompt_tokens", "output_tokens", "preemptions", "slo_met",
)
REPLICA_COLUMNS = (
    "service", "replica", "gpu", "gpus", "asked_s", "start_s", "ready_s", "end_s",
    "cold_start_s", "usd_per_hour", "iterations", "events", "busy_s",
)

SERVICE_METRICS = {
    "requests": "requests that arrived (after the warm-up)",
    "completed": "requests finished",
    "rejected": "requests that can never fit a replica's KV cache",
    "p50_ttft_s": "median time to first token", "p90_ttft_s": "90th percentile TTFT",
    "p99_ttft_s": "99th percentile TTFT",
    "p50_tpot_s": "median time per output token", "p90_tpot_s": "90th percentile TPOT",
    "p99_tpot_s": "99th percentile TPOT",
    "p50_e2e_s": "median end-to-end latency", "p90_e2e_s": "90th percentile e2e",
    "p99_e2e_s": "99th percentile e2e",
    "mean_queue_s": "mean time from arrival to first admission into a batch",
    "throughput_rps": "requests completed per second", "tokens_per_s": "output tokens per s",
    "slo_attainment": "fraction of arrived requests that met every SLO target",
    "goodput_rps": "requests meeting the SLO per second",
    "gpu_hours": "GPU-hours held by the service's replicas",
    "cost_usd": "on-demand price of those GPU-hours",
    "usd_per_mtok": "cost per million output tokens (whole run)",
    "mean_replicas": "time-averaged replicas held or asked for",
    "max_replicas": "most replicas held or asked for at once",
    "mean_cold_start_s": "mean time from GPUs granted to ready (start + weight loading)",
    "replica_busy": "fraction of the replicas' held time spent running iterations",
}


def slo_met(ttft: float | None, tpot: float | None, e2e: float | None, ttft_slo: float | None,
            tpot_slo: float | None, e2e_slo: float | None) -> bool:
    """Whether one request met every given target (None targets are ignored)."""
    for value, target in ((ttft, ttft_slo), (tpot, tpot_slo), (e2e, e2e_slo)):
        if target is not None and (value is None or value > target):
            return False
    return True


def _pct(values: pd.Series, q: float) -> float:
    v = values.dropna()
    return float(np.percentile(v, q)) if len(v) else math.nan


def replica_counts(counts: pd.DataFrame, service: str, end: float) -> pd.DataFrame:
    """The replica count of ``service`` over time: a step function (``time_s``, ``replicas``,
    ``ready``) up to ``end``."""
    c = counts[counts["service"] == service][["time_s", "replicas", "ready"]]
    return c.groupby("time_s", as_index=False).last()[lambda f: f["time_s"] <= end]


def service_summary(requests: pd.DataFrame, replicas: pd.DataFrame, counts: pd.DataFrame,
                    end: float, warmup: float = 0.0) -> pd.DataFrame:
    """One row per service with :data:`SERVICE_METRICS` (requests arrived after ``warmup``;
    rates over [warmup, end]; GPU-hours and cost over the whole run)."""
    rows = []
    span = max(end - warmup, 1e-12)
    names = sorted(set(requests["service"]) | set(replicas["service"]))
    for name in names:
        r = requests[(requests["service"] == name) & (requests["arrival_s"] >= warmup)]
        done = r[r["state"] == "completed"]
        rep = replicas[replicas["service"] == name]
        held = (rep["end_s"].fillna(end) - rep["start_s"]).clip(lower=0).fillna(0.0)
        gpu_hours = float((held * rep["gpus"]).sum() / 3600.0)
        cost = float((held * rep["usd_per_hour"]).sum() / 3600.0)
        out_tokens = float(done["output_tokens"].sum())
        every = requests[(requests["service"] == name) & (requests["state"] == "completed")]
        all_tokens = float(every["output_tokens"].sum())  # the whole run, as the cost
        step = replica_counts(counts, name, end)
        if len(step):
            t = np.append(step["time_s"].to_numpy(float), end)
            mean_rep = float(np.dot(step["replicas"], np.diff(t)) / max(end - t[0], 1e-12))
            max_rep = int(step["replicas"].max())
        else:
            mean_rep, max_rep = 0.0, 0
        met = int(r["slo_met"].astype(bool).sum())
        row = {"service": name, "requests": len(r), "completed": len(done),
               "rejected": int((r["state"] == "rejected").sum())}
        for col in ("ttft", "tpot", "e2e"):
            for q in (50, 90, 99):
                row[f"p{q}_{col}_s"] = _pct(done[f"{col}_s"], q)
        row.update({
            "mean_queue_s": float(done["queue_s"].mean()) if len(done) else math.nan,
            "throughput_rps": len(done) / span, "tokens_per_s": out_tokens / span,
            "slo_attainment": met / len(r) if len(r) else math.nan,
            "goodput_rps": met / span, "gpu_hours": gpu_hours, "cost_usd": cost,
            "usd_per_mtok": cost / (all_tokens / 1e6) if all_tokens else math.nan,
            "mean_replicas": mean_rep, "max_replicas": max_rep,
            "mean_cold_start_s": float(rep["cold_start_s"].mean()) if len(rep) else math.nan,
            "replica_busy": float(rep["busy_s"].sum() / held.sum()) if held.sum() > 0
            else math.nan,
        })
        rows.append(row)
    return pd.DataFrame(rows, columns=["service", *SERVICE_METRICS])


def format_services(frame: pd.DataFrame) -> str:
    """The per-service summary as text (what ``simcluster run`` prints)."""
    lines = []
    for row in frame.to_dict("records"):
        def ms(key: str, r: dict = row) -> str:
            v = r[key]
            return "-" if v is None or (isinstance(v, float) and math.isnan(v)) \
                else f"{v * 1e3:,.0f} ms"
        att = row["slo_attainment"]
        lines += [
            f"service {row['service']}: {row['completed']:,} of {row['requests']:,} requests "
            f"completed ({row['rejected']:,} rejected)",
            f"  TTFT p50/p90/p99   {ms('p50_ttft_s')} / {ms('p90_ttft_s')} / {ms('p99_ttft_s')}",
            f"  TPOT p50/p90/p99   {ms('p50_tpot_s')} / {ms('p90_tpot_s')} / {ms('p99_tpot_s')}",
            f"  e2e  p50/p90/p99   {ms('p50_e2e_s')} / {ms('p90_e2e_s')} / {ms('p99_e2e_s')}",
            f"  throughput         {row['throughput_rps']:.2f} req/s, "
            f"{row['tokens_per_s']:,.0f} output tokens/s",
            f"  SLO attainment     {'-' if math.isnan(att) else f'{att:.1%}'}, goodput "
            f"{row['goodput_rps']:.2f} req/s",
            f"  replicas           mean {row['mean_replicas']:.2f}, max {row['max_replicas']}, "
            f"{row['replica_busy']:.0%} busy; "
            f"{row['gpu_hours']:.2f} GPU-hours, ${row['cost_usd']:,.2f} "
            f"(${row['usd_per_mtok']:.2f} per million output tokens)",
        ]
    return "\n".join(lines)

"""Pictures of one run, or of several: each function returns a :class:`matplotlib.figure.Figure`.

The functions read result tables only (a :class:`~simcluster.metrics.results.Results` or its
DataFrames), never the engine, and use matplotlib's object-oriented API (no pyplot state), so
they are safe in scripts, servers and notebooks alike. Times are drawn in a unit chosen from
the span (s, min, h or d) and every axis names its unit.

>>> import pandas as pd
>>> links = pd.DataFrame({"link": ["a->b"], "kind": ["ib"], "bytes": [1e9], "utilization": [0.5]})
>>> busiest_links(links).axes[0].get_xlabel()
'mean utilisation over the run (%)'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from simcluster.metrics.results import Results

__all__ = [
    "busiest_links", "cdf_plot", "comparison_bars", "gpu_timeline", "metric_unit", "queue_plot",
    "time_unit", "utilization_plot",
]

_TIME_UNITS = (("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0))
_JOB_LABELS = {"wait_s": "wait", "jct_s": "job completion time", "run_s": "run time"}


def time_unit(span_s: float) -> tuple[str, float]:
    """The unit to draw a time span in, and seconds per unit: d from 2 days, h from 2 hours, ...

    >>> time_unit(7200.0)
    ('h', 3600.0)
    >>> time_unit(30.0)
    ('s', 1.0)
    """
    for unit, factor in _TIME_UNITS:
        if span_s >= 2 * factor:
            return unit, factor
    return "s", 1.0


def _tenant_colors(tenants: Sequence[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(tenants) <= 10 else "tab20"]
    return {t: cmap(i % cmap.N) for i, t in enumerate(tenants)}


def _end_time(results: Results) -> float:
    end = results.meta.get("end_s")
    if end is not None and math.isfinite(float(end)):
        return float(end)
    times = [results.utilization["time_s"].max() if not results.utilization.empty else 0.0,
             results.jobs["end_s"].max() if not results.jobs.empty else 0.0]
    return float(np.nanmax(times))


def _new_figure(width: float = 9.0, height: float = 3.5) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _free_slots(free_at: np.ndarray, start: float, need: int) -> list[tuple[int, int]] | None:
    """Blocks ``(first slot, size)`` free at ``start`` for ``need`` slots: the smallest single
    run of free slots that fits (best fit), else the lowest free slots in several blocks."""
    free = np.flatnonzero(free_at <= start + 1e-9)
    if len(free) < need:
        return None
    breaks = np.flatnonzero(np.diff(free) != 1) + 1
    runs = [(int(r[0]), len(r)) for r in np.split(free, breaks)]
    fitting = [r for r in runs if r[1] >= need]
    if fitting:
        first, _ = min(fitting, key=lambda r: (r[1], r[0]))
        return [(first, need)]
    blocks, left = [], need
    for first, size in runs:
        take = min(size, left)
        blocks.append((first, take))
        left -= take
        if not left:
            break
    return blocks


def gpu_timeline(results: Results, max_jobs: int = 2000) -> Figure:
    """A Gantt chart of jobs over time, each a bar as tall as its GPUs, coloured by tenant.

    Placements are not recorded per GPU, so the rows are *GPU slots*, not physical GPUs: jobs
    are laid out in start order on slots that are free when they start, in one block when one
    fits (the smallest such block), else split over several blocks (drawn in the same colour).
    The height of the stack at any time is therefore the GPUs allocated then, and never above
    the cluster size (the dotted line) while jobs hold their GPUs from start to end. A bar spans
    the job's first start to its end (or the end of the run for jobs still running); preempted
    jobs are hatched (their bar includes the time they spent re-queued, and may then be drawn
    above the cluster size), jobs that did not complete have a black edge.

    Args:
        results: one run.
        max_jobs: draw at most this many jobs (the first to start); the title says when some
            are left out.

    Returns:
        A figure with one axis: x time, y GPU slots.
    """
    end = _end_time(results)
    unit, factor = time_unit(end)
    jobs = results.jobs.dropna(subset=["start_s"]).sort_values(["start_s", "job_id"],
                                                             kind="stable")
    total = len(jobs)
    jobs = jobs.head(max_jobs)
    slots = int(results.meta.get("gpus") or max(1, math.ceil(jobs["gpus"].max())
                                                 if len(jobs) else 1))
    free_at = np.full(slots, -np.inf)
    tenants = sorted(results.jobs["tenant"].fillna("").astype(str).unique())
    colors = _tenant_colors(tenants)
    fig = _new_figure(9.0, 4.0)
    ax = fig.add_subplot()
    for job in jobs.itertuples():
        start = float(job.start_s)
        stop = float(job.end_s) if pd.notna(job.end_s) else end
        need = max(1, math.ceil(float(job.gpus)))
        segments = _free_slots(free_at, start, need)
        if segments is None:  # fractional GPUs shared beyond the drawing: stack on top
            segments = [(len(free_at), need)]
            free_at = np.concatenate([free_at, np.full(need, -np.inf)])
        height = float(job.gpus) / need
        preempted = int(getattr(job, "preemptions", 0) or 0) > 0
        done = getattr(job, "state", "completed") == "completed"
        for base, size in segments:
            free_at[base:base + size] = stop
            ax.barh(base, (stop - start) / factor, left=start / factor, height=size * height,
                    align="edge",
                    color=colors[str(job.tenant) if pd.notna(job.tenant) else ""],
                    edgecolor="black" if not done else "white", linewidth=0.4,
                    hatch="///" if preempted else None)
    ax.set_xlim(0, end / factor if end > 0 else 1)
    ax.set_ylim(0, max(len(free_at), slots))
    ax.axhline(slots, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel(f"simulated time ({unit})")
    ax.set_ylabel("GPU slots (GPUs, stacked by start order)")
    handles = [Patch(color=colors[t], label=t or "(none)") for t in tenants]
    if (results.jobs.get("preemptions", pd.Series(dtype=float)).fillna(0) > 0).any():
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///",
                             label="preempted"))
    ax.legend(handles=handles, title="tenant", loc="upper left", bbox_to_anchor=(1.0, 1.0),
              fontsize="small")
    title = "Jobs over time (bar height = GPUs; dotted line = cluster size)"
    if total > len(jobs):
        title += f"; first {len(jobs)} of {total} jobs"
    ax.set_title(title, fontsize="medium")
    return fig


def _steps(ax, results: Results, columns: Mapping[str, str], ylabel: str) -> tuple[str, float]:
    util = results.utilization
    end = _end_time(results)
    unit, factor = time_unit(end)
    times = np.append(util["time_s"].to_numpy(dtype=float), max(end, util["time_s"].max()))
    for column, label in columns.items():
        values = util[column].to_numpy(dtype=float)
        ax.step(times / factor, np.append(values, values[-1]), where="post", label=label)
    ax.set_xlim(0, times[-1] / factor if times[-1] > 0 else 1)
    ax.set_xlabel(f"simulated time ({unit})")
    ax.set_ylabel(ylabel)
    return unit, factor


def utilization_plot(results: Results) -> Figure:
    """GPUs allocated and GPUs computing over time (step functions), against the cluster size.

    The gap between the two lines is time allocated GPUs spend communicating, loading data,
    checkpointing or waiting for a restart.
    """
    fig = _new_figure()
    ax = fig.add_subplot()
    _steps(ax, results, {"gpus_allocated": "allocated", "gpus_computing": "computing"}, "GPUs")
    if results.meta.get("gpus"):
        ax.axhline(float(results.meta["gpus"]), color="grey", linestyle=":", label="cluster")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    ax.set_title("GPU utilisation over time", fontsize="medium")
    return fig


def queue_plot(results: Results) -> Figure:
    """Jobs waiting in the queue, and jobs running, over time (step functions)."""
    fig = _new_figure()
    ax = fig.add_subplot()
    _steps(ax, results, {"jobs_queued": "queued", "jobs_running": "running"}, "jobs")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    ax.set_title("Queue length over time", fontsize="medium")
    return fig


def _jobs_table(run: Results | pd.DataFrame) -> pd.DataFrame:
    return run.jobs if isinstance(run, Results) else run


def cdf_plot(runs: Results | pd.DataFrame | Mapping[str, Results | pd.DataFrame],
             columns: Sequence[str] = ("wait_s", "jct_s"), log: bool = False) -> Figure:
    """Empirical CDFs of per-job times, several runs (or policies) on one axis per column.

    Args:
        runs: one run, or runs by label (a Results or its jobs table each).
        columns: per-job columns in seconds (``wait_s``, ``jct_s``, ``run_s``); one axis each.
        log: logarithmic time axis (zero times are left out then).

    Returns:
        A figure with one axis per column: x time, y fraction of jobs.
    """
    if isinstance(runs, Results | pd.DataFrame):
        runs = {"run": runs}
    tables = {label: _jobs_table(run) for label, run in runs.items()}
    longest = max((float(t[c].max()) for t in tables.values() for c in columns
                   if c in t and t[c].notna().any()), default=1.0)
    unit, factor = time_unit(longest)
    fig = _new_figure(4.5 * len(columns), 3.5)
    axes = fig.subplots(1, len(columns), squeeze=False)[0]
    for ax, column in zip(axes, columns, strict=True):
        for label, table in tables.items():
            values = np.sort(table[column].dropna().to_numpy(dtype=float))
            if log:
                values = values[values > 0]
            if not len(values):
                continue
            fraction = np.arange(1, len(values) + 1) / len(values)
            ax.step(np.concatenate([[values[0]], values]) / factor,
                    np.concatenate([[0.0], fraction]), where="post", label=str(label))
        if log:
            ax.set_xscale("log")
        name = _JOB_LABELS.get(column, column)
        ax.set_xlabel(f"{name} ({unit})")
        ax.set_ylabel("fraction of jobs")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"CDF of {name}", fontsize="medium")
        ax.grid(alpha=0.3)
    if len(tables) > 1:
        axes[-1].legend(fontsize="small")
    return fig


def metric_unit(metric: str) -> str:
    """The unit of a metric, from its name's suffix (``_s`` seconds, ``_usd`` US$, ...).

    >>> metric_unit("p95_wait_s"), metric_unit("gpu_util")
    ('s', 'fraction')
    """
    for suffix, unit in (("_s", "s"), ("_usd", "US$"), ("_kwh", "kWh"), ("_kw", "kW"),
                         ("_per_h", "per h"), ("_hours", "h"), ("util", "fraction"),
                         ("fragmentation", "fraction")):
        if metric.endswith(suffix):
            return unit
    if metric.startswith("jobs_"):
        return "jobs"
    return "value"


_SUMMARY_COLUMNS = {"metric", "n", "mean", "std", "half_width", "ci_low", "ci_high"}


def comparison_bars(table: pd.DataFrame, metric: str | None = None,
                    by: Sequence[str] | None = None, ylabel: str | None = None) -> Figure:
    """Bars of means with confidence intervals (error bars of ± ``half_width``).

    Takes the table ``SweepResults.summary()`` (:mod:`simcluster.experiment.sweep`) returns
    (``*keys, metric, n, mean, std, half_width, ...``, or indexed by metric without keys), or
    any table with ``mean`` and ``half_width`` columns.

    Args:
        table: the interval table.
        metric: the metric to draw when the table holds several.
        by: columns that label the bars (default: the grid keys, else the index).
        ylabel: the y axis label (default: the metric and its unit).

    Returns:
        A figure with one axis: one bar per row.
    """
    data = table
    if metric is not None:
        if "metric" in data.columns:
            data = data[data["metric"] == metric]
        elif metric in data.index:
            data = data.loc[[metric]]
        if data.empty:
            raise ValueError(f"comparison_bars: no rows for metric {metric!r}")
    elif "metric" in data.columns and data["metric"].nunique() > 1:
        raise ValueError("comparison_bars: the table holds several metrics; pass metric=")
    if by is None:
        by = [c for c in data.columns if c not in _SUMMARY_COLUMNS]
    if by:
        labels = [", ".join(f"{k}={v}" for k, v in zip(by, row, strict=True))
                  for row in data[list(by)].itertuples(index=False)]
    else:
        labels = [str(i) for i in data.index]
    if metric is None and "metric" in data.columns and len(data):
        metric = str(data["metric"].iloc[0])
    elif metric is None and not by and len(data) == 1:
        metric = str(data.index[0])
    fig = _new_figure(max(4.0, 0.9 * len(labels) + 2.0), 3.8)
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    ax.bar(x, data["mean"].to_numpy(dtype=float), yerr=data["half_width"].to_numpy(dtype=float),
           capsize=4, color="tab:blue", ecolor="black")
    ax.set_xticks(x, labels, rotation=30 if max(map(len, labels), default=0) > 12 else 0,
                  ha="right" if max(map(len, labels), default=0) > 12 else "center")
    ax.set_xlabel(", ".join(by) if by else "metric")
    if ylabel is None:
        ylabel = f"{metric} ({metric_unit(metric)})" if metric else "mean"
    ax.set_ylabel(ylabel)
    ax.set_title("Mean with confidence interval", fontsize="medium")
    ax.grid(axis="y", alpha=0.3)
    return fig


def busiest_links(links: Results | pd.DataFrame, n: int = 15) -> Figure:
    """The ``n`` busiest links and storage disks by mean utilisation, coloured by kind.

    Args:
        links: a Results or its ``links`` table (``link, kind, bytes, utilization``).
        n: how many links to draw.
    """
    table = links.links if isinstance(links, Results) else links
    top = table.sort_values("utilization", ascending=False, kind="stable").head(n)
    top = top.iloc[::-1]  # busiest at the top
    kinds = sorted(top["kind"].astype(str).unique())
    colors = _tenant_colors(kinds)
    fig = _new_figure(9.0, max(2.0, 0.28 * len(top) + 1.2))
    ax = fig.add_subplot()
    ax.barh(np.arange(len(top)), top["utilization"].to_numpy(dtype=float) * 100,
            color=[colors[str(k)] for k in top["kind"]])
    ax.set_yticks(np.arange(len(top)), top["link"].astype(str).tolist(), fontsize="small")
    ax.set_xlabel("mean utilisation over the run (%)")
    ax.set_ylabel("link")
    ax.legend(handles=[Patch(color=colors[k], label=k) for k in kinds], title="kind",
              loc="lower right", fontsize="small")
    ax.set_title(f"Busiest links (top {len(top)})", fontsize="medium")
    return fig

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
from matplotlib.ticker import FuncFormatter, NullFormatter

from simcluster.metrics.results import Results
from simcluster.topology import Topology

__all__ = [
    "busiest_links", "cdf_plot", "checkpoint_curve", "comparison_bars", "gpu_timeline",
    "iteration_breakdown",
    "metric_unit", "queue_plot", "replica_count", "serving_latency",
    "sweep_curve", "time_unit", "topology_plot", "utilization_plot",
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
    the job's first start to its end (or the end of the run for jobs still running); jobs hit by
    a failure are cross-hatched with a red edge, other preempted jobs are hatched (their bar
    includes the time they spent re-queued, and may then be drawn
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
        failed = int(getattr(job, "failures", 0) or 0) > 0  # stopped by a failure (issue 8)
        done = getattr(job, "state", "completed") == "completed"
        for base, size in segments:
            free_at[base:base + size] = stop
            ax.barh(base, (stop - start) / factor, left=start / factor, height=size * height,
                    align="edge",
                    color=colors[str(job.tenant) if pd.notna(job.tenant) else ""],
                    edgecolor="red" if failed else "black" if not done else "white",
                    linewidth=0.4, hatch="xx" if failed else "///" if preempted else None)
    ax.set_xlim(0, end / factor if end > 0 else 1)
    ax.set_ylim(0, max(len(free_at), slots))
    ax.axhline(slots, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel(f"simulated time ({unit})")
    ax.set_ylabel("GPU slots (GPUs, stacked by start order)")
    handles = [Patch(color=colors[t], label=t or "(none)") for t in tenants]
    if (results.jobs.get("preemptions", pd.Series(dtype=float)).fillna(0) > 0).any():
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///",
                             label="preempted"))
    if (results.jobs.get("failures", pd.Series(dtype=float)).fillna(0) > 0).any():
        handles.append(Patch(facecolor="white", edgecolor="red", hatch="xx",
                             label="hit by a failure"))
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


_LAYER = {"spine": 0, "core": 0, "aggregation": 1, "storage": 1, "leaf": 2, "nic": 3,
          "host": 4, "nvswitch": 5, "gpu": 6}


def topology_plot(topology: Topology, links: Results | pd.DataFrame | None = None,
                  max_gpus: int = 64) -> Figure:
    """The cluster drawn as a graph in layers (spines, leaves, NICs, hosts, NVSwitches, GPUs),
    each link coloured by its mean utilisation over the run (the busier direction).

    Args:
        topology: the cluster (``simcluster.engine.simulation.build_topology(scenario.cluster)``).
        links: a Results or its ``links`` table; None draws the bare topology.
        max_gpus: above this many GPUs only switches, hosts and storage are drawn.
    """
    import networkx as nx
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    graph = topology.graph
    keep = {n for n, d in graph.nodes(data=True) if d.get("kind") in _LAYER}
    if len(topology.gpus) > max_gpus:
        keep = {n for n in keep if graph.nodes[n]["kind"] not in ("gpu", "nic", "nvswitch")}
    view = nx.Graph()
    for n in sorted(keep, key=lambda n: (_LAYER[graph.nodes[n]["kind"]], n)):
        view.add_node(n, layer=_LAYER[graph.nodes[n]["kind"]])
    util: dict[frozenset, float] = {}
    table = links.links if isinstance(links, Results) else links
    if table is not None and len(table):
        for name, u in zip(table["link"].astype(str), table["utilization"], strict=True):
            a, _, b = name.partition("->")
            key = frozenset((a, b))
            util[key] = max(util.get(key, 0.0), float(u))
    for a, b in graph.edges():
        if a in keep and b in keep:
            view.add_edge(a, b, util=util.get(frozenset((a, b)), 0.0))
    if len(topology.gpus) > max_gpus:  # hosts reach leaves through NICs that are not drawn
        for host in (n for n in keep if graph.nodes[n]["kind"] == "host"):
            for nic in graph.successors(host):
                for leaf in graph.successors(nic):
                    if leaf in keep and leaf != host:
                        u = util.get(frozenset((nic, leaf)), 0.0)
                        prev = view.edges[host, leaf]["util"] if view.has_edge(host, leaf) else 0
                        view.add_edge(host, leaf, util=max(u, prev))
    pos = nx.multipartite_layout(view, subset_key="layer", align="horizontal", scale=1.0)
    pos = {n: (x, -y) for n, (x, y) in pos.items()}  # spines on top
    fig = _new_figure(10.0, 5.0)
    ax = fig.add_subplot()
    values = [d["util"] * 100 for _, _, d in view.edges(data=True)]
    norm = Normalize(0.0, max(1.0, max(values, default=0.0)))
    cmap = colormaps["viridis"]
    nx.draw_networkx_edges(view, pos, ax=ax, edge_color=[cmap(norm(v)) for v in values],
                           width=[0.6 + 2.4 * norm(v) for v in values])
    kinds = sorted({graph.nodes[n]["kind"] for n in view}, key=_LAYER.get)
    colors = _tenant_colors(kinds)
    for kind in kinds:
        nodes = [n for n in view if graph.nodes[n]["kind"] == kind]
        nx.draw_networkx_nodes(view, pos, nodelist=nodes, ax=ax, node_size=40 if kind == "gpu"
                               else 70, node_color=[colors[kind]], label=kind)
    ax.legend(loc="upper right", fontsize="small", markerscale=0.8)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax,
                 label="mean link utilisation (%)")
    ax.set_axis_off()
    shown = "all components" if len(topology.gpus) <= max_gpus else "switches and hosts"
    ax.set_title(f"Topology ({len(topology.hosts)} nodes, {len(topology.gpus)} GPUs; "
                 f"{shown})", fontsize="medium")
    return fig


def sweep_curve(table: pd.DataFrame, x: str, metric: str | None = None,
                by: str | None = None, ylabel: str | None = None) -> Figure:
    """Mean of a metric against a swept parameter, with its confidence interval as a band.

    Args:
        table: ``SweepResults.summary()`` (``*keys, metric, mean, ci_low, ci_high``).
        x: the numeric grid key on the x axis.
        metric: the metric to draw when the table holds several.
        by: a second grid key: one curve per value.
        ylabel: the y axis label (default: the metric and its unit).
    """
    data = table
    if metric is not None:
        data = data[data["metric"] == metric]
    elif data["metric"].nunique() > 1:
        raise ValueError("sweep_curve: the table holds several metrics; pass metric=")
    if data.empty or x not in data.columns:
        raise ValueError(f"sweep_curve: no rows with grid key {x!r} (metric {metric!r})")
    metric = str(data["metric"].iloc[0])
    fig = _new_figure(7.0, 3.8)
    ax = fig.add_subplot()
    groups = data.groupby(by, sort=True) if by else [(None, data)]
    for label, group in groups:
        g = group.sort_values(x)
        xs = g[x].to_numpy(dtype=float)
        line, = ax.plot(xs, g["mean"].to_numpy(dtype=float), "o-",
                        label=None if by is None else f"{by}={label}")
        ax.fill_between(xs, g["ci_low"].to_numpy(dtype=float),
                        g["ci_high"].to_numpy(dtype=float), color=line.get_color(), alpha=0.2)
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel or f"{metric} ({metric_unit(metric)})")
    if by:
        ax.legend(fontsize="small")
    ax.set_title("Mean with confidence band", fontsize="medium")
    ax.grid(alpha=0.3)
    return fig


def checkpoint_curve(table: pd.DataFrame, key: str, mtbf_s: float, checkpoint_s: float,
                     restart_s: float = 0.0, metric: str = "ettr") -> Figure:
    """Effective training time ratio against the checkpoint interval: simulated points with
    their confidence intervals, Daly's expected ETTR as a curve, and the Young and Daly optimal
    intervals marked (issue 8).

    Args:
        table: ``SweepResults.summary()`` of a sweep over the interval (columns ``key``,
            ``metric``, ``mean``, ``half_width``), e.g. key
            ``failures.checkpoint.params.interval_s``.
        key: the grid key holding the interval (s).
        mtbf_s, checkpoint_s, restart_s: the job's MTBF, checkpoint write and restart times (s)
            for the analytic curve.
        metric: the metric drawn (default ``ettr``).

    >>> t = pd.DataFrame({"k": [600.0, 3600.0], "metric": ["ettr"] * 2, "mean": [0.9, 0.95],
    ...                   "half_width": [0.01, 0.01]})
    >>> checkpoint_curve(t, "k", 86400.0, 60.0).axes[0].get_ylabel()
    'effective training time ratio'
    """
    from simcluster.perf.checkpointing import daly_interval, expected_ettr, young_interval

    data = table[table["metric"] == metric] if "metric" in table.columns else table
    data = data.sort_values(key)
    x = data[key].to_numpy(dtype=float)
    fig = _new_figure(7.0, 4.0)
    ax = fig.add_subplot()
    lo = min(x.min(initial=np.inf), young_interval(checkpoint_s, mtbf_s)) / 2
    hi = max(x.max(initial=0.0), young_interval(checkpoint_s, mtbf_s)) * 2
    grid = np.geomspace(max(lo, 1.0), hi, 200)
    ax.plot(grid, [expected_ettr(t, checkpoint_s, restart_s, mtbf_s) for t in grid],
            color="tab:gray", label="expected (Daly 2006)")
    ax.errorbar(x, data["mean"].to_numpy(dtype=float),
                yerr=data["half_width"].to_numpy(dtype=float), fmt="o", color="tab:blue",
                capsize=4, label="simulated (95% CI)")
    for name, tau, style in (("Young", young_interval(checkpoint_s, mtbf_s), ":"),
                             ("Daly", daly_interval(checkpoint_s, mtbf_s), "--")):
        ax.axvline(tau, color="tab:red", linestyle=style, label=f"{name} optimum {tau:,.0f} s")
    ax.set_xscale("log")
    ax.set_xlabel("checkpoint interval (s of work)")
    ax.set_ylabel("effective training time ratio")
    ax.set_title(f"Waste curve: job MTBF {mtbf_s / 3600:.3g} h, checkpoint {checkpoint_s:.3g} s, "
                 f"restart {restart_s:.3g} s", fontsize="medium")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return fig


_PHASE_COLORS = {"compute": "tab:blue", "tp_comm": "tab:orange", "cp_comm": "tab:olive",
                 "ep_comm": "tab:pink", "pp_comm": "tab:purple", "bubble": "tab:gray",
                 "dp_comm": "tab:red", "optimizer": "tab:green", "data": "tab:brown"}


def iteration_breakdown(breakdowns: Mapping[str, Mapping[str, float]]) -> Figure:
    """One iteration's time split into phases, as stacked horizontal bars: one bar per layout.

    Args:
        breakdowns: label -> phase -> seconds, e.g. ``{"tp8 pp2": estimate["breakdown"]}``
            from ``simcluster.experiment.estimate_train.train_estimate`` (phases: compute,
            exposed TP/CP/EP/PP/DP communication, pipeline bubble, optimizer, data).
    """
    labels = list(breakdowns)
    phases = [p for p in _PHASE_COLORS if any(b.get(p, 0.0) > 0 for b in breakdowns.values())]
    phases += sorted({p for b in breakdowns.values() for p, v in b.items() if v > 0}
                     - set(phases))
    fig = _new_figure(9.0, max(2.2, 0.55 * len(labels) + 1.4))
    ax = fig.add_subplot()
    left = np.zeros(len(labels))
    for phase in phases:
        width = np.array([float(breakdowns[k].get(phase, 0.0)) for k in labels])
        ax.barh(np.arange(len(labels)), width, left=left, label=phase,
                color=_PHASE_COLORS.get(phase))
        left += width
    ax.set_yticks(np.arange(len(labels)), labels)
    ax.invert_yaxis()  # first layout on top
    ax.set_xlabel("seconds per iteration")
    ax.set_ylabel("layout")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), title="phase")
    ax.set_title("Where an iteration's time goes", fontsize="medium")
    ax.grid(axis="x", alpha=0.3)
    return fig


_LATENCIES = (("ttft_s", "ttft", "time to first token"),
              ("tpot_s", "tpot", "time per output token"),
              ("e2e_s", "e2e", "end-to-end latency"))


def _slo_target(slo: object, key: str) -> float | None:
    """``slo``'s target for ``key`` (ttft, tpot, e2e) in seconds: from a mapping (``"ttft"`` or
    ``"ttft_s"``) or an object with that attribute (``scenario_serving.SLOConfig``)."""
    if slo is None:
        return None
    if isinstance(slo, Mapping):
        value = slo.get(key, slo.get(f"{key}_s"))
    else:
        value = getattr(slo, key, None)
    return None if value is None else float(value)


def serving_latency(results: Results, service: str | None = None, slo: object = None,
                    windows: int = 24) -> Figure:
    """Latency percentiles of inference requests over time: TTFT, TPOT and end-to-end latency.

    One row of three panels per service (``service`` picks one); each panel draws the p50, p90
    and p99 of the requests completed, by arrival time in ``windows`` equal windows, on a log
    scale, with the SLO target as a red line when ``slo`` gives one (a mapping ``{"ttft": 1.0,
    "tpot": 0.05}`` in seconds, or the service's ``SLOConfig``). The row's title gives the
    service's SLO attainment over the whole run (``Results.services()``).
    """
    requests = results.requests
    if requests.empty:
        raise ValueError("these results have no inference requests")
    names = sorted(requests["service"].unique()) if service is None else [service]
    if service is not None and service not in set(requests["service"]):
        raise ValueError(f"no service {service!r}; the services are "
                         f"{sorted(requests['service'].unique())}")
    done = requests[requests["state"] == "completed"]
    end = max(_end_time(results), float(requests["arrival_s"].max()), 1e-9)
    unit, factor = time_unit(end)
    edges = np.linspace(0.0, end, windows + 1)
    centres = (edges[:-1] + edges[1:]) / 2 / factor
    summary = results.services().set_index("service")
    fig = _new_figure(11.0, 2.9 * len(names))
    axes = fig.subplots(len(names), 3, squeeze=False)
    for row, name in enumerate(names):
        mine = done[done["service"] == name]
        window = np.clip(np.searchsorted(edges, mine["arrival_s"].to_numpy(float),
                                         side="right") - 1, 0, windows - 1)
        for col, (column, key, label) in enumerate(_LATENCIES):
            ax = axes[row, col]
            values = mine[column].astype(float)
            target = _slo_target(slo, key)
            scale_ms = float(values.median()) < 1.0 if values.notna().any() else True
            scale, scale_unit = (1e3, "ms") if scale_ms else (1.0, "s")
            grouped = values.groupby(window)
            for q, style in ((50, "-"), (90, "--"), (99, ":")):
                p = grouped.quantile(q / 100).dropna()
                ax.plot(centres[p.index.to_numpy(int)], p.to_numpy() * scale, style,
                        marker=".", label=f"p{q}")
            if target is not None:
                ax.axhline(target * scale, color="tab:red", linewidth=1.2,
                           label=f"SLO {target * scale:g} {scale_unit}")
            if values.notna().any() and values.max() > 0:
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_xlim(0, end / factor)
            ax.set_xlabel(f"arrival time ({unit})")
            ax.set_ylabel(f"{label} ({scale_unit})")
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize="x-small")
        attained = summary["slo_attainment"].get(name, math.nan) if len(summary) else math.nan
        met = "" if math.isnan(attained) else f", SLO attainment {attained:.1%}"
        axes[row, 1].set_title(f"{name}: {len(mine):,} requests completed{met}",
                               fontsize="medium")
    return fig


def _serving_gpus(replicas: pd.DataFrame, times: np.ndarray, end: float) -> np.ndarray:
    """GPUs held by all replicas at each of ``times`` (from GPUs granted to released)."""
    held = replicas.dropna(subset=["start_s"])
    start = held["start_s"].to_numpy(float)
    stop = held["end_s"].fillna(end).to_numpy(float)
    gpus = held["gpus"].to_numpy(float)
    return np.array([gpus[(start <= t + 1e-9) & (stop > t + 1e-9)].sum() for t in times])


def replica_count(results: Results) -> Figure:
    """Replicas of each inference service over time (step plot): held or asked for (solid) and
    ready to serve (dashed; the gap is cold starts and waits for GPUs). A second panel, when the
    run has training jobs, splits the allocated GPUs into serving and training."""
    counts = results.replica_counts
    if counts.empty:
        raise ValueError("these results have no inference services")
    end = max(_end_time(results), float(counts["time_s"].max()))
    unit, factor = time_unit(end)
    training = not results.jobs.empty and not results.utilization.empty
    fig = _new_figure(9.0, 5.5 if training else 3.5)
    axes = fig.subplots(2 if training else 1, 1, sharex=True, squeeze=False)[:, 0]
    ax = axes[0]
    colors = _tenant_colors(sorted(counts["service"].unique()))
    for name, color in colors.items():
        step = counts[counts["service"] == name].groupby("time_s", as_index=False).last()
        t = np.append(step["time_s"].to_numpy(float), end) / factor
        for column, style, what in (("replicas", "-", "replicas"), ("ready", "--", "ready")):
            v = step[column].to_numpy(float)
            ax.step(t, np.append(v, v[-1]), where="post", linestyle=style, color=color,
                    label=f"{name} {what}")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("replicas")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    ax.set_title("Inference replicas over time", fontsize="medium")
    if training:
        util = results.utilization
        t = np.append(util["time_s"].to_numpy(float), end)
        serving = _serving_gpus(results.replicas, t[:-1], end)
        train = np.clip(util["gpus_allocated"].to_numpy(float) - serving, 0, None)
        gx = axes[1]
        gx.stackplot(t / factor, np.append(serving, serving[-1]), np.append(train, train[-1]),
                     labels=["serving", "training"], step="post",
                     colors=["tab:orange", "tab:blue"], alpha=0.7)
        if results.meta.get("gpus"):
            gx.axhline(float(results.meta["gpus"]), color="grey", linestyle=":",
                       label="cluster")
        gx.set_ylim(bottom=0)
        gx.set_ylabel("GPUs allocated")
        gx.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    axes[-1].set_xlim(0, end / factor)
    axes[-1].set_xlabel(f"simulated time ({unit})")
    return fig

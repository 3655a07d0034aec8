"""The run report: one self-contained HTML page (images embedded as base64 PNG).

The page names the scenario and its seed, gives the summary table with each metric's meaning,
the per-tenant table, every plot that applies to the run, and the resolved scenario.

>>> import tempfile
>>> from pathlib import Path
>>> Path(tempfile.mkdtemp(), "report.html").suffix
'.html'
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path

from matplotlib.figure import Figure

from simcluster.metrics.results import Results
from simcluster.metrics.summary import METRICS
from simcluster.metrics.tenants import per_tenant
from simcluster.report import plots
from simcluster.topology import Topology
from simcluster.units import format_quantity

__all__ = ["REPORT_NAME", "figures", "rebuild_report", "write_report"]

REPORT_NAME = "report.html"

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1000px; color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } .sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.8em; }
"""


def _png(fig: Figure, dpi: int = 100) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def figures(results: Results, topology: Topology | None = None
            ) -> dict[str, tuple[Figure, str]]:
    """The plots that apply to one run, by id: (figure, caption).

    The timeline and the CDFs need started jobs, the utilisation and queue plots the state
    table, the link chart links that carried traffic, the topology drawing the cluster.
    """
    makers: list[tuple[str, bool, Callable[[], Figure], str]] = [
        ("timeline", results.jobs["start_s"].notna().any() if len(results.jobs) else False,
         lambda: plots.gpu_timeline(results),
         "Jobs over time, each as tall as its GPUs, coloured by tenant. Rows are GPU slots in "
         "start order, not physical GPUs (placements are not recorded per GPU)."),
        ("utilization", not results.utilization.empty, lambda: plots.utilization_plot(results),
         "GPUs allocated and computing; the gap is time spent communicating, loading data, "
         "checkpointing or restarting."),
        ("queue", not results.utilization.empty, lambda: plots.queue_plot(results),
         "Jobs waiting and running over time."),
        ("cdf", results.jobs["wait_s"].notna().any() if len(results.jobs) else False,
         lambda: plots.cdf_plot(results),
         "Cumulative distributions of the wait (submit to first start) and of the completion "
         "time (submit to end)."),
        ("links", not results.links.empty and bool((results.links["utilization"] > 0).any()),
         lambda: plots.busiest_links(results),
         "Mean utilisation of the busiest links and storage disks over the run."),
        ("topology", topology is not None, lambda: plots.topology_plot(topology, results),
         "The cluster's topology; each link coloured and thickened by its mean utilisation."),
        ("serving_latency", not results.requests.empty,
         lambda: plots.serving_latency(results),
         "Inference requests: p50/p90/p99 of time to first token, time per output token and "
         "end-to-end latency by arrival time (log scale), with each service's SLO attainment."),
        ("replicas", not results.replica_counts.empty, lambda: plots.replica_count(results),
         "Inference replicas over time (held or asked for, and ready; the gap is cold starts "
         "and waits for GPUs), and the allocated GPUs split into serving and training."),
    ]
    return {key: (make(), caption) for key, applies, make, caption in makers if applies}


def _format(name: str, value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if not isinstance(value, int | float):
        return html.escape(str(value))
    if name.endswith("_s"):
        return f"{value:,.1f} ({format_quantity(value, 'time')})" if value >= 60 else \
            f"{value:,.3f}"
    if name.startswith("jobs_") or name == "preemptions":
        return f"{int(value):,}"
    if "util" in name or name == "fragmentation":
        return f"{value:.1%}"
    return f"{value:,.2f}"


def _summary_table(summary: Mapping[str, object]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td class='num'>{_format(k, v)}</td>"
        f"<td>{html.escape(METRICS.get(k, ''))}</td></tr>"
        for k, v in summary.items() if k != "seed")
    return ("<table><thead><tr><th>metric</th><th>value</th><th>meaning</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _tenant_table(results: Results) -> str:
    if results.jobs.empty or results.jobs["tenant"].nunique() < 2:
        return ""
    try:
        table = per_tenant(results.jobs, float(results.meta.get("warmup_s", 0.0)))
    except (KeyError, ValueError):
        return ""
    return "<h2>Per tenant</h2>" + table.to_html(
        float_format=lambda v: f"{v:,.3g}", border=0, na_rep="–", classes="tenants")


def write_report(results: Results, directory: str | Path,
                 summary: Mapping[str, object] | None = None,
                 topology: Topology | None = None) -> Path:
    """Write ``report.html`` for one run into ``directory`` (created if missing).

    Args:
        results: the run.
        directory: where to write the page.
        summary: the headline metrics to show (default: ``results.summary()``).
        topology: the cluster, to draw it with its link utilisation (optional).

    Returns:
        The path of the page.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    summary = dict(summary) if summary is not None else results.summary()
    scenario = results.scenario or {}
    name = str(scenario.get("name") or "scenario")
    description = str(scenario.get("description") or "")
    parts = [f"<h1>{html.escape(name)}</h1>",
             f"<p class='sub'>{html.escape(description)}</p>" if description else "",
             f"<p>Seed <b>{results.seed}</b>. ",
             f"{len(results.jobs):,} jobs; simulated "
             f"{format_quantity(float(summary.get('sim_time_s') or 0.0), 'time')}.</p>",
             "<p><b>Partial run:</b> stopped by a wall-clock limit before the scenario ended."
             "</p>" if results.meta.get("partial") else "",
             "<h2>Summary</h2>", _summary_table(summary), _tenant_table(results),
             "<h2>Figures</h2>"]
    for key, (fig, caption) in figures(results, topology).items():
        parts.append(f"<figure id='fig-{key}'><img alt='{key}' "
                     f"src='data:image/png;base64,{_png(fig)}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    resolved = json.dumps({"seed": results.seed, "scenario": scenario}, indent=2, default=str)
    parts.append("<h2>Resolved scenario</h2><details><summary>show</summary>"
                 f"<pre>{html.escape(resolved)}</pre></details>")
    page = ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>simcluster report: {html.escape(name)} (seed {results.seed})</title>"
            f"<style>{_STYLE}</style></head><body>\n" + "\n".join(parts) +
            "\n<p class='sub'>Written by simcluster.</p></body></html>\n")
    path = out / REPORT_NAME
    path.write_text(page, encoding="utf-8")
    return path


def rebuild_report(directory: str | Path, topology: Topology | None = None) -> Path:
    """Rebuild ``report.html`` from the results saved in ``directory`` (``simcluster run --out``).

    The summary table shows the saved ``summary.json`` as written.

    Raises:
        FileNotFoundError: the directory lacks a saved run.
    """
    src = Path(directory)
    results = Results.load(src)
    summary_path = src / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    if summary is not None:
        for key in ("seed", "partial"):
            summary.pop(key, None)
    return write_report(results, src, summary, topology)

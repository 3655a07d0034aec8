"""What ``simcluster validate`` writes: the text table, CSV/JSON, a page with the comparison
plots, and the README's fidelity envelope (generated, never written by hand)."""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from simcluster.report.html import _STYLE, _png
from simcluster.validation.cases import Report

__all__ = ["BASELINE_COLUMNS", "envelope_markdown", "format_table", "update_readme",
           "write_outputs"]

BASELINE_COLUMNS = ("case", "status")
ENVELOPE_START = "<!-- fidelity-envelope:start -->"
ENVELOPE_END = "<!-- fidelity-envelope:end -->"


def _num(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    return f"{x:.4g}"


def _err(row) -> str:
    return _num(row.error) if row.absolute else f"{100 * row.error:.1f}%"


def _tol(row) -> str:
    return _num(row.tolerance) if row.absolute else f"{100 * row.tolerance:.0f}%"


def format_table(report: Report) -> str:
    """The table as text: one line per case, then the counts."""
    t = report.table
    lines = [f"{'case':<30} {'simulated':>11} {'reference':>11} {'error':>8} {'tol':>6}  "
             f"{'status':<6} {'role':<11} source"]
    for r in t.itertuples():
        lines.append(f"{r.case:<30} {_num(r.simulated):>11} {_num(r.reference):>11} "
                     f"{_err(r):>8} {_tol(r):>6}  {r.status:<6} {r.role:<11} {r.source}")
        if r.status != "pass" and (r.note or r.detail):
            why = r.detail if r.status in ("skipped", "error") else r.note or r.detail
            lines.append(f"{'':<30}   ↳ {why}")
    counts = t["status"].value_counts().to_dict() if len(t) else {}
    valid = t[t["role"] == "validation"] if len(t) else t
    lines.append(f"\n{len(t)} cases ({'quick' if report.quick else 'full'} run, "
                 f"{report.seconds:.0f} s): "
                 + ", ".join(f"{counts.get(s, 0)} {s}"
                             for s in ("pass", "fail", "error", "skipped"))
                 + f"; validation only: {int((valid['status'] == 'pass').sum())} of "
                   f"{len(valid)} pass")
    return "\n".join(lines)


def _curve_figure(name: str, curve: dict) -> Figure:
    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    x = np.asarray(curve["x"], dtype=float)
    ax.plot(x, curve["simulated"], "o-", label="simcluster")
    ax.plot(x, curve["reference"], "s--", label="reference")
    if curve.get("logx"):
        ax.set_xscale("log", base=2)
    ax.set_xlabel(curve.get("xlabel", ""))
    ax.set_ylabel(curve.get("ylabel", ""))
    ax.set_title(name)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def _page(report: Report, version: str, date: str) -> str:
    t = report.table
    rows = []
    for r in t.itertuples():
        colour = {"pass": "#1a7f37", "fail": "#cf222e"}.get(r.status, "#9a6700")
        rows.append(f"<tr><td>{html.escape(r.case)}</td><td>{html.escape(r.family)}</td>"
                    f"<td>{html.escape(r.quantity)}</td><td class=num>{_num(r.simulated)}</td>"
                    f"<td class=num>{_num(r.reference)}</td><td class=num>{_err(r)}</td>"
                    f"<td class=num>{_tol(r)}</td><td style='color:{colour}'>{r.status}</td>"
                    f"<td>{r.role}</td><td>{html.escape(r.source)}</td>"
                    f"<td>{html.escape(r.note)}</td></tr>")
    figs = []
    for name, curve in report.curves.items():
        figs.append(f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,"
                    f"{_png(_curve_figure(name, curve))}'><figcaption>{html.escape(name)}: "
                    f"simulated against reference</figcaption></figure>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>simcluster validation"
            f"</title><style>{_STYLE}</style></head><body><h1>simcluster validation</h1>"
            f"<p class=sub>version {html.escape(version)}, {date}, "
            f"{'quick' if report.quick else 'full'} run, {report.seconds:.0f} s</p>"
            "<table><tr><th>case</th><th>family</th><th>quantity</th><th>simulated</th>"
            "<th>reference</th><th>error</th><th>tolerance</th><th>status</th><th>role</th>"
            "<th>source</th><th>note</th></tr>" + "".join(rows) + "</table>"
            + "".join(figs) + "</body></html>")


def write_outputs(report: Report, directory: Path, version: str) -> list[Path]:
    """validation.csv, validation.json and validation.html in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    date = _dt.date.today().isoformat()
    csv_path, json_path = directory / "validation.csv", directory / "validation.json"
    page_path = directory / "validation.html"
    report.table.to_csv(csv_path, index=False)
    json_path.write_text(json.dumps({"version": version, "date": date, "quick": report.quick,
                                     "seconds": report.seconds,
                                     "cases": report.table.to_dict("records"),
                                     "curves": report.curves}, indent=2, default=float))
    page_path.write_text(_page(report, version, date))
    return [csv_path, json_path, page_path]


def envelope_markdown(report: Report, version: str, date: str | None = None) -> str:
    """The fidelity envelope: per family, what agrees within tolerance, what does not."""
    date = date or _dt.date.today().isoformat()
    t = report.table[report.table["role"] == "validation"]
    lines = [f"Generated by `simcluster validate{' --quick' if report.quick else ''} "
             f"--readme README.md` (version {version}, {date}); "
             "calibration figures are left out.", "",
             "| family | agrees within tolerance | does not (error) |", "|---|---|---|"]
    for family, group in t.groupby("family", sort=False):
        good = ", ".join(f"`{c}`" for c in group.loc[group["status"] == "pass", "case"])
        bad = ", ".join(f"`{r.case}` ({_err(r)})" for r in group.itertuples()
                        if r.status in ("fail", "error"))
        lines.append(f"| {family} | {good or '—'} | {bad or '—'} |")
    return "\n".join(lines)


def update_readme(readme: Path, report: Report, version: str) -> None:
    """Replace the block between the envelope markers in ``readme``."""
    text = readme.read_text()
    pattern = re.compile(re.escape(ENVELOPE_START) + ".*?" + re.escape(ENVELOPE_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no {ENVELOPE_START} ... {ENVELOPE_END} block")
    block = f"{ENVELOPE_START}\n{envelope_markdown(report, version)}\n{ENVELOPE_END}"
    readme.write_text(pattern.sub(lambda _m: block, text))

"""Capacity search: the smallest value of a scenario key for which a target holds, with confidence.

"Holds with confidence" means the one-sided Student-t bound of the metric's mean over the
replications meets the target: for ``p95_wait_s <= 3600`` the upper ``confidence`` bound is at
most 3600. The search assumes the target gets easier as the key grows (more nodes, shorter
waits). It brackets the answer by stepping up from ``low`` with doubling steps (or up to
``high``), then bisects; every point runs the same replication seeds (common random numbers),
so neighbouring points are compared on the same arrivals.

>>> parse_target("p95_wait_s <= 1h")
Target(metric='p95_wait_s', op='<=', value=3600.0)
>>> parse_vary("cluster.nodes=2:64")
('cluster.nodes', 2, 64)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simcluster.errors import UserError, closest
from simcluster.experiment.executors import open_executor
from simcluster.experiment.stats import one_sided_bound, t_interval
from simcluster.experiment.store import ResultStore, runs_table
from simcluster.experiment.sweep import as_scenario, resolve_point, run_points
from simcluster.metrics.summary import METRICS
from simcluster.scenario import Scenario
from simcluster.units import format_quantity, parse

__all__ = ["PlanResult", "Target", "parse_target", "parse_vary", "plan"]

_TARGET = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*(\S.*?)\s*$")
_YEAR_S = 365 * 86400.0


@dataclass(frozen=True)
class Target:
    """A condition on a summary metric, e.g. ``p95_wait_s <= 3600``."""

    metric: str
    op: str
    value: float

    @property
    def upper(self) -> bool:
        """True if the metric must stay below the value."""
        return self.op in ("<=", "<")

    def bound(self, samples: Any, confidence: float) -> float:
        """The one-sided confidence bound of the mean that must meet the target."""
        return one_sided_bound(samples, confidence, upper=self.upper)

    def met_by(self, bound: float) -> bool:
        """Whether ``bound`` meets the target (a NaN bound never does)."""
        if math.isnan(bound):
            return False
        return {"<=": bound <= self.value, "<": bound < self.value,
                ">=": bound >= self.value, ">": bound > self.value}[self.op]

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


def parse_target(text: str) -> Target:
    """``METRIC<=VALUE`` (also ``>=``, ``<``, ``>``); the value may carry a unit (``1h``).

    Raises:
        UserError: bad syntax or an unknown metric (with the closest name).
    """
    match = _TARGET.match(text)
    if not match:
        raise UserError(f"--target {text!r}: expected METRIC<=VALUE or METRIC>=VALUE, "
                        "e.g. 'p95_wait_s<=3600'")
    metric, op, value = match.groups()
    if metric not in METRICS:
        hint = closest(metric, METRICS)
        raise UserError(f"--target {text!r}: unknown metric {metric!r}; expected one of "
                        f"{', '.join(METRICS)}" + (f" (did you mean {hint!r}?)" if hint else ""))
    try:
        number = float(value)
    except ValueError:
        number = parse(value)
    return Target(metric, op, float(number))


def parse_vary(text: str) -> tuple[str, float | int, float | int | None]:
    """``KEY=LO:HI`` or ``KEY=LO:`` (no upper limit) as (key, low, high)."""
    key, sep, rest = text.partition("=")
    lo, colon, hi = rest.partition(":")
    try:
        if not sep or not colon or not key.strip():
            raise ValueError
        numbers = [float(v) if "." in v or "e" in v.lower() else int(v)
                   for v in (lo.strip(), hi.strip()) if v]
        if len(numbers) < 1 or not lo.strip():
            raise ValueError
    except ValueError:
        raise UserError(f"--vary {text!r}: expected KEY=LO:HI, e.g. cluster.nodes=1:64") \
            from None
    return key.strip(), numbers[0], numbers[1] if len(numbers) > 1 else None


@dataclass
class PlanResult:
    """The answer of a capacity search and its evidence.

    Attributes:
        key: the varied scenario key.
        target: the target.
        confidence: one-sided confidence level of the bounds.
        answer: the smallest value meeting the target, or None if none in range does.
        evidence: one row per evaluated value, sorted by value: ``value, cluster_gpus, n,
            mean, ci_low, ci_high, bound, holds, cost_usd, tco_usd, sim_time_s``.
        runs: every run (as ``simcluster.load_results`` gives them).
        cost: at the answer: mean ``cost_usd``, ``tco_usd``, ``sim_time_s``, their annual
            rates ``cost_usd_per_year``, ``tco_usd_per_year``, and the cost assumptions.
    """

    key: str
    target: Target
    confidence: float
    answer: float | int | None
    evidence: pd.DataFrame
    runs: pd.DataFrame
    cost: dict[str, float] = field(default_factory=dict)

    def report(self) -> str:
        """The answer, the evidence table and the cost, as printed by ``simcluster plan``."""
        n = int(self.evidence["n"].max()) if len(self.evidence) else 0
        lines = [f"plan: smallest {self.key} with {self.target} "
                 f"({self.confidence:.0%} one-sided bound over {n} replications)"]
        show = self.evidence[["value", "cluster_gpus", "mean", "ci_low", "ci_high", "bound",
                              "holds", "cost_usd", "tco_usd"]].rename(
            columns={"value": self.key, "cluster_gpus": "gpus", "mean": self.target.metric})
        lines.append(show.to_string(index=False, float_format=lambda v: f"{v:,.4g}"))
        if self.answer is None:
            top = self.evidence["value"].max() if len(self.evidence) else None
            lines.append(f"answer: none; the target does not hold up to {self.key} = {top}")
            return "\n".join(lines)
        c = self.cost
        lines.append(f"answer: {self.key} = {self.answer} ({c['cluster_gpus']:.0f} GPUs)")
        span = format_quantity(c["sim_time_s"], "time")
        lines.append(f"cost: on-demand {_usd(c['cost_usd'])} for the simulated {span} "
                     f"({_usd(c['cost_usd_per_year'])} per year); total cost of ownership "
                     f"{_usd(c['tco_usd'])} ({_usd(c['tco_usd_per_year'])} per year: purchase "
                     f"amortised over {c['lifetime_s'] / _YEAR_S:g} years, power at PUE "
                     f"{c['pue']:g} and ${c['usd_per_kwh']:g}/kWh)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


def _usd(value: float) -> str:
    return f"${value:,.0f}" if abs(value) >= 100 else f"${value:,.2f}"


def _step_values(low: float, high: float | None, integer: bool,
                 resolution: float) -> Callable[[float, int], float]:
    def nxt(value: float, k: int) -> float:
        step = (1 if integer else resolution) * 2**k
        return value + step if high is None else min(value + step, high)
    return nxt


def plan(scenario: Scenario | str | Path, vary: str, target: str | Target,
         low: float | int | None = None, high: float | int | None = None,
         replications: int = 5, confidence: float = 0.95, seed: int | None = None,
         executor: Any = None, workers: int | None = None, scheduler: str | None = None,
         out: str | Path | None = None, progress: bool = False,
         resolution: float | None = None, max_points: int = 40) -> PlanResult:
    """Find the smallest value of ``vary`` for which ``target`` holds with ``confidence``.

    Args:
        scenario: the base scenario or a path to its TOML file.
        vary: the dotted key to search (``"cluster.nodes"``), or ``"KEY=LO:HI"``.
        target: e.g. ``"p95_wait_s<=3600"`` or a :class:`Target`.
        low, high: the search range (integers search integers); ``high=None`` brackets upward
            without limit (up to ``max_points`` evaluations). ``low`` defaults to 1.
        replications: runs per evaluated value (at least 2).
        confidence: level of the one-sided bound.
        seed: root seed of the replications (default: the scenario's ``run.seed``).
        executor, workers, scheduler, out, progress: as for :func:`~simcluster.sweep`.
        resolution: for a real-valued key, stop bisecting when the bracket is this narrow
            (default: 1/64 of the range).
        max_points: give up after evaluating this many values.

    Returns:
        The :class:`PlanResult`.

    Raises:
        UserError: a bad target, range or scenario value; a run that fails.
    """
    if "=" in vary:
        vary, low, high = parse_vary(vary)
    target = target if isinstance(target, Target) else parse_target(target)
    if replications < 2:
        raise UserError(f"replications {replications}: a confidence bound needs at least 2")
    if not 0.5 < confidence < 1:
        raise UserError(f"confidence {confidence}: expected a level in (0.5, 1)")
    low = 1 if low is None else low
    integer = isinstance(low, int | np.integer) and (high is None or
                                                     isinstance(high, int | np.integer))
    if high is not None and high < low:
        raise UserError(f"{vary}: the range {low}:{high} is empty")
    if not integer and high is None:
        raise UserError(f"{vary}: a real-valued search needs an upper limit (LO:HI)")
    resolution = resolution or (0 if integer else (high - low) / 64)
    base = as_scenario(scenario)
    root = base.run.seed if seed is None else int(seed)
    store = None
    if out is not None:
        store = ResultStore(out)
        store.claim(base.model_dump(mode="json"))
    rows: dict[float, dict[str, Any]] = {}
    records: list[dict[str, Any]] = []

    with open_executor(executor, workers, scheduler) as ex:
        def holds(value: float) -> bool:
            if value in rows:
                return bool(rows[value]["holds"])
            if len(rows) >= max_points:
                raise UserError(f"plan: no answer after {max_points} evaluations; "
                                f"give {vary} a narrower range")
            done, _ = run_points(base, [{vary: value}], replications, root, ex, store,
                                 progress)
            records.extend(done)
            bad = [r for r in done if r["status"] != "ok"]
            if bad:
                raise UserError(f"plan: {len(bad)} runs at {vary}={value} failed (seed "
                                f"{bad[0]['seed']}: {bad[0]['error']})")
            table = runs_table(done)
            if target.metric not in table:
                raise UserError(f"plan: runs have no metric {target.metric!r}")
            samples = table[target.metric].to_numpy(dtype=float)
            iv = t_interval(samples, confidence)
            bound = target.bound(samples, confidence)
            rows[value] = {
                "value": value, "cluster_gpus": table["cluster_gpus"].iloc[0], "n": iv.n,
                "mean": iv.mean, "ci_low": iv.low, "ci_high": iv.high, "bound": bound,
                "holds": target.met_by(bound), "cost_usd": table["cost_usd"].mean(),
                "tco_usd": table["tco_usd"].mean(), "sim_time_s": table["sim_time_s"].mean()}
            return bool(rows[value]["holds"])

        answer: float | None = None
        nxt = _step_values(low, high, integer, resolution)
        fail, value, k = None, low, 0
        while True:  # bracket: the first value that holds, stepping up with doubling steps
            if holds(value):
                answer = value
                break
            if value == high:
                break
            fail, value, k = value, nxt(value, k), k + 1
        if answer is not None and fail is not None:  # bisect between fail and answer
            while (answer - fail > 1) if integer else (answer - fail > resolution):
                mid = (fail + answer) // 2 if integer else (fail + answer) / 2
                if holds(mid):
                    answer = mid
                else:
                    fail = mid

    evidence = pd.DataFrame(sorted(rows.values(), key=lambda r: r["value"]))
    cost: dict[str, float] = {}
    if answer is not None:
        row = rows[answer]
        costs = resolve_point(base, {vary: answer}).cluster.cost
        per_year = _YEAR_S / row["sim_time_s"] if row["sim_time_s"] > 0 else math.nan
        cost = {"cluster_gpus": float(row["cluster_gpus"]), "cost_usd": row["cost_usd"],
                "tco_usd": row["tco_usd"], "sim_time_s": row["sim_time_s"],
                "cost_usd_per_year": row["cost_usd"] * per_year,
                "tco_usd_per_year": row["tco_usd"] * per_year,
                "pue": costs.pue, "usd_per_kwh": costs.electricity_usd_per_kwh,
                "lifetime_s": costs.lifetime}
    return PlanResult(vary, target, confidence, answer, evidence, runs_table(records), cost)

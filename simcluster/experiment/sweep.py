"""Sweeps: every point of a Cartesian grid of scenario keys, times a number of replications.

Grid keys are dotted paths, the same as ``--set`` (``cluster.nodes``, ``policy.placement``).
Replication ``i`` uses the same seed at every point (common random numbers), so differences
between points are paired and get narrow intervals (:meth:`SweepResults.compare`). Runs go to a
``concurrent.futures`` executor (:mod:`simcluster.experiment.executors`); with ``out=DIR`` each
finished run is stored as it completes and a rerun resumes (:mod:`simcluster.experiment.store`).

>>> expand_grid({"cluster.nodes": [4, 5], "policy.placement": ["pack"]})
[{'cluster.nodes': 4, 'policy.placement': 'pack'}, {'cluster.nodes': 5, 'policy.placement': 'pack'}]
>>> parse_grid_spec("cluster.nodes=4:8:2"), parse_grid_spec("policy.placement=pack,first_fit")
(('cluster.nodes', [4, 6, 8]), ('policy.placement', ['pack', 'first_fit']))
"""

from __future__ import annotations

import copy
import itertools
import json
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from simcluster.errors import UserError, closest
from simcluster.experiment.executors import SerialExecutor, open_executor
from simcluster.experiment.run import load_scenario, registries
from simcluster.experiment.stats import interval_table, paired_difference, welch_difference
from simcluster.experiment.store import ResultStore, runs_table
from simcluster.experiment.tasks import (
    RunTask,
    execute,
    new_record,
    record_failure,
    replication_seed,
    run_key,
)
from simcluster.metrics.summary import METRICS
from simcluster.scenario import Scenario
from simcluster.scenario_load import parse_scenario

__all__ = ["SweepResults", "expand_grid", "parse_grid_spec", "run_points", "sweep"]

OnResult = Callable[[dict[str, Any]], None]


def expand_grid(grid: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the first key varying slowest."""
    grid = dict(grid or {})
    values = []
    for key, options in grid.items():
        if not isinstance(key, str) or not key or any(not p for p in key.split(".")):
            raise UserError(f"grid key {key!r}: expected a dotted scenario key, "
                            "e.g. cluster.nodes")
        if isinstance(options, str | bytes) or not isinstance(options, Sequence | range):
            options = [options]
        if len(options) == 0:
            raise UserError(f"grid key {key!r}: no values")
        values.append(list(options))
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*values)]


def _toml_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _split_top(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def parse_grid_spec(spec: str) -> tuple[str, list[Any]]:
    """``KEY=V1,V2,...`` or ``KEY=LO:HI[:STEP]`` (integers, inclusive) as (key, values)."""
    key, sep, text = spec.partition("=")
    key, text = key.strip(), text.strip()
    if not sep or not key or not text:
        raise UserError(f"--grid {spec!r}: expected KEY=V1,V2,... or KEY=LO:HI[:STEP], "
                        "e.g. cluster.nodes=4,8,16")
    bounds = text.split(":")
    if len(bounds) in (2, 3) and all(b.strip().lstrip("-").isdigit() for b in bounds):
        lo, hi, *step = (int(b) for b in bounds)
        step = step[0] if step else 1
        if step <= 0 or hi < lo:
            raise UserError(f"--grid {spec!r}: expected LO <= HI and a positive STEP")
        return key, list(range(lo, hi + 1, step))
    return key, [_toml_value(part.strip()) for part in _split_top(text) if part.strip()]


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``data[a][b][c] = value`` for ``key = "a.b.c"``, creating tables on the way."""
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"grid key {key!r}: {part!r} is not a table")
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def as_scenario(scenario: Scenario | str | Path) -> Scenario:
    """A validated scenario from a scenario or a path to a TOML file."""
    return scenario if isinstance(scenario, Scenario) else load_scenario(scenario)


def resolve_point(base: Scenario, point: Mapping[str, Any]) -> Scenario:
    """``base`` with the grid point's values set, validated (errors name the point)."""
    if not point:
        return base
    data = base.model_dump(mode="json", exclude_unset=True)
    for key, value in point.items():
        set_dotted(data, key, value)
    label = ", ".join(f"{k}={v}" for k, v in point.items())
    return parse_scenario(data, source=f"{base.name} [{label}]", registries=registries())


def _json_round_trip(record: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(record, allow_nan=False))


def run_points(base: Scenario, points: Sequence[Mapping[str, Any]], replications: int,
               root_seed: int, executor: Executor, store: ResultStore | None = None,
               progress: bool = False, on_result: OnResult | None = None,
               ) -> tuple[list[dict[str, Any]], int]:
    """Run (or reuse from ``store``) every replication of every point on an open executor.

    Returns:
        The run records in grid order (point, then replication), and how many were computed
        now (the rest came from the store).
    """
    if replications < 1:
        raise UserError(f"replications {replications}: expected at least 1")
    scenarios = [resolve_point(base, p) for p in points]  # every point validated up front
    tasks = []
    for point, scenario in zip(points, scenarios, strict=True):
        for rep in range(replications):
            seed = replication_seed(root_seed, rep)
            tasks.append(RunTask(run_key(dict(point), rep, seed), dict(point), rep, seed,
                                 scenario, keep_jobs=store is not None))
    stored = store.finished() if store is not None else {}
    records = {k: r for k, r in stored.items() if r["status"] == "ok"}
    todo = [t for t in tasks if t.key not in records]
    window = 1 if isinstance(executor, SerialExecutor) else len(todo)
    queue = iter(todo)
    inflight: dict[Any, RunTask] = {}
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), disable=not progress,
               unit="run", file=sys.stderr, dynamic_ncols=True)
    failed = 0
    try:
        while True:
            while len(inflight) < max(window, 1):
                task = next(queue, None)
                if task is None:
                    break
                inflight[executor.submit(execute, task)] = task
            if not inflight:
                break
            done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            for future in done:
                task = inflight.pop(future)
                try:
                    record, jobs = future.result()
                except Exception as err:  # the worker died (killed, out of memory, lost)
                    record, jobs = record_failure(new_record(task), err), None
                record = _json_round_trip(record)
                if store is not None:
                    store.write(record, jobs)
                records[task.key] = record
                failed += record["status"] != "ok"
                bar.update()
                if failed:
                    bar.set_postfix(failed=failed)
                if on_result is not None:
                    on_result(record)
    except BaseException:
        for future in inflight:
            future.cancel()
        raise
    finally:
        bar.close()
    return [records[t.key] for t in tasks], len(todo)


@dataclass
class SweepResults:
    """The runs of a sweep (or of plain replications, a sweep without grid keys).

    Attributes:
        runs: one row per run: grid keys, ``replication``, ``seed``, ``status``, ``error``,
            ``cluster_gpus`` and every summary metric (see ``simcluster.load_results``).
        keys: the grid keys.
        computed: runs computed by this call (the others were reused from the store).
        directory: the results store, if any.
        level: confidence level of the intervals.
    """

    runs: pd.DataFrame
    keys: list[str] = field(default_factory=list)
    computed: int = 0
    directory: Path | None = None
    level: float = 0.95

    @property
    def failed(self) -> pd.DataFrame:
        """Failed runs: grid keys, replication, seed and error."""
        bad = self.runs[self.runs["status"] != "ok"]
        return bad[[*self.keys, "replication", "seed", "error"]].reset_index(drop=True)

    def metrics(self) -> list[str]:
        """The metric columns, in :data:`~simcluster.metrics.summary.METRICS` order first."""
        known = [m for m in METRICS if m in self.runs]
        extra = [c for c in self.runs.columns[len(self.keys) + 5:] if c not in known]
        return known + extra

    def summary(self, metrics: Sequence[str] | None = None,
                level: float | None = None) -> pd.DataFrame:
        """Mean, std and Student-t interval of each metric, per grid point.

        Returns:
            Columns ``*keys, metric, n, mean, std, half_width, ci_low, ci_high``; without grid
            keys, indexed by metric.
        """
        metrics = list(metrics) if metrics is not None else self.metrics()
        for name in metrics:
            if name not in self.runs:
                hint = closest(name, self.metrics())
                raise UserError(f"unknown metric {name!r}" +
                                (f" (did you mean {hint!r}?)" if hint else ""))
        table = interval_table(self.runs, self.keys, metrics, level or self.level)
        return table if self.keys else table.set_index("metric")

    def compare(self, metric: str, baseline: Mapping[str, Any] | None = None,
                level: float | None = None) -> pd.DataFrame:
        """Paired differences (point − baseline) of ``metric`` across replications (CRN).

        Args:
            metric: a metric column.
            baseline: the grid point to compare against (default: the first one).

        Returns:
            One row per other point: ``*keys, metric, n, mean_diff, half_width, ci_low,
            ci_high`` and ``unpaired_half_width`` (the Welch interval's, for contrast).
        """
        if not self.keys:
            raise UserError("compare needs a sweep with grid keys")
        level = level or self.level
        ok = self.runs[self.runs["status"] == "ok"]
        points = ok[self.keys].drop_duplicates().to_dict("records")
        base = dict(baseline) if baseline is not None else points[0]

        def select(point: Mapping[str, Any]) -> pd.Series:
            mask = (ok[self.keys] == pd.Series(point)).all(axis=1)
            return ok[mask].set_index("replication")[metric]

        ref = select(base)
        if ref.empty:
            raise UserError(f"baseline {base}: no successful runs at that point")
        rows = []
        for point in points:
            if point == base:
                continue
            other = select(point)
            common = ref.index.intersection(other.index)
            paired = paired_difference(other[common].to_numpy(), ref[common].to_numpy(), level)
            unpaired = welch_difference(other.to_numpy(), ref.to_numpy(), level)
            rows.append({**point, "metric": metric, "n": paired.n, "mean_diff": paired.mean,
                         "half_width": paired.half_width, "ci_low": paired.low,
                         "ci_high": paired.high, "unpaired_half_width": unpaired.half_width})
        return pd.DataFrame(rows)


def sweep(scenario: Scenario | str | Path, grid: Mapping[str, Any] | None = None,
          replications: int = 1, seed: int | None = None, executor: Any = None,
          workers: int | None = None, scheduler: str | None = None,
          out: str | Path | None = None, progress: bool = False, level: float = 0.95,
          on_result: OnResult | None = None) -> SweepResults:
    """Run every point of a grid of scenario keys, ``replications`` times each.

    Args:
        scenario: the base scenario, or a path to its TOML file.
        grid: dotted key -> list of values, e.g. ``{"cluster.nodes": [4, 8]}``.
        replications: runs per point; replication ``i`` uses the same seed at every point.
        seed: root seed of the replications (default: the scenario's ``run.seed``).
        executor: ``None``/``"local"`` (process pool), ``"serial"``, ``"dask"``, an
            ``Executor`` or a Dask ``Client`` (see :mod:`simcluster.experiment.executors`).
        workers: worker processes for ``"local"`` or a local Dask cluster.
        scheduler: address of a Dask scheduler.
        out: results directory: each run is stored when it finishes; rerunning resumes.
        progress: show a progress bar on stderr.
        level: confidence level of :meth:`SweepResults.summary`.
        on_result: called with each new run record as it is stored.

    Returns:
        The :class:`SweepResults`, whatever the executor, bit for bit.

    Raises:
        UserError: a bad grid key or value (before anything runs), a bad backend.
    """
    base = as_scenario(scenario)
    points = expand_grid(grid)
    root = base.run.seed if seed is None else int(seed)
    if root < 0:
        raise UserError(f"seed {root}: expected a non-negative integer")
    store = None
    if out is not None:
        store = ResultStore(out)
        store.claim(base.model_dump(mode="json"))
    with open_executor(executor, workers, scheduler) as ex:
        records, computed = run_points(base, points, replications, root, ex, store,
                                       progress, on_result)
    return SweepResults(runs_table(records), list(points[0]), computed,
                        Path(out) if out is not None else None, level)

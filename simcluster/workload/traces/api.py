"""Trace replay: rows -> transformed rows -> :class:`JobSpec`, lazily, in submission order.

>>> from pathlib import Path
>>> import tempfile
>>> d = Path(tempfile.mkdtemp())
>>> _ = (d / "t.csv").write_text("submit,gpus,run_time\\n10,2,3600\\n40,1,60\\n")
>>> [(j.submit_s, j.request.gpus, j.run_time_s) for j in read_trace("csv", d / "t.csv")]
[(0.0, 2.0, 3600.0), (30.0, 1.0, 60.0)]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from simcluster.errors import UserError
from simcluster.perf.models import MODELS
from simcluster.rng import Streams
from simcluster.scenario_traces import TraceConfig, TraceTransforms, resolve_data_path
from simcluster.workload.jobs import JobSpec, Request
from simcluster.workload.traces.core import TRACE_FORMATS, TraceFormat, TraceReport, TraceRow
from simcluster.workload.traces.core import read_rows as _read_rows
from simcluster.workload.traces.formats import csv_format

__all__ = ["DEFAULT_MODEL", "InferenceRequest", "read_requests", "read_trace", "trace_frame",
           "trace_jobs", "trace_rows", "trace_format"]

# Default model of jobs whose trace names none: see TraceConfig.model (scenario_traces.py).
DEFAULT_MODEL = "resnet-50"


@dataclass(frozen=True, slots=True)
class InferenceRequest:
    """One inference request of a request trace (Azure LLM): arrival (s) and token counts."""

    id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int


def trace_format(format: str, mapping: Mapping[str, str] | None = None) -> TraceFormat:
    """The registered format ``format`` (``csv`` with the column ``mapping``)."""
    if format == "csv":
        return csv_format(mapping)
    if mapping:
        raise UserError(f"mapping: only the 'csv' format takes a column mapping, not {format!r}")
    return TRACE_FORMATS.get(format, "trace format")


def _transforms(value: TraceTransforms | Mapping[str, Any] | None) -> TraceTransforms:
    if value is None:
        return TraceTransforms()
    if isinstance(value, TraceTransforms):
        return value
    try:
        return TraceTransforms.model_validate(dict(value))
    except Exception as err:  # pydantic ValidationError: report as a user error
        raise UserError(f"transforms: {err}") from None


def trace_rows(format: str, path: str | Path, *, on_bad_row: str = "error",
               mapping: Mapping[str, str] | None = None,
               transforms: TraceTransforms | Mapping[str, Any] | None = None,
               seed: int = 0, streams: Streams | None = None,
               report: TraceReport | None = None) -> Iterator[TraceRow]:
    """The trace's rows after its transforms (see :class:`TraceTransforms` for their order)."""
    fmt = trace_format(format, mapping)
    t = _transforms(transforms)
    report = report if report is not None else TraceReport()
    streams = streams if streams is not None else Streams(seed)
    rows = _read_rows(fmt, path, on_bad_row=on_bad_row, report=report)
    return _transformed(rows, t, streams, report)


def _transformed(rows: Iterator[TraceRow], t: TraceTransforms, streams: Streams,
                 report: TraceReport) -> Iterator[TraceRow]:
    states = set(t.states) if t.states is not None else None
    tenants = set(t.tenants) if t.tenants is not None else None
    start, end = t.window if t.window is not None else (0.0, None)
    kept = 0
    for row in rows:
        if end is not None and row.submit_s >= end:
            report.filtered["after window"] += 1
            break  # rows come in submission order: nothing later is in the window
        reason = None
        if row.submit_s < start:
            reason = "before window"
        elif states is not None and row.state not in states:
            reason = "state"
        elif tenants is not None and row.tenant not in tenants:
            reason = "tenant"
        elif t.min_gpus is not None and row.gpus < t.min_gpus:
            reason = "gpus below min_gpus"
        elif t.max_gpus is not None and row.gpus > t.max_gpus:
            reason = "gpus above max_gpus"
        elif t.sample is not None and \
                streams.for_entity("trace/sample", row.line).random() >= t.sample:
            reason = "sampled out"
        if reason is not None:
            report.filtered[reason] += 1
            continue
        row.submit_s = (row.submit_s - start) / t.load_scale
        if t.size_scale != 1.0 and row.gpus > 0:
            g = row.gpus * t.size_scale
            row.gpus = float(max(1, round(g))) if row.gpus >= 1 else min(1.0, g)
        if t.duration_scale != 1.0 and row.run_time_s is not None:
            row.run_time_s *= t.duration_scale
        yield row
        kept += 1
        if t.max_jobs is not None and kept >= t.max_jobs:
            break


def read_trace(format: str, path: str | Path, *, on_bad_row: str = "error",
               mapping: Mapping[str, str] | None = None, first_id: int = 0,
               report: TraceReport | None = None,
               transforms: TraceTransforms | Mapping[str, Any] | None = None,
               seed: int = 0, streams: Streams | None = None, model: str = DEFAULT_MODEL,
               gpu_types: Mapping[str, str] | None = None,
               host_resources: bool = False, gpu_labels: bool = False) -> Iterator[JobSpec]:
    """The jobs of a trace file as :class:`JobSpec`, lazily and in submission order.

    Time 0 is the trace's first submission (after a ``window``: the window's start). A job's
    ``run_time_s`` is the trace's run time, the uncontended run time on its GPUs; the engine
    turns it into iterations of ``model`` (or of the model the trace names, if in the catalog).

    Args:
        format: a :data:`TRACE_FORMATS` name of kind ``jobs``.
        path: the trace file.
        on_bad_row: ``error`` or ``skip`` (then counted in ``report``).
        mapping: the column mapping of the ``csv`` format.
        first_id: id of the first job; ids follow submission order.
        report: filled with counts as the jobs are read.
        transforms: filters and scalings (:class:`TraceTransforms` or its dict).
        seed, streams: random streams for ``sample`` (``streams`` wins if given).
        model: model of jobs whose trace names none known to the catalog.
        gpu_types: trace GPU type -> catalog GPU name; the first allowed type that maps
            becomes the job's constraint (openb's ``"V100M16|V100M32"``), else none.
        host_resources: ask for the trace's CPU cores and host memory too.
        gpu_labels: keep the trace's GPU type, alternatives and all, as the constraint: each
            name mapped by ``gpu_types`` where it maps, else kept (a pool label).

    Raises:
        UserError: unknown format or model, missing file, malformed row (``on_bad_row="error"``).
    """
    fmt = trace_format(format, mapping)
    if fmt.kind != "jobs":
        raise UserError(f"trace format {format!r} holds inference requests, not jobs; "
                        "use read_requests")
    MODELS.get(model, "trace model")
    report = report if report is not None else TraceReport()
    rows = trace_rows(format, path, on_bad_row=on_bad_row, mapping=mapping,
                      transforms=transforms, seed=seed, streams=streams, report=report)
    return _jobs(rows, report, first_id, model, dict(gpu_types or {}), host_resources,
                 gpu_labels)


def _constraint(gpu_type: str | None, types: dict[str, str], labels: bool) -> str | None:
    """A trace row's GPU-type constraint (see :func:`read_trace`'s ``gpu_types``, ``gpu_labels``).

    >>> _constraint("T4|V100", {"V100": "A100-40GB"}, False), _constraint("T4|V100", {}, False)
    ('A100-40GB', None)
    >>> _constraint("T4|V100", {"V100": "A100-40GB"}, True)
    'T4|A100-40GB'
    """
    if not gpu_type:
        return None
    names = gpu_type.split("|")
    if labels:
        return "|".join(dict.fromkeys(types.get(g, g) for g in names))
    return next((types[g] for g in names if g in types), None)


def _jobs(rows: Iterator[TraceRow], report: TraceReport, first_id: int, model: str,
          types: dict[str, str], host_resources: bool,
          gpu_labels: bool = False) -> Iterator[JobSpec]:
    job_id = first_id
    for row in rows:
        name = row.model if row.model in MODELS else model
        if row.model is not None and row.model not in MODELS:
            report.notes[f"model {row.model!r} not in the catalog: ran as {model!r}"] += 1
        gpu_type = _constraint(row.gpu_type, types, gpu_labels)
        cpus = mem = None
        if host_resources and row.gpus > 0:
            cpus = None if row.cpus is None else row.cpus / row.gpus
            mem = None if row.memory_bytes is None else row.memory_bytes / row.gpus
        request = Request(gpus=row.gpus, gpu_type=gpu_type, cpus_per_gpu=cpus,
                          memory_per_gpu=mem)
        iterations = row.iterations if row.run_time_s is None else None
        yield JobSpec(id=job_id, submit_s=row.submit_s, request=request, model=name,
                      tenant=row.tenant, run_time_s=row.run_time_s, iterations=iterations)
        job_id += 1
        report.jobs += 1


def read_requests(path: str | Path, *, format: str = "azure_llm", on_bad_row: str = "error",
                  first_id: int = 0, report: TraceReport | None = None,
                  transforms: TraceTransforms | Mapping[str, Any] | None = None,
                  seed: int = 0) -> Iterator[InferenceRequest]:
    """The requests of an inference trace (Azure LLM 2023), lazily in arrival order."""
    fmt = trace_format(format)
    if fmt.kind != "requests":
        raise UserError(f"trace format {format!r} holds jobs, not requests; use read_trace")
    report = report if report is not None else TraceReport()
    rows = trace_rows(format, path, on_bad_row=on_bad_row, transforms=transforms, seed=seed,
                      report=report)
    return _requests(rows, report, first_id)


def _requests(rows: Iterator[TraceRow], report: TraceReport,
              first_id: int) -> Iterator[InferenceRequest]:
    for i, row in enumerate(rows):
        extra = row.extra or {}
        report.jobs += 1
        yield InferenceRequest(first_id + i, row.submit_s, extra["prompt_tokens"],
                               extra["output_tokens"])


def trace_frame(format: str, path: str | Path, *, on_bad_row: str = "error",
                mapping: Mapping[str, str] | None = None,
                transforms: TraceTransforms | Mapping[str, Any] | None = None, seed: int = 0,
                report: TraceReport | None = None) -> pd.DataFrame:
    """A trace as a table (for fitting and plots), rows in submission order.

    Columns: ``submit_s``, ``gpus``, ``run_time_s``, ``tenant``, ``state``, ``gpu_type``,
    ``model``, ``name``, ``line``; request traces have ``prompt_tokens`` and ``output_tokens``
    instead of GPUs and run time.
    """
    rows = trace_rows(format, path, on_bad_row=on_bad_row, mapping=mapping,
                      transforms=transforms, seed=seed, report=report)
    if trace_format(format, mapping).kind == "requests":
        data = [(r.submit_s, r.extra["prompt_tokens"], r.extra["output_tokens"], r.line)
                for r in rows]
        return pd.DataFrame(data, columns=["submit_s", "prompt_tokens", "output_tokens", "line"])
    data = [(r.submit_s, r.gpus, r.run_time_s, r.tenant, r.state, r.gpu_type, r.model, r.name,
             r.line) for r in rows]
    frame = pd.DataFrame(data, columns=["submit_s", "gpus", "run_time_s", "tenant", "state",
                                        "gpu_type", "model", "name", "line"])
    return frame.astype({"submit_s": float, "gpus": float, "run_time_s": float})


def trace_jobs(config: TraceConfig, streams: Streams, first_id: int = 0,
               report: TraceReport | None = None,
               data_dir: str | Path | None = None) -> Iterator[JobSpec]:
    """The jobs of a scenario's ``[workload.trace]`` (path resolved against the data dir)."""
    return read_trace(config.format, resolve_data_path(config.path, data_dir),
                      on_bad_row=config.on_bad_row, mapping=config.mapping or None,
                      first_id=first_id, report=report, transforms=config.transforms,
                      streams=streams, model=config.model, gpu_types=config.gpu_types,
                      host_resources=config.host_resources, gpu_labels=config.gpu_labels)

"""Reading a trace file row by row, in submission order, with bad rows reported.

A trace format (:class:`TraceFormat`, registered in :data:`TRACE_FORMATS`) says how one CSV row
becomes a :class:`TraceRow` (submit time, GPUs, run time, tenant, state, ...). This module does
the rest for every format:

* **Order.** Rows come out in submission order. A first pass reads only the submit column and
  keeps its running maximum (O(1) memory); if the file is sorted (Philly/RFold, openb, Tiresias,
  Azure), the second pass streams it: memory does not grow with its length. If it is not
  (the Pollux-flattened Philly file is in no order), a further pass keeps one (time, byte offset)
  pair per row (16 bytes), sorts them (stable: ties keep file order) and reads rows by seeking.
* **Time zero** is the earliest submission in the file: ``submit_s`` is seconds since then.
* **Bad rows** (missing column, non-numeric field, negative duration, end before start) raise
  :class:`~simcluster.errors.UserError` naming file, line and reason (``on_bad_row="error"``),
  or are skipped and counted in the :class:`TraceReport` (``"skip"``). Nothing is dropped
  silently: rows a format leaves out on purpose (CPU-only pods) are counted by reason too.
"""

from __future__ import annotations

import csv
import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simcluster.errors import UserError
from simcluster.registry import Registry

__all__ = ["BadRow", "RowError", "TRACE_FORMATS", "TraceFormat", "TraceReport", "TraceRow",
           "number", "seconds", "read_rows", "MAX_BAD_ROWS"]

MAX_BAD_ROWS = 1000  # bad rows kept with their line in a report (all are counted)


class RowError(ValueError):
    """A malformed row; the reader adds the file and line number."""


class Skip(Exception):  # noqa: N818 (a control-flow signal, not an error)
    """A well-formed row a format leaves out on purpose (e.g. a CPU-only pod), with a reason."""


@dataclass(slots=True)
class TraceRow:
    """One job (or request) of a trace, in SI units.

    Attributes:
        line: 1-based line number in the file.
        submit_s: submission time (s); absolute in the file's clock until the reader rebases it.
        gpus: GPUs requested (a fraction of one GPU below 1; 0 for request traces).
        run_time_s: run time (s) the trace gives, or None.
        tenant: user, team or virtual cluster.
        state: final state the trace records ("" if none).
        gpu_type: required GPU type as the trace names it, or None.
        model: model the trace names, or None (the loader's default applies).
        name: job name or id in the trace.
        cpus: CPU cores requested (whole job), or None.
        memory_bytes: host memory requested (whole job, bytes), or None.
        iterations: iterations the trace gives, or None.
        extra: format-specific fields (e.g. token counts of a request).
    """

    line: int
    submit_s: float
    gpus: float = 1.0
    run_time_s: float | None = None
    tenant: str = "default"
    state: str = ""
    gpu_type: str | None = None
    model: str | None = None
    name: str = ""
    cpus: float | None = None
    memory_bytes: float | None = None
    iterations: int | None = None
    extra: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class BadRow:
    """A malformed row: file, 1-based line number and what is wrong."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class TraceReport:
    """What reading a trace did: counts, and the bad rows with their line numbers.

    Attributes:
        file: the file read.
        rows: data rows read.
        jobs: jobs (or requests) produced.
        skipped: malformed rows skipped (``on_bad_row="skip"``).
        filtered: rows left out on purpose, by reason (format rules and transforms).
        bad: the first :data:`MAX_BAD_ROWS` malformed rows.
        sorted_in_memory: the file was not in submission order and was sorted by offsets.
        notes: rows kept but changed, by what was done (e.g. an unknown model replaced).
    """

    file: str = ""
    rows: int = 0
    jobs: int = 0
    skipped: int = 0
    filtered: Counter = field(default_factory=Counter)
    bad: list[BadRow] = field(default_factory=list)
    sorted_in_memory: bool = False
    notes: Counter = field(default_factory=Counter)

    def add_bad(self, bad: BadRow) -> None:
        self.skipped += 1
        if len(self.bad) < MAX_BAD_ROWS:
            self.bad.append(bad)

    def meta(self) -> dict[str, Any]:
        """Flat counts for a run's meta and summary (``trace_*`` keys) and the first bad rows."""
        return {"trace_file": self.file, "trace_rows": self.rows, "trace_jobs": self.jobs,
                "trace_rows_skipped": self.skipped,
                "trace_rows_filtered": sum(self.filtered.values()),
                "trace_bad_rows": [str(b) for b in self.bad[:20]]}

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict for a run's summary."""
        return {"file": self.file, "rows": self.rows, "jobs": self.jobs,
                "skipped": self.skipped, "filtered": dict(self.filtered),
                "sorted_in_memory": self.sorted_in_memory, "notes": dict(self.notes),
                "bad_rows": [str(b) for b in self.bad[:20]]}


@dataclass(frozen=True)
class TraceFormat:
    """How to read one trace format.

    Attributes:
        name: registry name.
        kind: ``jobs`` (becomes :class:`~simcluster.workload.jobs.JobSpec`) or ``requests``.
        submit: raw submit time of a row (s, the file's own clock).
        parse: the whole row as a :class:`TraceRow` (may raise RowError or Skip).
        columns: column names for files without a header row (PAI tables); None if the first
            line is a header (a leading ``#`` is stripped, as in the RFold file).
        description: one line for ``--help`` and errors, with the schema's source.
        submit_column: the column ``submit`` reads, if one: the order scan then reads it in
            chunks with pandas (fast; memory bounded by the chunk) instead of row by row.
    """

    name: str
    kind: str
    submit: Callable[[Mapping[str, str]], float]
    parse: Callable[[Mapping[str, str], int], TraceRow]
    columns: tuple[str, ...] | None = None
    description: str = ""
    submit_column: str | None = None


TRACE_FORMATS: Registry[TraceFormat] = Registry("trace format")


# field helpers --------------------------------------------------------------------------------
def field_text(row: Mapping[str, str], key: str) -> str:
    """The raw text of column ``key``; RowError if the column is missing."""
    value = row.get(key)
    if value is None:
        raise RowError(f"missing column {key!r}")
    return value.strip()


def number(row: Mapping[str, str], key: str, default: float | None = None) -> float:
    """Column ``key`` as a finite float (``default`` if empty and a default is given)."""
    text = field_text(row, key)
    if text == "" and default is not None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise RowError(f"column {key!r}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise RowError(f"column {key!r}: expected a finite number, got {text!r}")
    return value


_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f",
                 "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d")


def seconds(row: Mapping[str, str], key: str, default: float | None = None) -> float:
    """Column ``key`` as seconds: a number, or a date-time string (read as UTC)."""
    text = field_text(row, key)
    if text == "" and default is not None:
        return default
    try:
        value = float(text)
    except ValueError:
        try:
            return _utc(datetime.fromisoformat(text))
        except ValueError:
            pass
        for fmt in _DATE_FORMATS:
            try:
                stamp = datetime.strptime(text, fmt).replace(tzinfo=UTC)
            except ValueError:
                continue
            return stamp.timestamp()
        raise RowError(f"column {key!r}: expected seconds or a date-time, got {text!r}") from None
    if not math.isfinite(value):
        raise RowError(f"column {key!r}: expected a finite number, got {text!r}")
    return value


def _utc(stamp: datetime) -> float:
    """Seconds since the epoch; naive date-times are read as UTC (traces give local times
    without a zone; only differences matter)."""
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


# reading ------------------------------------------------------------------------------------
def _split(text: str) -> list[str]:
    text = text.rstrip("\r\n")
    if '"' in text:
        return next(csv.reader([text]))
    return text.split(",")


def _open(path: Path):
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise UserError(f"{path}: trace file not found (paths in scenarios are relative to the "
                        "data directory: --data-dir or SIMCLUSTER_DATA, default ./data)") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read the trace file ({err.strerror})") from None


def _header(fmt: TraceFormat, handle) -> tuple[list[str], int, int]:
    """(column names, lines consumed, bytes consumed)."""
    if fmt.columns is not None:
        return list(fmt.columns), 0, 0
    first = handle.readline()
    if not first:
        return [], 0, 0
    names = [c.strip().lstrip("#").strip() for c in _split(first.decode("utf-8-sig"))]
    return names, 1, len(first)


def _lines(path: Path, fmt: TraceFormat) -> Iterator[tuple[int, int, dict[str, str]]]:
    """(line number, byte offset, row dict) of every non-empty data line."""
    with _open(path) as handle:
        names, lineno, offset = _header(fmt, handle)
        for raw in handle:
            lineno += 1
            start, offset = offset, offset + len(raw)
            text = raw.decode("utf-8", errors="replace")
            if not text.strip():
                continue
            values = _split(text)
            yield lineno, start, dict(zip(names, values, strict=False))


SCAN_CHUNK = 1 << 14  # rows per chunk of the order scan (bounds its memory)


def _scan_column(path: Path, fmt: TraceFormat) -> tuple[float, bool] | None:
    """The order scan by pandas chunks of the submit column; None if it cannot be used.
    Unparsable values are ignored here (the full parse reports them with their line)."""
    with _open(path) as handle:
        names, skip, _ = _header(fmt, handle)
    if fmt.submit_column not in names or len(set(names)) != len(names):
        return None
    origin, latest, ordered = math.inf, -math.inf, True
    try:
        chunks = pd.read_csv(path, header=None, names=names, skiprows=skip,
                             usecols=[fmt.submit_column], dtype=str, chunksize=SCAN_CHUNK,
                             skip_blank_lines=True, on_bad_lines="skip", engine="c")
        for chunk in chunks:
            text = chunk[fmt.submit_column].str.strip()
            t = pd.to_numeric(text, errors="coerce")
            dates = t.isna() & text.notna() & (text != "")
            if dates.any():
                stamps = pd.to_datetime(text[dates], errors="coerce", format="mixed")
                if stamps.dt.tz is not None:
                    stamps = stamps.dt.tz_convert(None)
                t[dates] = (stamps - pd.Timestamp(0)).dt.total_seconds()
            values = t.dropna().to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            if not len(values):
                continue
            origin = min(origin, float(values.min()))
            if values[0] < latest or (np.diff(values) < 0).any():
                ordered = False
            latest = max(latest, float(values.max()))
    except (ValueError, pd.errors.ParserError):
        return None
    return (0.0 if origin == math.inf else origin), ordered


def _scan(path: Path, fmt: TraceFormat) -> tuple[float, bool]:
    """First pass: (earliest submit time, whether the file is in submission order). O(1)."""
    if fmt.submit_column is not None:
        found = _scan_column(path, fmt)
        if found is not None:
            return found
    origin, latest, ordered = math.inf, -math.inf, True
    for _, _, row in _lines(path, fmt):
        try:
            t = fmt.submit(row)
        except (RowError, Skip):
            continue  # reported by the full parse
        origin = min(origin, t)
        if t < latest:
            ordered = False
        latest = max(latest, t)
    return (0.0 if origin == math.inf else origin), ordered


def _sorted_lines(path: Path, fmt: TraceFormat) -> Iterator[tuple[int, int, dict[str, str]]]:
    """Rows of an unsorted file in submission order: sort (time, offset) pairs, then seek."""
    times, offsets, linenos = array("d"), array("q"), array("q")
    bad: list[tuple[int, int]] = []
    for lineno, start, row in _lines(path, fmt):
        try:
            t = fmt.submit(row)
        except (RowError, Skip):
            bad.append((lineno, start))  # surfaces first, with its line number
            continue
        times.append(t)
        offsets.append(start)
        linenos.append(lineno)
    order = np.argsort(np.frombuffer(times, dtype=float), kind="stable")
    with _open(path) as handle:
        names, _, _ = _header(fmt, handle)

        def at(lineno: int, start: int) -> tuple[int, int, dict[str, str]]:
            handle.seek(start)
            text = handle.readline().decode("utf-8", errors="replace")
            return lineno, start, dict(zip(names, _split(text), strict=False))

        for lineno, start in bad:
            yield at(lineno, start)
        for i in order:
            yield at(linenos[i], offsets[i])


def read_rows(format: str | TraceFormat, path: str | Path, *, on_bad_row: str = "error",
              report: TraceReport | None = None) -> Iterator[TraceRow]:
    """The rows of a trace file as :class:`TraceRow`, in submission order, time 0 = earliest.

    Args:
        format: a :data:`TRACE_FORMATS` name, or a format object.
        path: the file.
        on_bad_row: ``error`` (raise UserError at the first malformed row) or ``skip``.
        report: filled with counts and bad rows as rows are read.

    Raises:
        UserError: unknown format, missing file, or a malformed row with ``on_bad_row="error"``.
    """
    fmt = format if isinstance(format, TraceFormat) else TRACE_FORMATS.get(format, "trace format")
    if on_bad_row not in ("error", "skip"):
        raise UserError(f"on_bad_row: expected 'error' or 'skip', got {on_bad_row!r}")
    path = Path(path)
    if not path.is_file():
        _open(path).close()  # raises the not-found error
    report = report if report is not None else TraceReport()
    report.file = str(path)
    return _rows(fmt, path, on_bad_row, report)


def _rows(fmt: TraceFormat, path: Path, on_bad_row: str,
          report: TraceReport) -> Iterator[TraceRow]:
    origin, ordered = _scan(path, fmt)
    report.sorted_in_memory = not ordered
    lines = _lines(path, fmt) if ordered else _sorted_lines(path, fmt)
    for lineno, _, raw in lines:
        report.rows += 1
        try:
            row = fmt.parse(raw, lineno)
            _check(row)
        except Skip as reason:
            report.filtered[str(reason)] += 1
            continue
        except RowError as err:
            bad = BadRow(str(path), lineno, str(err))
            if on_bad_row == "error":
                raise UserError(f"{bad} (use on_bad_row = \"skip\" to skip and count such "
                                "rows)") from None
            report.add_bad(bad)
            continue
        row.submit_s -= origin
        yield row


def _check(row: TraceRow) -> None:
    """Checks every format shares: durations, GPU counts."""
    if row.run_time_s is not None and row.run_time_s < 0:
        raise RowError(f"negative duration {row.run_time_s:g} s")
    if row.gpus < 0:
        raise RowError(f"negative GPU count {row.gpus:g}")
    if row.gpus > 1 and row.gpus != int(row.gpus):
        raise RowError(f"more than one GPU must be a whole number, got {row.gpus:g}")

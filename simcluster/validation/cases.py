"""The validation registry: named cases, their references, and the table they make.

A case is a small function registered by name under a family (queueing, network, training,
inference, failures, workloads, scheduling). It computes the simulated value; the reference, its
source, the tolerance and the role (``validation`` or ``calibration``: a reference used to set a
default proves nothing about that default) come from ``references.toml`` in this package, written
before the case was run. Closed-form references are computed by the case from the formula the
data file names, so the data file says which formula and where it is published.

>>> ref = reference("mm8_wait")
>>> ref.family, ref.role
('queueing', 'validation')
"""

from __future__ import annotations

import math
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from simcluster.errors import UserError
from simcluster.registry import Registry

__all__ = ["CASES", "Case", "Outcome", "Reference", "Unavailable", "case", "reference",
           "run_cases"]

REFERENCES_FILE = Path(__file__).with_name("references.toml")
FAMILIES = ("queueing", "network", "training", "inference", "failures", "workloads",
            "scheduling")


class Unavailable(Exception):  # noqa: N818 - a status, not an error
    """Raised by a case whose inputs are not here (a public trace outside the data directory):
    the case is reported as ``skipped`` with the reason."""


@dataclass(frozen=True, slots=True)
class Reference:
    """One reference figure as the data file gives it.

    Attributes:
        name: the case it belongs to. family: model family.
        quantity: what is compared, with its unit.
        source: where the reference comes from (paper and table, vendor document, public
            benchmark, or the closed form and its textbook).
        kind: ``closed form``, ``measurement``, ``published report`` or ``trace``.
        value: the reference figure, or None when the case computes it from the closed form.
        tolerance: the largest accepted error (relative, unless ``absolute``).
        absolute: the tolerance is on |simulated - reference| instead of the relative error.
        role: ``validation``, or ``calibration`` when a default was set from this figure.
        note: the likely cause when the case fails, or anything a reader should know.
        curve_x, curve_y: reference points of a curve (busbw against size, ...) for the page.
    """

    name: str
    family: str
    quantity: str
    source: str
    kind: str
    tolerance: float
    value: float | None = None
    absolute: bool = False
    role: str = "validation"
    note: str = ""
    curve_x: tuple[float, ...] = ()
    curve_y: tuple[float, ...] = ()


@dataclass(slots=True)
class Outcome:
    """What a case returns: the simulated value, the reference when computed, and an optional
    curve (x, simulated, reference) for the report page."""

    simulated: float
    reference: float | None = None
    curve: dict[str, Any] | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Case:
    """A registered case: ``run(quick)`` returns an :class:`Outcome`."""

    name: str
    run: Callable[[bool], Outcome]
    quick: bool = True  # part of the quick run


CASES: Registry[Case] = Registry("validation case")


def _load_references() -> dict[str, Reference]:
    try:
        data = tomllib.loads(REFERENCES_FILE.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:  # a packaging bug, not user input
        raise RuntimeError(f"cannot read {REFERENCES_FILE}: {err}") from err
    refs = {}
    for name, entry in data.items():
        if entry.get("family") not in FAMILIES:
            raise RuntimeError(f"{REFERENCES_FILE}: [{name}] family must be one of {FAMILIES}")
        for key in ("curve_x", "curve_y"):
            entry[key] = tuple(entry.get(key, ()))
        refs[name] = Reference(name=name, **entry)
    return refs


_REFERENCES = _load_references()


def reference(name: str) -> Reference:
    """The reference entry of case ``name``."""
    try:
        return _REFERENCES[name]
    except KeyError:
        raise RuntimeError(f"{REFERENCES_FILE} has no entry [{name}]") from None


def case(name: str, quick: bool = True) -> Callable[[Callable[[bool], Outcome]],
                                                     Callable[[bool], Outcome]]:
    """Register a case function ``f(quick) -> Outcome``; its reference must exist."""
    reference(name)

    def decorate(fn: Callable[[bool], Outcome]) -> Callable[[bool], Outcome]:
        CASES.add(name, Case(name, fn, quick))
        return fn

    return decorate


@dataclass(slots=True)
class Report:
    """The table of one validation run and the curves for its page."""

    table: pd.DataFrame
    curves: dict[str, dict[str, Any]] = field(default_factory=dict)
    quick: bool = True
    seconds: float = 0.0


def _error(sim: float, ref: float, absolute: bool) -> float:
    if absolute:
        return abs(sim - ref)
    if ref == 0:
        return abs(sim)
    return abs(sim - ref) / abs(ref)


def run_cases(quick: bool = True, names: Iterable[str] | None = None,
              progress: Callable[[str], None] | None = None) -> Report:
    """Run the registered cases (the quick ones with ``quick``) and tabulate them.

    A case that raises is reported as an error row (status ``error``), never hidden.
    """
    _import_families()
    chosen = list(names) if names is not None else [
        n for n in CASES.names() if CASES.get(n).quick or not quick]
    rows, curves = [], {}
    start = time.perf_counter()
    for name in chosen:
        c, ref = CASES.get(name), reference(name)
        t0 = time.perf_counter()
        if progress:
            progress(name)
        skipped = False
        try:
            out = c.run(quick)
            status_detail = out.detail
        except Unavailable as why:
            out, status_detail, skipped = Outcome(math.nan), str(why), True
        except Exception as err:  # noqa: BLE001 - a broken case is a result to report
            out, status_detail = Outcome(math.nan), f"{type(err).__name__}: {err}"
        ref_value = out.reference if out.reference is not None else ref.value
        if ref_value is None:
            ref_value = math.nan  # a closed form the case did not get to compute
        err = _error(out.simulated, ref_value, ref.absolute)
        status = ("skipped" if skipped else "error" if math.isnan(err)
                  else "pass" if err <= ref.tolerance else "fail")
        rows.append({"case": name, "family": ref.family, "quantity": ref.quantity,
                     "simulated": out.simulated, "reference": ref_value,
                     "error": err, "tolerance": ref.tolerance, "absolute": ref.absolute,
                     "status": status, "role": ref.role, "kind": ref.kind,
                     "source": ref.source, "note": ref.note, "detail": status_detail,
                     "seconds": time.perf_counter() - t0})
        if out.curve is not None:
            curves[name] = out.curve
    table = pd.DataFrame(rows)
    order = {f: i for i, f in enumerate(FAMILIES)}
    if len(table):
        table = table.sort_values(["family", "case"], key=lambda s: s.map(order)
                                  if s.name == "family" else s, kind="stable")
        table = table.reset_index(drop=True)
    return Report(table, curves, quick, time.perf_counter() - start)


def _import_families() -> None:
    """Import the modules that register cases (each family is one module of this package)."""
    import importlib

    for family in FAMILIES:
        try:
            importlib.import_module(f"simcluster.validation.{family}")
        except ModuleNotFoundError as err:
            if err.name != f"simcluster.validation.{family}":
                raise


def check_names(names: Iterable[str]) -> list[str]:
    """The case names asked for, each checked (unknown names are user errors)."""
    _import_families()
    out = []
    for n in names:
        if n not in CASES:
            CASES.get(n, "validate --case")  # raises with the closest name
        out.append(n)
    if not out:
        raise UserError("validate: no case selected")
    return out

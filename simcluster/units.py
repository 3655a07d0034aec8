"""Parse quantities with units into SI floats: seconds, bytes, bytes/s, FLOP, FLOP/s, W, J, 1/s.

Units are case-sensitive, as DESIGN.md says: ``Gbps`` is gigabits per second and ``GBps`` gigabytes
per second; ``GB`` is 10^9 bytes and ``GiB`` 2^30. Vendors' "80 GB of HBM" means 80 GiB; write it as
``80GiB``.

>>> parse("400Gbps")
50000000000.0
>>> parse("80GiB")
85899345920.0
>>> parse("1.5ms")
0.0015
>>> parse("989TFLOPS")
989000000000000.0
>>> parse("120/day") * 86400
120.0
>>> parse("6h", "time")
21600.0
>>> parse("3 parsecs")
Traceback (most recent call last):
...
simcluster.errors.UserError: unknown unit 'parsecs' in '3 parsecs'; expected a number with ...
"""

from __future__ import annotations

import re

from simcluster.errors import UserError, closest

__all__ = ["DIMENSIONS", "format_quantity", "parse", "unit_table"]

_SI = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_IEC = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50}
_TIME = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0,
    "min": 60.0, "h": 3600.0, "hr": 3600.0, "d": 86400.0, "day": 86400.0,
    "days": 86400.0, "w": 604800.0, "week": 604800.0, "weeks": 604800.0,
    "y": 365.0 * 86400.0, "year": 365.0 * 86400.0, "years": 365.0 * 86400.0,
}

DIMENSIONS = ("time", "bytes", "bandwidth", "flop", "flops", "power", "energy", "rate", "ratio")


def _build_table() -> dict[str, tuple[float, str]]:
    table: dict[str, tuple[float, str]] = {}
    for unit, factor in _TIME.items():
        table[unit] = (factor, "time")
        table["/" + unit] = (1.0 / factor, "rate")
    for prefix, factor in {**_SI, **_IEC}.items():
        table[f"{prefix}B"] = (factor, "bytes")
        table[f"{prefix}B/s"] = (factor, "bandwidth")
        table[f"{prefix}Bps"] = (factor, "bandwidth")
        if prefix in _SI:
            table[f"{prefix}b"] = (factor / 8, "bytes")
            table[f"{prefix}bps"] = (factor / 8, "bandwidth")
            table[f"{prefix}b/s"] = (factor / 8, "bandwidth")
            table[f"{prefix}FLOP"] = (factor, "flop")
            table[f"{prefix}FLOPS"] = (factor, "flops")
            table[f"{prefix}FLOP/s"] = (factor, "flops")
            table[f"{prefix}W"] = (factor, "power")
            table[f"{prefix}Wh"] = (factor * 3600.0, "energy")
            table[f"{prefix}J"] = (factor, "energy")
    table["%"] = (0.01, "ratio")
    table[""] = (1.0, "ratio")
    return table


_TABLE = _build_table()
_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(\S*)\s*$")


def unit_table() -> dict[str, tuple[float, str]]:
    """A copy of the unit table: unit → (factor to SI, dimension)."""
    return dict(_TABLE)


def parse(value: str | float | int, dimension: str | None = None) -> float:
    """Parse ``value`` into an SI float.

    Args:
        value: a number (already SI) or a string such as ``"400Gbps"``, ``"1.5 ms"``, ``"50%"``.
        dimension: if given, the unit must be of this dimension (one of :data:`DIMENSIONS`);
            a bare number is accepted for any dimension and taken as SI.

    Returns:
        The quantity in SI units (s, bytes, bytes/s, FLOP, FLOP/s, W, J, 1/s).

    Raises:
        UserError: not a number, unknown unit, or a unit of the wrong dimension.
    """
    if isinstance(value, bool):
        raise UserError(f"expected a quantity, got boolean {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise UserError(f"expected a number or a string with a unit, got {value!r}")
    match = _NUMBER.match(value)
    if match is None:
        raise UserError(f"cannot read {value!r} as a quantity; expected e.g. '400Gbps' or '6h'")
    number, unit = float(match.group(1)), match.group(2)
    if unit not in _TABLE:
        candidates = [u for u, (_, d) in _TABLE.items() if dimension in (None, d) and u]
        hint = closest(unit, candidates)
        shown = "did you mean " + repr(hint) if hint else "e.g. s, h, GiB, Gbps, TFLOPS, W"
        raise UserError(
            f"unknown unit {unit!r} in {value!r}; expected a number with one of the known units "
            f"({shown})"
        )
    factor, dim = _TABLE[unit]
    if dimension is not None and unit and dim != dimension:
        raise UserError(f"{value!r} is a {dim}, expected a {dimension}")
    if dim == "rate":
        return number / _TIME[unit[1:]]  # divide, so "120/day" * 86400 is exactly 120
    return number * factor


def format_quantity(value: float, dimension: str) -> str:
    """Format an SI value for people: seconds as s/min/h/d, bytes as GB, bandwidth as GB/s.

    >>> format_quantity(5400, "time")
    '1.50 h'
    >>> format_quantity(5e10, "bandwidth")
    '50.0 GB/s'
    """
    if dimension == "time":
        for unit, factor in (("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0)):
            if abs(value) >= factor:
                return f"{value / factor:.2f} {unit}"
        return f"{value * 1e3:.3f} ms"
    suffix = {"bytes": "B", "bandwidth": "B/s", "flop": "FLOP", "flops": "FLOP/s",
              "power": "W", "energy": "J"}[dimension]
    for prefix in ("P", "T", "G", "M", "k"):
        if abs(value) >= _SI[prefix]:
            return f"{value / _SI[prefix]:.1f} {prefix}{suffix}"
    return f"{value:.1f} {suffix}"

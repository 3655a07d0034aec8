"""Table-driven tests of unit parsing (DESIGN.md convention 7)."""

import pytest

from simcluster.errors import UserError
from simcluster.units import format_quantity, parse


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("400Gbps", 50e9),          # bits per second -> bytes per second
        ("400GBps", 400e9),
        ("50 GB/s", 50e9),
        ("80GiB", 80 * 2**30),
        ("80GB", 80e9),
        ("1.5ms", 1.5e-3),
        ("2us", 2e-6),
        ("6h", 21600.0),
        ("7d", 604800.0),
        ("10min", 600.0),
        ("989TFLOPS", 989e12),
        ("989 TFLOP/s", 989e12),
        ("6PFLOP", 6e15),
        ("700W", 700.0),
        ("10.2kW", 10200.0),
        ("1kWh", 3.6e6),
        ("50%", 0.5),
        ("1e3", 1000.0),
        (12, 12.0),
        (0.25, 0.25),
    ],
)
def test_parse(text, expected):
    assert parse(text) == pytest.approx(expected, rel=1e-12)


def test_rates_divide_exactly():
    assert parse("120/day") * 86400 == 120.0
    assert parse("3/h") == pytest.approx(3 / 3600)


def test_case_matters():
    assert parse("1Gb") * 8 == parse("1GB")
    assert parse("1Mbps") != parse("1MBps")


@pytest.mark.parametrize(
    ("text", "dimension", "message"),
    [
        ("3 parsecs", None, "unknown unit 'parsecs'"),
        ("fast", None, "cannot read 'fast'"),
        ("5GB", "time", "is a bytes, expected a time"),
        ("1 hour", "time", "unknown unit 'hour'"),
        (True, None, "boolean"),
    ],
)
def test_parse_errors(text, dimension, message):
    with pytest.raises(UserError, match=message):
        parse(text, dimension)


def test_unknown_unit_suggests_a_close_one():
    with pytest.raises(UserError, match="did you mean 'GiB'"):
        parse("8Gib", "bytes")


def test_format_quantity():
    assert format_quantity(90.0, "time") == "1.50 min"
    assert format_quantity(4e11, "bandwidth") == "400.0 GB/s"

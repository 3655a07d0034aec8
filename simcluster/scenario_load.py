"""Loading scenarios: TOML files, ``--set`` overrides, and validation errors people can act on.

Each error names the source (file), the key path, the bad value, what was expected and, for
names, the closest valid one (DESIGN.md convention 6).

>>> s = parse_scenario({"cluster": {"nodes": 2}, "workload": {"jobs": [{"run_time": "1h"}]}})
>>> s.cluster.gpu, s.cluster.nodes, s.workload.jobs[0].run_time
('H100-SXM', 2, 3600.0)
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from simcluster.errors import UserError, closest
from simcluster.scenario import Scenario

__all__ = ["apply_overrides", "load_scenario_file", "parse_scenario"]

_TAGS = {"constant", "exponential", "lognormal", "uniform", "choice", "poisson"}


def _location(loc: Sequence[Any]) -> str:
    """A pydantic error location as the user's key path: ``workload.mix[0].run_time``.

    Pydantic puts union tags (``lognormal``) and validator names (``function-before[...]``)
    into locations; they are not keys of the file, so they are left out.
    """
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in _TAGS or "[" in str(part):
            continue
        else:
            text += ("." if text else "") + str(part)
    return text


def _fields_at(loc: Sequence[Any]) -> list[str]:
    """Valid keys of the table at ``loc`` (for 'did you mean')."""
    model: Any = Scenario
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        if field is None:
            break
        annotation = field.annotation
        model = None
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            inner = getattr(candidate, "__args__", (candidate,))
            for c in (candidate, *inner):
                if isinstance(c, type) and issubclass(c, BaseModel):
                    model = c
    return sorted(model.model_fields) if model is not None else []


def _format_error(error: Mapping[str, Any], source: str) -> str:
    loc = _location(error["loc"])
    value = error.get("input")
    if error["type"] == "extra_forbidden":
        key = str(error["loc"][-1])
        valid = _fields_at(error["loc"][:-1])
        hint = closest(key, valid)
        message = f"unknown key {key!r}; expected one of {', '.join(valid)}"
        if hint:
            message += f" (did you mean {hint!r}?)"
    elif error["type"] == "missing":
        message = f"missing required key {str(error['loc'][-1])!r}"
    elif error["type"] == "union_tag_invalid":
        ctx = error.get("ctx", {})
        tags = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        tag = str(ctx.get("tag"))
        message = f"unknown kind {tag!r}; expected one of {', '.join(tags)}"
        hint = closest(tag, tags)
        if hint:
            message += f" (did you mean {hint!r}?)"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        if not isinstance(value, dict):
            message = f"bad value {value!r}: {message}"
    return f"{source}: {loc or '(top level)'}: {message}"


def parse_scenario(data: Mapping[str, Any], source: str = "<scenario>",
                   registries: Mapping[str, Any] | None = None) -> Scenario:
    """Validate a scenario mapping into a frozen :class:`Scenario`.

    Raises:
        UserError: one line per problem: source, key path, bad value, expectation, hint.
    """
    try:
        return Scenario.model_validate(dict(data), context={"registries": registries or {}})
    except ValidationError as err:
        lines = [_format_error(e, source) for e in err.errors()]
        raise UserError("\n".join(dict.fromkeys(lines))) from None


def _parse_override_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values read as TOML, else as strings).

    >>> apply_overrides({"cluster": {"nodes": 4}}, ["cluster.nodes=8", "run.horizon=2d"])
    {'cluster': {'nodes': 8}, 'run': {'horizon': '2d'}}
    """
    result = copy.deepcopy(dict(data))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. cluster.nodes=8")
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UserError(f"--set {item!r}: {part!r} is not a table")
            node = child
        node[parts[-1]] = _parse_override_value(text.strip())
    return result


def load_scenario_file(path: str | Path, overrides: Sequence[str] = (),
                       registries: Mapping[str, Any] | None = None) -> Scenario:
    """Read a TOML scenario file, apply overrides, and validate it.

    Raises:
        UserError: missing file, TOML syntax error, or schema violation (with the file name).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such scenario file") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"{path}: not valid TOML: {err}") from None
    data = apply_overrides(data, overrides)
    data.setdefault("name", path.stem)
    return parse_scenario(data, source=str(path), registries=registries)

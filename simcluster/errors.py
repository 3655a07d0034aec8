"""User-facing errors: one exception type that the CLI turns into exit code 2.

A :class:`UserError` is raised for anything a user can fix (a bad scenario key, an unknown GPU,
a missing file). Its message names where the problem is, the bad value, what was expected and,
when there is one, the closest valid name.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["InvariantViolation", "UserError", "closest", "unknown_name"]


class InvariantViolation(RuntimeError):
    """A simulation invariant broke (an engine or policy bug, not a user error); the message
    names the simulated time and what broke. (Also importable from
    :mod:`simcluster.engine.cluster`, where the allocation checks raise it.)"""


class UserError(Exception):
    """An error in user input; printed without a traceback, exit code 2."""


def closest(name: str, choices: Iterable[str]) -> str | None:
    """Return the valid name closest to ``name``, or None if nothing is close.

    >>> closest("H100-SMX", ["A100-80GB", "H100-SXM"])
    'H100-SXM'
    """
    options = list(choices)
    lowered = {c.lower(): c for c in options}
    if name.lower() in lowered:
        return lowered[name.lower()]
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.4)
    return lowered[match[0]] if match else None


def unknown_name(kind: str, name: str, choices: Iterable[str], where: str = "") -> UserError:
    """Build the error for an unknown registered name (GPU, policy, model, ...).

    >>> print(unknown_name("GPU", "H100", ["H100-SXM", "A100-80GB"], where="cluster.gpu"))
    cluster.gpu: unknown GPU 'H100'; expected one of A100-80GB, H100-SXM (did you mean 'H100-SXM'?)
    """
    options = sorted(choices)
    hint = closest(name, options)
    prefix = f"{where}: " if where else ""
    message = f"{prefix}unknown {kind} {name!r}; expected one of {', '.join(options)}"
    if hint is not None:
        message += f" (did you mean {hint!r}?)"
    return UserError(message)

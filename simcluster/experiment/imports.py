"""Custom policies named as ``module:Class`` in a scenario, loaded only when the user allows it.

A scenario file is data: naming ``mypkg.policies:Greedy`` imports (and so runs) that module's
code, which happens only with ``--allow-import`` on the command line or ``allow_import=True`` in
Python. The class is then registered under that name, like a built-in policy.

>>> from simcluster.policies.placement import PLACEMENT_POLICIES
>>> r = ImportingRegistry(PLACEMENT_POLICIES, allow=False)
>>> "pack" in r, "json:JSONDecoder" in r
(True, False)
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

from simcluster.errors import UserError
from simcluster.registry import Registry

__all__ = ["ImportingRegistry", "import_object"]


def import_object(spec: str) -> Any:
    """The object ``module:attribute`` names.

    Raises:
        UserError: the module or attribute cannot be found.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UserError(f"{spec!r}: expected 'module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UserError(f"{spec!r}: cannot import module {module_name!r} ({err})") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise UserError(f"{spec!r}: module {module_name!r} has no {attribute!r}") from None


class ImportingRegistry:
    """A registry view that also accepts ``module:Class`` names, importing them if allowed.

    Args:
        registry: the policy registry to look names up in and register imports into.
        allow: whether ``module:Class`` names may be imported.
    """

    def __init__(self, registry: Registry, allow: bool) -> None:
        self.registry, self.allow = registry, allow

    def __contains__(self, name: object) -> bool:
        if name in self.registry:
            return True
        if not (self.allow and isinstance(name, str) and ":" in name):
            return False
        obj = import_object(name)
        if not callable(obj):
            raise UserError(f"{name!r} is not a class")
        self.registry.add(name, obj)
        return True

    def __iter__(self) -> Iterator[str]:
        yield from self.registry
        if not self.allow:
            yield "<module:Class with --allow-import>"

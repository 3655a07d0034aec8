"""One registry pattern for everything chosen by name (policies, topology builders, presets).

Each kind of named thing owns one :class:`Registry` instance, created in the module that defines
the kind and filled by decorators at import time; after import it is only read. Lookups of
unknown names raise :class:`~simcluster.errors.UserError` with the closest valid name.

>>> shapes = Registry("shape")
>>> @shapes.register("square")
... def square(x):
...     return x * x
>>> shapes.get("square")(3)
9
>>> shapes.get("sqare")
Traceback (most recent call last):
...
simcluster.errors.UserError: unknown shape 'sqare'; expected one of square (did you mean 'square'?)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from simcluster.errors import unknown_name

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → object table for one kind of thing.

    Args:
        kind: what is registered, used in error messages ("queue policy", "GPU").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering its target under ``name`` (names are unique)."""

        def decorate(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorate

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name``; a second registration of a name is a bug."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def get(self, name: str, where: str = "") -> T:
        """Return the object registered as ``name``.

        Raises:
            UserError: the name is unknown; the message gives the closest valid name.
        """
        try:
            return self._items[name]
        except KeyError:
            raise unknown_name(self.kind, name, self._items, where) from None

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

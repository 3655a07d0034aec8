"""Named random streams (DESIGN.md convention 2).

Every draw comes from a stream named for its purpose ("arrivals", "failures/gpu"), derived from
the root seed and a stable digest of the name, never from spawn order: adding a stream never shifts
another. Draws that belong to an entity (a job's size) use :meth:`Streams.for_entity`, keyed by the
entity's id, so two policies compared under one seed see the same jobs.

>>> a, b = Streams(7), Streams(7)
>>> float(a.get("arrivals").random()) == float(b.get("arrivals").random())
True
>>> float(a.get("arrivals").random()) == float(a.get("durations").random())
False
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["Streams", "digest"]


def digest(name: str) -> int:
    """A stable 64-bit integer digest of ``name`` (not Python's salted ``hash``).

    >>> digest("arrivals") == digest("arrivals")
    True
    """
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


class Streams:
    """The random streams of one simulation, derived from one root seed.

    Args:
        seed: the root seed (a non-negative integer).
    """

    def __init__(self, seed: int) -> None:
        if seed < 0:
            raise ValueError("seed must be non-negative")
        self.seed = int(seed)
        self._streams: dict[str, np.random.Generator] = {}
        self._keys: dict[str, int] = {}

    def get(self, name: str) -> np.random.Generator:
        """The generator for stream ``name``; the same object on every call in this run."""
        stream = self._streams.get(name)
        if stream is None:
            stream = self._make(name)
            self._streams[name] = stream
        return stream

    def for_entity(self, name: str, entity_id: int) -> np.random.Generator:
        """A fresh generator for one entity's draws in stream ``name`` (e.g. job 42's size).

        Counter-based (Philox; Salmon et al., SC'11): the key is the seed and the stream name,
        the entity id sits in the counter's highest word, so entities never share draws and
        making one costs no seeding.
        """
        key = self._keys.get(name)
        if key is None:
            key = self._keys[name] = digest(f"{self.seed}/{name}") | (self.seed << 64)
        return np.random.Generator(np.random.Philox(key=key, counter=[0, 0, 0, int(entity_id)]))

    def _make(self, name: str) -> np.random.Generator:
        seq = np.random.SeedSequence([self.seed, digest(name)])
        return np.random.Generator(np.random.PCG64(seq))

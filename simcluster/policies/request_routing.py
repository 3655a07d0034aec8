"""Request routing across the ready replicas of one inference service: pure policies.

A routing policy is a small class with ``route(request, replicas) -> int`` (an index into
``replicas``), registered by name in :data:`ROUTING_POLICIES`. ``replicas`` is a non-empty
sequence of read-only :class:`ReplicaView` objects (the engine's replicas, or
:class:`StaticReplica` in tests); the policy never changes them.

>>> rs = [StaticReplica(0, outstanding=3), StaticReplica(1, outstanding=1)]
>>> LeastOutstanding().route(None, rs)
1
>>> rr = RoundRobin()
>>> [rr.route(None, rs) for _ in range(3)]
[0, 1, 0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from simcluster.registry import Registry

__all__ = ["ROUTING_POLICIES", "KvAware", "LeastOutstanding", "PowerOfTwo", "ReplicaView",
           "RoundRobin", "StaticReplica"]

ROUTING_POLICIES: Registry[type] = Registry("routing policy")


class ReplicaView(Protocol):
    """What a routing policy may read about one ready replica.

    Attributes:
        id: replica id (unique within its service).
        outstanding: requests routed to it and not finished (queued + running).
        kv_used_tokens: KV-cache tokens held now (paged: whole blocks).
        kv_capacity_tokens: KV-cache capacity (tokens).
        queued_tokens: prompt tokens of requests waiting for admission.
    """

    id: int
    outstanding: int
    kv_used_tokens: float
    kv_capacity_tokens: float
    queued_tokens: float


@dataclass(frozen=True)
class StaticReplica:
    """A hand-built :class:`ReplicaView` (tests, examples)."""

    id: int
    outstanding: int = 0
    kv_used_tokens: float = 0.0
    kv_capacity_tokens: float = 1.0
    queued_tokens: float = 0.0


@ROUTING_POLICIES.register("round_robin")
class RoundRobin:
    """Each request to the next replica in turn (over the replicas ready at that moment)."""

    def __init__(self) -> None:
        self._next = 0

    def route(self, request: Any, replicas: Sequence[ReplicaView]) -> int:
        i = self._next % len(replicas)
        self._next = i + 1
        return i


@ROUTING_POLICIES.register("least_outstanding")
class LeastOutstanding:
    """The replica with the fewest outstanding requests (ties: the lowest id), as the
    least-outstanding-requests algorithm of AWS Application Load Balancers."""

    def route(self, request: Any, replicas: Sequence[ReplicaView]) -> int:
        return min(range(len(replicas)), key=lambda i: (replicas[i].outstanding, replicas[i].id))


@ROUTING_POLICIES.register("power_of_two")
class PowerOfTwo:
    """Power of two choices (Mitzenmacher 2001): sample two distinct replicas uniformly, take
    the one with fewer outstanding requests. Draws come from the simulation's named stream."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def route(self, request: Any, replicas: Sequence[ReplicaView]) -> int:
        n = len(replicas)
        if n == 1:
            return 0
        a, b = (int(x) for x in self.rng.choice(n, size=2, replace=False))
        ka = (replicas[a].outstanding, replicas[a].id)
        kb = (replicas[b].outstanding, replicas[b].id)
        return a if ka <= kb else b


@ROUTING_POLICIES.register("kv_aware")
class KvAware:
    """Least KV-cache pressure: (KV tokens held + prompt tokens waiting) / capacity; ties by
    outstanding requests, then id."""

    def route(self, request: Any, replicas: Sequence[ReplicaView]) -> int:
        def pressure(i: int) -> tuple[float, int, int]:
            r = replicas[i]
            cap = max(float(r.kv_capacity_tokens), 1.0)
            return ((r.kv_used_tokens + r.queued_tokens) / cap, r.outstanding, r.id)
        return min(range(len(replicas)), key=pressure)

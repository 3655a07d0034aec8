"""α-β costs of collectives (Thakur, Rabenseifner and Gropp, IJHPCA 2005).

p ranks, n bytes, α seconds per message step, B bytes/s of the bottleneck link:

* ring all-reduce: 2(p−1)α + 2(p−1)/p · n/B
* ring reduce-scatter or all-gather: (p−1)α + (p−1)/p · n/B

>>> ring_allreduce_time(8, 1e9, 100e9, 0.0)
0.0175
>>> busbw_allreduce(8, 1e9, 0.0175) / 1e9
100.0
"""

from __future__ import annotations

__all__ = ["busbw_allreduce", "ring_allgather_time", "ring_allreduce_time"]


def ring_allreduce_time(p: int, nbytes: float, bandwidth: float, alpha: float) -> float:
    """Ring all-reduce of ``nbytes`` over ``p`` ranks at ``bandwidth`` bytes/s, seconds."""
    if p <= 1 or nbytes <= 0:
        return 0.0
    return 2.0 * (p - 1) * alpha + 2.0 * (p - 1) / p * nbytes / bandwidth


def ring_allgather_time(p: int, nbytes: float, bandwidth: float, alpha: float) -> float:
    """Ring all-gather (or reduce-scatter) of ``nbytes`` in total over ``p`` ranks, seconds."""
    if p <= 1 or nbytes <= 0:
        return 0.0
    return (p - 1) * alpha + (p - 1) / p * nbytes / bandwidth


def busbw_allreduce(p: int, nbytes: float, seconds: float) -> float:
    """nccl-tests bus bandwidth of an all-reduce: algbw × 2(p−1)/p, bytes/s."""
    return nbytes / seconds * 2.0 * (p - 1) / p

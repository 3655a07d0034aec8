"""Draw from the scenario's distribution tables with a given numpy Generator.

>>> from simcluster.rng import Streams
>>> from simcluster.scenario import Choice, Lognormal
>>> rng = Streams(0).get("demo")
>>> sample(Choice(values=[1, 2, 4]), rng) in (1.0, 2.0, 4.0)
True
>>> round(median(Lognormal(median=3600, sigma=1.0)))
3600
"""

from __future__ import annotations

import math

import numpy as np

from simcluster.scenario import Choice, Constant, Exponential, Lognormal, Uniform

__all__ = ["mean", "median", "pick", "sample"]

Dist = Constant | Exponential | Lognormal | Uniform | Choice


def pick(weights: list[float], rng: np.random.Generator) -> int:
    """Index drawn with probability proportional to ``weights`` (one uniform draw).

    >>> from simcluster.rng import Streams
    >>> pick([0.0, 1.0, 0.0], Streams(1).get("demo"))
    1
    """
    total = sum(weights)
    u, acc = rng.random() * total, 0.0
    for i, w in enumerate(weights):
        acc += w
        if u < acc:
            return i
    return max(i for i, w in enumerate(weights) if w > 0)


def sample(dist: Dist, rng: np.random.Generator) -> float:
    """One draw from ``dist``."""
    match dist:
        case Constant(value=v):
            return float(v)
        case Exponential(mean=m):
            return float(rng.exponential(m))
        case Lognormal(median=m, sigma=s):
            return float(m * math.exp(s * rng.standard_normal()))
        case Uniform(low=lo, high=hi):
            return float(rng.uniform(lo, hi))
        case Choice(values=values, weights=weights):
            return float(values[pick(weights or [1.0] * len(values), rng)])
    raise TypeError(f"not a distribution: {dist!r}")


def mean(dist: Dist) -> float:
    """The distribution's mean (closed form)."""
    match dist:
        case Constant(value=v):
            return float(v)
        case Exponential(mean=m):
            return float(m)
        case Lognormal(median=m, sigma=s):
            return float(m * math.exp(s * s / 2))
        case Uniform(low=lo, high=hi):
            return (lo + hi) / 2
        case Choice(values=values, weights=weights):
            w = np.ones(len(values)) if weights is None else np.asarray(weights, dtype=float)
            return float(np.dot(values, w) / w.sum())
    raise TypeError(f"not a distribution: {dist!r}")


def median(dist: Dist) -> float:
    """The distribution's median where it has a closed form, else its mean."""
    match dist:
        case Exponential(mean=m):
            return float(m * math.log(2))
        case Lognormal(median=m):
            return float(m)
    return mean(dist)

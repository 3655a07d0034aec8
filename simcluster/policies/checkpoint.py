"""Checkpoint policies: how many iterations a training job runs between checkpoints (pure).

A policy gets a :class:`CheckpointContext` (the job's iteration time on its placement, the
measured time of one checkpoint write, the job's current mean time between failures, its
restart time) and returns the iterations per checkpoint (0: never checkpoint). The engine asks
when a job starts (or restarts), so a Young or Daly interval follows the job's placement and the
cluster's failure rates.

>>> ctx = CheckpointContext(iteration_s=10.0, checkpoint_s=60.0, mtbf_s=86400.0)
>>> CHECKPOINT_POLICIES.get("young")().every(ctx)
322
>>> CHECKPOINT_POLICIES.get("fixed_time")(interval_s=3600).every(ctx)
360
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simcluster.perf.checkpointing import daly_interval, young_interval
from simcluster.registry import Registry

__all__ = ["CHECKPOINT_POLICIES", "CheckpointContext", "Daly", "FixedIterations", "FixedTime",
           "Young"]

CHECKPOINT_POLICIES: Registry[type] = Registry("checkpoint policy")


@dataclass(frozen=True, slots=True)
class CheckpointContext:
    """What a checkpoint policy sees of one job (seconds).

    Attributes:
        iteration_s: one iteration on the job's placement.
        checkpoint_s: one checkpoint write (blocking part: the whole write, or the snapshot to
            host memory when checkpoints are asynchronous).
        mtbf_s: the job's mean time between failures (inf without failure processes).
        restart_s: time to resume after a failure.
        default_interval_s: the scenario's ``workload.checkpoint_interval``.
    """

    iteration_s: float
    checkpoint_s: float
    mtbf_s: float = math.inf
    restart_s: float = 0.0
    default_interval_s: float = 3600.0


def _iterations(interval_s: float, iteration_s: float) -> int:
    if not interval_s > 0 or not math.isfinite(interval_s) or not iteration_s > 0:
        return 0
    return max(1, round(interval_s / iteration_s))


@CHECKPOINT_POLICIES.register("fixed_time")
class FixedTime:
    """Every ``interval_s`` of work (default: ``workload.checkpoint_interval``; 0: never)."""

    def __init__(self, interval_s: float | None = None) -> None:
        if interval_s is not None and not float(interval_s) >= 0:
            raise TypeError(f"interval_s must be >= 0, got {interval_s!r}")
        self.interval_s = None if interval_s is None else float(interval_s)

    def every(self, ctx: CheckpointContext) -> int:
        interval = ctx.default_interval_s if self.interval_s is None else self.interval_s
        return _iterations(interval, ctx.iteration_s)


@CHECKPOINT_POLICIES.register("fixed_iterations")
class FixedIterations:
    """Every ``iterations`` iterations."""

    def __init__(self, iterations: int) -> None:
        if int(iterations) != iterations or iterations < 0:
            raise TypeError(f"iterations must be a whole number >= 0, got {iterations!r}")
        self.iterations = int(iterations)

    def every(self, ctx: CheckpointContext) -> int:
        return self.iterations


class _Optimum:
    """An interval from the job's failure rate and checkpoint time (``interval(δ, M)``); no
    checkpoints when the job never fails, every iteration when checkpoints are free (the
    optimum tends to 0)."""

    interval = staticmethod(young_interval)

    def every(self, ctx: CheckpointContext) -> int:
        if not math.isfinite(ctx.mtbf_s):
            return 0
        if ctx.checkpoint_s <= 0:
            return 1
        return _iterations(self.interval(ctx.checkpoint_s, ctx.mtbf_s), ctx.iteration_s)


@CHECKPOINT_POLICIES.register("young")
class Young(_Optimum):
    """Young (1974): sqrt(2·δ·M) of work."""


@CHECKPOINT_POLICIES.register("daly")
class Daly(_Optimum):
    """Daly (2006) higher-order optimum."""

    interval = staticmethod(daly_interval)

"""Checkpoint intervals and expected run time under failures: Young (1974) and Daly (2006).

Notation (all in seconds): ``delta`` is the time to write one checkpoint, ``mtbf`` the mean
time between failures *of the job* (a job on n components that each fail at rate λ fails at
rate n·λ), ``restart`` the time to resume after a failure (rescheduling plus reading the last
checkpoint back), ``tau`` the work between checkpoints, ``solve`` the job's failure-free
compute time.

Sources (see /work/shared/reference/README.md):

* J. W. Young, "A first order approximation to the optimum checkpoint interval", CACM 17(9),
  1974: τ ≈ sqrt(2·δ·M).
* J. T. Daly, "A higher order estimate of the optimum checkpoint interval for restart dumps",
  FGCS 22(3), 2006: τ = sqrt(2δM)·[1 + (1/3)·sqrt(δ/(2M)) + (1/9)·(δ/(2M))] − δ for δ < 2M,
  else τ = M; and, for exponential failures that may also strike during checkpoints and
  restarts, the expected wall time T_w = M·e^{R/M}·(e^{(τ+δ)/M} − 1)·T_s/τ.

>>> round(young_interval(60.0, 3600.0 * 24))
3220
>>> round(daly_interval(60.0, 3600.0 * 24))
3180
>>> round(expected_ettr(3180.0, 60.0, 600.0, 86400.0), 3)
0.957
"""

from __future__ import annotations

import math

__all__ = ["daly_interval", "expected_ettr", "expected_segment_s", "expected_wall_s",
           "first_order_waste", "young_interval"]


def _check(delta: float, mtbf: float) -> None:
    if not delta >= 0 or not mtbf > 0:
        raise ValueError(f"need checkpoint time >= 0 and MTBF > 0, got {delta}, {mtbf}")


def young_interval(delta: float, mtbf: float) -> float:
    """Young's optimum work between checkpoints, sqrt(2·δ·M) (s)."""
    _check(delta, mtbf)
    return math.sqrt(2.0 * delta * mtbf)


def daly_interval(delta: float, mtbf: float) -> float:
    """Daly's higher-order optimum work between checkpoints (s); M when δ ≥ 2M."""
    _check(delta, mtbf)
    if delta >= 2.0 * mtbf:
        return mtbf
    x = delta / (2.0 * mtbf)
    return math.sqrt(2.0 * delta * mtbf) * (1.0 + math.sqrt(x) / 3.0 + x / 9.0) - delta


def expected_segment_s(work: float, delta: float, restart: float, mtbf: float) -> float:
    """Expected wall time (s) to get one segment of ``work`` s plus a ``delta`` s checkpoint
    done under exponential failures of mean ``mtbf``, each failure costing ``restart`` s (during
    which failures may strike again): M·e^{R/M}·(e^{(w+δ)/M} − 1) (Daly 2006, per segment)."""
    _check(delta, mtbf)
    return mtbf * math.exp(restart / mtbf) * math.expm1((work + delta) / mtbf)


def expected_wall_s(tau: float, delta: float, restart: float, mtbf: float,
                    solve: float) -> float:
    """Daly's expected wall time (s) of ``solve`` s of work checkpointed every ``tau`` s:
    M·e^{R/M}·(e^{(τ+δ)/M} − 1)·T_s/τ."""
    if not tau > 0:
        raise ValueError(f"checkpoint interval must be > 0, got {tau}")
    return expected_segment_s(tau, delta, restart, mtbf) * solve / tau


def expected_ettr(tau: float, delta: float, restart: float, mtbf: float) -> float:
    """Expected effective training time ratio, useful time / wall time = T_s / T_w."""
    return tau / expected_segment_s(tau, delta, restart, mtbf)


def first_order_waste(tau: float, delta: float, restart: float, mtbf: float) -> float:
    """First-order fraction of wall time wasted: δ/τ + (τ/2 + R)/M."""
    return delta / tau + (tau / 2.0 + restart) / mtbf

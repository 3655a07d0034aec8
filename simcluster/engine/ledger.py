"""Where a training job's GPU-holding wall time went (issue 8): a :class:`Ledger` per job.

The scheduler keeps one per live job (``Scheduler.ledgers``); the execution processes book
segments, checkpoints and stops into it, the failure manager failures and slow-downs, and the
job's row gets its totals: useful + lost + checkpoint + restart + stall = time held.
"""

from __future__ import annotations

from typing import Any

from simcluster.engine.training import TrainingJob

__all__ = ["Ledger", "ledger"]


class Ledger:
    """Where one job's GPU-holding wall time went (s; multiply by its GPUs for GPU time).

    Attributes:
        useful_s: kept iterations at the placement's uncontended iteration time.
        lost_s: compute time of work lost to stops (redone later).
        checkpoint_s: blocking checkpoint time (whole writes, or snapshots plus waits for the
            previous drain when asynchronous; preemption checkpoints too).
        restart_s: time spent resuming (rescheduling, checkpoint read).
        stall_s: compute time beyond the uncontended iteration time (network, data loading).
        failures: failures that stopped the job. recover_s: summed time from each failure to
            the end of the restart that followed it; recoveries: how many.
    """

    __slots__ = ("useful_s", "lost_s", "checkpoint_s", "restart_s", "stall_s", "failures",
                 "recover_s", "recoveries", "failed_at", "seg_start", "seg_ckpt",
                 "pending_iters", "pending_s", "writing", "phase", "began", "straggle",
                 "load")

    def __init__(self) -> None:
        self.useful_s = self.lost_s = self.checkpoint_s = self.restart_s = self.stall_s = 0.0
        self.failures = self.recoveries = 0
        self.recover_s = 0.0
        self.failed_at: float | None = None
        self.seg_start = self.seg_ckpt = 0.0
        self.pending_iters = 0  # iterations done, waiting for an asynchronous drain
        self.pending_s = 0.0  # their compute time
        self.writing = False
        self.phase: str | None = None  # "restart" or "segment" while the job runs
        self.began: float | None = None  # start of the restart or blocking write in progress
        self.straggle = 1.0  # slow-down factor from straggling GPUs (1 / slowest speed)
        self.load: Any = None  # a coarse job's long-lived ring flows (execution._CoarseLoad)

    def begin_segment(self, now: float) -> None:
        self.seg_start, self.seg_ckpt = now, self.checkpoint_s
        self.phase = "segment"

    def close(self, now: float) -> None:
        """Book a job still running at the horizon: the restart or write in progress, and the
        work not yet in a durable checkpoint (counted as lost: it would be, were it stopped)."""
        if self.phase == "restart" and self.began is not None:
            self.restart_s += now - self.began
        elif self.phase == "segment":
            if self.began is not None:
                self.checkpoint_s += now - self.began
            self.lost_s += self.computed(now) + self.pending_s
            self.pending_s, self.pending_iters = 0.0, 0
        self.phase = self.began = None

    def computed(self, now: float) -> float:
        """Compute time of the current segment so far (checkpoint time excluded)."""
        return (now - self.seg_start) - (self.checkpoint_s - self.seg_ckpt)

    def keep(self, iterations: float, iteration_s: float, compute_s: float) -> None:
        useful = iterations * iteration_s
        self.useful_s += useful
        self.stall_s += compute_s - useful

    @property
    def held_s(self) -> float:
        return self.useful_s + self.lost_s + self.checkpoint_s + self.restart_s + self.stall_s


def ledger(sim: Any, job: TrainingJob) -> Ledger:
    """The job's ledger (made on first use)."""
    books = sim.scheduler.ledgers
    led = books.get(job.spec.id)
    if led is None:
        led = books[job.spec.id] = Ledger()
    return led

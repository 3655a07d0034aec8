"""The scheduler loop: event-driven, our own pending heap, gang allocation.

It wakes only when something changes (a submit, an end, a stop): each change asks for one
scheduling pass at the current time, and all changes at one timestamp share that pass (DESIGN.md
section 3: react to events, never tick). The queue policy orders, the placement policy picks GPUs;
the scheduler only acts on their decisions.
"""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING, Any

from simcluster.engine.training import Timing, TrainingJob, run_job

if TYPE_CHECKING:
    from simcluster.engine.simulation import Simulation

__all__ = ["Scheduler"]


class Scheduler:
    """Queues jobs, places them, starts and stops their processes.

    Args:
        sim: the owning simulation (environment, cluster, perf model, recorder).
        queue_policy: orders the pending jobs (``key(job)``, ``blocking``).
        placement_policy: picks GPUs (``place(request, view)``).
    """

    def __init__(self, sim: Simulation, queue_policy: Any, placement_policy: Any) -> None:
        self.sim = sim
        self.queue_policy = queue_policy
        self.placement_policy = placement_policy
        self._pending: list[tuple[Any, int, TrainingJob]] = []
        self._seq = itertools.count()
        self._pass_pending = False
        self.running: dict[int, TrainingJob] = {}
        self.computing = 0.0  # GPU-equivalents computing, time-averaged per job

    @property
    def queued(self) -> int:
        """Number of pending jobs."""
        return len(self._pending)

    def pending_jobs(self) -> list[TrainingJob]:
        """Pending jobs in queue order."""
        return [entry[2] for entry in sorted(self._pending)]

    # events ------------------------------------------------------------------------------
    def submit(self, job: TrainingJob) -> None:
        """A job arrives: reject it if it can never fit, else queue it."""
        reason = self.sim.cluster.never_fits(job.spec.request)
        if reason is not None:
            job.state, job.reason = "rejected", reason
            self.sim.record_job(job)
            return
        self._enqueue(job)

    def stop(self, job: TrainingJob) -> None:
        """Stop a running job (preemption, failure); it loses work since its last checkpoint
        and goes back to the queue."""
        if job.state == "running" and job.process is not None and job.process.is_alive:
            job.process.interrupt("stop")

    # mechanism ---------------------------------------------------------------------------
    def _enqueue(self, job: TrainingJob) -> None:
        job.state = "queued"
        heapq.heappush(self._pending, (self.queue_policy.key(job.spec), next(self._seq), job))
        self.sim.note_state()
        self._request_pass()

    def _request_pass(self) -> None:
        if not self._pass_pending:
            self._pass_pending = True
            self.sim.env.timeout(0).callbacks.append(self._pass)

    def _pass(self, _event: object = None) -> None:
        self._pass_pending = False
        cluster = self.sim.cluster
        policy_place = self.placement_policy.place

        def place(request):
            # no placement can give more than is free: skip the policy call
            if request.gpus > cluster.free_gpus + 1e-9:
                return None
            return policy_place(request, cluster)

        if self.queue_policy.blocking:
            while self._pending:
                job = self._pending[0][2]
                gpus = place(job.spec.request)
                if gpus is None:
                    break
                heapq.heappop(self._pending)
                self._start(job, gpus)
        else:
            waiting = []
            while self._pending:
                entry = heapq.heappop(self._pending)
                gpus = place(entry[2].spec.request)
                if gpus is None:
                    waiting.append(entry)
                else:
                    self._start(entry[2], gpus)
            for entry in waiting:
                heapq.heappush(self._pending, entry)
        self.sim.note_state()

    def _start(self, job: TrainingJob, gpus: tuple[int, ...]) -> None:
        sim = self.sim
        job.allocation = sim.cluster.allocate(job.spec.request, gpus)
        job.timing = self._timing(job)
        job.state = "running"
        if job.first_start is None:
            job.first_start = sim.env.now
        self.running[job.spec.id] = job
        self.computing += job.allocation.gpu_equivalents * job.timing.compute_fraction
        job.process = sim.env.process(run_job(sim.env, job, self._ended))

    def _timing(self, job: TrainingJob) -> Timing:
        assert job.allocation is not None
        if job.fixed_iteration_s is not None:
            return Timing(job.fixed_iteration_s, 1.0, 0.0)
        perf = self.sim.perf
        it = perf.iteration(job.model, job.allocation.gpus, job.allocation.share)
        every = job.checkpoint_every or job.iterations
        ckpt = perf.checkpoint(job.model, job.allocation.hosts) if job.checkpoint_every else 0.0
        fraction = every * it.compute_s / (every * it.total_s + ckpt)
        return Timing(it.total_s, fraction, ckpt)

    def _ended(self, job: TrainingJob, finished: bool) -> None:
        sim = self.sim
        assert job.allocation is not None and job.timing is not None
        sim.charge(job)
        self.computing -= job.allocation.gpu_equivalents * job.timing.compute_fraction
        sim.cluster.release(job.allocation)
        del self.running[job.spec.id]
        job.process = None
        if finished:
            job.state, job.end = "completed", sim.env.now
            sim.record_job(job)
            sim.note_state()
            self._request_pass()
        else:
            job.preemptions += 1
            self._enqueue(job)

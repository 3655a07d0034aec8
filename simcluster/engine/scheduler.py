"""The scheduler loop: event-driven, our own pending heap, gang allocation, preemption.

It wakes only when something changes (a submit, an end, a stop, a policy timer): each change asks
for one scheduling pass at the current time, and all changes at one timestamp share that pass
(DESIGN.md section 3: react to events, never tick). Policies decide, the scheduler acts:

- the admission policy accepts or rejects a job at submit;
- the queue policy orders the pending jobs (re-keyed at every pass when its keys are dynamic),
  names running jobs to preempt, may hold a reservation for a blocked head job and admit backfill
  jobs around it (EASY), and may ask for a pass at a future time (a timer, e.g. a LAS threshold
  crossing) — one scheduled event, never a polling loop;
- the placement policy picks GPUs.

A preempted job checkpoints (unless ``preemption.checkpoint`` is off: then it loses the work
since its last periodic checkpoint), releases its GPUs, re-queues, and pays a restart cost
(``preemption.restart`` plus one checkpoint read) when it resumes. Redone iterations, preemption
checkpoints and restarts are counted as lost GPU time.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import simpy

from simcluster.engine.execution import run_job
from simcluster.engine.ledger import Ledger, ledger
from simcluster.engine.training import Timing, TrainingJob
from simcluster.engine.view import EngineView, JobHandle, unusable_free

if TYPE_CHECKING:
    from simcluster.engine.simulation import Simulation

__all__ = ["Scheduler"]

_EPS = 1e-9


class Scheduler:
    """Queues jobs, places them, starts and stops their processes.

    Args:
        sim: the owning simulation (environment, cluster, perf model, recorder).
        queue_policy: orders and preempts (see :mod:`simcluster.policies.queue`).
        placement_policy: picks GPUs (``place(request, view)``).
        admission_policy: accepts or rejects at submit (``admit(job, view)``); None accepts all.
        checkpoint_on_preempt: a preempted job writes a checkpoint before it releases its GPUs.
        restart_s: fixed cost (s) of resuming a preempted job, before its checkpoint is read.
        speeds: relative speed per (model, GPU type) for the view (mixed clusters).
    """

    def __init__(self, sim: Simulation, queue_policy: Any, placement_policy: Any,
                 admission_policy: Any = None, checkpoint_on_preempt: bool = True,
                 restart_s: float = 0.0,
                 speeds: Callable[[str, str], float] | None = None) -> None:
        self.sim = sim
        self.queue_policy = queue_policy
        # optional notifications (QueuePolicy.on_start/on_stop); a duck-typed policy may lack them
        self._on_start = getattr(queue_policy, "on_start", None) or (lambda _h: None)
        self._on_stop = getattr(queue_policy, "on_stop", None) or (lambda _h: None)
        self.placement_policy = placement_policy
        self.admission_policy = admission_policy
        self.checkpoint_on_preempt = checkpoint_on_preempt
        self.restart_s = restart_s
        self._pending: list[tuple[Any, int, JobHandle]] = []
        self._seq = itertools.count()
        self._pass_pending = False
        self.running: dict[int, TrainingJob] = {}
        self.handles: dict[int, JobHandle] = {}  # live jobs (queued or running)
        self.computing = 0.0  # GPU-equivalents computing, time-averaged per job
        self.busy_w = 0.0  # power above idle of the computing GPUs, W (per GPU type)
        self.fragmented = 0.0  # free GPUs no queued job can use (after the last pass)
        self.reservations: dict[int, float] = {}  # EASY: first reserved start of each head job
        self._timer_at: float | None = None
        self.view = EngineView(sim.cluster, self, sim.perf, speeds)
        self.ledgers: dict[int, Ledger] = {}  # issue 8: where each job's held time went

    @property
    def queued(self) -> int:
        """Number of pending jobs."""
        return len(self._pending)

    def pending_jobs(self) -> list[TrainingJob]:
        """Pending jobs in queue order."""
        return [h.job for h in self.pending_handles()]

    def pending_handles(self) -> list[JobHandle]:
        """Pending jobs (as policies see them) in queue order."""
        return [entry[2] for entry in sorted(self._pending, key=lambda e: (e[0], e[1]))]

    def running_handles(self) -> list[JobHandle]:
        """Running jobs that are not being stopped, in start order."""
        return [h for j in self.running if not (h := self.handles[j]).stopping]

    def job_columns(self, job: TrainingJob) -> dict[str, float]:
        """The scheduler's columns of a job's row: ``ideal_s`` (uncontended run time on the
        reference placement) and ``lost_gpu_hours`` (redone work, preemption checkpoints and
        restarts)."""
        handle = self.handles.get(job.spec.id)
        led = self.ledgers.pop(job.spec.id, None) or Ledger()
        if job.state == "running":  # at the horizon
            led.close(self.sim.env.now)
        since = job.first_start
        wall = (job.end if job.end is not None else self.sim.env.now) - since \
            if since is not None else 0.0
        books = {  # issue 8: failures, checkpoints, restarts (wall seconds while holding GPUs)
            "failures": led.failures, "useful_s": led.useful_s, "lost_s": led.lost_s,
            "checkpoint_s": led.checkpoint_s, "restart_s": led.restart_s,
            "stall_s": led.stall_s, "held_s": led.held_s,
            "ettr": led.useful_s / wall if wall > 0 else float("nan"),
            "recover_s": led.recover_s / led.recoveries if led.recoveries else float("nan"),
        }
        if handle is None:
            return {"ideal_s": float("nan"), "lost_gpu_hours": 0.0, **books}
        return {"ideal_s": handle.ideal_s, "lost_gpu_hours": handle.lost_gpu_s / 3600.0,
                **books}

    # events ------------------------------------------------------------------------------
    def submit(self, job: TrainingJob) -> None:
        """A job arrives: reject it if it can never fit or admission refuses it, else queue."""
        reason = self.sim.cluster.never_fits(job.spec.request)
        handle = None
        if reason is None:
            handle = JobHandle(job, self.sim.cluster._clock, self._reference_iteration(job))
            if self.admission_policy is not None:
                reason = self.admission_policy.admit(handle, self.view)
        events = self.sim.events
        if reason is not None:
            job.state, job.reason = "rejected", reason
            if events is not None:
                events.add(self.sim.env.now, "reject", job.spec.id, detail=reason)
            self.sim.record_job(job)
            return
        assert handle is not None
        self.handles[job.spec.id] = handle
        if events is not None:
            r = job.spec.request
            events.add(self.sim.env.now, "submit", job.spec.id,
                       detail=f"{r.gpus:g} GPU(s){f' of {r.gpu_type}' if r.gpu_type else ''}, "
                              f"tenant {job.spec.tenant}, model {job.spec.model}")
        self._enqueue(handle)

    def stop(self, job: TrainingJob, cause: str = "stop", why: str | None = None) -> None:
        """Stop a running job (preemption, failure) and re-queue it.

        With ``cause="preempt"`` (and checkpointing on) it first checkpoints its progress; any
        other cause loses the work since its last checkpoint. A job already stopping is left
        alone. ``why`` says who asked, in the event log (default: the queue policy for a
        preemption, else the cause).
        """
        handle = self.handles.get(job.spec.id)
        if handle is None or handle.stopping:
            return
        if job.state == "running" and job.process is not None and job.process.is_alive:
            handle.stopping, handle.stop_at = True, self.sim.env.now
            self._on_stop(handle)
            if self.sim.events is not None:  # ``why``: who asked, for the event log
                if why is None:
                    why = (f"by queue policy {self.sim.scenario.policy.queue}"
                           if cause == "preempt" else str(cause))
                self.sim.events.add(self.sim.env.now, "preempt" if cause == "preempt" else "stop",
                                    job.spec.id, detail=why)
            job.process.interrupt(cause)

    # mechanism ---------------------------------------------------------------------------
    def _reference_iteration(self, job: TrainingJob) -> float:
        if job.fixed_iteration_s is not None:
            return job.fixed_iteration_s
        spec = job.spec
        share = spec.request.gpus if spec.request.fractional else 1.0
        perf = self.sim.perf
        return perf.iteration(job.model, perf.reference_gpus(spec), share).total_s

    def _enqueue(self, handle: JobHandle) -> None:
        handle.job.state = "queued"
        handle.queued_since = self.sim.env.now
        handle.seq = next(self._seq)
        key = self.queue_policy.key(handle, self.view)
        heapq.heappush(self._pending, (key, handle.seq, handle))
        self.sim.note_state()
        self._request_pass()

    def _request_pass(self) -> None:
        if not self._pass_pending:
            self._pass_pending = True
            self.sim.env.timeout(0).callbacks.append(self._pass)

    def _rekey(self) -> None:
        handles = [entry[2] for entry in self._pending]
        keys_of = getattr(self.queue_policy, "keys", None)
        if keys_of is not None:
            keys = keys_of(handles, self.view)
        else:
            keys = [self.queue_policy.key(h, self.view) for h in handles]
        self._pending = [(k, h.seq, h) for k, h in zip(keys, handles, strict=True)]
        heapq.heapify(self._pending)

    def _pass(self, _event: object = None) -> None:
        self._pass_pending = False
        services = getattr(self.sim, "services", None)
        if services is not None:  # inference replicas waiting for GPUs go first (issue 7)
            services.place_pending()
        policy, view, cluster = self.queue_policy, self.view, self.sim.cluster
        policy_place = self.placement_policy.place
        job_aware = getattr(self.placement_policy, "job_aware", False)  # e.g. hetero: by model
        if getattr(policy, "dynamic", False) and self._pending:
            self._rekey()
        victims: list[int] = []
        if self._pending and self.running and hasattr(policy, "preempt"):
            victims = [v for v in policy.preempt(view) if v in self.running]
            for v in victims:
                self.stop(self.running[v], "preempt" if self.checkpoint_on_preempt else "stop")
        backfill = getattr(policy, "backfill", False) and not victims
        strict = policy.blocking or bool(victims)  # after a preemption, hold the freed GPUs
        reservation = None
        waiting = []
        # within one pass the cluster only fills up, so a request shape that did not fit once
        # will not fit later in the pass, and once less is free than the smallest pending
        # request nothing more can start (keeps a long non-blocking queue from costing a full
        # scan with a placement call per job on every event)
        failed: set = set()
        smallest = min((e[2].request.gpus for e in self._pending), default=0.0)
        while self._pending:
            if not strict and cluster.free_gpus + _EPS < smallest:
                break
            entry = heapq.heappop(self._pending)
            handle = entry[2]
            request = handle.request
            # no placement can give more than is free: skip the policy call
            if request.gpus > cluster.free_gpus + _EPS or (not job_aware and request in failed):
                gpus = None
            else:
                gpus = policy_place(request, view, handle) if job_aware else policy_place(
                    request, view)
                if gpus is None:
                    failed.add(request)
            if gpus is not None and reservation is not None:
                after = policy.admit(handle, gpus, reservation, view)
                if after is None:  # it would delay the reserved head job
                    gpus = None
                else:
                    reservation = after
            if gpus is None:
                waiting.append(entry)
                if self.sim.events is not None:
                    self._log_wait(handle, request, cluster.free_gpus, reservation)
                if strict and not backfill:
                    break
                if strict and reservation is None:
                    reservation = policy.reserve(handle, view)
                    self.reservations.setdefault(handle.id, reservation.shadow_s)
                continue
            self._start(handle, gpus)
            if getattr(policy, "rekey_on_start", False) and self._pending:
                self._rekey()
        if self.sim.events is not None and self._pending:  # never looked at in this pass
            head = waiting[0][2].id if waiting else None
            for entry in self._pending:
                self.sim.events.wait(
                    self.sim.env.now, entry[2].id,
                    f"queued behind job {head} ({self.sim.scenario.policy.queue}, in order)"
                    if head is not None else
                    f"less free than the smallest request ({cluster.free_gpus:g} GPUs free)")
        for entry in waiting:
            heapq.heappush(self._pending, entry)
        self.update_fragmentation()
        self.sim.note_state()
        self._arm_timer()

    def _log_wait(self, handle: JobHandle, request, free: float, reservation) -> None:
        """The reason a job stays queued after this pass, in words (event log only)."""
        if request.gpus > free + _EPS:
            why = f"needs {request.gpus:g} GPU(s), {free:g} free"
        elif reservation is not None and getattr(reservation, "job_id", None) != handle.id:
            why = (f"would delay job {getattr(reservation, 'job_id', '?')}, which holds a "
                   f"reservation "
                   f"({self.sim.scenario.policy.queue})")
        else:
            why = (f"{self.sim.scenario.policy.placement} placement found no fit for "
                   f"{request.gpus:g} GPU(s){f' of {request.gpu_type}' if request.gpu_type else ''}"
                   f" ({free:g} free but fragmented or of another type)")
        self.sim.events.wait(self.sim.env.now, handle.id, why)

    def _arm_timer(self) -> None:
        next_event = getattr(self.queue_policy, "next_event", None)
        if next_event is None or not self._pending:
            return
        when = next_event(self.view)
        now = self.sim.env.now
        if when is None or when <= now + _EPS:
            return
        if self._timer_at is not None and now < self._timer_at <= when + _EPS:
            return  # an earlier (or equal) timer is already set
        self._timer_at = when
        self.sim.env.timeout(when - now).callbacks.append(lambda _e, t=when: self._fire(t))

    def _fire(self, when: float) -> None:
        if self._timer_at == when:
            self._timer_at = None
            self._request_pass()

    def update_fragmentation(self) -> float:
        """Free GPUs that no queued job can use now (recomputed after every pass; the state
        records show the value of the last pass)."""
        if not self._pending or self.sim.cluster.free_gpus < _EPS:
            self.fragmented = 0.0
        else:
            requests = list({e[2].request for e in self._pending})
            self.fragmented = unusable_free(self.view, requests)
        return self.fragmented

    def _start(self, handle: JobHandle, gpus: tuple[int, ...]) -> None:
        sim, job = self.sim, handle.job
        job.allocation = sim.cluster.allocate(job.spec.request, gpus)
        job.timing = self._timing(job)
        failures = getattr(sim, "failures", None)
        if failures is not None:  # issue 8: checkpoint policy for this placement
            job.timing = failures.on_start(job, self._timing)
        job.state = "running"
        if job.first_start is None:  # (clock arithmetic can land an ulp before the submit)
            job.first_start = max(sim.env.now, job.spec.submit_s)
        self.running[job.spec.id] = job
        self.computing += job.allocation.gpu_equivalents * job.timing.compute_fraction
        self.busy_w += sim.busy_power(job)
        job.started(sim.env.now)
        resumed = job.preemptions > 0 and job.kept > 0
        read = job.timing.checkpoint_s if failures is None else failures.read_s(job)
        restart = self.restart_s + (read if resumed else 0.0)
        if job.preemptions == 0:
            restart = 0.0
        handle.run_start, handle.kept_at_start, handle.restart_s = sim.env.now, job.kept, restart
        handle.queued_since, handle.stopping = None, False
        handle.lost_gpu_s += restart * job.allocation.gpu_equivalents
        self._on_start(handle)
        if sim.events is not None:
            hosts = ", ".join(self.sim.topology.hosts[h] for h in job.allocation.hosts)
            sim.events.add(sim.env.now, "start", job.spec.id, tuple(job.allocation.gpus),
                           f"on {hosts} by {sim.scenario.policy.placement} placement"
                           + (f", resuming after {restart:g} s of restart" if restart else ""))
        job.process = sim.env.process(self._run(job, restart))

    def _run(self, job: TrainingJob, restart_s: float) -> Generator[simpy.Event, Any, None]:
        """Resume cost (process start, checkpoint read), then the job's own process."""
        led, env = ledger(self.sim, job), self.sim.env
        led.phase = None
        if restart_s > 0:
            led.phase, led.began = "restart", env.now
            try:
                yield env.timeout(restart_s)
            except simpy.Interrupt:
                led.restart_s += env.now - led.began
                led.phase = led.began = None
                self._ended(job, False)
                return
            led.restart_s += env.now - led.began
            led.phase = led.began = None
        if led.failed_at is not None:  # back at work after a failure
            led.recover_s += env.now - led.failed_at
            led.recoveries += 1
            led.failed_at = None
        yield from run_job(self.sim, job, self._ended)

    def _timing(self, job: TrainingJob) -> Timing:
        assert job.allocation is not None
        if job.fixed_iteration_s is not None:
            return Timing(job.fixed_iteration_s, 1.0, 0.0, job.fixed_iteration_s)
        perf = self.sim.perf
        it = perf.iteration(job.model, job.allocation.gpus, job.allocation.share)
        every = job.checkpoint_every or job.iterations
        ckpt = perf.checkpoint(job.model, job.allocation.hosts) if job.checkpoint_every else 0.0
        fraction = every * it.compute_s / (every * it.total_s + ckpt)
        return Timing(it.total_s, fraction, ckpt, it.compute_s, it.algorithm)

    def _ended(self, job: TrainingJob, finished: bool) -> None:
        sim = self.sim
        assert job.allocation is not None and job.timing is not None
        handle = self.handles[job.spec.id]
        sim.charge(job)
        gpus = job.allocation.gpu_equivalents
        self.computing -= gpus * job.timing.compute_fraction
        self.busy_w -= sim.busy_power(job)
        sim.cluster.release(job.allocation)
        del self.running[job.spec.id]
        self._on_stop(handle)
        job.process = None
        now = sim.env.now
        handle.executed_before += now - (handle.run_start if handle.run_start is not None
                                         else now)
        handle.run_start = None
        if finished:
            job.state, job.end = "completed", now
            if sim.events is not None:
                sim.events.add(now, "end", job.spec.id, detail="completed")
            sim.record_job(job)
            del self.handles[job.spec.id]
            sim.note_state()
            self._request_pass()
        else:
            redone = job.lost - handle.lost_seen
            handle.lost_seen = job.lost
            handle.lost_gpu_s += redone * job.timing.iteration_s * gpus
            if handle.stopping:  # a preemption checkpoint held the GPUs since the stop
                handle.lost_gpu_s += (now - handle.stop_at) * gpus
            handle.stopping = False
            job.preemptions += 1
            if sim.events is not None:
                sim.events.add(now, "requeue", job.spec.id,
                               detail=f"{redone} iteration(s) lost since the last checkpoint")
            self._enqueue(handle)

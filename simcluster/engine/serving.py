"""One inference replica: continuous (iteration-level) batching as one SimPy process.

Each iteration runs one batch: the decode token of every running sequence plus, within a token
budget, prefill tokens of new or partly prefilled sequences (Orca, OSDI'22; vLLM; chunked
prefill as Sarathi-Serve, OSDI'24). Its time is the replica's roofline over the whole batch,
``perf.step_time(prefill_tokens, decode_seqs, kv_tokens)``. The KV cache is paged (blocks of
``block_tokens``); its capacity comes from the HBM left after the weights
(``perf.kv_capacity_tokens``). When a decode step needs a block and none is free, the most
recently admitted sequence is preempted by recomputation (vLLM's default): it frees its blocks,
goes back to the head of the queue and later prefills its prompt and the tokens it had generated.

Without chunked prefill, an iteration either prefills whole prompts (new sequences only; decodes
pause, as vLLM's default scheduler before V1) or decodes. Static batching (non-LLM models): up to
``max_batch`` waiting requests run as one batch and finish together.

Fast-forward: while the batch does not change (no prefill to do, no arrival), decode iterations
are advanced in one step to the next completion (or the iteration before the cache overflows);
an arrival wakes the replica, which stops at the end of the iteration in progress. So the
latencies are those of token-by-token stepping (``fast_forward=False``, used by the tests to show
it), with one event per batch change instead of one per token.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import simpy

__all__ = ["EngineParams", "Live", "Replica", "StepPerf"]

# Sampled points of the step time over a long decode jump whose step time is not affine (the
# roofline's kink inside it): linear in between.
_JUMP_SAMPLES = 17


class StepPerf(Protocol):
    """What the replica needs of the perf model (``simcluster.perf.inference.ReplicaPerf``)."""

    kv_capacity_tokens: float

    def step_time(self, prefill_tokens: int, decode_seqs: int, kv_tokens: int,
                  prefill_seqs: int = 1, cached_pairs: float = 0.0) -> float:
        ...


@dataclass(frozen=True)
class EngineParams:
    """Scheduler knobs of one replica (defaults: vLLM engine arguments documentation).

    Attributes:
        max_batch: most sequences running at once (vLLM ``max_num_seqs`` default 256).
        token_budget: most tokens (prefill + decode) per iteration (vLLM
            ``max_num_batched_tokens``: 2048 with chunked prefill in V1 online serving).
        chunked_prefill: split prompts across iterations and mix them with decodes.
        block_tokens: KV-cache block size in tokens (vLLM ``block_size`` default 16).
        static: static batching (non-LLM models): a batch runs to its end before the next.
        fast_forward: advance an unchanged decode batch to its next completion in one step.
    """

    max_batch: int = 256
    token_budget: int = 2048
    chunked_prefill: bool = True
    block_tokens: int = 16
    static: bool = False
    fast_forward: bool = True


class Live:
    """A request inside the service: its lengths and progress (tokens) and its timestamps."""

    __slots__ = ("id", "arrival_s", "prompt", "output", "service", "replica", "need",
                 "prefilled", "ctx", "generated", "admitted_s", "first_token_s", "done_s",
                 "preemptions")

    def __init__(self, rid: int, arrival_s: float, prompt: int, output: int,
                 service: str = "") -> None:
        self.id, self.arrival_s, self.service = rid, float(arrival_s), service
        self.prompt, self.output = max(1, int(prompt)), max(1, int(output))
        self.replica = -1
        self.need = self.prompt  # tokens to prefill (prompt + generated after a preemption)
        self.prefilled = 0
        self.ctx = 0  # tokens held in the KV cache
        self.generated = 0
        self.admitted_s: float | None = None
        self.first_token_s: float | None = None
        self.done_s: float | None = None
        self.preemptions = 0


Done = Callable[[Live], None]


class Replica:
    """One serving replica's scheduler loop (a SimPy process started at construction).

    Args:
        env: the environment.
        rid: replica id.
        perf: step times and KV capacity (:class:`StepPerf`).
        params: batching knobs.
        on_done: called with each finished request (its ``done_s`` set).
        on_idle: called when a draining replica has no work left (then the process ends).
    """

    def __init__(self, env: simpy.Environment, rid: int, perf: StepPerf, params: EngineParams,
                 on_done: Done, on_idle: Callable[[Replica], None] | None = None) -> None:
        self.env, self.id, self.perf, self.p = env, rid, perf, params
        self.on_done, self.on_idle = on_done, on_idle
        self.block = params.block_tokens
        self.capacity_blocks = int(perf.kv_capacity_tokens // self.block)
        self.waiting: deque[Live] = deque()
        self.running: list[Live] = []  # in admission order
        self.queued_tokens = 0.0
        self.draining = False
        self.iterations = 0  # batch steps taken (a jump counts as its iterations)
        self.events = 0  # timeouts yielded (a jump counts once)
        self.busy_s = 0.0  # time spent running iterations, s
        self._wake: simpy.Event | None = None
        self.process = env.process(self._loop())

    # ReplicaView --------------------------------------------------------------------------
    @property
    def outstanding(self) -> int:
        return len(self.waiting) + len(self.running)

    @property
    def kv_used_tokens(self) -> float:
        return float(self._blocks_held() * self.block)

    @property
    def kv_capacity_tokens(self) -> float:
        return float(self.capacity_blocks * self.block)

    # mechanism ---------------------------------------------------------------------------
    def add(self, req: Live) -> None:
        """A routed request joins this replica's queue (it wakes an idle or jumping loop)."""
        req.replica = self.id
        self.waiting.append(req)
        self.queued_tokens += req.need
        # an arrival changes the next batch only if it can be admitted then: it is at the
        # head of the queue (FCFS) and a sequence slot is free (or the replica is idle)
        if len(self.waiting) == 1 and (len(self.running) < self.p.max_batch or self.p.static):
            self._poke()

    def fail(self) -> list[Live]:
        """The replica's GPUs failed: stop at once and hand back every request it held, its
        KV cache lost (each re-prefills its prompt and the tokens it already generated)."""
        if self.process.is_alive:
            self.process.interrupt("failure")
        held = [*self.running, *self.waiting]
        self.running, self.waiting, self.queued_tokens = [], deque(), 0.0
        for r in held:
            r.preemptions += 1
            r.need, r.prefilled, r.ctx = r.prompt + r.generated, 0, 0
        return held

    def drain(self) -> None:
        """Finish the work held, then end (``on_idle``)."""
        self.draining = True
        self._poke()

    def _poke(self) -> None:
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _blocks(self, tokens: int) -> int:
        return -(-tokens // self.block)

    def _blocks_held(self) -> int:
        return sum(self._blocks(r.ctx) for r in self.running)

    def _loop(self) -> Generator[simpy.Event, Any, None]:
        try:
            yield from self._serve()
        except simpy.Interrupt:  # its GPUs failed (:meth:`fail`)
            return

    def _serve(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        while True:
            if not self.waiting and not self.running:
                if self.draining:
                    if self.on_idle is not None:
                        self.on_idle(self)
                    return
                self._wake = env.event()
                yield self._wake
                self._wake = None
                continue
            if self.p.static:
                yield from self._static_batch()
                continue
            prefill, decode = self._plan()
            if not prefill and not decode:
                if not self.running:
                    raise RuntimeError(f"replica {self.id}: request {self.waiting[0].id} "
                                       "cannot fit the KV cache")
                # partial prefills hold the whole cache: recompute the newest one later
                self._preempt(self.running[-1])
                continue
            if not prefill and self.p.fast_forward:
                yield from self._jump(decode)
                continue
            yield from self._iteration(prefill, decode)

    # continuous batching -------------------------------------------------------------------
    def _plan(self) -> tuple[list[tuple[Live, int]], list[Live]]:
        """This iteration's prefill chunks and decoding sequences (preempting on overflow)."""
        p, cap = self.p, self.capacity_blocks
        while True:
            decode = [r for r in self.running if r.prefilled >= r.need]
            held = self._blocks_held()
            grow = sum(self._blocks(r.ctx + 1) - self._blocks(r.ctx) for r in decode)
            if held + grow <= cap or not self.running:
                break
            self._preempt(self.running[-1])
        free = cap - held - grow
        budget = p.token_budget
        prefill: list[tuple[Live, int]] = []
        if p.chunked_prefill:
            budget -= len(decode)
            for r in self.running:  # partly prefilled sequences first
                if r.prefilled < r.need and budget > 0:
                    chunk = min(r.need - r.prefilled, budget)
                    extra = self._blocks(r.ctx + chunk) - self._blocks(r.ctx)
                    if extra > free:
                        chunk = max(0, (self._blocks(r.ctx) + free) * self.block - r.ctx)
                        extra = free
                    if chunk > 0:
                        prefill.append((r, chunk))
                        budget -= chunk
                        free -= extra
            while self.waiting and budget > 0 and len(self.running) < p.max_batch:
                r = self.waiting[0]
                chunk = min(r.need, budget, free * self.block)
                if chunk <= 0:
                    break  # FCFS: the head waits for blocks
                self._admit()
                prefill.append((r, chunk))
                budget -= chunk
                free -= self._blocks(chunk)
            return prefill, decode
        # whole-prompt prefill iterations, decodes paused (prefill first)
        while self.waiting and len(self.running) < p.max_batch:
            r = self.waiting[0]
            if prefill and r.need > budget:
                break
            if self._blocks(r.need + 1) > free:
                break
            self._admit()
            prefill.append((r, r.need))
            budget -= r.need
            free -= self._blocks(r.need)
        return prefill, ([] if prefill else decode)

    def _admit(self) -> Live:
        r = self.waiting.popleft()
        self.queued_tokens -= r.need
        if r.admitted_s is None:
            r.admitted_s = self.env.now
        self.running.append(r)
        return r

    def _preempt(self, r: Live) -> None:
        """Recomputation preemption: drop its cache; it re-prefills prompt + generated."""
        self.running.remove(r)
        r.preemptions += 1
        r.need, r.prefilled, r.ctx = r.prompt + r.generated, 0, 0
        self.waiting.appendleft(r)
        self.queued_tokens += r.need

    def _iteration(self, prefill: list[tuple[Live, int]], decode: list[Live]
                   ) -> Generator[simpy.Event, Any, None]:
        tokens = sum(c for _, c in prefill)
        kv = sum(r.ctx for r in decode) + sum(r.ctx + c for r, c in prefill)
        # a chunk of c tokens after ctx cached ones attends c·ctx cached keys; kv counts ctx once
        cached = float(sum((c - 1) * r.ctx for r, c in prefill))
        step = self.perf.step_time(tokens, len(decode), kv, prefill_seqs=max(1, len(prefill)),
                                   cached_pairs=cached)
        yield self.env.timeout(step)
        self.busy_s += step
        self.events += 1
        self.iterations += 1
        now = self.env.now
        for r, c in prefill:
            r.prefilled += c
            r.ctx += c
            if r.prefilled >= r.need:
                r.generated += 1  # the prefill's last iteration samples a token
                if r.first_token_s is None:
                    r.first_token_s = now
        for r in decode:
            r.ctx += 1
            r.generated += 1
        self._complete(now)

    def _complete(self, now: float) -> None:
        finished = [r for r in self.running if r.generated >= r.output]
        if finished:
            self.running = [r for r in self.running if r.generated < r.output]
            for r in finished:
                r.done_s = now
                self.on_done(r)

    def _jump(self, decode: list[Live]) -> Generator[simpy.Event, Any, None]:
        """Advance an unchanged decode batch to its next completion in one step."""
        env, n_seq = self.env, len(decode)
        left = np.array([r.output - r.generated for r in decode])
        ctx = np.array([r.ctx for r in decode])
        n = int(left.min())
        # iterations before the cache would overflow (each step adds one token per sequence)
        held_other = self._blocks_held() - int(np.sum(-(-ctx // self.block)))
        room = self.capacity_blocks - held_other

        def blocks_after(k: int) -> int:
            return int(np.sum(-(-(ctx + k) // self.block)))

        if blocks_after(n) > room:
            lo, hi = 1, n  # blocks_after(1) fits (checked by _plan); find the largest k that fits
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if blocks_after(mid) <= room else (lo, mid - 1)
            n = lo
        kv0 = int(ctx.sum())
        ends = self._step_ends(n, n_seq, kv0)
        start = env.now
        self._wake = env.event()
        timer = env.timeout(float(ends[-1]))
        yield timer | self._wake
        self.events += 1
        self._wake = None
        done = n
        if not timer.processed:
            elapsed = env.now - start
            idx = int(np.searchsorted(ends, elapsed * (1 - 1e-12), side="left"))
            idx = min(idx, n - 1)
            done = idx + 1
            rest = float(ends[idx]) - elapsed
            if rest > 0:
                yield env.timeout(rest)
                self.events += 1
        self.iterations += done
        self.busy_s += env.now - start
        for r in decode:
            r.ctx += done
            r.generated += done
        self._complete(env.now)

    def _step_ends(self, n: int, n_seq: int, kv0: int) -> np.ndarray:
        """Cumulative end times (s, from now) of ``n`` decode iterations of ``n_seq``
        sequences whose KV tokens start at ``kv0`` and grow by ``n_seq`` per iteration.

        The step time is convex in the KV tokens (a max of the compute and memory roofs, each
        affine in them, plus a constant), so if an interior sample lies on the chord of the
        end points it is affine over the whole jump and three samples give every iteration
        exactly; otherwise each iteration is evaluated (or, past :data:`_JUMP_SAMPLES` x 4
        iterations, interpolated between samples).
        """
        step = self.perf.step_time
        ks = np.arange(n)
        if n > 2:
            last, mid = n - 1, (n - 1) // 2
            a, m, b = (step(0, n_seq, kv0 + k * n_seq) for k in (0, mid, last))
            chord = a + (b - a) * mid / last
            if abs(m - chord) <= 1e-12 * max(abs(m), 1e-300):
                return np.cumsum(a + (b - a) * ks / last)
        if n <= 4 * _JUMP_SAMPLES:
            times = np.array([step(0, n_seq, kv0 + k * n_seq) for k in range(n)], dtype=float)
        else:
            at = np.unique(np.linspace(0, n - 1, _JUMP_SAMPLES).round().astype(int))
            samples = np.array([step(0, n_seq, kv0 + int(k) * n_seq) for k in at])
            times = np.interp(ks, at, samples)
        return np.cumsum(times)

    # static batching -------------------------------------------------------------------------
    def _static_batch(self) -> Generator[simpy.Event, Any, None]:
        batch = [self._admit() for _ in range(min(self.p.max_batch, len(self.waiting)))]
        # a non-LLM request is one sample through the model (a "token" of the perf model)
        step = self.perf.step_time(len(batch), 0, 0, prefill_seqs=len(batch))
        yield self.env.timeout(step)
        self.busy_s += step
        self.events += 1
        self.iterations += 1
        now = self.env.now
        for r in batch:
            r.prefilled = r.need
            r.generated = r.output
            r.first_token_s = now
        self._complete(now)


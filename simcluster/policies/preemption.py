"""Preemption decisions shared by the preemptive queue policies (pure functions over a view).

The rule is Tiresias' (Gu et al., NSDI'19): rank every job, running or pending, by the policy's
key; walk them best first, giving each the GPUs it needs while the cluster has them (the *ideal
set*). A running job outside the ideal set is stopped only when a pending job inside it needs its
GPUs, may preempt it, and fits once the victims are gone. GPUs are counted (whole-GPU
equivalents per GPU class: catalog type and pool label, :class:`TypeMasks`), not placed:
placement runs afterwards on the freed GPUs. A request naming several types or labels ("A|B")
draws from the classes it admits, the fullest first.

>>> from simcluster.policies.view import StaticJob, StaticView
>>> running = [StaticJob(1, size=4, remaining=500.0, gpus=(0, 1, 2, 3), run_start_s=0.0)]
>>> pending = [StaticJob(2, size=4, remaining=100.0)]
>>> view = StaticView([4], gpu_free=[0, 0, 0, 0], running=running, pending=pending, now=10.0)
>>> ideal_set_victims(view, key=lambda j: j.remaining_s)
[1]
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from simcluster.policies.view import ClusterView, JobView, TypeMasks, type_masks

__all__ = ["ENTRY_KEY", "Entry", "entry", "ideal_set_victims", "lease_expiry", "preemptible"]

_EPS = 1e-9


# a job as the walk sees it: (key, GPUs, GPU type, running, id, job), ranked by its key alone
Entry = tuple[Any, float, str | None, bool, int, JobView]
ENTRY_KEY = operator.itemgetter(0)  # what the walk ranks entries by: their key alone


def entry(key: Callable[[JobView], Any], job: JobView) -> Entry:
    """``job``'s :data:`Entry` under ``key``."""
    request = job.request
    return (key(job), request.gpus, request.gpu_type, job.run_start_s is not None, job.id, job)


def preemptible(job: JobView, now: float, min_run_s: float) -> bool:
    """True once a running job has run ``min_run_s`` since its current start."""
    return job.run_start_s is not None and now - job.run_start_s >= min_run_s - _EPS


def lease_expiry(view: ClusterView, min_run_s: float) -> float | None:
    """The next time a running job becomes preemptible, if a job is waiting (else None)."""
    if min_run_s <= 0 or not view.jobs_pending:
        return None
    now = view.now
    times = [j.run_start_s + min_run_s for j in view.jobs_running
             if j.run_start_s is not None and j.run_start_s + min_run_s > now + _EPS]
    return min(times) if times else None


class _Pool:
    """GPU-equivalents per GPU class (:attr:`TypeMasks.classes` index), drawn by requests that
    name types or labels (the classes their ``gpu_type`` admits) or not (every class)."""

    def __init__(self, counts: dict[int, float], masks: TypeMasks) -> None:
        self.counts, self.masks = counts, masks

    def take(self, need: float, gpu_type: str | None, commit: bool = True) -> bool:
        admits = self.masks.matching(gpu_type)
        classes = [c for c in self.counts if admits[c]]
        if sum(self.counts[c] for c in classes) + _EPS < need:
            return False
        if commit:
            for c in sorted(classes, key=lambda c: -self.counts[c]):
                got = min(need, self.counts[c])
                self.counts[c] -= got
                need -= got
                if need <= _EPS:
                    break
        return True

    def give(self, job: JobView) -> None:
        share = job.request.gpus / max(1, len(job.gpus))
        for g in job.gpus:
            c = int(self.masks.class_of[g])
            self.counts[c] = self.counts.get(c, 0.0) + share


def ideal_set_victims(view: ClusterView, key: Callable[[JobView], Any], min_run_s: float = 0.0,
                      may_preempt: Callable[[JobView, JobView], bool] | None = None,
                      ranked_running: Sequence[Entry] | None = None) -> list[int]:
    """Running jobs to stop so that better-ranked pending jobs can run.

    Args:
        view: the cluster, with its running and pending jobs.
        key: rank of a job (smaller = more deserving), applied to running and pending jobs alike.
        min_run_s: running jobs younger than this are never stopped.
        may_preempt: ``may_preempt(pending, running)``, an extra condition (default: always).
        ranked_running: the running jobs' :data:`Entry` rows sorted by ``key``, kept by a
            policy that tracks them (saves ranking them again on every pass; same result).

    Returns:
        Ids of the running jobs to stop, worst ranked first.
    """
    pending = list(view.jobs_pending)
    if not pending or _all_fit(view, pending):
        return []
    masks = type_masks(view)
    if len(masks.classes) == 1:  # one GPU class: the same walk on plain numbers (common)
        running = list(view.jobs_running) if ranked_running is None or min_run_s > 0 else []
        return _one_type(running, pending, view.now, key, min_run_s, may_preempt, masks,
                         float(len(masks.class_of)), ranked_running)
    return _any_types(view, pending, key, min_run_s, may_preempt, masks)


def _all_fit(view: ClusterView, pending: list[JobView]) -> bool:
    """True when the free GPUs alone cover every pending request together: then each job the
    ideal set chooses fits in what is free and nobody is stopped (exact; skips the O(running)
    walk on most passes, e.g. the one a new arrival triggers on a cluster with room). Free GPUs
    of the cluster are never more than the walk counts free (a job being stopped still holds
    its GPUs), so the test is safe; with GPU-type requests it is only applied when there is
    one GPU class (one catalog type and one label)."""
    requests = [p.request for p in pending]
    if any(r.gpu_type is not None for r in requests) and len(type_masks(view).classes) > 1:
        return False
    return sum(r.gpus for r in requests) <= float(view.gpu_free.sum()) + _EPS


def _any_types(view: ClusterView, pending: list[JobView], key: Callable[[JobView], Any],
               min_run_s: float, may_preempt: Callable[[JobView, JobView], bool] | None,
               masks: TypeMasks) -> list[int]:
    """:func:`ideal_set_victims` with GPU counts per GPU class."""
    now = view.now
    total = dict(enumerate(np.bincount(masks.class_of, minlength=len(masks.classes))
                           .astype(float).tolist()))
    held, fixed = _Pool(dict.fromkeys(total, 0.0), masks), _Pool(dict.fromkeys(total, 0.0), masks)
    candidates: list[JobView] = []
    for r in view.jobs_running:
        held.give(r)
        if preemptible(r, now, min_run_s):
            candidates.append(r)
        else:
            fixed.give(r)
    free = _Pool({c: total[c] - held.counts[c] for c in total}, masks)
    budget = _Pool({c: total[c] - fixed.counts[c] for c in total}, masks)
    keep: set[int] = set()
    chosen: list[JobView] = []
    for job in sorted([*candidates, *pending], key=key):
        if budget.take(job.request.gpus, job.request.gpu_type):
            if job.run_start_s is not None:
                keep.add(job.id)
            else:
                chosen.append(job)
    spare = sorted((r for r in candidates if r.id not in keep), key=key, reverse=True)
    victims: list[int] = []
    for p in chosen:
        need, gpu_type = p.request.gpus, p.request.gpu_type
        if free.take(need, gpu_type):
            continue
        mask = masks(gpu_type)
        usable = [r for r in spare if r.id not in victims
                  and (may_preempt is None or may_preempt(p, r))
                  and (gpu_type is None or all(mask[g] for g in r.gpus))]
        picked: list[JobView] = []
        for r in usable:
            picked.append(r)
            free.give(r)
            if free.take(need, gpu_type, commit=False):
                break
        if not free.take(need, gpu_type):
            break  # even all eligible victims are not enough: stop nobody for it
        victims.extend(r.id for r in picked)
    return victims


def _one_type(running: list[JobView], pending: list[JobView], now: float,
              key: Callable[[JobView], Any], min_run_s: float,
              may_preempt: Callable[[JobView, JobView], bool] | None, masks: TypeMasks,
              total: float, ranked_running: Sequence[Entry] | None = None) -> list[int]:
    """:func:`ideal_set_victims` on a cluster of one GPU class (``masks`` has one), with GPU
    counts as floats and each job's key computed once (same result, a fraction of the cost on
    big queues); a job whose ``gpu_type`` does not admit that class is left out."""
    admits = masks.matching
    held = fixed = 0.0
    if ranked_running is not None and min_run_s <= 0:  # the policy keeps them ranked
        held = sum(e[1] for e in ranked_running)
        ranked = list(ranked_running)
        for e in sorted((entry(key, j) for j in pending), key=ENTRY_KEY):
            bisect.insort(ranked, e, key=ENTRY_KEY)  # after equal keys: as the stable sort below
        return _walk(ranked, total - held, total, admits, may_preempt)
    if min_run_s <= 0:  # every running job may be stopped
        candidates = running
        held = sum(r.request.gpus for r in running)
    else:
        candidates = []
        for r in running:
            g = r.request.gpus
            held += g
            if preemptible(r, now, min_run_s):
                candidates.append(r)
            else:
                fixed += g
    ranked = sorted((entry(key, j) for j in [*candidates, *pending]), key=ENTRY_KEY)  # stable
    return _walk(ranked, total - held, total - fixed, admits, may_preempt)


def _walk(ranked: list[Entry], free: float, budget: float,
          admits: Callable[[str | None], Any],
          may_preempt: Callable[[JobView, JobView], bool] | None) -> list[int]:
    """The ideal set over ``ranked`` (best first), then the victims of its pending jobs."""
    keep: set[int] = set()
    chosen: list[Entry] = []
    for e in ranked:
        need = e[1]
        if (e[2] is not None and not admits(e[2])[0]) or budget + _EPS < need:
            continue
        budget -= need
        if e[3]:
            keep.add(e[4])
        else:
            chosen.append(e)
    spare = [e for e in reversed(ranked) if e[3] and e[4] not in keep]
    victims: list[int] = []
    taken: set[int] = set()
    for pe in chosen:
        need, p = pe[1], pe[5]
        if free + _EPS >= need:
            free -= need
            continue
        picked: list[int] = []
        have = free
        for e in spare:
            if e[4] in taken or (may_preempt is not None and not may_preempt(p, e[5])):
                continue
            picked.append(e[4])
            have += e[1]
            if have + _EPS >= need:
                break
        if have + _EPS < need:
            break  # even all eligible victims are not enough: stop nobody for it
        free = have - need
        victims.extend(picked)
        taken.update(picked)
    return victims

"""GPU sharing placements for fractional (milli-GPU) requests: packing, and FGD.

``gpu_milli`` counts shares in milli-GPUs (the unit of Alibaba's GPU-sharing scheduler and its
openb trace) and packs: a fractional request goes to an already shared GPU first, then to an idle
GPU on the busiest host; whole-GPU requests go to the fullest host that fits (the GPU-packing
baseline of Weng et al., ATC'23).

``fgd`` is Fragmentation Gradient Descent (Weng et al., "Beware of Fragmentation: Scheduling GPU-
Sharing Workloads with Fragmentation Gradient Descent", USENIX ATC'23): for the observed mix of
requests (the running and pending jobs'), a host's *fragmentation* is the expected free GPU share
that a request drawn from the mix cannot use there — all of it if the request cannot fit on the
host at all, else the free slivers of GPUs smaller than the request's share. FGD places on the
host and GPUs that least increase that fragmentation. Requests larger than a host fall back to
``pack``.

>>> from simcluster.policies.view import StaticJob, StaticView
>>> from simcluster.workload.jobs import Request
>>> mix = [StaticJob(i, size=0.5) for i in range(3)]
>>> view = StaticView([2, 2], gpu_free=[0.5, 1.0, 0.7, 1.0], pending=mix)
>>> Fgd().place(Request(0.5), view)   # fill the half-free GPU: no sliver is left
(0,)
>>> GpuMilli().place(Request(0.2), view)  # a shared GPU first, the fullest that fits
(0,)
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from simcluster.policies.placement import (
    PLACEMENT_POLICIES,
    Pack,
    _fractional_candidates,
    _per_gpu_share,
    _take,
    host_capacity,
)
from simcluster.policies.view import ClusterView
from simcluster.workload.jobs import Request

__all__ = ["Fgd", "GpuMilli", "host_fragmentation", "milli"]

_EPS = 1e-9


def milli(share: float | np.ndarray) -> np.ndarray:
    """Shares in whole milli-GPUs (rounded to the nearest; avoids float dust).

    >>> milli(np.array([0.3, 1.0 - 0.7])).tolist()
    [300, 300]
    """
    return np.rint(np.asarray(share, dtype=float) * 1000.0).astype(int)


@PLACEMENT_POLICIES.register("gpu_milli")
class GpuMilli:
    """GPU packing in milli-GPU units: shared GPUs first, then busy hosts, idle hosts last."""

    def __init__(self) -> None:
        self._pack = Pack()

    def place(self, request: Request, view: ClusterView) -> tuple[int, ...] | None:
        if not request.fractional:
            return self._pack.place(request, view)
        candidates = _fractional_candidates(request, view)
        if not len(candidates):
            return None
        free = milli(view.gpu_free[candidates])
        shared = free < 1000
        idle_per_host = host_capacity(Request(1, request.gpu_type), view)
        host_idle = idle_per_host[view.gpu_host[candidates]]
        # shared GPUs by least free share; then idle GPUs on the host with fewest idle GPUs
        order = np.lexsort((candidates, host_idle, free, ~shared))
        return (int(candidates[order[0]]),)


def _mix(view: ClusterView, request: Request) -> list[tuple[Request, float]]:
    counts = Counter(j.request for j in (*view.jobs_running, *view.jobs_pending))
    if not counts:
        counts[request] = 1
    total = sum(counts.values())
    return [(r, n / total) for r, n in counts.items()]


def host_fragmentation(free: np.ndarray, types: tuple[str, ...], cpus_free: float,
                       cpus_per_gpu: float, mix: list[tuple[Request, float]]) -> float:
    """Expected free GPU share on one host that a request drawn from ``mix`` cannot use.

    Args:
        free: free share of each GPU of the host. types: their types.
        cpus_free: the host's free cores. cpus_per_gpu: its proportional cores per GPU.
        mix: (request, probability) pairs.
    """
    total = float(free.sum())
    frag = 0.0
    for req, p in mix:
        usable = np.array([req.gpu_type in (None, t) for t in types])
        cpg = cpus_per_gpu if req.cpus_per_gpu is None else req.cpus_per_gpu
        if req.fractional:
            ok = usable & (free >= req.gpus - _EPS)
            fits = ok.any() and cpus_free + _EPS >= req.gpus * cpg
            unusable = free[~ok].sum() if fits else total
        else:
            # a pod never spans hosts (FGD's model): a request larger than this host cannot
            # use any of it, so all its free share counts as fragmented for that request
            whole = usable & (free >= 1.0 - _EPS)
            want = req.whole
            fits = whole.sum() >= want and cpus_free + _EPS >= want * cpg
            unusable = free[~whole].sum() if fits else total
        frag += p * float(unusable)
    return frag


@PLACEMENT_POLICIES.register("fgd")
class Fgd:
    """Fragmentation gradient descent (Weng et al., ATC'23): least growth of expected
    fragmentation for the observed request mix; ties to the fullest GPU, then lowest index."""

    def __init__(self) -> None:
        self._pack = Pack()

    def place(self, request: Request, view: ClusterView) -> tuple[int, ...] | None:
        per_host = np.bincount(view.gpu_host, minlength=len(view.host_rack))
        if not request.fractional and request.whole > per_host.max(initial=0):
            return self._pack.place(request, view)
        mix = _mix(view, request)
        cpus, _ = _per_gpu_share(request, view)
        best: tuple[float, float, int] | None = None
        choice: tuple[int, ...] | None = None
        if request.fractional:
            options = [(int(g),) for g in _fractional_candidates(request, view)]
        else:
            capacity = host_capacity(request, view)
            options = [_take(request, view, [int(h)], {int(h): request.whole})
                       for h in np.flatnonzero(capacity >= request.whole)]
        share = request.gpus if request.fractional else 1.0
        cache: dict[int, float] = {}
        for gpus in options:
            h = int(view.gpu_host[gpus[0]])
            members = np.flatnonzero(view.gpu_host == h)
            free = view.gpu_free[members].astype(float)
            types = tuple(view.gpu_types[g] for g in members)
            cpg = float(view.host_cpus_per_gpu[h])
            if h not in cache:
                cache[h] = host_fragmentation(free, types, float(view.host_cpus_free[h]), cpg,
                                              mix)
            after = free.copy()
            after[np.searchsorted(members, gpus)] -= share
            used_cpus = share * len(gpus) * float(cpus[h])
            grow = host_fragmentation(after, types, float(view.host_cpus_free[h]) - used_cpus,
                                      cpg, mix) - cache[h]
            key = (round(grow, 9), float(after.sum()), gpus[0])
            if best is None or key < best:
                best, choice = key, gpus
        return choice

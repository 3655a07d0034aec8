"""Placement policies: choose GPUs for a request on a ClusterView, or decline (None).

Each policy is a small class with ``place(request, view) -> tuple[int, ...] | None``, registered
by name in :data:`PLACEMENT_POLICIES`. Whole-GPU requests get ``request.gpus`` distinct idle GPUs
(gang: all or nothing); a fractional request gets one GPU with enough free share.

>>> from simcluster.policies.view import StaticView
>>> from simcluster.workload.jobs import Request
>>> view = StaticView([4, 4], gpu_free=[0, 0, 1, 1, 1, 1, 1, 1])
>>> FirstFit().place(Request(2), view), Pack().place(Request(2), view)
((2, 3), (2, 3))
>>> Pack().place(Request(4), view)
(4, 5, 6, 7)
"""

from __future__ import annotations

import numpy as np

from simcluster.policies.view import ClusterView
from simcluster.registry import Registry
from simcluster.workload.jobs import Request

__all__ = ["PLACEMENT_POLICIES", "BestFit", "FirstFit", "Pack", "Random", "Spread",
           "host_capacity", "type_mask"]

PLACEMENT_POLICIES: Registry[type] = Registry("placement policy")

_EPS = 1e-9
_TINY = 1e-300


def type_mask(request: Request, view: ClusterView) -> np.ndarray:
    """Boolean mask of GPUs of the requested type (all GPUs if the request names none)."""
    return view.gpu_type_mask(request.gpu_type)


def _per_gpu_share(request: Request, view: ClusterView) -> tuple[np.ndarray, np.ndarray]:
    cpus = view.host_cpus_per_gpu if request.cpus_per_gpu is None else np.full(
        len(view.host_rack), request.cpus_per_gpu)
    mem = view.host_memory_per_gpu if request.memory_per_gpu is None else np.full(
        len(view.host_rack), request.memory_per_gpu)
    return cpus, mem


def host_capacity(request: Request, view: ClusterView,
                  gpu_free: np.ndarray | None = None) -> np.ndarray:
    """How many whole GPUs of the request each host can give now (GPUs, CPU and memory)."""
    free = view.gpu_free if gpu_free is None else gpu_free
    idle = (free >= 1.0 - _EPS) & type_mask(request, view)
    n_hosts = len(view.host_rack)
    gpus = np.bincount(view.gpu_host[idle], minlength=n_hosts)
    cpus, mem = _per_gpu_share(request, view)
    by_cpu = _whole_fits(view.host_cpus_free, cpus)
    by_mem = _whole_fits(view.host_memory_free, mem)
    return np.minimum(gpus, np.minimum(by_cpu, by_mem)).astype(int)


def _whole_fits(free: np.ndarray, per_gpu: np.ndarray) -> np.ndarray:
    """How many GPUs' worth of a resource each host has free (inf where a GPU needs none)."""
    out = np.full(len(free), np.inf)
    np.divide(free, per_gpu, out=out, where=per_gpu > _TINY)
    return np.floor(out + _EPS, out=out)


def _fractional_candidates(request: Request, view: ClusterView) -> np.ndarray:
    """GPU indices that can host a fractional request, in index order."""
    cpus, mem = _per_gpu_share(request, view)
    host = view.gpu_host
    ok = (view.gpu_free >= request.gpus - _EPS) & type_mask(request, view)
    ok &= view.host_cpus_free[host] + _EPS >= request.gpus * cpus[host]
    ok &= view.host_memory_free[host] + _EPS >= request.gpus * mem[host]
    return np.flatnonzero(ok)


def _take(request: Request, view: ClusterView, hosts: list[int],
          counts: dict[int, int]) -> tuple[int, ...]:
    """Pick ``counts[h]`` idle GPUs of the right type on each host, lowest index first."""
    idle = np.flatnonzero((view.gpu_free >= 1.0 - _EPS) & type_mask(request, view))
    if len(hosts) == 1:
        h = hosts[0]
        return tuple(idle[view.gpu_host[idle] == h][: counts[h]].tolist())
    owner = view.gpu_host[idle]
    chosen: list[int] = []
    for h in hosts:
        chosen.extend(idle[owner == h][: counts[h]].tolist())
    return tuple(sorted(chosen))


@PLACEMENT_POLICIES.register("first_fit")
class FirstFit:
    """The lowest-numbered GPUs that fit, host by host (the classic first fit)."""

    def place(self, request: Request, view: ClusterView) -> tuple[int, ...] | None:
        if request.fractional:
            candidates = _fractional_candidates(request, view)
            return (int(candidates[0]),) if len(candidates) else None
        need = request.whole
        capacity = host_capacity(request, view)
        if capacity.sum() < need:
            return None
        counts: dict[int, int] = {}
        for h in np.flatnonzero(capacity):
            counts[int(h)] = min(int(capacity[h]), need)
            need -= counts[int(h)]
            if need == 0:
                break
        return _take(request, view, list(counts), counts)


@PLACEMENT_POLICIES.register("pack")
class Pack:
    """Fewest nodes, then fewest racks; within that, the fullest hosts (best fit).

    A job that fits on one host goes to the host with the least spare capacity that still fits
    it. A larger job takes whole hosts in order of capacity, inside the rack that needs the
    fewest hosts if that rack can do it with as few hosts as the whole cluster could; otherwise
    it spans racks, taking the fullest hosts (racks with most capacity first among equals).
    A fractional request goes to the GPU with the least free share that fits (best fit).
    """

    def place(self, request: Request, view: ClusterView) -> tuple[int, ...] | None:
        if request.fractional:
            candidates = _fractional_candidates(request, view)
            if not len(candidates):
                return None
            free = view.gpu_free[candidates]
            return (int(candidates[int(np.argmin(free))]),)
        need = request.whole
        capacity = host_capacity(request, view)
        if capacity.sum() < need:
            return None
        fits = np.flatnonzero(capacity >= need)
        if len(fits):
            h = int(fits[np.argmin(capacity[fits])])  # argmin: first of ties (lowest index)
            return _take(request, view, [h], {h: need})
        best: tuple[int, int, int] | None = None  # (hosts needed, leftover, rack)
        for rack in np.unique(view.host_rack):
            hosts = np.flatnonzero((view.host_rack == rack) & (capacity > 0))
            caps = np.sort(capacity[hosts])[::-1]
            reach = np.cumsum(caps)
            if len(reach) and reach[-1] >= need:
                k = int(np.searchsorted(reach, need) + 1)
                key = (k, int(reach[k - 1] - need), int(rack))
                best = key if best is None or key < best else best
        # the fewest hosts any placement needs: the fullest-capacity hosts cluster-wide
        fewest = int(np.searchsorted(np.cumsum(np.sort(capacity)[::-1]), need) + 1)
        if best is not None and best[0] == fewest:
            order = self._hosts_by_capacity(capacity, view.host_rack == best[2])
        else:  # fewest nodes first, then racks with the most room (fewest racks)
            rack_total = np.bincount(view.host_rack, weights=capacity)
            hosts = (int(h) for h in np.flatnonzero(capacity > 0))
            order = sorted(hosts, key=lambda h: (-capacity[h], -rack_total[view.host_rack[h]],
                                                 view.host_rack[h], h))
        counts: dict[int, int] = {}
        for h in order:
            counts[h] = min(int(capacity[h]), need)
            need -= counts[h]
            if need == 0:
                break
        return _take(request, view, list(counts), counts)

    @staticmethod
    def _hosts_by_capacity(capacity: np.ndarray, in_rack: np.ndarray) -> list[int]:
        hosts = np.flatnonzero(in_rack & (capacity > 0))
        return sorted((int(h) for h in hosts), key=lambda h: (-capacity[h], h))


def _host_totals(view: ClusterView) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gpus = np.bincount(view.gpu_host, minlength=len(view.host_rack)).astype(float)
    return gpus, gpus * view.host_cpus_per_gpu, gpus * view.host_memory_per_gpu


@PLACEMENT_POLICIES.register("best_fit")
class BestFit:
    """Best fit over GPUs, CPUs and memory: the host left with the least free resources.

    The score of a host after placement is the sum of its free GPU, CPU and memory fractions
    (the multi-resource best fit of the Kubernetes scheduler simulator, Weng et al. ATC'23). A
    job larger than any host fills the fullest hosts first (smallest capacity that is > 0), which
    leaves whole hosts free for later large jobs. A fractional request goes to the GPU with the
    least free share that fits, on the fullest host.
    """

    def place(self, request: Request, view: ClusterView) -> tuple[int, ...] | None:
        n_gpus, n_cpus, n_mem = _host_totals(view)
        free_gpu = np.bincount(view.gpu_host, weights=view.gpu_free, minlength=len(n_gpus))
        cpus, mem = _per_gpu_share(request, view)
        if request.fractional:
            candidates = _fractional_candidates(request, view)
            if not len(candidates):
                return None
            h = view.gpu_host[candidates]
            after = ((view.gpu_free[candidates] - request.gpus) * 4.0  # the GPU itself first
                     + (free_gpu[h] - request.gpus) / np.maximum(n_gpus[h], 1)
                     + (view.host_cpus_free[h] - request.gpus * cpus[h]) / np.maximum(
                         n_cpus[h], _TINY))
            return (int(candidates[int(np.argmin(after))]),)
        need = request.whole
        capacity = host_capacity(request, view)
        if capacity.sum() < need:
            return None
        fits = np.flatnonzero(capacity >= need)
        if len(fits):
            after = ((free_gpu[fits] - need) / np.maximum(n_gpus[fits], 1)
                     + (view.host_cpus_free[fits] - need * cpus[fits]) / np.maximum(
                         n_cpus[fits], _TINY)
                     + (view.host_memory_free[fits] - need * mem[fits]) / np.maximum(
                         n_mem[fits], _TINY))
            h = int(fits[int(np.argmin(after))])
            return _take(request, view, [h], {h: need})
        order = sorted((int(h) for h in np.flatnonzero(capacity > 0)),
                       key=lambda h: (capacity[h], h))
        counts: dict[int, int] = {}
        for h in order:
            counts[h] = min(int(capacity[h]), need)
            need -= counts[h]
            if need == 0:
                break
        return _take(request, view, list(counts), counts)


@PLACEMENT_POLICIES.register("spread")
class Spread:
    """Spread over as many hosts as possible: one GPU per host in turn, emptiest hosts first
    (load balancing; Tiresias' ``balance`` placement). A fractional request goes to the GPU with
    the most free share (worst fit), on the emptiest host.
    """

    def place(self, request: Request, view: ClusterView) -> tuple[int, ...] | None:
        if request.fractional:
            candidates = _fractional_candidates(request, view)
            if not len(candidates):
                return None
            idle = host_capacity(Request(1, request.gpu_type), view)
            score = view.gpu_free[candidates] * 1e3 + idle[view.gpu_host[candidates]]
            return (int(candidates[int(np.argmax(score))]),)
        need = request.whole
        capacity = host_capacity(request, view)
        if capacity.sum() < need:
            return None
        order = sorted((int(h) for h in np.flatnonzero(capacity > 0)),
                       key=lambda h: (-capacity[h], h))
        counts = dict.fromkeys(order, 0)
        while need:
            for h in order:
                if need and counts[h] < capacity[h]:
                    counts[h] += 1
                    need -= 1
        used = [h for h in order if counts[h]]
        return _take(request, view, used, counts)


@PLACEMENT_POLICIES.register("random")
class Random:
    """Uniformly random GPUs among those that fit (a baseline in Tiresias and Lucid).

    Args:
        rng: the random stream (passed in by the engine: stream ``policy/placement``).
    """

    def __init__(self, rng: np.random.Generator | None = None) -> None:
        if rng is None:
            raise TypeError("random placement needs the engine's rng stream")
        self.rng = rng

    def place(self, request: Request, view: ClusterView) -> tuple[int, ...] | None:
        if request.fractional:
            candidates = _fractional_candidates(request, view)
            if not len(candidates):
                return None
            return (int(self.rng.choice(candidates)),)
        need = request.whole
        capacity = host_capacity(request, view)
        if capacity.sum() < need:
            return None
        chosen = self.rng.choice(self._slots(request, view, capacity), size=need,
                                 replace=False)
        return tuple(sorted(int(g) for g in chosen))

    def _slots(self, request: Request, view: ClusterView, capacity: np.ndarray) -> np.ndarray:
        """The idle GPUs on offer: on each host, a uniformly random ``capacity[h]`` of its
        idle GPUs (a host offers at most what its CPUs and memory allow). Random keys, one
        per idle GPU, ranked within each host: the lowest ``capacity[h]`` keys are kept."""
        idle = np.flatnonzero((view.gpu_free >= 1.0 - _EPS) & type_mask(request, view))
        idle = idle[capacity[view.gpu_host[idle]] > 0]
        owner = view.gpu_host[idle]
        order = np.lexsort((self.rng.random(len(idle)), owner))  # by host, then by key
        by_host = owner[order]
        rank = np.arange(len(order)) - np.searchsorted(by_host, by_host)
        return idle[order][rank < capacity[by_host]]


# the other families register themselves on import
from simcluster.policies import hetero, placement_topo, sharing  # noqa: E402, F401

"""GPU sharing placements for fractional (milli-GPU) requests: packing, and FGD.

``gpu_milli`` counts shares in milli-GPUs (the unit of Alibaba's GPU-sharing scheduler and its
openb trace) and packs: a fractional request goes to an already shared GPU first, then to an idle
GPU on the busiest host; whole-GPU requests go to the fullest host that fits (the GPU-packing
baseline of Weng et al., ATC'23).

``fgd`` is Fragmentation Gradient Descent (Weng et al., "Beware of Fragmentation: Scheduling GPU-
Sharing Workloads with Fragmentation Gradient Descent", USENIX ATC'23, §3.2-§4): for a *target
workload* (task types weighted by popularity: given as ``target``, e.g. the trace's pods, else
the running and pending jobs' requests), a host's *fragmentation* is the expected free GPU share
that a task drawn from it cannot use there: all of the host's free share if the task cannot run
on the host (too few GPUs with its share free, wrong GPU type, too few free CPUs or memory), else
the free share of the GPUs that cannot give the task its share (a partly used GPU, for a
whole-GPU task). FGD places on the host and GPU(s) that least increase that fragmentation.
Requests larger than a host fall back to ``pack``. (The authors' simulator,
hkust-adsl/kubernetes-scheduler-simulator, scores the same difference through a sigmoid rounded
to integer scores and keeps only the most popular task types; we keep the exact difference and
every task type.)

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from simcluster.errors import unknown_name
from simcluster.hardware import GPUS
from simcluster.policies.placement import (
    PLACEMENT_POLICIES,
    Pack,
    _fractional_candidates,
    _per_gpu_share,
    _take,
    host_capacity,
)
from simcluster.policies.view import ClusterView, TypeMasks, type_masks
from simcluster.scenario import check_gpu_count
from simcluster.workload.jobs import Request

__all__ = ["Fgd", "GpuMilli", "host_fragmentation", "milli", "target_workload"]

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


def target_workload(requests: Iterable[Request]) -> list[dict[str, Any]]:
    """The task types of a workload with their popularity (count), most popular first: the
    ``target`` of :class:`Fgd` (plain mappings, so a scenario's ``placement_params`` can hold
    them).

    >>> target_workload([Request(0.5), Request(1), Request(0.5)])
    [{'gpus': 0.5, 'weight': 2}, {'gpus': 1, 'weight': 1}]
    """
    out = []
    for r, n in Counter(requests).most_common():
        extra = {k: getattr(r, k) for k in ("gpu_type", "cpus_per_gpu", "memory_per_gpu")
                 if getattr(r, k) is not None}
        out.append({"gpus": r.gpus, "weight": n, **extra})
    return out


def _target_mix(target: Sequence[Mapping[str, Any]]) -> list[tuple[Request, float]]:
    known = {"gpus", "weight", "gpu_type", "cpus_per_gpu", "memory_per_gpu"}
    mix: Counter[Request] = Counter()
    for item in target:
        if set(item) - known or not {"gpus", "weight"} <= set(item):
            raise TypeError(f"target entries need gpus and weight (optional gpu_type, "
                            f"cpus_per_gpu, memory_per_gpu), got {dict(item)!r}")
        try:
            check_gpu_count(item["gpus"])
        except (TypeError, ValueError) as err:
            raise TypeError(f"target gpus: {err} (in {dict(item)!r})") from None
        if not item["weight"] > 0 or any(item.get(k, 0) < 0
                                         for k in ("cpus_per_gpu", "memory_per_gpu")):
            raise TypeError(f"target weight must be > 0 and cpus_per_gpu, memory_per_gpu >= 0, "
                            f"got {dict(item)!r}")
        if item.get("gpu_type") is not None and not isinstance(item["gpu_type"], str):
            # a catalog type, a pool label or "|" alternatives (TypeMasks): a name no GPU has
            # only makes that task never fit
            raise TypeError(f"target gpu_type must be a string, got {dict(item)!r}")
        mix[Request(**{k: v for k, v in item.items() if k != "weight"})] += item["weight"]
    total = sum(mix.values())
    if not total:
        raise TypeError("target workload is empty")
    return [(r, w / total) for r, w in mix.items()]


def _mix(view: ClusterView, request: Request) -> list[tuple[Request, float]]:
    """The target workload: the running and pending jobs' requests by popularity (the request
    being placed alone when there are none)."""
    counts = Counter(j.request for j in (*view.jobs_running, *view.jobs_pending))
    if not counts:
        counts[request] = 1
    total = sum(counts.values())
    return [(r, n / total) for r, n in counts.items()]


@dataclass(frozen=True)
class _Hosts:
    """Hosts as rows: free share of each GPU slot (padding slots: 0 free, type -2), the GPU type
    id of each slot, free CPUs and memory, and the proportional CPUs / memory per GPU."""

    free: np.ndarray
    type_id: np.ndarray
    cpus: np.ndarray
    mem: np.ndarray
    cpg: np.ndarray
    mpg: np.ndarray

    def take(self, rows: np.ndarray) -> _Hosts:
        return _Hosts(*(getattr(self, f.name)[rows] for f in fields(self)))


def _task_arrays(tasks: Sequence[Request], masks: TypeMasks,
                 hosts: _Hosts) -> tuple[np.ndarray, ...]:
    """Per task (columns): share needed on each GPU, GPUs needed, the GPU classes it admits
    (tasks x classes, :meth:`TypeMasks.matching`), and CPUs / memory needed on each host (rows
    x tasks)."""
    share = np.array([r.gpus if r.fractional else 1.0 for r in tasks])
    count = np.array([1 if r.fractional else r.whole for r in tasks])
    admits = np.array([masks.matching(r.gpu_type) for r in tasks], dtype=bool).reshape(
        len(tasks), len(masks.classes))
    cpg = np.array([np.nan if r.cpus_per_gpu is None else r.cpus_per_gpu for r in tasks])
    mpg = np.array([np.nan if r.memory_per_gpu is None else r.memory_per_gpu for r in tasks])
    gpus = share * count
    cpus = gpus * np.where(np.isnan(cpg), hosts.cpg[:, None], cpg)
    mem = gpus * np.where(np.isnan(mpg), hosts.mpg[:, None], mpg)
    return share, count, admits, cpus, mem


def _fragmentation(hosts: _Hosts, tasks: Sequence[Request],
                  masks: TypeMasks) -> np.ndarray:
    """Fragment of each host (rows) for each task (columns), in GPUs (Weng et al., ATC'23, §3.2).

    A host's unallocated GPU share is all fragment for a task it cannot run (not enough GPUs
    with the task's share free, wrong GPU type, or too few free CPUs or memory); for a task it
    can run, the fragment is the free share of the GPUs that cannot give the task its share
    (a partial GPU is a fragment for a whole-GPU task). CPU-only tasks are not in the mix: they
    would count every free GPU on every host, the same for all placements.
    """
    share, count, admits, cpus, mem = _task_arrays(tasks, masks, hosts)
    free = hosts.free[:, None, :]
    real = hosts.type_id >= 0  # slot -2: no GPU there (hosts with fewer GPUs)
    typed = (admits[:, np.where(real, hosts.type_id, 0)] & real).transpose(1, 0, 2)
    ok = typed & (free >= share[None, :, None] - _EPS)
    usable = (free * ok).sum(axis=2)
    fits = ((ok.sum(axis=2) >= count[None, :])
            & (hosts.cpus[:, None] + _EPS >= cpus) & (hosts.mem[:, None] + _EPS >= mem))
    total = hosts.free.sum(axis=1)[:, None]
    return np.where(fits, total - usable, total)


def host_fragmentation(free: np.ndarray, types: tuple[str, ...], cpus_free: float,
                       cpus_per_gpu: float, mix: list[tuple[Request, float]],
                       memory_free: float = np.inf, memory_per_gpu: float = 0.0) -> float:
    """Expected free GPU share on one host that a request drawn from ``mix`` cannot use.

    Args:
        free: free share of each GPU of the host. types: their types.
        cpus_free, memory_free: the host's free cores and memory (bytes).
        cpus_per_gpu, memory_per_gpu: its proportional cores and memory per GPU.
        mix: (request, probability) pairs.
    """
    masks = TypeMasks(tuple(types))
    one = np.ones(1)
    host = _Hosts(np.asarray(free, float)[None, :], masks.class_of[None, :].copy(),
                  one * cpus_free, one * memory_free, one * cpus_per_gpu, one * memory_per_gpu)
    frag = _fragmentation(host, [r for r, _ in mix], masks)[0]
    return float(frag @ np.array([p for _, p in mix]))


class _FragTable:
    """Fragment of every host for every task type seen so far, kept current incrementally: a
    host's row is recomputed only when its free GPUs, CPUs or memory changed, a task type's
    column is added when it first appears in the mix."""

    def __init__(self, view: ClusterView) -> None:
        self.gpu_host = view.gpu_host
        n_hosts = len(view.host_rack)
        counts = np.bincount(view.gpu_host, minlength=n_hosts)
        self.per_host = counts
        self.slot = np.arange(len(view.gpu_host)) - np.repeat(np.cumsum(counts) - counts, counts)
        self.masks = type_masks(view)
        type_id = np.full((n_hosts, max(int(counts.max(initial=0)), 1)), -2)
        type_id[view.gpu_host, self.slot] = self.masks.class_of  # GPU class of each slot
        self._type_id = type_id
        self.hosts: _Hosts | None = None
        self.columns: dict[Request, int] = {}
        self.table = np.zeros((n_hosts, 0))

    def current(self, view: ClusterView) -> _Hosts:
        free = np.zeros(self._type_id.shape)
        free[view.gpu_host, self.slot] = view.gpu_free
        hosts = _Hosts(free, self._type_id, np.array(view.host_cpus_free, float),
                       np.array(view.host_memory_free, float),
                       np.asarray(view.host_cpus_per_gpu, float),
                       np.asarray(view.host_memory_per_gpu, float))
        if self.hosts is None:
            changed = np.arange(len(free))
        else:
            old = self.hosts
            changed = np.flatnonzero((free != old.free).any(axis=1) | (hosts.cpus != old.cpus)
                                     | (hosts.mem != old.mem))
        self.hosts = hosts
        if len(changed) and self.columns:
            self.table[changed] = _fragmentation(hosts.take(changed), list(self.columns),
                                                self.masks)
        return hosts

    def weights(self, mix: list[tuple[Request, float]]) -> np.ndarray:
        """The mix as a probability per column (adding columns for new task types)."""
        new = [r for r, _ in mix if r not in self.columns]
        if new:
            assert self.hosts is not None
            self.columns.update({r: len(self.columns) + i for i, r in enumerate(new)})
            self.table = np.hstack([self.table, _fragmentation(self.hosts, new, self.masks)])
        p = np.zeros(len(self.columns))
        for r, w in mix:
            p[self.columns[r]] = w
        return p


@PLACEMENT_POLICIES.register("fgd")
class Fgd:
    """Fragmentation gradient descent (Weng et al., ATC'23): least growth of expected
    fragmentation for the target workload; ties to the fullest host, then lowest index.

    Args:
        target: the target workload, task types with their popularity (§3.2: "the target
            workload ... can be obtained from historical data"): mappings with ``gpus`` and
            ``weight`` (any scale), optionally ``gpu_type``, ``cpus_per_gpu``,
            ``memory_per_gpu`` (see :func:`target_workload`). None: the running and pending
            jobs' requests, by count (the request being placed if there are none).

    The per-host, per-task-type fragments are kept in a table updated only for the hosts that
    changed since the last call (same answers as recomputing; the cost of a placement is the
    candidate hosts' distinct after-states times the task types, not GPUs x pods).
    """

    def __init__(self, target: Sequence[Mapping[str, Any]] | None = None) -> None:
        self._pack = Pack()
        self._table: _FragTable | None = None
        self._target = None if target is None else _target_mix(target)

    def place(self, request: Request, view: ClusterView) -> tuple[int, ...] | None:
        if self._table is None or self._table.gpu_host is not view.gpu_host:
            self._table = _FragTable(view)
            _check_target_types(self._target or [], self._table.masks)
        table = self._table
        if not request.fractional and request.whole > table.per_host.max(initial=0):
            return self._pack.place(request, view)
        hosts = table.current(view)
        options, host_of, after = _options(request, view, hosts, table)
        if not len(options):
            return None
        grow = _growth(table, self._target or _mix(view, request), host_of, after)
        fullness = np.round(after.free.sum(axis=1), 9)
        best = int(np.lexsort((options, fullness, np.round(grow, 9)))[0])
        if request.fractional:
            return (int(options[best]),)
        h = int(options[best])
        return _take(request, view, [h], {h: request.whole})


def _check_target_types(mix: list[tuple[Request, float]], masks: TypeMasks) -> None:
    """Every GPU type or label a target task names is a catalog type or a label of the
    cluster (a catalog type the cluster lacks only makes the task never fit)."""
    labels = {label for _, label in masks.classes if label is not None}
    for request, _ in mix:
        for name in (request.gpu_type or "").split("|"):
            if name and name not in labels and name not in GPUS:
                raise unknown_name("GPU type or pool label", name,
                                   [*GPUS.names(), *sorted(labels)], "target gpu_type")


def _options(request: Request, view: ClusterView, hosts: _Hosts,
             table: _FragTable) -> tuple[np.ndarray, np.ndarray, _Hosts]:
    """Candidates (GPUs for a fractional request, else hosts), their hosts, and each host's
    state after placing the request there (a whole-GPU request takes the lowest idle GPUs of
    its type, as :func:`_take` does)."""
    cpus, mem = _per_gpu_share(request, view)
    if request.fractional:
        options = _fractional_candidates(request, view)
        host_of = view.gpu_host[options]
        after = hosts.take(host_of)
        after.free[np.arange(len(options)), table.slot[options]] -= request.gpus
    else:
        options = np.flatnonzero(host_capacity(request, view) >= request.whole)
        host_of = options
        after = hosts.take(host_of)
        idle = (after.free >= 1.0 - _EPS) & _typed(after.type_id, request, table.masks)
        after.free[idle & (np.cumsum(idle, axis=1) <= request.whole)] -= 1.0
    gpus = request.gpus if request.fractional else float(request.whole)
    after.cpus[:] -= gpus * cpus[host_of]
    after.mem[:] -= gpus * mem[host_of]
    return options, host_of, after


def _growth(table: _FragTable, mix: list[tuple[Request, float]], host_of: np.ndarray,
            after: _Hosts) -> np.ndarray:
    """Expected fragmentation after each option minus its host's before (the FGD score)."""
    p = table.weights(mix)
    active = np.flatnonzero(p)
    tasks = list(table.columns)
    before = table.table[host_of][:, active] @ p[active]
    return _distinct_fragmentation(after, [tasks[k] for k in active],
                                   table.masks) @ p[active] - before


def _distinct_fragmentation(after: _Hosts, tasks: list[Request],
                            masks: TypeMasks) -> np.ndarray:
    """:func:`_fragmentation` of each row, computed once per distinct host state (idle hosts
    of one kind, and hosts that differ only in GPU order, share one computation)."""
    order = np.argsort(after.free, axis=1, kind="stable")
    free = np.take_along_axis(after.free, order, axis=1)
    tid = np.take_along_axis(after.type_id, order, axis=1)
    key = np.hstack([free, tid, np.column_stack([after.cpus, after.mem, after.cpg, after.mpg])])
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    distinct = after.take(first)
    return _fragmentation(distinct, tasks, masks)[inverse.reshape(-1)]


def _typed(type_id: np.ndarray, request: Request, masks: TypeMasks) -> np.ndarray:
    """Slots of a GPU the request's ``gpu_type`` admits (all real slots if it names none)."""
    real = type_id >= 0
    return masks.matching(request.gpu_type)[np.where(real, type_id, 0)] & real

"""The read-only view of the cluster that policies decide on.

Policies never import the engine or SimPy: the engine implements :class:`ClusterView`, and tests
build views by hand (:class:`StaticView`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from simcluster.workload.jobs import Request

__all__ = ["ClusterView", "JobView", "StaticJob", "StaticView", "TypeMasks", "type_masks"]


@runtime_checkable
class JobView(Protocol):
    """What a policy may read about one job (pending or running). Times in s.

    Attributes:
        id, submit_s, tenant, model, request: as submitted.
        ideal_s: uncontended run time of the whole job on its reference (packed) placement —
            the oracle run time (a policy that wants a user estimate perturbs it itself).
        remaining_s: oracle estimate of the uncontended time still to run (from the last
            checkpoint for a pending job; progress since the current start for a running one).
        attained_gpu_s: GPU-seconds of service received so far (Tiresias' attained service).
        executed_s: wall seconds spent running so far, over all runs.
        run_start_s: start of the current run (running jobs), else None.
        queued_since_s: when the job last entered the queue (pending jobs), else None.
        gpus: GPU indices held (running jobs), else ().
        preemptions: times the job was stopped so far.
    """

    @property
    def id(self) -> int: ...
    @property
    def submit_s(self) -> float: ...
    @property
    def tenant(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def request(self) -> Request: ...
    @property
    def ideal_s(self) -> float: ...
    @property
    def remaining_s(self) -> float: ...
    @property
    def attained_gpu_s(self) -> float: ...
    @property
    def executed_s(self) -> float: ...
    @property
    def run_start_s(self) -> float | None: ...
    @property
    def queued_since_s(self) -> float | None: ...
    @property
    def gpus(self) -> tuple[int, ...]: ...
    @property
    def preemptions(self) -> int: ...


@dataclass(frozen=True)
class StaticJob:
    """A hand-built :class:`JobView` for tests and teaching.

    >>> StaticJob(1, size=2).request.gpus, StaticJob(2, ideal_s=60.0).remaining_s
    (2, 60.0)
    """

    id: int
    submit_s: float = 0.0
    size: float = 1
    ideal_s: float = 3600.0
    remaining: float | None = None
    attained_gpu_s: float = 0.0
    executed_s: float = 0.0
    run_start_s: float | None = None
    queued_since_s: float | None = None
    gpus: tuple[int, ...] = ()
    tenant: str = "default"
    model: str = "mlp"
    gpu_type: str | None = None
    preemptions: int = 0
    request: Request = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "request", Request(self.size, gpu_type=self.gpu_type))

    @property
    def remaining_s(self) -> float:
        return self.ideal_s if self.remaining is None else self.remaining


class TypeMasks:
    """Which GPUs a request's ``gpu_type`` admits: the one place GPU types are matched.

    A ``gpu_type`` is None (any GPU), a GPU catalog name, a pool label (a node list's GPU model,
    e.g. openb's ``T4``), or alternatives of those joined by "|" (openb's
    ``"V100M16|V100M32"``); a GPU matches when its catalog type or its label is one of them.
    GPUs with the same (type, label) form one class (:attr:`class_of`); matches are cached per
    ``gpu_type`` string, per class and as read-only masks over the GPUs.

    >>> masks = TypeMasks(("A", "B", "A"), ("x", None, "y"))
    >>> masks("A").tolist(), masks("B|y").tolist(), masks("x|z").tolist(), bool(masks("z").any())
    ([True, False, True], [False, True, True], [True, False, False], False)
    >>> masks.class_of.tolist(), masks.matching("y").tolist()
    ([0, 1, 2], [False, False, True])
    """

    def __init__(self, types: tuple[str, ...],
                 labels: tuple[str | None, ...] | None = None) -> None:
        labels = (None,) * len(types) if labels is None else tuple(labels)
        if len(labels) != len(types):
            raise ValueError(f"{len(labels)} labels for {len(types)} GPUs")
        pairs = list(zip(types, labels, strict=True))
        #: the distinct (catalog type, label) pairs, in order of first GPU
        self.classes: tuple[tuple[str, str | None], ...] = tuple(dict.fromkeys(pairs))
        index = {c: i for i, c in enumerate(self.classes)}
        self.class_of = np.array([index[c] for c in pairs], dtype=np.int64)
        self.class_of.setflags(write=False)
        self._matching: dict[str | None, np.ndarray] = {}
        self._masks: dict[str | None, np.ndarray] = {}

    def matching(self, gpu_type: str | None) -> np.ndarray:
        """Read-only boolean array over :attr:`classes`: the classes ``gpu_type`` admits."""
        found = self._matching.get(gpu_type)
        if found is None:
            wanted = None if gpu_type is None else set(gpu_type.split("|"))
            found = np.array([wanted is None or t in wanted or label in wanted
                              for t, label in self.classes], dtype=bool)
            found.setflags(write=False)
            self._matching[gpu_type] = found
        return found

    def __call__(self, gpu_type: str | None) -> np.ndarray:
        mask = self._masks.get(gpu_type)
        if mask is None:
            mask = self.matching(gpu_type)[self.class_of]
            mask.setflags(write=False)
            self._masks[gpu_type] = mask
        return mask


def type_masks(view: ClusterView) -> TypeMasks:
    """The view's GPU classes: its own cached :class:`TypeMasks` where it has one (every view
    here does), else one built from its GPU types and labels."""
    own = view.gpu_type_mask
    return own if isinstance(own, TypeMasks) else TypeMasks(view.gpu_types, view.gpu_labels)


@runtime_checkable
class ClusterView(Protocol):
    """What a policy may read about the cluster. Arrays are read-only.

    Attributes:
        now: current simulated time (s).
        gpu_host: host index of each GPU (GPUs are numbered host-major).
        host_rack: rack index of each host.
        gpu_types: GPU catalog name of each GPU.
        gpu_labels: label of each GPU's pool (a node list's GPU model), None where unlabelled.
        gpu_free: free fraction of each GPU (1.0 = idle, 0.0 = fully allocated).
        host_cpus_free, host_memory_free: free CPU cores and host memory bytes per host.
        host_cpus_per_gpu, host_memory_per_gpu: each host's proportional share per GPU.
        jobs_running: the running jobs (:class:`JobView`), in start order.
        jobs_pending: the queued jobs (:class:`JobView`), in queue order when known.
    """

    @property
    def now(self) -> float: ...
    @property
    def gpu_host(self) -> np.ndarray: ...
    @property
    def host_rack(self) -> np.ndarray: ...
    @property
    def gpu_types(self) -> tuple[str, ...]: ...
    @property
    def gpu_labels(self) -> tuple[str | None, ...]: ...
    @property
    def gpu_free(self) -> np.ndarray: ...
    @property
    def host_cpus_free(self) -> np.ndarray: ...
    @property
    def host_memory_free(self) -> np.ndarray: ...
    @property
    def host_cpus_per_gpu(self) -> np.ndarray: ...
    @property
    def host_memory_per_gpu(self) -> np.ndarray: ...
    @property
    def jobs_running(self) -> Sequence[JobView]: ...
    @property
    def jobs_pending(self) -> Sequence[JobView]: ...
    def gpu_type_mask(self, gpu_type: str | None) -> np.ndarray:
        """Read-only boolean mask of the GPUs ``gpu_type`` admits (all GPUs for None; see
        :class:`TypeMasks` for labels and "|" alternatives)."""
        ...
    def collective_bandwidth(self, gpus: Sequence[int]) -> float:
        """Bottleneck bandwidth (bytes/s) of a ring collective over ``gpus`` (inf for one GPU),
        from the network model of the fabric."""
        ...
    def relative_speed(self, model: str, gpu_type: str) -> float:
        """Throughput of ``model`` on one GPU of ``gpu_type`` relative to the cluster's slowest
        GPU type (1.0 on a homogeneous cluster)."""
        ...


class StaticView:
    """A hand-built :class:`ClusterView` for tests and teaching.

    Args:
        gpus_per_host: GPUs on each host.
        hosts_per_rack: hosts per rack.
        gpu_free: free fraction per GPU (default all free).
        gpu_type: one GPU type for all GPUs.
        gpu_types: GPU type of each host (overrides ``gpu_type``; mixed clusters).
        gpu_labels: pool label of each host (default none).
        cpus_per_host, memory_per_host: host resources.
        now: current time (s).
        running, pending: the jobs (:class:`StaticJob`).
        bandwidth: ring bandwidth (bytes/s) inside a host, inside a rack, across racks; a ring
            gets the slowest level it crosses, times the fewest GPUs on any of its hosts (NCCL
            channels, one per rail) across hosts.
        speeds: relative speed per (model, gpu type); missing pairs are 1.0.

    >>> v = StaticView([2, 2], hosts_per_rack=1)
    >>> v.gpu_host.tolist(), v.host_rack.tolist()
    ([0, 0, 1, 1], [0, 1])
    """

    def __init__(self, gpus_per_host: list[int], hosts_per_rack: int = 32,
                 gpu_free: list[float] | None = None, gpu_type: str = "H100-SXM",
                 cpus_per_host: float = 112.0, memory_per_host: float = 2.0 * 2**40,
                 now: float = 0.0, running: Sequence[JobView] = (),
                 pending: Sequence[JobView] = (), gpu_types: Sequence[str] | None = None,
                 cpus_free: Sequence[float] | None = None,
                 bandwidth: tuple[float, float, float] = (450e9, 50e9, 25e9),
                 speeds: dict[tuple[str, str], float] | None = None,
                 gpu_labels: Sequence[str | None] | None = None) -> None:
        counts = np.asarray(gpus_per_host, dtype=int)
        self._gpu_host = np.repeat(np.arange(len(counts)), counts)
        self._host_rack = np.arange(len(counts)) // hosts_per_rack
        total = int(counts.sum())
        self._gpu_free = np.ones(total) if gpu_free is None else np.asarray(gpu_free, float)
        if gpu_types is None:
            self._types = (gpu_type,) * total
        else:
            self._types = tuple(gpu_types[h] for h in self._gpu_host)
        self._labels = (None,) * total if gpu_labels is None else tuple(
            gpu_labels[h] for h in self._gpu_host)
        self._cpus = (np.full(len(counts), float(cpus_per_host)) if cpus_free is None
                      else np.asarray(cpus_free, float))
        self._mem = np.full(len(counts), float(memory_per_host))
        self._cpg = np.full(len(counts), float(cpus_per_host)) / np.maximum(counts, 1)
        self._mpg = self._mem / np.maximum(counts, 1)
        self._now = now
        self._running, self._pending = tuple(running), tuple(pending)
        self._bandwidth = bandwidth
        self._speeds = dict(speeds or {})
        self.gpu_type_mask = TypeMasks(self._types, self._labels)
        for arr in (self._gpu_host, self._host_rack, self._gpu_free, self._cpus, self._mem,
                    self._cpg, self._mpg):
            arr.setflags(write=False)

    now = property(lambda self: self._now)
    gpu_host = property(lambda self: self._gpu_host)
    host_rack = property(lambda self: self._host_rack)
    gpu_types = property(lambda self: self._types)
    gpu_labels = property(lambda self: self._labels)
    gpu_free = property(lambda self: self._gpu_free)
    host_cpus_free = property(lambda self: self._cpus)
    host_memory_free = property(lambda self: self._mem)
    host_cpus_per_gpu = property(lambda self: self._cpg)
    host_memory_per_gpu = property(lambda self: self._mpg)
    jobs_running = property(lambda self: self._running)
    jobs_pending = property(lambda self: self._pending)

    def collective_bandwidth(self, gpus: Sequence[int]) -> float:
        """Ring bandwidth over ``gpus`` in the three-level model of the constructor."""
        hosts = self._gpu_host[list(gpus)]
        if len(gpus) <= 1:
            return float("inf")
        uniq, per_host = np.unique(hosts, return_counts=True)
        if len(uniq) == 1:
            return self._bandwidth[0]
        racks = np.unique(self._host_rack[uniq])
        level = self._bandwidth[1] if len(racks) == 1 else self._bandwidth[2]
        return min(self._bandwidth[0], float(per_host.min()) * level)

    def relative_speed(self, model: str, gpu_type: str) -> float:
        """Speed from the ``speeds`` table (1.0 when absent)."""
        return self._speeds.get((model, gpu_type), 1.0)

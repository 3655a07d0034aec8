"""Cluster allocation state: which GPU, CPU and memory shares are taken; a ClusterView.

Allocation is gang (all of a job's GPUs or none) and checked: a GPU's allocated share never goes
above 1, a host's CPUs and memory never below 0. A violation raises :class:`AllocationError`,
which is a bug in a policy or the engine, not a user error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simcluster.errors import InvariantViolation
from simcluster.policies.placement import host_capacity, type_mask
from simcluster.policies.view import TypeMasks
from simcluster.topology import Topology
from simcluster.workload.jobs import Request

__all__ = ["Allocation", "AllocationError", "ClusterState", "InvariantViolation"]

_EPS = 1e-9


class AllocationError(InvariantViolation):
    """An allocation would over-commit a GPU, CPU or memory (an engine or policy bug)."""


@dataclass(frozen=True, slots=True)
class Allocation:
    """What one job holds: GPU indices with the share of each, and per-host CPUs and memory."""

    gpus: tuple[int, ...]
    share: float
    host_cpus: dict[int, float]
    host_memory: dict[int, float]

    @property
    def hosts(self) -> tuple[int, ...]:
        """Hosts touched, in index order."""
        return tuple(sorted(self.host_cpus))

    @property
    def gpu_equivalents(self) -> float:
        """GPUs held, counting a fractional share as its fraction."""
        return len(self.gpus) * self.share


class ClusterState:
    """Mutable allocation state of a topology; implements :class:`ClusterView` read-only.

    Args:
        topology: the cluster.
        clock: a zero-argument callable returning the current simulated time.
    """

    def __init__(self, topology: Topology, clock=lambda: 0.0) -> None:
        self.topology = topology
        self._clock = clock
        n_hosts = len(topology.hosts)
        gpus_per_host = np.bincount(topology.gpu_host, minlength=n_hosts)
        cpus = np.array([s.cpu_cores for s in topology.host_specs], dtype=float)
        mem = np.array([s.host_memory_bytes for s in topology.host_specs], dtype=float)
        self._free = np.ones(len(topology.gpus))
        self._host_of = topology.gpu_host.tolist()  # Python ints: fast scalar indexing
        self._cpus_total, self._mem_total = cpus, mem
        self._cpus, self._mem = cpus.copy(), mem.copy()
        self._cpg = cpus / np.maximum(gpus_per_host, 1)
        self._mpg = mem / np.maximum(gpus_per_host, 1)
        self._types = tuple(topology.gpu_type(g) for g in range(len(topology.gpus)))
        for arr in (self._cpg, self._mpg):
            arr.setflags(write=False)
        self._cpg_list, self._mpg_list = self._cpg.tolist(), self._mpg.tolist()
        # read-only views of the mutable arrays, made once (they follow every change)
        self._free_ro, self._cpus_ro, self._mem_ro = (
            _readonly(a) for a in (self._free, self._cpus, self._mem))
        self.allocated = 0.0  # GPU-equivalents held by jobs
        # failures (engine/failures.py): overlapping failures per GPU, and the free share
        # withheld from placement while a GPU is down (so a failed GPU is never allocated)
        self._down = np.zeros(len(topology.gpus), dtype=np.int64)
        self._withheld = np.zeros(len(topology.gpus))
        self.withheld = 0.0
        self._labels = topology.gpu_labels
        self.gpu_type_mask = TypeMasks(self._types, self._labels)
        self._never: dict[Request, str | None] = {}

    # ClusterView -------------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self._clock()

    @property
    def gpu_host(self) -> np.ndarray:
        return self.topology.gpu_host

    @property
    def host_rack(self) -> np.ndarray:
        return self.topology.host_rack

    @property
    def gpu_types(self) -> tuple[str, ...]:
        return self._types

    @property
    def gpu_labels(self) -> tuple[str | None, ...]:
        return self._labels

    @property
    def gpu_free(self) -> np.ndarray:
        return self._free_ro

    @property
    def host_cpus_free(self) -> np.ndarray:
        return self._cpus_ro

    @property
    def host_memory_free(self) -> np.ndarray:
        return self._mem_ro

    @property
    def host_cpus_per_gpu(self) -> np.ndarray:
        return self._cpg

    @property
    def host_memory_per_gpu(self) -> np.ndarray:
        return self._mpg

    # mechanism ---------------------------------------------------------------------------
    @property
    def free_gpus(self) -> float:
        """GPU-equivalents not allocated (an upper bound on what any placement can give)."""
        return len(self._free) - self.allocated - self.withheld

    def never_fits(self, request: Request) -> str | None:
        """Why ``request`` can never be placed on this cluster even when idle, or None."""
        if request not in self._never:
            self._never[request] = self._never_fits(request)
        return self._never[request]

    def _never_fits(self, request: Request) -> str | None:
        mask = type_mask(request, self)
        if not mask.any():
            present = ", ".join(sorted(set(self._types) | (set(self._labels) - {None})))
            return (f"no GPU of type {request.gpu_type!r} in the cluster (no catalog type or "
                    f"pool label matches; it has {present})")
        if request.fractional:
            host = self.gpu_host[mask]
            cpus = self._share(request.cpus_per_gpu, self._cpg)[host] * request.gpus
            mem = self._share(request.memory_per_gpu, self._mpg)[host] * request.gpus
            if not ((cpus <= self._cpus_total[host] + _EPS)
                    & (mem <= self._mem_total[host] + _EPS)).any():
                return "its CPU or memory per GPU exceeds every host"
            return None
        idle = _IdleView(self)
        capacity = int(host_capacity(request, idle).sum())
        if capacity < request.whole:
            kind = request.gpu_type or self._types[0]
            return (f"needs {request.whole} GPUs but the cluster can give at most {capacity} "
                    f"(type {kind}, {int(mask.sum())} GPUs, CPU and memory per GPU included)")
        return None

    def allocate(self, request: Request, gpus: tuple[int, ...]) -> Allocation:
        """Take ``gpus`` for ``request``; raises :class:`AllocationError` on over-commit."""
        share = request.gpus if request.fractional else 1.0
        if not request.fractional and not len(gpus) == len(set(gpus)) == request.whole:
            raise AllocationError(f"placement {gpus} does not give {request.whole} distinct GPUs")
        if any(not 0 <= g < len(self._free) for g in gpus):
            raise AllocationError(f"placement {gpus} names GPUs outside 0..{len(self._free) - 1}")
        if request.fractional and len(gpus) != 1:
            raise AllocationError(f"a fractional request takes one GPU, got {gpus}")
        idx = np.asarray(gpus, dtype=int)
        if (self._down[idx] > 0).any():
            raise AllocationError(f"placement {gpus} includes a failed GPU")
        if (self._free[idx] < share - _EPS).any():
            raise AllocationError(f"GPUs {gpus} lack a free share of {share}")
        if request.gpu_type is not None and not self.gpu_type_mask(request.gpu_type)[idx].all():
            raise AllocationError(f"placement {gpus} is not all {request.gpu_type}")
        host_cpus: dict[int, float] = {}
        host_mem: dict[int, float] = {}
        cpg, mpg = request.cpus_per_gpu, request.memory_per_gpu
        for g in gpus:
            h = self._host_of[g]
            host_cpus[h] = host_cpus.get(h, 0.0) + share * (
                self._cpg_list[h] if cpg is None else cpg)
            host_mem[h] = host_mem.get(h, 0.0) + share * (
                self._mpg_list[h] if mpg is None else mpg)
        for h in host_cpus:
            if self._cpus[h] + _EPS < host_cpus[h] or self._mem[h] + _EPS < host_mem[h]:
                raise AllocationError(f"host {h} lacks CPU or memory for placement {gpus}")
        self._free[idx] -= share
        for h in host_cpus:
            self._cpus[h] -= host_cpus[h]
            self._mem[h] -= host_mem[h]
        allocation = Allocation(gpus=tuple(int(g) for g in gpus), share=share,
                                host_cpus=host_cpus, host_memory=host_mem)
        self.allocated += allocation.gpu_equivalents
        return allocation

    def release(self, allocation: Allocation) -> None:
        """Give back what ``allocation`` holds."""
        idx = np.asarray(allocation.gpus, dtype=int)
        if (self._free[idx] + allocation.share).max() > 1.0 + _EPS:
            raise AllocationError(f"release of {allocation.gpus} frees more than was taken")
        self._free[idx] += allocation.share
        if self._down[idx].any():
            self._withhold([g for g in allocation.gpus if self._down[g]])
        for h, c in allocation.host_cpus.items():
            self._cpus[h] += c
            self._mem[h] += allocation.host_memory[h]
        self.allocated -= allocation.gpu_equivalents

    # failures ----------------------------------------------------------------------------
    def fail(self, gpus) -> None:
        """Mark ``gpus`` failed (failures may overlap: each needs its own :meth:`repair`). Their
        free shares, now and as jobs release them, are withheld from placement."""
        for g in gpus:
            self._down[g] += 1
        self._withhold(gpus)

    def repair(self, gpus) -> None:
        """End one failure of each of ``gpus``; a GPU with no failure left is usable again."""
        for g in gpus:
            if self._down[g] <= 0:
                raise InvariantViolation(f"repair of GPU {g}, which is not failed")
            self._down[g] -= 1
            if self._down[g] == 0 and self._withheld[g] > 0:
                self._free[g] += self._withheld[g]
                self.withheld -= self._withheld[g]
                self._withheld[g] = 0.0

    def is_down(self, g: int) -> bool:
        """GPU ``g`` is failed."""
        return bool(self._down[g])

    @property
    def gpus_down(self) -> int:
        """Number of failed GPUs."""
        return int(np.count_nonzero(self._down))

    def _withhold(self, gpus) -> None:
        for g in gpus:
            if self._free[g] > 0:
                self._withheld[g] += self._free[g]
                self.withheld += self._free[g]
                self._free[g] = 0.0

    def check(self) -> None:
        """Verify the invariants: shares in [0, 1], host resources within [0, total], no free
        share on a failed GPU."""
        if (self._free[self._down > 0] > _EPS).any():
            raise AllocationError("a failed GPU has a free (allocatable) share")
        if (self._free < -_EPS).any() or (self._free > 1 + _EPS).any():
            raise AllocationError("a GPU's free share left [0, 1]")
        if (self._cpus < -_EPS).any() or (self._cpus > self._cpus_total + _EPS).any():
            raise AllocationError("a host's free CPUs left [0, total]")
        if (self._mem < -_EPS).any() or (self._mem > self._mem_total + _EPS).any():
            raise AllocationError("a host's free memory left [0, total]")

    @staticmethod
    def _share(asked: float | None, default: np.ndarray) -> np.ndarray:
        return default if asked is None else np.full(len(default), float(asked))


def _readonly(arr: np.ndarray) -> np.ndarray:
    view = arr.view()
    view.setflags(write=False)
    return view


class _IdleView:
    """The cluster as a view with everything free (for 'can this ever fit')."""

    def __init__(self, state: ClusterState) -> None:
        self.now = state.now
        self.gpu_host, self.host_rack, self.gpu_types = (state.gpu_host, state.host_rack,
                                                         state.gpu_types)
        self.gpu_labels = state.gpu_labels
        self.gpu_free = np.ones(len(state.gpu_types))
        self.host_cpus_free = state._cpus_total
        self.host_memory_free = state._mem_total
        self.host_cpus_per_gpu = state.host_cpus_per_gpu
        self.host_memory_per_gpu = state.host_memory_per_gpu
        self.gpu_type_mask = state.gpu_type_mask


"""The read-only view of the cluster that policies decide on.

Policies never import the engine or SimPy: the engine implements :class:`ClusterView`, and tests
build views by hand (:class:`StaticView`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["ClusterView", "StaticView", "TypeMasks"]


class TypeMasks:
    """Cached read-only masks of the GPUs of each type, for implementations of ClusterView.

    >>> TypeMasks(("A", "B", "A"))("A").tolist()
    [True, False, True]
    """

    def __init__(self, types: tuple[str, ...]) -> None:
        self._types = types
        self._masks: dict[str | None, np.ndarray] = {}

    def __call__(self, gpu_type: str | None) -> np.ndarray:
        mask = self._masks.get(gpu_type)
        if mask is None:
            mask = np.array([gpu_type in (None, t) for t in self._types], dtype=bool)
            mask.setflags(write=False)
            self._masks[gpu_type] = mask
        return mask


@runtime_checkable
class ClusterView(Protocol):
    """What a policy may read about the cluster. Arrays are read-only.

    Attributes:
        now: current simulated time (s).
        gpu_host: host index of each GPU (GPUs are numbered host-major).
        host_rack: rack index of each host.
        gpu_types: GPU catalog name of each GPU.
        gpu_free: free fraction of each GPU (1.0 = idle, 0.0 = fully allocated).
        host_cpus_free, host_memory_free: free CPU cores and host memory bytes per host.
        host_cpus_per_gpu, host_memory_per_gpu: each host's proportional share per GPU.
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
    def gpu_free(self) -> np.ndarray: ...
    @property
    def host_cpus_free(self) -> np.ndarray: ...
    @property
    def host_memory_free(self) -> np.ndarray: ...
    @property
    def host_cpus_per_gpu(self) -> np.ndarray: ...
    @property
    def host_memory_per_gpu(self) -> np.ndarray: ...
    def gpu_type_mask(self, gpu_type: str | None) -> np.ndarray:
        """Read-only boolean mask of the GPUs of ``gpu_type`` (all GPUs for None)."""
        ...


class StaticView:
    """A hand-built :class:`ClusterView` for tests and teaching.

    Args:
        gpus_per_host: GPUs on each host.
        hosts_per_rack: hosts per rack.
        gpu_free: free fraction per GPU (default all free).
        gpu_type: one GPU type for all GPUs.
        cpus_per_host, memory_per_host: host resources.

    >>> v = StaticView([2, 2], hosts_per_rack=1)
    >>> v.gpu_host.tolist(), v.host_rack.tolist()
    ([0, 0, 1, 1], [0, 1])
    """

    def __init__(self, gpus_per_host: list[int], hosts_per_rack: int = 32,
                 gpu_free: list[float] | None = None, gpu_type: str = "H100-SXM",
                 cpus_per_host: float = 112.0, memory_per_host: float = 2.0 * 2**40,
                 now: float = 0.0) -> None:
        counts = np.asarray(gpus_per_host, dtype=int)
        self._gpu_host = np.repeat(np.arange(len(counts)), counts)
        self._host_rack = np.arange(len(counts)) // hosts_per_rack
        total = int(counts.sum())
        self._gpu_free = np.ones(total) if gpu_free is None else np.asarray(gpu_free, float)
        self._types = (gpu_type,) * total
        self._cpus = np.full(len(counts), float(cpus_per_host))
        self._mem = np.full(len(counts), float(memory_per_host))
        self._cpg = self._cpus / np.maximum(counts, 1)
        self._mpg = self._mem / np.maximum(counts, 1)
        self._now = now
        self.gpu_type_mask = TypeMasks(self._types)
        for arr in (self._gpu_host, self._host_rack, self._gpu_free, self._cpus, self._mem,
                    self._cpg, self._mpg):
            arr.setflags(write=False)

    now = property(lambda self: self._now)
    gpu_host = property(lambda self: self._gpu_host)
    host_rack = property(lambda self: self._host_rack)
    gpu_types = property(lambda self: self._types)
    gpu_free = property(lambda self: self._gpu_free)
    host_cpus_free = property(lambda self: self._cpus)
    host_memory_free = property(lambda self: self._mem)
    host_cpus_per_gpu = property(lambda self: self._cpg)
    host_memory_per_gpu = property(lambda self: self._mpg)

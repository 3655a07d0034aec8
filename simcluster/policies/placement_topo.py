"""Topology-aware placement: the candidate whose collective runs fastest on the fabric.

A job that fits on one host gets the best-fitting host (NVLink only). A larger job is offered
several candidate placements — per rack, the hosts with most room on k = fewest … fewest + 2
hosts with the GPUs split as evenly as capacity allows (NCCL opens one ring channel per GPU on
the host with the fewest, so 6 + 6 beats 8 + 4 on a rail-optimised fabric), and the packed
cross-rack placement — and takes the one with the highest ring bandwidth from the view's network
model (:meth:`ClusterView.collective_bandwidth`), then fewest hosts, then fewest racks.

>>> from simcluster.policies.view import StaticView
>>> from simcluster.workload.jobs import Request
>>> view = StaticView([8, 8], gpu_free=[0, 0] + [1] * 14)  # host 0 has 6 idle, host 1 has 8
>>> TopologyAware().place(Request(12), view)  # 6 + 6: six rails, not 4 + 8
(2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)
"""

from __future__ import annotations

import math

import numpy as np

from simcluster.policies.placement import (
    PLACEMENT_POLICIES,
    Pack,
    _take,
    host_capacity,
)
from simcluster.policies.view import ClusterView
from simcluster.workload.jobs import Request

__all__ = ["TopologyAware", "balanced_split"]


def balanced_split(need: int, caps: list[int]) -> list[int] | None:
    """GPUs per host that maximise the smallest share, within each host's capacity.

    >>> balanced_split(12, [8, 6]), balanced_split(9, [8, 1]), balanced_split(9, [4, 4])
    ([6, 6], [8, 1], None)
    """
    if sum(caps) < need:
        return None
    order = sorted(range(len(caps)), key=lambda i: caps[i])
    out = [0] * len(caps)
    left = need
    for pos, i in enumerate(order):
        give = min(caps[i], math.ceil(left / (len(caps) - pos)))
        out[i] = give
        left -= give
    return out if left == 0 else None


@PLACEMENT_POLICIES.register("topology_aware")
class TopologyAware:
    """Maximise the bottleneck bandwidth of the job's ring collective on the current fabric.

    Args:
        extra_hosts: also try up to this many hosts beyond the fewest that fit.
    """

    def __init__(self, extra_hosts: int = 2) -> None:
        if isinstance(extra_hosts, bool) or not isinstance(extra_hosts, int) or extra_hosts < 0:
            raise TypeError(f"extra_hosts must be a non-negative integer, got {extra_hosts!r}")
        self.extra_hosts = extra_hosts
        self._pack = Pack()

    def place(self, request: Request, view: ClusterView) -> tuple[int, ...] | None:
        packed = self._pack.place(request, view)
        if packed is None or request.fractional or len(set(view.gpu_host[list(packed)])) == 1:
            return packed
        need = request.whole
        capacity = host_capacity(request, view)
        candidates: list[tuple[int, ...]] = [packed]
        for rack in np.unique(view.host_rack):
            hosts = sorted((int(h) for h in np.flatnonzero((view.host_rack == rack)
                                                          & (capacity > 0))),
                           key=lambda h: (-capacity[h], h))
            caps = [int(capacity[h]) for h in hosts]
            reach = np.cumsum(caps)
            if not len(reach) or reach[-1] < need:
                continue
            fewest = int(np.searchsorted(reach, need) + 1)
            for k in range(fewest, min(len(hosts), fewest + self.extra_hosts) + 1):
                split = balanced_split(need, caps[:k])
                if split is not None:
                    counts = dict(zip(hosts[:k], split, strict=True))
                    candidates.append(_take(request, view, hosts[:k], counts))

        def score(gpus: tuple[int, ...]) -> tuple[float, int, int]:
            hosts = view.gpu_host[list(gpus)]
            racks = len(set(view.host_rack[hosts].tolist()))
            return (-view.collective_bandwidth(gpus), len(set(hosts.tolist())), racks)

        return min(candidates, key=score)

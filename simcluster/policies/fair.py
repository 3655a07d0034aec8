"""Fairness between tenants and jobs: weighted DRF over tenants, and finish-time fairness.

>>> from simcluster.policies.view import StaticJob, StaticView
>>> running = [StaticJob(1, size=3, gpus=(0, 1, 2), run_start_s=0.0, tenant="a")]
>>> pending = [StaticJob(2, tenant="a"), StaticJob(3, submit_s=9.0, tenant="b")]
>>> view = StaticView([4], gpu_free=[0, 0, 0, 1], running=running, pending=pending)
>>> [j.id for j in sorted(pending, key=lambda j: FairShare().key(j, view))]  # b has no share
[3, 2]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from simcluster.policies.preemption import ideal_set_victims, lease_expiry
from simcluster.policies.queue import QUEUE_POLICIES, QueuePolicy, _flag, _nonneg
from simcluster.policies.view import ClusterView, JobView

__all__ = ["FairShare", "Ftf", "demand_vector"]

_EPS = 1e-9


def demand_vector(job: JobView, view: ClusterView) -> np.ndarray:
    """A job's (GPU, CPU, memory) demand as shares of the cluster's totals.

    CPU and memory per GPU are the request's, or the proportional share of the job's host (of the
    first host for a pending job).
    """
    gpus_per_host = np.bincount(view.gpu_host, minlength=len(view.host_rack))
    total_cpu = float(np.dot(gpus_per_host, view.host_cpus_per_gpu))
    total_mem = float(np.dot(gpus_per_host, view.host_memory_per_gpu))
    r = job.request
    h = int(view.gpu_host[job.gpus[0]]) if job.gpus else 0
    cpg = view.host_cpus_per_gpu[h] if r.cpus_per_gpu is None else r.cpus_per_gpu
    mpg = view.host_memory_per_gpu[h] if r.memory_per_gpu is None else r.memory_per_gpu
    return np.array([r.gpus / len(view.gpu_host), r.gpus * cpg / max(total_cpu, _EPS),
                     r.gpus * mpg / max(total_mem, _EPS)])


@QUEUE_POLICIES.register("fair_share")
class FairShare(QueuePolicy):
    """Weighted dominant-resource fairness between tenants (Ghodsi et al., NSDI'11), with quotas
    as weights, as multi-tenant virtual clusters share a GPU cluster (Philly: Jeon et al.,
    ATC'19; Helios: Hu et al., SC'21).

    The next job offered is the oldest job of the tenant with the smallest dominant share
    (max of its GPU, CPU and memory shares) divided by its quota; shares are recomputed after
    every start (progressive filling). With ``preempt``, a tenant below its share takes GPUs back
    from tenants above theirs (the ideal set is weighted progressive filling over all jobs).

    Args:
        quotas: tenant → weight (e.g. its guaranteed fraction of the cluster). Unlisted tenants
            get ``default_quota``. Shares are relative: work-conserving, idle quota is lent.
        default_quota: weight of unlisted tenants.
        resources: the dimensions DRF looks at, from ``gpu``, ``cpu``, ``memory``.
        preempt: reclaim GPUs from tenants above their share.
        min_run_s: a job runs at least this long before it can be preempted.
    """

    dynamic = True
    rekey_on_start = True
    blocking = False
    _DIMS = ("gpu", "cpu", "memory")

    def __init__(self, quotas: Mapping[str, float] | None = None, default_quota: float = 1.0,
                 resources: Sequence[str] = ("gpu", "cpu", "memory"), preempt: bool = False,
                 min_run_s: float = 0.0) -> None:
        self.quotas = {k: _nonneg(f"quotas.{k}", v) for k, v in (quotas or {}).items()}
        if any(v <= 0 for v in self.quotas.values()):
            raise TypeError(f"quotas must be positive, got {self.quotas!r}")
        self.default_quota = _nonneg("default_quota", default_quota)
        bad = [r for r in resources if r not in self._DIMS]
        if bad or not resources:
            raise TypeError(f"resources must be among {self._DIMS}, got {list(resources)!r}")
        self._dims = [self._DIMS.index(r) for r in resources]
        self.preemptive = _flag("preempt", preempt)
        self.min_run_s = _nonneg("min_run_s", min_run_s)

    def weight(self, tenant: str) -> float:
        """The tenant's quota weight."""
        return max(self.quotas.get(tenant, self.default_quota), _EPS)

    def usage(self, view: ClusterView) -> dict[str, np.ndarray]:
        """Each tenant's running (GPU, CPU, memory) shares of the cluster."""
        used: dict[str, np.ndarray] = {}
        for job in view.jobs_running:
            used[job.tenant] = used.get(job.tenant, 0.0) + demand_vector(job, view)
        return used

    def _dominant(self, vector: np.ndarray | float) -> float:
        if isinstance(vector, float):
            return vector
        return float(vector[self._dims].max())

    def keys(self, jobs: Sequence[JobView], view: ClusterView) -> list[Any]:
        """Keys of many jobs, the tenant usage computed once."""
        used = self.usage(view)
        return [(self._dominant(used.get(j.tenant, 0.0)) / self.weight(j.tenant), j.submit_s,
                 j.id) for j in jobs]

    def key(self, job: JobView, view: ClusterView | None = None) -> Any:
        if view is None:
            return (0.0, job.submit_s, job.id)
        return self.keys([job], view)[0]

    def preempt(self, view: ClusterView) -> list[int]:
        if not self.preemptive:
            return []
        rank: dict[int, tuple[float, float, int]] = {}
        by_tenant: dict[str, list[JobView]] = {}
        for job in (*view.jobs_running, *view.jobs_pending):
            by_tenant.setdefault(job.tenant, []).append(job)
        for tenant, jobs in by_tenant.items():
            total = np.zeros(3)
            for job in jobs:  # running first (in start order), then pending in queue order
                total = total + demand_vector(job, view)
                rank[job.id] = (self._dominant(total) / self.weight(tenant), job.submit_s, job.id)
        return ideal_set_victims(view, lambda j: rank[j.id], min_run_s=self.min_run_s,
                                 may_preempt=lambda p, r: p.tenant != r.tenant)

    def next_event(self, view: ClusterView) -> float | None:
        return lease_expiry(view, self.min_run_s) if self.preemptive else None


@QUEUE_POLICIES.register("ftf")
class Ftf(QueuePolicy):
    """Finish-time fairness (Themis: Mahajan et al., NSDI'20): serve the job with the largest
    ρ = T_shared / T_ideal, where T_ideal is its uncontended run time and T_shared its estimated
    completion time from submission if it ran uncontended from now on (so a waiting job's ρ
    grows, a running job's stays put). A waiting job with larger ρ preempts a running one whose
    lease (``min_run_s``) has expired; ρ crossings and lease ends are the policy's timers.

    Args:
        min_run_s: the lease: a job runs at least this long before it can be preempted. Default
            10 min, in the range of round-based schedulers (Gavel 6 min, Synergy 5 min rounds).
        preempt: whether to preempt at all.
    """

    dynamic = True
    blocking = False

    def __init__(self, min_run_s: float = 600.0, preempt: bool = True) -> None:
        self.min_run_s = _nonneg("min_run_s", min_run_s)
        self.preemptive = _flag("preempt", preempt)

    @staticmethod
    def rho(job: JobView, now: float) -> float:
        """Finish-time fairness ratio of the job at ``now`` (1 = as if alone from submission)."""
        return (now - job.submit_s + job.remaining_s) / max(job.ideal_s, _EPS)

    def key(self, job: JobView, view: ClusterView | None = None) -> tuple[float, float, int]:
        now = view.now if view is not None else job.submit_s
        return (-self.rho(job, now), job.submit_s, job.id)

    def preempt(self, view: ClusterView) -> list[int]:
        if not self.preemptive:
            return []
        return ideal_set_victims(view, lambda j: self.key(j, view), min_run_s=self.min_run_s)

    def next_event(self, view: ClusterView) -> float | None:
        if not self.preemptive or not view.jobs_pending:
            return None
        now = view.now
        times = []
        lease = lease_expiry(view, self.min_run_s)
        if lease is not None:
            times.append(lease)
        ready = [r for r in view.jobs_running
                 if r.run_start_s is not None and now - r.run_start_s >= self.min_run_s - _EPS]
        if ready:
            floor = min(self.rho(r, now) for r in ready)
            for p in view.jobs_pending:  # when p's growing ρ passes the smallest running ρ
                t = p.submit_s - p.remaining_s + floor * max(p.ideal_s, _EPS)
                if t > now + 1e-6:
                    times.append(t)
        return min(times) if times else None

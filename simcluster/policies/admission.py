"""Admission policies: accept or reject a job when it is submitted.

Each policy has ``admit(job, view) -> str | None``: None accepts, a string rejects the job with
that reason (it ends in state ``rejected``). Registered by name in :data:`ADMISSION_POLICIES`
(Blox, Agarwal et al. EuroSys'24, separates admission control the same way).

>>> from simcluster.policies.view import StaticJob, StaticView
>>> view = StaticView([4], pending=[StaticJob(1, size=4), StaticJob(2, size=4)])
>>> AcceptAll().admit(StaticJob(3), view) is None
True
>>> LoadBased(max_load=2.0).admit(StaticJob(3), view)
'queued GPU demand 9 would exceed 2 × the cluster (4 GPUs)'
"""

from __future__ import annotations

from collections.abc import Mapping

from simcluster.policies.view import ClusterView, JobView
from simcluster.registry import Registry

__all__ = ["ADMISSION_POLICIES", "AcceptAll", "LoadBased", "MaxQueue", "TenantCap"]

ADMISSION_POLICIES: Registry[type] = Registry("admission policy")


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    return float(value)


@ADMISSION_POLICIES.register("accept_all")
class AcceptAll:
    """Accept every job that can ever fit the cluster."""

    def admit(self, job: JobView, view: ClusterView) -> str | None:
        return None


@ADMISSION_POLICIES.register("max_queue")
class MaxQueue:
    """Reject a job when ``limit`` jobs are already waiting (a bounded queue: M/M/c/K).

    Args:
        limit: the most jobs that may wait.
    """

    def __init__(self, limit: int = 100) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise TypeError(f"limit must be a non-negative integer, got {limit!r}")
        self.limit = limit

    def admit(self, job: JobView, view: ClusterView) -> str | None:
        if len(view.jobs_pending) >= self.limit:
            return f"queue full ({self.limit} jobs waiting)"
        return None


@ADMISSION_POLICIES.register("load")
class LoadBased:
    """Reject a job when the queued GPU demand, with it, would exceed ``max_load`` × the
    cluster's GPUs (Blox's load-based admission).

    Args:
        max_load: queued GPUs per cluster GPU that may wait.
    """

    def __init__(self, max_load: float = 2.0) -> None:
        self.max_load = _positive("max_load", max_load)

    def admit(self, job: JobView, view: ClusterView) -> str | None:
        total = len(view.gpu_host)
        demand = sum(j.request.gpus for j in view.jobs_pending) + job.request.gpus
        if demand > self.max_load * total + 1e-9:
            return (f"queued GPU demand {demand:g} would exceed {self.max_load:g} × the cluster "
                    f"({total} GPUs)")
        return None


@ADMISSION_POLICIES.register("tenant_cap")
class TenantCap:
    """Reject a tenant's job when the tenant already holds or waits for ``caps[tenant]`` GPUs
    (a hard per-tenant limit, as quota systems enforce at submit).

    Args:
        caps: tenant → most GPUs running plus queued; unlisted tenants are not capped.
    """

    def __init__(self, caps: Mapping[str, float] | None = None) -> None:
        self.caps = {k: _positive(f"caps.{k}", v) for k, v in (caps or {}).items()}

    def admit(self, job: JobView, view: ClusterView) -> str | None:
        cap = self.caps.get(job.tenant)
        if cap is None:
            return None
        held = sum(j.request.gpus for j in (*view.jobs_running, *view.jobs_pending)
                   if j.tenant == job.tenant)
        if held + job.request.gpus > cap + 1e-9:
            return f"tenant {job.tenant!r} would exceed its cap of {cap:g} GPUs"
        return None

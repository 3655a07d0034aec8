"""Job streams from a scenario's workload: explicit lists and Poisson arrivals of a mix.

Streams are lazy iterators in submission order, so a run holds only the jobs that have arrived.
Arrival times come from the ``arrivals`` stream; each job's class, size and run time from a
generator keyed by the job's id (DESIGN.md convention 2), so that two policies compared under one
seed see the same jobs.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from simcluster.rng import Streams
from simcluster.scenario import JobEntry, MixEntry, Preset, WorkloadConfig
from simcluster.workload.distributions import pick, sample
from simcluster.workload.fit import preset_jobs
from simcluster.workload.jobs import JobSpec, Request
from simcluster.workload.traces import TraceReport, trace_jobs

__all__ = ["TRACE_ID_SPAN", "explicit_jobs", "job_stream", "poisson_jobs"]

TRACE_ID_SPAN = 10**9  # first id of generated jobs when a trace is replayed too


def _request(entry: JobEntry | MixEntry, gpus: float) -> Request:
    return Request(gpus=gpus, gpu_type=entry.gpu_type, cpus_per_gpu=entry.cpus_per_gpu,
                   memory_per_gpu=entry.memory_per_gpu)


def explicit_jobs(entries: list[JobEntry], first_id: int = 0) -> Iterator[JobSpec]:
    """The listed jobs in submission order (ties keep file order)."""
    order = sorted(range(len(entries)), key=lambda i: (entries[i].submit, i))
    for offset, i in enumerate(order):
        e = entries[i]
        yield JobSpec(id=first_id + offset, submit_s=e.submit, request=_request(e, e.gpus),
                      model=e.model, tenant=e.tenant, run_time_s=e.run_time,
                      iterations=e.iterations, fidelity=e.fidelity,
                      parallelism=tuple(e.parallelism.model_dump().items()) if e.parallelism
                      else None)


def poisson_jobs(workload: WorkloadConfig, streams: Streams, horizon: float | None,
                 first_id: int = 0) -> Iterator[JobSpec]:
    """Poisson arrivals of the mix, until ``workload.count`` jobs or the horizon."""
    assert workload.arrivals is not None
    arrivals = streams.get("arrivals")
    weights = [m.weight for m in workload.mix]
    t, n = 0.0, 0
    while workload.count is None or n < workload.count:
        t += float(arrivals.exponential(1.0 / workload.arrivals.rate))
        if horizon is not None and t >= horizon:  # the run ends before events at the horizon
            return
        job_id = first_id + n
        rng = streams.for_entity("jobs", job_id)
        entry = workload.mix[pick(weights, rng)]
        gpus = sample(entry.gpus, rng)
        run_time = sample(entry.run_time, rng)
        yield JobSpec(id=job_id, submit_s=t, request=_request(entry, gpus), model=entry.model,
                      tenant=entry.tenant, run_time_s=run_time, fidelity=entry.fidelity,
                      parallelism=(tuple(entry.parallelism.model_dump().items())
                                   if entry.parallelism else None))
        n += 1


def job_stream(workload: WorkloadConfig, streams: Streams,
               horizon: float | None, report: TraceReport | None = None) -> Iterator[JobSpec]:
    """All of a workload's jobs, merged in submission order.

    Listed jobs take ids 0..len(jobs)-1; generated jobs follow (trace jobs follow the listed
    ones, and generated jobs next to a trace take ids from :data:`TRACE_ID_SPAN`). ``report``
    is filled as a ``[workload.trace]`` is read.
    """
    listed = explicit_jobs(list(workload.jobs))
    first = len(workload.jobs)
    if workload.trace is not None:  # [workload.trace] replay (issue 6)
        replay = trace_jobs(workload.trace, streams, first_id=first, report=report)
        listed = heapq.merge(listed, replay, key=lambda j: (j.submit_s, j.id))
        first = TRACE_ID_SPAN
    if workload.arrivals is None:
        return listed
    if isinstance(workload.arrivals, Preset):  # a fitted preset (simcluster.workload.fit)
        generated = preset_jobs(workload.arrivals, streams, horizon, workload.count,
                                first_id=first)
    else:
        generated = poisson_jobs(workload, streams, horizon, first_id=first)
    return heapq.merge(listed, generated, key=lambda j: (j.submit_s, j.id))

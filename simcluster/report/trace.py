"""Chrome-trace / Perfetto export of a run: jobs on GPUs over time, and jobs waiting.

Open the JSON in https://ui.perfetto.dev or chrome://tracing. Each host is a process and each
GPU a thread; every run of a job on its GPUs is a slice (named by job and tenant), preemptions,
failures and re-queues are instant markers, and a "queue" process shows each job's wait from
submission (or re-queue) to start as an async slice. Built from the scheduling event log, so the
run needs ``trace_events=True`` (``simcluster run --perfetto FILE`` turns it on).

>>> import simcluster
>>> s = simcluster.load_scenario("scenarios/quickstart.toml", ["workload.count=3"])
>>> doc = chrome_trace(simcluster.run(s, trace_events=True))
>>> sorted({e["ph"] for e in doc["traceEvents"]})
['M', 'X', 'b', 'e']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simcluster.metrics.results import Results
from simcluster.topology import Topology

__all__ = ["chrome_trace", "write_chrome_trace"]

_US = 1e6  # trace timestamps are microseconds; simulated seconds map to them


def chrome_trace(results: Results, topology: Topology | None = None) -> dict[str, Any]:
    """The run as a Chrome trace document (``{"traceEvents": [...]}``).

    Args:
        results: a run made with ``trace_events=True``.
        topology: the cluster, to name hosts and GPUs (``gpu 3`` on one process without it).

    Raises:
        ValueError: the run kept no event log.
    """
    events = results.events
    if events is None or (events.empty and "event" not in events.columns):
        raise ValueError("the run kept no event log: run it with trace_events=True")
    jobs = results.jobs.set_index("job_id") if len(results.jobs) else None
    end_s = float(results.meta.get("end_s", events["t"].max()))
    queue_pid = len(topology.hosts) if topology is not None else 1
    out: list[dict[str, Any]] = []
    gpu_names: set[int] = set()

    def host_of(g: int) -> int:
        return int(topology.gpu_host[g]) if topology is not None else 0

    def label(job: int) -> str:
        if jobs is not None and job in jobs.index:
            return f"job {job} ({jobs.at[job, 'tenant']}, {jobs.at[job, 'model']})"
        return f"job {job}"

    running: dict[int, tuple[float, list[int]]] = {}
    queued: dict[int, float] = {}

    def close(job: int, t: float) -> None:
        start, gpus = running.pop(job)
        for g in gpus:
            gpu_names.add(g)
            out.append({"name": label(job), "cat": "job", "ph": "X", "ts": start * _US,
                        "dur": max(t - start, 0.0) * _US, "pid": host_of(g), "tid": g,
                        "args": {"job": job, "gpus": len(gpus)}})

    def wait_end(job: int, t: float) -> None:
        if job in queued:
            out.append({"name": label(job), "cat": "queue", "ph": "b", "id": job,
                        "ts": queued.pop(job) * _US, "pid": queue_pid, "tid": 0})
            out.append({"name": label(job), "cat": "queue", "ph": "e", "id": job,
                        "ts": t * _US, "pid": queue_pid, "tid": 0})

    for t, event, job, gpus, detail in events[["t", "event", "job", "gpus",
                                                "detail"]].itertuples(index=False):
        job, t = int(job), float(t)
        if event in ("submit", "requeue"):
            queued[job] = t
        if event == "start":
            wait_end(job, t)
            running[job] = (t, [int(g) for g in str(gpus).split()])
        elif event in ("end", "requeue") and job in running:
            close(job, t)
        if event in ("preempt", "stop", "requeue", "reject"):
            pid = queue_pid if job not in running else host_of(running[job][1][0])
            tid = 0 if job not in running else running[job][1][0]
            out.append({"name": f"{event}: {detail}", "cat": event, "ph": "i", "s": "t",
                        "ts": t * _US, "pid": pid, "tid": tid, "args": {"job": job}})
    for job in list(running):  # still running at the horizon
        close(job, end_s)
    for job in list(queued):
        wait_end(job, end_s)
    meta: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": queue_pid, "tid": 0,
         "args": {"name": "queue (waiting jobs)"}}]
    hosts = {host_of(g) for g in gpu_names}
    for h in sorted(hosts):
        name = topology.hosts[h] if topology is not None else "GPUs"
        meta.append({"name": "process_name", "ph": "M", "pid": h, "tid": 0,
                     "args": {"name": name}})
    for g in sorted(gpu_names):
        name = topology.gpus[g] if topology is not None else f"gpu {g}"
        meta.append({"name": "thread_name", "ph": "M", "pid": host_of(g), "tid": g,
                     "args": {"name": name}})
    return {"traceEvents": meta + out, "displayTimeUnit": "ms",
            "otherData": {"scenario": str(results.scenario.get("name", "")),
                          "seed": results.seed, "time_unit": "1 us = 1 simulated s / 1e6"}}


def write_chrome_trace(results: Results, path: str | Path,
                       topology: Topology | None = None) -> Path:
    """Write :func:`chrome_trace` as JSON to ``path``."""
    path = Path(path)
    path.write_text(json.dumps(chrome_trace(results, topology)))
    return path

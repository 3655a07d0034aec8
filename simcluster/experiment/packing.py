"""GPU allocation ratio as arrived demand grows: the packing experiment of Weng et al.,
"Beware of Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent",
USENIX ATC'23 (their "Monte-Carlo workload inflation", Fig. 7/9).

Pods are drawn with replacement from a trace (stream ``packing/pods``: every placement policy
sees the same pods in the same order, common random numbers) and arrive one a second; they never
leave. A pod is placed by the placement policy when it arrives, or fails (it is rejected: in the
ATC'23 experiment an unschedulable pod fails; it does not wait). Arrivals stop once the arrived
GPU demand reaches ``max_demand`` x the cluster's GPUs. The curve is the allocated GPU share
versus the arrived demand, both in percent of the cluster's GPUs.

This runs the ordinary engine (scheduler, allocation, the registered placement policy) on a
scenario whose workload is the sampled pods; only two thin wrappers are added to the scheduler:
admission asks the placement policy whether the pod fits now, and the placement then reuses
that answer (so each pod is placed once).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from simcluster.engine.simulation import Simulation
from simcluster.errors import UserError
from simcluster.policies.sharing import target_workload
from simcluster.rng import Streams
from simcluster.scenario import Scenario
from simcluster.scenario_traces import resolve_data_path
from simcluster.workload.jobs import JobSpec
from simcluster.workload.traces import read_trace

__all__ = ["FOREVER_S", "PlaceNow", "allocation_curve", "sample_pods"]

FOREVER_S = 1e12  # run time of a pod: it never leaves during the experiment


def sample_pods(scenario: Scenario, capacity: float, max_demand: float,
                seed: int) -> list[JobSpec]:
    """Pods drawn with replacement from the scenario's trace until their GPU demand reaches
    ``max_demand`` x ``capacity``; pod i arrives at i s and runs "forever"."""
    trace = scenario.workload.trace
    if trace is None:
        raise UserError("the packing experiment needs a [workload.trace] of pods")
    pods = list(read_trace(trace.format, resolve_data_path(trace.path),
                           on_bad_row=trace.on_bad_row, mapping=trace.mapping or None,
                           transforms=trace.transforms, seed=seed, model=trace.model,
                           gpu_types=trace.gpu_types, host_resources=trace.host_resources,
                           gpu_labels=trace.gpu_labels))
    if not pods:
        raise UserError(f"{trace.path}: no GPU pods to sample")
    rng = Streams(seed).get("packing/pods")
    mean = float(np.mean([p.request.gpus for p in pods]))
    draws = rng.integers(0, len(pods), size=int(max_demand * capacity / mean * 1.5) + 16)
    out, demand = [], 0.0
    for i, k in enumerate(draws):
        if demand >= max_demand * capacity:
            break
        pod = pods[int(k)]
        out.append(JobSpec(id=i, submit_s=float(i), request=pod.request, model=pod.model,
                           tenant=pod.tenant, run_time_s=FOREVER_S, fidelity="duration"))
        demand += pod.request.gpus
    return out


class PlaceNow:
    """Admission and placement of the packing experiment: a pod is admitted only if the
    placement policy places it now, and is then placed where that answer said."""

    job_aware = True

    def __init__(self, placement: Any) -> None:
        self.placement = placement
        self._chosen: dict[int, tuple[int, ...]] = {}

    def admit(self, job: Any, view: Any) -> str | None:
        gpus = self.placement.place(job.request, view)
        if gpus is None:
            return "does not fit now (pods fail rather than wait)"
        self._chosen[job.id] = gpus
        return None

    def place(self, request: Any, view: Any, job: Any = None) -> tuple[int, ...] | None:
        if job is not None and job.id in self._chosen:
            return self._chosen.pop(job.id)
        return self.placement.place(request, view)


def trace_target(scenario: Scenario, seed: int = 0) -> list[dict]:
    """FGD's target workload: the task types of the scenario's pod trace (the pods the
    experiment samples from) by popularity (:func:`~simcluster.policies.sharing.target_workload`).

    Raises:
        UserError: the scenario has no ``[workload.trace]``.
    """
    trace = scenario.workload.trace
    if trace is None:
        raise UserError("the packing experiment needs a [workload.trace] of pods")
    pods = read_trace(trace.format, resolve_data_path(trace.path), on_bad_row=trace.on_bad_row,
                      mapping=trace.mapping or None, transforms=trace.transforms, seed=seed,
                      model=trace.model, gpu_types=trace.gpu_types,
                      host_resources=trace.host_resources, gpu_labels=trace.gpu_labels)
    return target_workload(p.request for p in pods)


def allocation_curve(scenario: Scenario, policies: Sequence[str], max_demand: float = 1.3,
                     step: float = 0.05, seed: int | None = None) -> pd.DataFrame:
    """GPU allocation ratio vs arrived GPU demand, per placement policy.

    Args:
        scenario: cluster (e.g. ``nodes_from`` the openb node list) and a pod trace.
        policies: placement policy names.
        max_demand: arrivals stop at this multiple of the cluster's GPUs (1.3 = 130%).
        step: report every ``step`` of demand (0.05 = every 5%).
        seed: seed of the pod sample (the scenario's ``run.seed`` if None).

    Returns:
        Columns ``policy``, ``arrived_demand_pct``, ``allocated_pct``, ``failed_pods``.
    """
    seed = scenario.run.seed if seed is None else seed
    rows = []
    pods: list[JobSpec] | None = None
    for name in policies:
        sized = scenario.model_copy(update={
            "policy": scenario.policy.model_copy(update={"placement": name, "queue": "fifo",
                                                         "queue_params": {"blocking": False}}),
            "workload": scenario.workload.model_copy(update={"checkpoint_interval": 0.0}),
            "run": scenario.run.model_copy(update={"fidelity": "duration", "horizon": None})})
        sim = Simulation(sized, seed=seed)
        capacity = float(len(sim.topology.gpus))
        if pods is None:
            pods = sample_pods(scenario, capacity, max_demand, seed)
        wrapper = PlaceNow(sim.scheduler.placement_policy)
        sim.scheduler.placement_policy = wrapper
        sim.scheduler.admission_policy = wrapper
        rows += _curve(sim, pods, capacity, name, max_demand, step)
    return pd.DataFrame(rows, columns=["policy", "arrived_demand_pct", "allocated_pct",
                                       "failed_pods"])


def _curve(sim: Simulation, pods: list[JobSpec], capacity: float, name: str,
           max_demand: float, step: float) -> list[tuple[str, float, float, int]]:
    """Run the arrivals, reading the allocated share each time demand crosses a step."""
    env = sim.env
    env.process(sim._arrivals(iter(pods)))
    marks = iter(np.arange(step, max_demand + step / 2, step))
    mark = next(marks, None)
    out = [(name, 0.0, 0.0, 0)]
    arrived = 0.0
    for n, pod in enumerate(pods, start=1):
        env.run(until=pod.submit_s + 0.5)  # the pod's arrival and its scheduling pass
        arrived += pod.request.gpus
        while mark is not None and arrived >= mark * capacity - 1e-9:
            failed = n - len(sim.scheduler.running)
            out.append((name, round(100.0 * mark, 6),
                        100.0 * sim.cluster.allocated / capacity, failed))
            mark = next(marks, None)
    return out

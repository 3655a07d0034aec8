"""A layout job's gradient traffic as one collective plan (DESIGN.md "Collectives as flows").

A job with a parallel layout reduces its gradients per data-parallel group
(:func:`simcluster.perf.iteration.gradient_collectives`): every group's collective at once, each
over that group's GPUs (one per node and rail when TP fills the node). The groups' plans are
merged stage by stage into one plan, run once per iteration at ``iteration`` fidelity, and turned
into capped streams, one per ring, at ``coarse`` fidelity.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import zip_longest
from typing import Any

from simcluster.engine.collectives import CollectivePlan, Stage, plan_collective
from simcluster.engine.training import TrainingJob

__all__ = ["layout_plan", "path_bytes"]


def layout_plan(sim: Any, job: TrainingJob) -> CollectivePlan:
    """A layout job's gradient traffic of one iteration as one plan: each collective's groups
    side by side (stage by stage), the collectives one after another, each group on the
    algorithm and protocol its uncontended time was priced with."""
    net, perf = sim.network, sim.perf
    it = perf.iteration(job.model, job.allocation.gpus, job.allocation.share)
    stages: list[Stage] = []
    for coll in it.collectives:
        plans = [plan_collective(net, group, coll.op, coll.nbytes, algo=algo, nvls=perf.nvls,
                                 proto=proto)
                 for group, algo, proto in zip(coll.groups, coll.algorithms, coll.protocols,
                                               strict=True)]
        stages += [_repeat(st, coll.repeat) for st in _side_by_side(plans)]
    return CollectivePlan("+".join(c.op for c in it.collectives), it.algorithm, tuple(stages))


def _side_by_side(plans: list[CollectivePlan]) -> list[Stage]:
    """Stage i of every plan at once: the longest latency wait, then all their flows (the
    stage ends with the last). Exact for groups of one shape, as a layout's are on a regular
    placement; groups whose protocols cap their flows differently keep the highest cap."""
    out = []
    for parts in zip_longest(*(p.stages for p in plans)):
        parts = [st for st in parts if st is not None]
        out.append(replace(
            parts[0], seconds=max(st.seconds for st in parts), nbytes=0.0,
            paths=tuple(path for st in parts for path in st.paths),
            sizes=tuple(size for st in parts for size in _sizes(st)),
            cap=max(st.cap for st in parts)))
    return out


def _sizes(stage: Stage) -> tuple[float, ...]:
    return stage.sizes or (stage.nbytes,) * len(stage.paths)


def _repeat(stage: Stage, times: int) -> Stage:
    """``times`` runs of ``stage`` back to back as one (the same time uncontended: latency and
    bytes add up), so that many small collectives make a few flows."""
    if times == 1:
        return stage
    return replace(stage, seconds=stage.seconds * times, nbytes=stage.nbytes * times,
                   sizes=tuple(size * times for size in stage.sizes))


def path_bytes(plan: CollectivePlan) -> dict[tuple[int, ...], float]:
    """Bytes each distinct path of ``plan`` carries per execution."""
    out: dict[tuple[int, ...], float] = {}
    for st in plan.stages:
        for path, size in zip(st.paths, _sizes(st), strict=True):
            out[path] = out.get(path, 0.0) + size
    return out

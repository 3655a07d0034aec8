"""Scenario schema of how inference services share the cluster (``[serving]``, issue 7).

The services themselves are ``[[services]]`` entries (:mod:`simcluster.scenario_serving`); this
table holds what concerns all of them: replica cold starts and whether serving may preempt
training.

>>> ServingOptions().cold_start, ServingOptions().preempt_training
(30.0, False)
"""

from __future__ import annotations

from pydantic import Field

from simcluster.scenario import Time, _Model

__all__ = ["ServingOptions"]


class ServingOptions(_Model):
    """``[serving]``: cluster-wide options of inference services.

    Attributes:
        cold_start: fixed part of a replica's start (container, engine and CUDA-graph setup)
            before its weights are read, s. Default 30 s: an assumption, not a measurement;
            set it from your own start times.
        load_weights: a starting replica reads its weights from the storage servers as flows
            (so replicas starting together contend); false skips the read.
        preempt_training: a replica that finds no free GPUs stops running training jobs (they
            checkpoint and re-queue, as under a preempting queue policy).
        preempt_tenants: only jobs of these tenants may be preempted (empty: any job).
    """

    cold_start: Time = 30.0
    load_weights: bool = True
    preempt_training: bool = False
    preempt_tenants: list[str] = Field(default_factory=list)

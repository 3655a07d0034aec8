"""The ``[failures]`` table: failure processes, maintenance windows, a failure trace, and the
checkpoint policy (see :mod:`simcluster.engine.failures`).

>>> cfg = FailuresConfig.model_validate({"processes": [
...     {"component": "gpu", "mtbf": "50000h", "repair": {"kind": "constant", "value": "4h"}}]})
>>> cfg.processes[0].mtbf
180000000.0
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from simcluster.scenario import Constant, Distribution, Time, _check_name, _Model, _quantity

__all__ = ["COMPONENTS", "CheckpointConfig", "FailureProcess", "FailuresConfig",
           "MaintenanceWindow", "Straggler"]

COMPONENTS = ("gpu", "host", "nic", "link", "switch", "storage")

PositiveTime = Annotated[float, _quantity("time"), Field(gt=0)]


class FailureProcess(_Model):
    """``[[failures.processes]]``: failures of one component kind.

    Attributes:
        component: ``gpu``, ``host``, ``nic``, ``link`` (a NIC's uplink to its leaf), ``switch``
            (a leaf switch: its rack) or ``storage`` (a storage server).
        distribution: time to failure of each component, ``exponential`` or ``weibull``.
        mtbf: mean time between failures of one component (s).
        rate_per_1000_node_days: or the kind's failures per 1,000 node-days, as reliability
            studies report them (Kokolis et al. 2024); per component it is divided by the
            components per node.
        shape: Weibull shape k (k < 1: infant mortality; k = 1 is exponential).
        repair: time until the component is back (repair or replacement). Default 4 h: an
            assumption, not a measurement.
        scope: ``component``, or a correlated failure taking the whole ``host`` or ``rack``.
    """

    component: Literal["gpu", "host", "nic", "link", "switch", "storage"]
    distribution: Literal["exponential", "weibull"] = "exponential"
    mtbf: PositiveTime | None = None
    rate_per_1000_node_days: Annotated[float, Field(gt=0)] | None = None
    shape: Annotated[float, Field(gt=0)] = 1.0
    repair: Distribution = Constant(value=4 * 3600.0)
    scope: Literal["component", "host", "rack"] = "component"

    @model_validator(mode="after")
    def _one_rate(self) -> FailureProcess:
        if (self.mtbf is None) == (self.rate_per_1000_node_days is None):
            raise ValueError("give exactly one of mtbf or rate_per_1000_node_days")
        return self


class Straggler(_Model):
    """``[[failures.stragglers]]``: episodes in which a GPU or a host runs at a fraction of its
    speed; every synchronous job on it runs at that pace for the episode (``duration`` and
    ``coarse`` fidelity).

    Attributes:
        component: ``gpu`` or ``host``.
        mtbf: mean time between episodes of one component (exponential).
        speed: fraction of normal speed during an episode (0 < speed < 1).
        duration: how long an episode lasts.
    """

    component: Literal["gpu", "host"]
    mtbf: PositiveTime
    speed: Annotated[float, Field(gt=0, lt=1)]
    duration: Distribution


class MaintenanceWindow(_Model):
    """``[[failures.maintenance]]``: planned drains of hosts. Jobs on the hosts checkpoint and
    re-queue at ``start``; the hosts come back ``duration`` later; repeats every ``every``.

    Attributes:
        start: first window (s). duration: its length (s). every: period (s), None: once.
        hosts: host indices drained.
    """

    start: Time
    duration: PositiveTime
    every: PositiveTime | None = None
    hosts: list[Annotated[int, Field(ge=0)]] = Field(min_length=1)


class CheckpointConfig(_Model):
    """``failures.checkpoint``: when jobs checkpoint, and how.

    Attributes:
        policy: registered checkpoint policy: ``fixed_time`` (param ``interval_s``; default
            ``workload.checkpoint_interval``), ``fixed_iterations`` (``iterations``), ``young``,
            ``daly`` (from the job's failure rate and measured checkpoint time).
        params: the policy's parameters.
        asynchronous: snapshot to host memory (blocking, at PCIe speed), then drain to storage
            in the background while training goes on; a checkpoint counts once durable
            (``duration`` and ``coarse`` fidelity; ``iteration`` jobs write synchronously).
        write: fixed time of one checkpoint write (s) instead of the storage model; the only
            checkpoint cost at ``duration`` fidelity (where checkpoints are otherwise free).
        read: fixed time to read a checkpoint back on restart (s); default: the write time.
    """

    policy: str = "fixed_time"
    params: dict[str, Any] = {}
    asynchronous: bool = False
    write: Time | None = None
    read: Time | None = None

    _policy = field_validator("policy")(
        lambda v, info: _check_name("checkpoint policy", v, info))


class FailuresConfig(_Model):
    """``[failures]``: what fails, when, and how jobs checkpoint.

    Attributes:
        processes: random failure processes. stragglers: slow-down episodes.
        maintenance: planned windows.
        trace: CSV of failures to replay (columns ``time_s``, ``component`` such as ``gpu:12``
            or a topology name like ``rack0/node3``, optional ``repair_s``).
        hot_spares: nodes (the last ones) kept out of placement; a failure swaps the failed
            node for a healthy spare at once (the stopped jobs restart on it), and the failed
            node joins the spares once repaired.
        checkpoint: the checkpoint policy.
    """

    processes: list[FailureProcess] = []
    stragglers: list[Straggler] = []
    maintenance: list[MaintenanceWindow] = []
    trace: str | None = None
    hot_spares: int = Field(0, ge=0)
    checkpoint: CheckpointConfig = CheckpointConfig()

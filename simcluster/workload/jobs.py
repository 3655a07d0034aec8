"""Job specifications: what a job asks for and how much work it is.

A training job's work is a number of iterations (DESIGN.md "What a job's work is"). A job given
by run time carries ``run_time_s`` (uncontended run time on the requested GPUs) and the engine
converts it to iterations through the perf model when the job is submitted.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["JobSpec", "Request"]


@dataclass(frozen=True, slots=True)
class Request:
    """A resource vector: what a job (or an inference replica) asks the cluster for.

    Attributes:
        gpus: whole GPUs (an integer >= 1) or a fraction of one GPU (0 < gpus < 1).
        gpu_type: required GPU catalog name, or None for any.
        cpus_per_gpu: CPU cores per GPU (None: the node's cores / GPUs, a proportional share).
        memory_per_gpu: host memory bytes per GPU (None: proportional share).
    """

    gpus: float
    gpu_type: str | None = None
    cpus_per_gpu: float | None = None
    memory_per_gpu: float | None = None

    @property
    def whole(self) -> int:
        """Number of whole GPUs (1 for a fractional request)."""
        return max(1, int(self.gpus))

    @property
    def fractional(self) -> bool:
        """True when the request is a fraction of one GPU."""
        return self.gpus < 1.0


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One training job as submitted.

    Attributes:
        id: unique within a simulation.
        submit_s: submission time (s).
        request: resources asked for.
        model: model catalog name.
        tenant: owner (user, team or virtual cluster).
        run_time_s: uncontended run time on the requested GPUs, if the work is given in time.
        iterations: work in iterations, if given directly.
        fidelity: this job's fidelity, or None for the scenario's.
        parallelism: the layout (the scenario's ``parallelism`` fields as (key, value)
            pairs), or None for plain data parallelism.
    """

    id: int
    submit_s: float
    request: Request
    model: str
    tenant: str = "default"
    run_time_s: float | None = None
    iterations: int | None = None
    fidelity: str | None = None
    parallelism: tuple[tuple[str, object], ...] | None = None

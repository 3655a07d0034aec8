"""``parallelism`` of a training job in a scenario file (issue 4).

A job without it is plain data parallel over its GPUs (the simulator's default). With it, the job
runs with the layout given, its step time comes from :mod:`simcluster.perf.step`, and a job
whose model state and activations do not fit in its GPUs' memory is rejected at submit.

```toml
[[workload.jobs]]
model = "llama-2-70b"
gpus = 64
iterations = 100
parallelism = { tp = 8, pp = 2, zero = 1, recompute = "selective" }
```

Kept free of :mod:`simcluster.scenario` imports (its ``JobFields`` imports this model), with the
same pydantic configuration as its ``_Model``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TrainingParallelism"]


class TrainingParallelism(BaseModel):
    """How a training job is split over its GPUs (``dp`` is derived when omitted).

    Attributes:
        tp, pp, cp, ep, dp: tensor, pipeline, context, expert and data parallel sizes.
        zero: ZeRO stage 0-3. vp: interleaved virtual stages per GPU.
        micro_batch: sequences per micro-batch. global_batch: sequences per iteration (None:
            the model's default). recompute: none, selective or full.
        dp_overlap, tp_overlap: fractions of DP / TP traffic hidden under compute.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tp: int = Field(1, ge=1)
    pp: int = Field(1, ge=1)
    cp: int = Field(1, ge=1)
    ep: int = Field(1, ge=1)
    dp: int | None = Field(None, ge=1)
    zero: Literal[0, 1, 2, 3] = 0
    vp: int = Field(1, ge=1)
    micro_batch: int = Field(1, ge=1)
    global_batch: int | None = Field(None, ge=1)
    recompute: Literal["none", "selective", "full"] = "none"
    dp_overlap: float = Field(1.0, ge=0, le=1)
    tp_overlap: float = Field(0.0, ge=0, le=1)

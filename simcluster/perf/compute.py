"""Compute roofline: the time of a step on one GPU from FLOP and HBM bytes.

t = max(FLOP / (peak × efficiency), bytes / HBM bandwidth)   (Williams et al., CACM 2009)

>>> from simcluster.hardware import gpu
>>> roofline_time(989.4e12, 0.0, gpu("H100-SXM"), efficiency=0.5)
2.0
"""

from __future__ import annotations

from simcluster.hardware import GPUSpec

__all__ = ["TRAINING_HBM_BYTES_PER_PARAM", "roofline_time", "training_step_time"]

# HBM traffic of one data-parallel training step, per parameter of the local replica: BF16
# weights read in the forward and in the backward pass (2 × 2 B), BF16 gradient written (2 B) and
# read by the optimizer (2 B), Adam's FP32 master weight, momentum and variance read and written
# (2 × 12 B). Activations are left out, so this is a lower bound on traffic.
TRAINING_HBM_BYTES_PER_PARAM = 4.0 + 2.0 + 2.0 + 24.0


def roofline_time(flop: float, hbm_bytes: float, gpu: GPUSpec, efficiency: float = 0.5,
                  dtype: str = "bf16") -> float:
    """Seconds for ``flop`` FLOP that move ``hbm_bytes`` bytes through HBM on one GPU.

    Args:
        flop: floating-point operations.
        hbm_bytes: bytes read and written in HBM.
        gpu: the GPU.
        efficiency: achieved fraction of the dense peak, in (0, 1].
        dtype: the math precision whose peak applies.
    """
    if not 0.0 < efficiency <= 1.0:
        raise ValueError(f"efficiency must be in (0, 1], got {efficiency}")
    return max(flop / (gpu.peak(dtype) * efficiency), hbm_bytes / gpu.hbm_bandwidth)


def training_step_time(flop_per_iteration: float, params: float, n_gpus: int, gpu: GPUSpec,
                       efficiency: float, dtype: str = "bf16") -> float:
    """Forward + backward + optimizer time of one data-parallel iteration, seconds.

    The global batch's FLOP are split evenly over ``n_gpus``; each GPU holds a full replica,
    so its HBM traffic is :data:`TRAINING_HBM_BYTES_PER_PARAM` × ``params``.
    """
    return roofline_time(flop_per_iteration / n_gpus, TRAINING_HBM_BYTES_PER_PARAM * params,
                         gpu, efficiency, dtype)

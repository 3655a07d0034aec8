"""Achieved fraction of peak FLOP/s as a function of the work one GPU gets per layer.

A transformer layer's forward or backward pass on one GPU is a few large matrix multiplies plus
a fixed cost that does not shrink with the work (kernel launches, synchronisation, small
memory-bound kernels). With ``x`` the FLOP of one layer's pass on one GPU,

    time = x / (peak × e_max) + t_fixed   ⇒   efficiency(x) = e_max · x / (x + peak·e_max·t_fixed)

so large layers run at ``e_max`` and small ones far below it. ``e_max`` (the large-work limit of
the whole forward/backward, non-matmul kernels included) is set per GPU generation and dtype from
one published large run each, and then checked against other published runs of other sizes and
scales (tests/test_training_model.py); the same coefficients serve every model.

>>> round(efficiency("H100-SXM", "bf16", 1e15), 3)
0.57
>>> efficiency("H100-SXM", "bf16", 1e9) < 0.1
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from simcluster.errors import UserError
from simcluster.hardware import gpu as gpu_spec

__all__ = ["DEFAULTS", "Efficiency", "efficiency", "efficiency_of"]


@dataclass(frozen=True, slots=True)
class Efficiency:
    """Coefficients of the efficiency curve.

    Attributes:
        e_max: achieved fraction of the dense peak on large work, in (0, 1].
        fixed_s: fixed seconds per layer pass that do not scale with its FLOP.
        source: where the coefficients come from.
    """

    e_max: float
    fixed_s: float
    source: str = ""


# fixed_s: 20 µs per layer pass = about four kernel launches of ~5 µs that no large matmul hides
# (CUDA kernel launch latency of a few µs: NVIDIA technical blog "Getting started with CUDA
# Graphs", 2019). An assumption of scale only: it matters for small models alone, and no
# published run pins it.
_FIXED_S = 20e-6
# A100 BF16, e_max = 0.60: set between two published Megatron-LM runs, which it misses in
# opposite directions: 530B on 2,240 A100s, TP 8, PP 35, sequence parallelism and selective
# recomputation, 54.2% MFU (Korthikanti et al. 2022; our model: 50.5%), and 175B on 1,536 A100s,
# TP 8, PP 12, full recomputation, 141 TFLOP/s per GPU counting recomputation (Narayanan et al.
# SC'21 Table 2; our model: 149).
# H100/H200 BF16, e_max = 0.57: Llama 3 405B on 8,192 H100s (TP 8, PP 16, DP 64, 16M-token
# batches) reaches 430 TFLOP/s per GPU, 43% BF16 MFU (Dubey et al. 2024, Table 4; our model with
# 4 interleaved stages: 43.8%); checked against the 16,384-GPU rows (41%, ours 39.4%; 38% with
# CP 16 at 131k context, ours 43.0%) in tests/test_training_model.py.
# FP8: only the GEMMs run in FP8 and end-to-end speed-ups over BF16 are ~1.3-1.5x, not the 2x of
# the peaks; e_max = 0.4 × (2 × BF16 peak) ≈ 1.4 × the BF16 rate. AN ASSUMPTION: no controlled
# public FP8 vs BF16 comparison at scale was found; override it when you have one.
# B200: no published large-run MFU found; the H100 figures are reused (an assumption).
_A100 = Efficiency(0.60, _FIXED_S, "calibrated: Korthikanti et al. 2022 530B and Narayanan "
                                   "et al. SC'21 175B Megatron-LM runs on A100")
_HOPPER = Efficiency(0.57, _FIXED_S, "calibrated: Dubey et al. 2024 Table 4, 405B on 8k H100")
_HOPPER_FP8 = Efficiency(0.40, _FIXED_S, "assumption: FP8 ≈ 1.4x the BF16 rate")
DEFAULTS: Mapping[tuple[str, str], Efficiency] = {
    **{(g, d): _A100 for g in ("A100-40GB", "A100-80GB") for d in ("bf16", "fp16")},
    **{(g, d): _HOPPER for g in ("H100-SXM", "H200", "B200") for d in ("bf16", "fp16")},
    **{(g, "fp8"): _HOPPER_FP8 for g in ("H100-SXM", "H200", "B200")},
}


def efficiency_of(gpu_name: str, dtype: str = "bf16",
                  overrides: Mapping[str, float] | None = None) -> Efficiency:
    """The coefficients for ``gpu_name`` and ``dtype``, with user ``overrides`` (keys e_max,
    fixed_s) applied.

    Raises:
        UserError: no default exists for the pair (e.g. FP8 on an A100) and none is given.
    """
    base = DEFAULTS.get((gpu_name, dtype))
    over = dict(overrides or {})
    if base is None:
        if "e_max" not in over:
            raise UserError(f"dtype {dtype!r} on {gpu_name}: no default efficiency (the GPU has "
                            f"no {dtype} tensor cores or no public figure); give e_max")
        base = Efficiency(over["e_max"], _FIXED_S, "user")
    bad = set(over) - {"e_max", "fixed_s"}
    if bad:
        raise UserError(f"efficiency: unknown coefficient(s) {', '.join(sorted(bad))}; "
                        "expected e_max, fixed_s")
    e_max, fixed = over.get("e_max", base.e_max), over.get("fixed_s", base.fixed_s)
    if not 0.0 < e_max <= 1.0 or fixed < 0:
        raise UserError(f"efficiency: e_max={e_max} must be in (0, 1], fixed_s={fixed} >= 0")
    return Efficiency(e_max, fixed, base.source if not over else "user override")


def efficiency(gpu_name: str, dtype: str, layer_flop: float,
               overrides: Mapping[str, float] | None = None) -> float:
    """Achieved fraction of the ``dtype`` peak for layer passes of ``layer_flop`` FLOP."""
    coef = efficiency_of(gpu_name, dtype, overrides)
    if layer_flop <= 0:
        return coef.e_max
    peak = gpu_spec(gpu_name).peak(dtype)
    return coef.e_max * layer_flop / (layer_flop + peak * coef.e_max * coef.fixed_s)

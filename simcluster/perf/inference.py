"""LLM inference performance model: one replica's iteration time, weights and KV cache.

A replica is one model copy sharded over ``tp`` GPUs (Megatron-style tensor parallelism). One
continuous-batching iteration runs ``prefill_tokens`` prompt tokens and one new token for each of
``decode_seqs`` sequences through the model together. Its time is one roofline over the whole
batch (Williams et al., CACM 2009) plus the tensor-parallel all-reduces:

    t = max(FLOP / (tp · peak · e_c), bytes / (tp · HBM bw · e_m)) + 2 · layers · allreduce(x)

* FLOP = 2 · N per token (Kaplan et al. 2020; N parameters) + attention:
  4 · layers · hidden per (query token, key token) pair (QKᵀ and AV), i.e. 4·L·d·kv_tokens for
  the cached tokens read, plus 2·L·d·p²/s for the causal self-attention of p fresh prompt tokens
  split over s sequences;
* bytes = weights once (all TP shards together) + KV cache read (kv_tokens) and written (one
  entry per new token);
* x = tokens · hidden · 2 B of BF16 activations, all-reduced twice per layer (after attention and
  after the MLP; Shoeybi et al., Megatron-LM 2019, section 3) over NVLink, latency-bound for small
  batches (α-β, :mod:`simcluster.perf.collectives`, plus NCCL's fixed cost per collective);
* mixture-of-experts models compute with their active parameters and read only the experts
  their tokens are routed to.

KV bytes per token = 2 · layers · kv_heads · head_dim · bytes (shared/reference/README.md).

>>> r = replica_perf("llama-2-7b", "H100-SXM")
>>> int(r.kv_bytes_per_token)
524288
>>> r.bound(0, 1, 1000), r.bound(4096, 0, 0)
('memory', 'compute')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from simcluster.errors import UserError, unknown_name
from simcluster.hardware import GPUS, LINK_EFFICIENCY, GPUSpec, node_spec
from simcluster.perf.collectives import Fabric, collective_cost
from simcluster.perf.models import MODELS, ModelSpec

__all__ = [
    "ACTIVATION_TOKENS",
    "BANDWIDTH_EFFICIENCY",
    "COMPUTE_EFFICIENCY",
    "DTYPE_BYTES",
    "KV_DTYPE_BYTES",
    "MAX_SEQS",
    "MEMORY_UTILIZATION",
    "ReplicaPerf",
    "replica_perf",
]

# Bytes per weight of each weight format. Group-wise quantisation scales (GPTQ/AWQ: one FP16
# scale per 128 weights, ~3% of int4) are left out.
DTYPE_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
# KV cache element size: BF16 unless set (vLLM's kv_cache_dtype "auto" = the model dtype, and
# weight-only quantisation keeps 16-bit activations and KV).
KV_DTYPE_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0}
# Fraction of each GPU's HBM the engine may use: vLLM's gpu_memory_utilization default 0.9
# (vLLM engine arguments; Red Hat AI Inference Server docs, "Key vLLM server arguments").
MEMORY_UTILIZATION = 0.9
# Tokens of one forward pass sized for the activation reserve: vLLM V1's default
# max_num_batched_tokens for the API server, 8192 (vLLM optimization docs).
ACTIVATION_TOKENS = 8192
# Largest number of running sequences: vLLM's max_num_seqs default, 256 (vLLM engine args).
MAX_SEQS = 256
# Achieved fraction of the dense peak in prefill GEMMs: 0.5, the training default of
# perf/models.py (Megatron-LM 52% of A100 peak, Narayanan et al. SC'21); prefill runs the same
# GEMM shapes as a training forward pass. An estimate for inference engines.
COMPUTE_EFFICIENCY = 0.5
# Achieved fraction of HBM bandwidth in decode (model bandwidth utilisation, MBU). ESTIMATE 0.8:
# streaming kernels reach ~85-90% of HBM peak (BabelStream-type copy benchmarks on A100/H100), and
# serving engines report batch-1 MBU of roughly 60-80% (Databricks/MosaicML, "LLM Inference
# Performance Engineering: Best Practices", 2023; not re-read for this figure). Checked against
# NVIDIA NIM's single-request Llama-3.3-70B FP8 TP2 figures on 2 x H100 (NIM benchmarking docs,
# LLM 1.0.0, "Performance"): the modelled decode step is ~21% shorter than the measured 18.6 ms
# inter-token latency, engine overheads included (tests/test_inference_model.py). Calibrate
# with overrides (bandwidth_efficiency, step_overhead_s).
BANDWIDTH_EFFICIENCY = 0.8


@dataclass(frozen=True, slots=True)
class ReplicaPerf:
    """The performance model of one inference replica (a TP group).

    Attributes:
        model, gpu: catalog specs.
        tp: tensor-parallel degree (GPUs per replica).
        dtype: weight format: bf16, fp16, fp8, int8, int4.
        weight_bytes: weights of the whole replica (all TP ranks), bytes.
        kv_bytes_per_token: KV cache of one token over all layers (whole replica), bytes.
        kv_capacity_tokens: tokens of KV cache that fit: HBM × memory utilisation, minus weights
            and the activation reserve, over kv_bytes_per_token (0 for models without KV).
        math_dtype: precision whose peak applies (int8/int4 weight-only, and fp8 on GPUs
            without FP8 tensor cores, run BF16 math after dequantisation).
        compute_efficiency, bandwidth_efficiency: achieved fractions of peak FLOP/s and HBM.
        activation_reserve_bytes: HBM held back for one forward's activations (whole replica).
        flop_per_token: linear-layer FLOP of one token (2 N of the active parameters).
        expert_bytes: bytes of all routed experts' weights (0 for dense models); a batch of T
            tokens reads the experts it touches, E·(1 − (1 − k/E)^T) of E per layer with
            top-k routing spread evenly (the expectation under uniform routing).
        allreduce_alpha_s: per-step latency of the TP all-reduce ring (NVLink hops), s; NCCL's
            base and per-protocol latencies come on top (perf.collectives.collective_cost).
        allreduce_base_s: extra fixed cost of one all-reduce beyond NCCL's own (e.g. a
            framework's launch overhead), s; 0 by default.
        allreduce_bw: NVLink bandwidth per GPU achieved by NCCL, bytes/s.
        step_overhead_s: fixed time per iteration (scheduling, sampling); 0 = lower bound.
        peak_flops: one GPU's dense peak in math_dtype, FLOP/s (filled in by replica_perf).
    """

    model: ModelSpec
    gpu: GPUSpec
    tp: int
    dtype: str
    weight_bytes: float
    kv_bytes_per_token: float
    kv_capacity_tokens: int
    math_dtype: str = "bf16"
    compute_efficiency: float = COMPUTE_EFFICIENCY
    bandwidth_efficiency: float = BANDWIDTH_EFFICIENCY
    activation_reserve_bytes: float = 0.0
    flop_per_token: float = 0.0
    expert_bytes: float = 0.0
    allreduce_alpha_s: float = 0.0
    allreduce_base_s: float = 0.0
    allreduce_bw: float = 0.0
    step_overhead_s: float = 0.0
    peak_flops: float = 0.0

    # --- one iteration -------------------------------------------------------------------------
    def flop(self, prefill_tokens: int, decode_seqs: int, kv_tokens: int,
             prefill_seqs: int = 1, cached_pairs: float = 0.0) -> float:
        """FLOP of one iteration (see the module docstring). ``cached_pairs``: attention pairs
        of prefill chunks with their cached prefix beyond the one read per sequence that
        ``kv_tokens`` counts (a chunk of c tokens after ctx cached ones attends c·ctx keys)."""
        tokens = prefill_tokens + decode_seqs
        arch = self.model.architecture
        if arch is None:
            return self.flop_per_token * tokens
        per_pair = 4.0 * arch.layers * arch.hidden
        fresh = prefill_tokens * prefill_tokens / (2.0 * max(1, prefill_seqs))
        return self.flop_per_token * tokens + per_pair * (kv_tokens + cached_pairs + fresh)

    def weights_read(self, tokens: int) -> float:
        """Weight bytes one iteration of ``tokens`` tokens reads (all of them for dense models;
        the experts its tokens are routed to for mixture-of-experts ones)."""
        arch = self.model.architecture
        if not self.expert_bytes or arch is None:
            return self.weight_bytes
        untouched = (1.0 - arch.experts_per_token / arch.experts) ** tokens
        return self.weight_bytes - self.expert_bytes * untouched

    def hbm_bytes(self, prefill_tokens: int, decode_seqs: int, kv_tokens: int) -> float:
        """HBM bytes of one iteration: weights once, KV read and the new tokens' KV written."""
        return self.weights_read(prefill_tokens + decode_seqs) + self.kv_bytes_per_token * (
            kv_tokens + prefill_tokens + decode_seqs)

    def compute_time(self, prefill_tokens: int, decode_seqs: int, kv_tokens: int,
                     prefill_seqs: int = 1, cached_pairs: float = 0.0) -> float:
        """FLOP over the replica's achieved peak, s."""
        peak = (self.peak_flops or self.gpu.peak(self.math_dtype)) * self.compute_efficiency
        return self.flop(prefill_tokens, decode_seqs, kv_tokens, prefill_seqs,
                         cached_pairs) / (peak * self.tp)

    def memory_time(self, prefill_tokens: int, decode_seqs: int, kv_tokens: int) -> float:
        """HBM bytes over the replica's achieved bandwidth, s."""
        bw = self.gpu.hbm_bandwidth * self.bandwidth_efficiency * self.tp
        return self.hbm_bytes(prefill_tokens, decode_seqs, kv_tokens) / bw

    def comm_time(self, tokens: int) -> float:
        """Tensor-parallel all-reduces of one iteration over ``tokens`` tokens, s."""
        arch = self.model.architecture
        if self.tp <= 1 or tokens <= 0 or arch is None:
            return 0.0
        # inside one node, without NVLS: NCCL's choice of algorithm and protocol for the size
        one = _tp_allreduce_s(self.tp, tokens * arch.hidden * 2.0, self.allreduce_bw,
                              self.allreduce_alpha_s)
        return 2 * arch.layers * (one + self.allreduce_base_s)

    def step_time(self, prefill_tokens: int, decode_seqs: int, kv_tokens: int,
                  prefill_seqs: int = 1, cached_pairs: float = 0.0) -> float:
        """One continuous-batching iteration, seconds.

        Args:
            prefill_tokens: prompt tokens processed this step (whole prompts or chunks).
            decode_seqs: sequences that each decode one token this step.
            kv_tokens: tokens of KV cache read this step (the decoding sequences' contexts and
                any cached prefix of chunked prompts).
            prefill_seqs: sequences the prefill tokens belong to (for their self-attention).
            cached_pairs: extra attention pairs of prefill chunks with their cached prefix
                (Σ (c − 1)·ctx over the chunks; see :meth:`flop`).

        Roofline over the whole batch (FLOP/(peak·eff·tp) vs (weights + KV bytes)/(HBM bw·tp))
        plus the TP all-reduces of every layer.
        """
        if prefill_tokens < 0 or decode_seqs < 0 or kv_tokens < 0:
            raise ValueError("token counts must be non-negative")
        tokens = prefill_tokens + decode_seqs
        if tokens == 0:
            return 0.0
        return (max(self.compute_time(prefill_tokens, decode_seqs, kv_tokens, prefill_seqs,
                                      cached_pairs),
                    self.memory_time(prefill_tokens, decode_seqs, kv_tokens))
                + self.comm_time(tokens) + self.step_overhead_s)

    def bound(self, prefill_tokens: int, decode_seqs: int, kv_tokens: int,
              prefill_seqs: int = 1) -> str:
        """Which roof limits the iteration: ``"compute"`` or ``"memory"``."""
        c = self.compute_time(prefill_tokens, decode_seqs, kv_tokens, prefill_seqs)
        return "compute" if c >= self.memory_time(prefill_tokens, decode_seqs, kv_tokens) \
            else "memory"

    def decode_step_times(self, decode_seqs: int, kv_tokens: int, steps: int) -> np.ndarray:
        """Times of ``steps`` consecutive decode iterations of an unchanged batch, s.

        Iteration k reads ``kv_tokens + k · decode_seqs`` KV tokens; both roofs are affine in
        them, so this is exact and vectorised (for advancing many iterations in one event):
        element k equals ``step_time(0, decode_seqs, kv_tokens + k * decode_seqs)``.
        """
        if decode_seqs <= 0 or steps <= 0:
            return np.zeros(max(0, steps))
        kv = kv_tokens + decode_seqs * np.arange(steps, dtype=float)
        arch = self.model.architecture
        flop = self.flop_per_token * decode_seqs + (
            4.0 * arch.layers * arch.hidden * kv if arch is not None else 0.0)
        peak = self.peak_flops or self.gpu.peak(self.math_dtype)
        compute = flop / (peak * self.compute_efficiency * self.tp)
        memory = (self.weights_read(decode_seqs) + self.kv_bytes_per_token * (kv + decode_seqs)) / (
            self.gpu.hbm_bandwidth * self.bandwidth_efficiency * self.tp)
        return (np.maximum(compute, memory) + self.comm_time(decode_seqs)
                + self.step_overhead_s)

    # --- conveniences --------------------------------------------------------------------------
    def prefill_time(self, prompt_tokens: int, seqs: int = 1) -> float:
        """Prefill of ``seqs`` prompts of ``prompt_tokens`` each in one iteration, s."""
        return self.step_time(prompt_tokens * seqs, 0, 0, prefill_seqs=seqs)

    def decode_time(self, batch: int, context_tokens: float) -> float:
        """One decode iteration of ``batch`` sequences of ``context_tokens`` each, s."""
        return self.step_time(0, batch, int(round(batch * context_tokens)))

    def max_batch(self, tokens_per_seq: int) -> int:
        """Sequences whose full KV (``tokens_per_seq`` each) fit in the cache at once."""
        if self.kv_bytes_per_token == 0:
            return MAX_SEQS
        return self.kv_capacity_tokens // max(1, tokens_per_seq)


def _fits(model: ModelSpec, gpu: GPUSpec, tp: int, dtype: str, weight_bytes: float,
          usable: float) -> None:
    if weight_bytes >= usable:
        need = math.ceil(weight_bytes / (gpu.hbm_bytes * MEMORY_UTILIZATION))
        raise UserError(
            f"{model.name} in {dtype} ({weight_bytes / 2**30:.1f} GiB of weights) does not fit "
            f"on tp={tp} x {gpu.name} ({tp * gpu.hbm_bytes / 2**30:.0f} GiB HBM, "
            f"{usable / 2**30:.1f} GiB usable after the activation reserve); expected "
            f"tp >= {max(need, tp + 1)} or a smaller dtype")


def replica_perf(model: str, gpu: str, tp: int = 1, dtype: str = "bf16",
                 **overrides: object) -> ReplicaPerf:
    """Build the performance model of one replica.

    Args:
        model: catalog model name (perf.models.MODELS).
        gpu: catalog GPU name (hardware.GPUS).
        tp: GPUs per replica (tensor parallel, inside one node).
        dtype: weight format (bf16, fp16, fp8, int8, int4).
        overrides: any :class:`ReplicaPerf` field (e.g. ``bandwidth_efficiency=0.7``), or
            ``kv_dtype`` (bf16/fp8), ``memory_utilization``, ``activation_tokens``.

    Raises:
        UserError: unknown model, GPU or dtype, bad tp, or weights that do not fit.
    """
    if model not in MODELS:
        raise unknown_name("model", model, MODELS, where="model")
    if gpu not in GPUS:
        raise unknown_name("GPU", gpu, GPUS, where="gpu")
    if dtype not in DTYPE_BYTES:
        raise UserError(f"dtype: unknown weight dtype {dtype!r}; expected one of "
                        f"{', '.join(DTYPE_BYTES)}")
    m, g = MODELS.get(model), GPUS.get(gpu)
    node = node_spec(gpu)
    if not isinstance(tp, int) or not 1 <= tp <= node.gpus_per_node:
        raise UserError(f"tp: {tp!r} GPUs per replica; expected 1..{node.gpus_per_node} "
                        f"(one {node.name} node)")
    kv_dtype = str(overrides.pop("kv_dtype", "bf16"))
    if kv_dtype not in KV_DTYPE_BYTES:
        raise UserError(f"kv_dtype: {kv_dtype!r}; expected one of {', '.join(KV_DTYPE_BYTES)}")
    mem_util = float(overrides.pop("memory_utilization", MEMORY_UTILIZATION))  # type: ignore[arg-type]
    act_tokens = int(overrides.pop("activation_tokens", ACTIVATION_TOKENS))  # type: ignore[call-overload]
    math_dtype = dtype if dtype in ("bf16", "fp16") else "bf16"
    if dtype == "fp8" and g.fp8_flops:  # FP8 tensor cores (Hopper, Blackwell) run W8A8
        math_dtype = "fp8"

    arch = m.architecture
    weight_bytes = m.params * DTYPE_BYTES[dtype]
    if arch is not None:
        head_dim = arch.hidden // arch.heads
        kv_per_token = 2.0 * arch.layers * arch.kv_heads * head_dim * KV_DTYPE_BYTES[kv_dtype]
        # 2 FLOP per active parameter (Kaplan et al. 2020); MoE: only the routed experts
        flop_per_token = 2.0 * getattr(arch, "active_params", m.params)
        experts = getattr(arch, "experts", 1)
        expert_bytes = 0.0
        if experts > 1:
            expert_bytes = (arch.layers * experts * arch.expert_params  # type: ignore[attr-defined]
                            * DTYPE_BYTES[dtype])
        # peak live activations of one forward at the token budget, per GPU: the gated MLP's
        # two ffn/tp-wide intermediates and the hidden-wide residual (BF16), plus FP32 logits
        # of MAX_SEQS sampled tokens over vocab/tp
        mlp = (2 if arch.gated_mlp else 1) * arch.ffn / tp + arch.hidden
        act = act_tokens * mlp * 2.0 + MAX_SEQS * arch.vocab / tp * 4.0
        reserve = tp * act
    else:  # non-LLM model: a "token" is a sample, forward = 1/3 of training FLOP
        kv_per_token = 0.0
        flop_per_token = m.flop_per_sample / 3.0
        reserve = expert_bytes = 0.0
    usable = tp * g.hbm_bytes * mem_util - reserve
    _fits(m, g, tp, dtype, weight_bytes, usable)
    capacity = int((usable - weight_bytes) // kv_per_token) if kv_per_token else 0
    perf = ReplicaPerf(
        model=m, gpu=g, tp=tp, dtype=dtype, weight_bytes=weight_bytes,
        kv_bytes_per_token=kv_per_token, kv_capacity_tokens=capacity, math_dtype=math_dtype,
        activation_reserve_bytes=reserve, flop_per_token=flop_per_token,
        expert_bytes=expert_bytes,
        # one NVLink ring step = GPU->NVSwitch->GPU (two hops of the node's NVLink latency)
        allreduce_alpha_s=2.0 * node.nvlink_latency_s,
        peak_flops=g.peak(math_dtype),
        allreduce_bw=g.nvlink_bandwidth * LINK_EFFICIENCY["nvlink"])
    if overrides:
        unknown = set(overrides) - set(ReplicaPerf.__dataclass_fields__)
        if unknown:
            raise UserError(f"replica_perf: unknown override(s) {', '.join(sorted(unknown))}; "
                            f"expected fields of ReplicaPerf")
        perf = replace(perf, **overrides)  # type: ignore[arg-type]
        if "math_dtype" in overrides and "peak_flops" not in overrides:
            perf = replace(perf, peak_flops=g.peak(perf.math_dtype))
    for name in ("compute_efficiency", "bandwidth_efficiency"):
        value = getattr(perf, name)
        if not 0.0 < value <= 1.0:
            raise UserError(f"{name}: {value}; expected a fraction in (0, 1]")
    return perf


@lru_cache(maxsize=8192)
def _tp_allreduce_s(tp: int, nbytes: float, bandwidth: float, alpha_s: float) -> float:
    """One all-reduce of ``nbytes`` over ``tp`` GPUs of one node, as NCCL's tuner runs it
    (memoised: serving asks for the same few sizes on every iteration)."""
    fabric = Fabric(ranks=tp, nodes=1, gpus_per_node=tp, channels=1, nvlink_bw=bandwidth,
                    nic_bw=float("inf"), alpha_intra=alpha_s, alpha_inter=0.0)
    return collective_cost("all_reduce", nbytes, fabric).time

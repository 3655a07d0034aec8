"""Memory footprint of a training job on one GPU, and what to change when it does not fit.

Model state with mixed-precision Adam (Rajbhandari et al., ZeRO, SC'20, section 3.1): 2 bytes of
BF16 weights, 2 of BF16 gradients and 12 of FP32 master weights, momentum and variance per
parameter; ZeRO stage 1 shards the 12, stage 2 also the gradients, stage 3 also the weights over
the ``dp`` ranks. Parameters on one GPU: its pipeline stage's blocks (plus the input embedding or
the output projection, whichever stage is larger) divided by TP, expert weights also by EP.

Activations per layer and micro-batch of ``b`` sequences of ``s`` tokens (Korthikanti et al.
2022, section 4): ``s·b·h·(34 + 5·a·s/h)`` bytes for a GPT block with a 4h MLP, divided by ``t``
with tensor + sequence parallelism; selective recomputation drops the ``5·a·s/h`` term (the
attention scores; FlashAttention, the default, never stores them either), full recomputation
keeps only the 2·s·b·h-byte input of each layer. The MLP's 19 of the 34 generalise to
``3 + 4·f/h`` (``3 + 6·f/h`` for a gated MLP), times the experts per token. With 1F1B the
first stage holds the activations of ``pp`` micro-batches, ×(1 + (p−1)/(p·v)) interleaved.
FP32 logits of the last stage (s·b·V·4 / t) are added.

>>> from simcluster.perf.models import model
>>> from simcluster.perf.parallelism import Parallelism
>>> m = memory_per_gpu(model("llama-2-70b").architecture, Parallelism(), 1)
>>> round(m.state / 2**30)
1028
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from simcluster.perf.models import Transformer
from simcluster.perf.parallelism import Parallelism

__all__ = ["GiB", "Memory", "activation_bytes_per_layer", "fit_message", "memory_per_gpu",
           "params_per_gpu"]

GiB = 2.0**30
ADAM_BYTES = 12.0  # FP32 master weights, momentum, variance per parameter
WEIGHT_BYTES = GRAD_BYTES = 2.0  # BF16


@dataclass(frozen=True, slots=True)
class Memory:
    """Bytes per GPU (the fullest one: first pipeline stage, last stage's logits added)."""

    weights: float
    gradients: float
    optimizer: float
    activations: float

    @property
    def state(self) -> float:
        """Weights + gradients + optimizer state."""
        return self.weights + self.gradients + self.optimizer

    @property
    def total(self) -> float:
        """Everything counted."""
        return self.state + self.activations


def params_per_gpu(arch: Transformer, par: Parallelism) -> tuple[float, float]:
    """(dense, expert) parameters held by one GPU before ZeRO sharding."""
    layers = -(-arch.layers // par.pp)  # the largest stage
    experts = arch.experts * arch.expert_params if arch.experts > 1 else 0
    dense_block = arch.block_params - experts
    edge = arch.vocab * arch.hidden + (arch.seq_len * arch.hidden if arch.learned_positions
                                       else 0)
    if par.pp == 1:
        edge = arch.embedding_params
    dense = (layers * dense_block + edge) / par.tp
    return dense, layers * experts / (par.tp * par.ep)


def activation_bytes_per_layer(arch: Transformer, par: Parallelism) -> float:
    """Stored activations of one layer and one micro-batch on one GPU, bytes."""
    s, b, h = arch.seq_len / par.cp, par.micro_batch, arch.hidden
    if par.recompute == "full":
        return 2.0 * s * b * h / par.tp
    mlp = (3.0 + (6.0 if arch.gated_mlp else 4.0) * arch.ffn / h) * arch.experts_per_token
    linear = 11.0 + mlp + 4.0  # attention (non-core), MLP, two norms
    stored = par.recompute == "none" and not par.flash_attention
    scores = 5.0 * arch.heads * s / h if stored else 0.0
    return s * b * h * (linear + scores) / par.tp


def memory_per_gpu(arch: Transformer, par: Parallelism, microbatches: int) -> Memory:
    """Footprint on the fullest GPU with ``microbatches`` micro-batches per pipeline."""
    dense, expert = params_per_gpu(arch, par)
    dp_expert = par.dp // par.ep
    shard_w = (par.dp, dp_expert) if par.zero >= 3 else (1, 1)
    shard_g = (par.dp, dp_expert) if par.zero >= 2 else (1, 1)
    shard_o = (par.dp, dp_expert) if par.zero >= 1 else (1, 1)
    weights = WEIGHT_BYTES * (dense / shard_w[0] + expert / shard_w[1])
    grads = GRAD_BYTES * (dense / shard_g[0] + expert / shard_g[1])
    optim = ADAM_BYTES * (dense / shard_o[0] + expert / shard_o[1])
    layers = -(-arch.layers // par.pp)
    in_flight = min(par.pp, microbatches)
    if par.virtual_stages > 1 and par.pp > 1:
        in_flight *= 1.0 + (par.pp - 1) / (par.pp * par.virtual_stages)
    acts = activation_bytes_per_layer(arch, par) * layers * in_flight
    logits = 4.0 * arch.seq_len / par.cp * par.micro_batch * arch.vocab / par.tp
    return Memory(weights, grads, optim, acts + logits)


def fit_message(arch: Transformer, par: Parallelism, microbatches: int, hbm_bytes: float,
                gpus_per_node: int, gpu_name: str = "GPU") -> str | None:
    """None if the job fits in ``hbm_bytes`` per GPU, else what is short and which single
    change (more TP inside the node, more PP, a higher ZeRO stage, recomputation) would fit."""
    need = memory_per_gpu(arch, par, microbatches)
    if need.total <= hbm_bytes:
        return None
    tries: list[tuple[str, Parallelism]] = []
    if par.tp * 2 <= gpus_per_node and arch.heads % (par.tp * 2) == 0:
        tries.append((f"tp={par.tp * 2}", replace(par, tp=par.tp * 2)))
    if arch.layers >= par.pp * 2:
        tries.append((f"pp={par.pp * 2}", replace(par, pp=par.pp * 2)))
    for stage in range(par.zero + 1, 4):
        if par.dp > 1:
            tries.append((f"zero={stage}", replace(par, zero=stage)))
    for mode in ("selective", "full"):
        if ("none", "selective", "full").index(mode) > ("none", "selective",
                                                        "full").index(par.recompute):
            tries.append((f"recompute={mode}", replace(par, recompute=mode)))
    fixes = [name + (" (2x the GPUs, or half the dp)" if name[:2] in ("tp", "pp") else "")
             for name, p in tries if memory_per_gpu(arch, p, microbatches).total <= hbm_bytes]
    hint = ("; it fits with " + " or ".join(fixes)) if fixes else \
        "; no single change of tp, pp, zero or recompute is enough: combine them or add GPUs"
    return (f"does not fit: needs {need.total / GiB:.1f} GiB per GPU (weights "
            f"{need.weights / GiB:.1f}, gradients {need.gradients / GiB:.1f}, optimizer "
            f"{need.optimizer / GiB:.1f}, activations {need.activations / GiB:.1f}) but a "
            f"{gpu_name} has {hbm_bytes / GiB:.1f} GiB: short by "
            f"{(need.total - hbm_bytes) / GiB:.1f} GiB{hint}")

"""FLOP accounting of one training iteration: model FLOP (for MFU) and hardware FLOP (for HFU).

Model FLOP per token, as PaLM defines it for MFU (Chowdhery et al. 2022, appendix B):
``6·N + 12·L·H·Q·T`` with N the (active) parameters that take part in matrix multiplies, L layers,
H heads, Q head size, T sequence length; the causal mask is not credited (as in PaLM and
Megatron-LM). Hardware FLOP add what activation recomputation runs again (Korthikanti et al.
2022): ``full`` repeats every block's forward pass (Megatron-LM's 96·B·s·l·h² form instead of 72,
Narayanan et al. SC'21 eq. 3; the output layer is not recomputed), ``selective`` only the
attention core (QKᵀ and attention × V, ``4·s·h`` FLOP per token and layer).

>>> from simcluster.perf.models import model
>>> arch = model("gpt-3-175b").architecture
>>> f = iteration_flop(arch, sequences=1536)
>>> round(f.model / 1e18, 3), round(f.hardware("full") / f.model, 3)
(3.386, 1.332)
"""

from __future__ import annotations

from dataclasses import dataclass

from simcluster.perf.models import Transformer

__all__ = ["IterationFlop", "block_matmul_params", "iteration_flop", "model_flop_per_token"]


def block_matmul_params(arch: Transformer) -> int:
    """Active parameters of the blocks' matrix multiplies, all layers (norms left out)."""
    router = arch.hidden * arch.experts if arch.experts > 1 else 0
    per_layer = arch.attention_params + arch.experts_per_token * arch.expert_params + router
    return arch.layers * per_layer


def model_flop_per_token(arch: Transformer, seq_len: int | None = None) -> float:
    """Training model FLOP per token: 6 × matmul params + the attention term 12·L·h·s."""
    s = arch.seq_len if seq_len is None else seq_len
    return 6.0 * arch.matmul_params + 12.0 * arch.layers * arch.heads * arch.head_dim * s


@dataclass(frozen=True, slots=True)
class IterationFlop:
    """FLOP of one global batch.

    Attributes:
        model: model FLOP (forward + backward, PaLM's definition, what MFU counts).
        full_extra: FLOP one more forward pass of every block adds (full recomputation).
        selective_extra: FLOP one more forward pass of the attention core adds.
    """

    model: float
    full_extra: float
    selective_extra: float

    def hardware(self, recompute: str = "none") -> float:
        """FLOP the GPUs execute with the given recomputation (what HFU counts)."""
        extra = {"none": 0.0, "selective": self.selective_extra, "full": self.full_extra}
        return self.model + extra[recompute]


def iteration_flop(arch: Transformer, sequences: int, seq_len: int | None = None
                   ) -> IterationFlop:
    """Model and recomputation FLOP of ``sequences`` sequences of ``seq_len`` tokens."""
    s = arch.seq_len if seq_len is None else seq_len
    tokens = float(sequences) * s
    attention_fwd = 4.0 * arch.layers * arch.heads * arch.head_dim * s  # per token
    return IterationFlop(model=model_flop_per_token(arch, s) * tokens,
                         full_extra=(2.0 * block_matmul_params(arch) + attention_fwd) * tokens,
                         selective_extra=attention_fwd * tokens)

"""Model catalog: what one training sample costs in FLOP, bytes and parameters.

Transformers are described by architecture; their parameter count is derived, not typed in, and
checked in tests against the counts their authors published. Other models (CNNs, MLPs) are
described by parameters and FLOP per sample.

>>> round(model("llama-2-7b").params / 1e9, 3)
6.738
>>> model("llama-2-7b").tokens_per_iteration
4194304
"""

from __future__ import annotations

from dataclasses import dataclass

from simcluster.perf.parallelism import Parallelism
from simcluster.registry import Registry

__all__ = ["MODELS", "ModelSpec", "Transformer", "model"]

MODELS: Registry[ModelSpec] = Registry("model")


@dataclass(frozen=True, slots=True)
class Transformer:
    """A dense transformer's architecture.

    Attributes:
        layers, hidden, heads, kv_heads, ffn, vocab, seq_len: the usual hyper-parameters.
        gated_mlp: SwiGLU-style MLP with three matrices (Llama) instead of two (GPT, BERT).
        biases: linear layers and norms carry biases (GPT-2, BERT).
        tied_embeddings: the output projection shares the input embedding (GPT-2, BERT).
        learned_positions: a learned position embedding of seq_len × hidden (GPT-2, BERT).
        extra_params: parameters outside the blocks (BERT's pooler and token-type embedding).
        experts: MLP experts per block (1: dense); experts_per_token: experts each token is
            routed to (top-k). A mixture-of-experts block adds a router of hidden × experts.
    """

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    seq_len: int
    gated_mlp: bool = False
    biases: bool = False
    tied_embeddings: bool = True
    learned_positions: bool = False
    extra_params: int = 0
    experts: int = 1
    experts_per_token: int = 1

    @property
    def head_dim(self) -> int:
        """Hidden size of one attention head."""
        return self.hidden // self.heads

    @property
    def attention_params(self) -> int:
        """Parameters of one block's attention (Q, K, V, O projections, their biases)."""
        h, kv = self.hidden, self.kv_heads * self.head_dim
        return 2 * h * h + 2 * h * kv + ((2 * h + 2 * kv) if self.biases else 0)

    @property
    def expert_params(self) -> int:
        """Parameters of one MLP (one expert of a mixture-of-experts block)."""
        h = self.hidden
        return (3 if self.gated_mlp else 2) * h * self.ffn + ((self.ffn + h) if self.biases else 0)

    @property
    def block_params(self) -> int:
        """Parameters of one block: attention, all experts, router, two norms."""
        h = self.hidden
        router = h * self.experts if self.experts > 1 else 0
        norms = 2 * h * (2 if self.biases else 1)  # two norms per block (scale [+ shift])
        return self.attention_params + self.experts * self.expert_params + router + norms

    @property
    def embedding_params(self) -> int:
        """Input embedding (+ learned positions) and, when untied, the output projection."""
        embed = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return embed + (self.seq_len * self.hidden if self.learned_positions else 0)

    @property
    def params(self) -> int:
        """Parameter count derived from the architecture (all experts counted)."""
        final_norm = self.hidden * (2 if self.biases else 1)
        return (self.layers * self.block_params + self.embedding_params + final_norm
                + self.extra_params)

    @property
    def active_params(self) -> int:
        """Parameters one token passes through (top-k experts of each MoE block)."""
        idle = (self.experts - self.experts_per_token) * self.expert_params
        return self.params - self.layers * idle

    @property
    def matmul_params(self) -> int:
        """Active parameters used in matrix multiplies: the blocks' weights and the output
        projection (the input embedding and position lookups are not multiplies)."""
        lookups = self.vocab * self.hidden * (0 if self.tied_embeddings else 1)
        if self.learned_positions:
            lookups += self.seq_len * self.hidden
        return self.active_params - lookups - self.extra_params


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A trainable model as the perf model sees it.

    Attributes:
        name: catalog name.
        params: parameters.
        flop_per_sample: training FLOP (forward + backward) per sample.
        samples_per_iteration: default global batch in samples (sequences or images).
        seq_len: tokens per sample (1 for non-sequence models).
        bytes_per_sample: input bytes read from storage per sample.
        efficiency: achievable fraction of peak FLOP/s on large batches.
        cpu_s_per_sample: CPU-core seconds to decode and augment one sample (data loading).
        architecture: the transformer description, if any.
        source: where the figures come from.
        layout: the job's parallel layout when it is not plain data parallelism (set by
            :func:`simcluster.perf.iteration.training_layout`; its name then carries the layout).
    """

    name: str
    params: float
    flop_per_sample: float
    samples_per_iteration: int
    seq_len: int = 1
    bytes_per_sample: float = 0.0
    efficiency: float = 0.5
    cpu_s_per_sample: float = 0.0
    architecture: Transformer | None = None
    source: str = ""
    layout: Parallelism | None = None

    @property
    def tokens_per_iteration(self) -> int:
        """Tokens (samples × sequence length) in one global batch."""
        return self.samples_per_iteration * self.seq_len

    @property
    def flop_per_iteration(self) -> float:
        """Training FLOP of one global batch."""
        return self.flop_per_sample * self.samples_per_iteration

    @property
    def gradient_bytes(self) -> float:
        """Bytes all-reduced per iteration: one BF16 gradient per parameter (per parameter of
        one TP × PP shard with a layout: each GPU all-reduces its shard over its DP group)."""
        if self.layout is not None:  # no data or context parallelism: nothing to all-reduce
            shards = self.layout.tp * self.layout.pp
            replicas = self.layout.dp * self.layout.cp  # CP ranks hold the same weights
            return 2.0 * self.params / shards if replicas > 1 else 0.0
        return 2.0 * self.params

    @property
    def checkpoint_bytes(self) -> float:
        """Bytes of one checkpoint: BF16 weights + FP32 master, momentum, variance = 14 B/param.

        Source: mixed-precision Adam accounting, shared/reference/README.md (Rajbhandari et al.,
        ZeRO, SC'20 section 3.1 gives 16 B/param of state including BF16 gradients).
        """
        return 14.0 * self.params


def transformer(name: str, arch: Transformer, sequences: int, source: str,
                efficiency: float = 0.5) -> ModelSpec:
    """A transformer ModelSpec: training FLOP per token = 6 × active parameters (Kaplan et al.
    2020; the attention term and recomputation are added by :mod:`simcluster.perf.flops`).

    Token bytes read from storage: 4 bytes per token id (pre-tokenised int32 shards).
    """
    params = arch.params
    return ModelSpec(name=name, params=params,
                     flop_per_sample=6.0 * arch.active_params * arch.seq_len,
                     samples_per_iteration=sequences, seq_len=arch.seq_len,
                     bytes_per_sample=4.0 * arch.seq_len, efficiency=efficiency,
                     architecture=arch, source=source)


# Default efficiency 0.5: Megatron-LM reaches 163 TFLOP/s per A100 (52% of the 312 TFLOP/s
# peak) training GPT-3-class models on 3,072 GPUs (Narayanan et al., SC'21, section 5.1).
for _model in (
    # Keras "mnist_mlp" example: 784-512-512-10 dense layers, batch 128. Training FLOP per sample
    # = 6 × params (2 per multiply-add forward, twice that backward). One 28x28 byte image.
    ModelSpec("mlp", params=669_706, flop_per_sample=6.0 * 669_706, samples_per_iteration=128,
              bytes_per_sample=784.0, efficiency=0.5,
              source="Keras examples mnist_mlp.py (784-512-512-10)"),
    # ResNet-50: 25.6M parameters and 3.8e9 multiply-adds per 224x224 forward pass (He et al.,
    # CVPR 2016, Table 1); training = 3 × forward = 3 × 2 × 3.8e9 FLOP. Batch 256 (Goyal et al.
    # 2017 baseline). ~110 kB per JPEG (ImageNet train set: ~140 GB / 1.28M images).
    # Efficiency 0.18: 2,470 img/s on one A100 with mixed precision (NVIDIA DeepLearningExamples,
    # PyTorch ResNet50 v1.5 README, "Training performance: NVIDIA DGX A100") × 22.8 GFLOP/img =
    # 56 TFLOP/s of 312. Decoding runs on the GPU there (DALI), so no CPU cost per image.
    ModelSpec("resnet-50", params=25_557_032, flop_per_sample=3 * 2 * 3.8e9,
              samples_per_iteration=256, bytes_per_sample=110e3, efficiency=0.18,
              source="He et al. CVPR 2016 Table 1; torchvision parameter count"),
    # BERT-large: 24 layers, 1024 hidden, 16 heads, FFN 4096, vocab 30522, 512 positions;
    # pooler (1024^2 + 1024) and 2 token types (2 × 1024) outside the blocks. Batch 256 × 512.
    transformer("bert-large", Transformer(layers=24, hidden=1024, heads=16, kv_heads=16,
                                          ffn=4096, vocab=30522, seq_len=512, biases=True,
                                          learned_positions=True,
                                          extra_params=1024 * 1024 + 1024 + 2 * 1024),
                sequences=256, source="Devlin et al. NAACL 2019 (BERT-large, 340M)"),
    # GPT-2 1.5B: 48 layers, 1600 hidden, 25 heads, FFN 6400, vocab 50257, 1024 context;
    # batch 512 sequences (Radford et al. 2019).
    transformer("gpt2-1.5b", Transformer(layers=48, hidden=1600, heads=25, kv_heads=25,
                                         ffn=6400, vocab=50257, seq_len=1024, biases=True,
                                         learned_positions=True),
                sequences=512, source="Radford et al. 2019 (GPT-2 XL, 1.5B)"),
    # Llama 2: Touvron et al. 2023, Table 1/2: 4k context, 4M-token batches (1024 × 4096),
    # SwiGLU FFN, untied output projection; 70B uses grouped-query attention with 8 KV heads.
    transformer("llama-2-7b", Transformer(layers=32, hidden=4096, heads=32, kv_heads=32,
                                          ffn=11008, vocab=32000, seq_len=4096, gated_mlp=True,
                                          tied_embeddings=False),
                sequences=1024, source="Touvron et al. 2023 (Llama 2), HF config"),
    transformer("llama-2-70b", Transformer(layers=80, hidden=8192, heads=64, kv_heads=8,
                                           ffn=28672, vocab=32000, seq_len=4096, gated_mlp=True,
                                           tied_embeddings=False),
                sequences=1024, source="Touvron et al. 2023 (Llama 2), HF config"),
    transformer("llama-2-13b", Transformer(layers=40, hidden=5120, heads=40, kv_heads=40,
                                           ffn=13824, vocab=32000, seq_len=4096, gated_mlp=True,
                                           tied_embeddings=False),
                sequences=1024, source="Touvron et al. 2023 (Llama 2), HF config"),
    # GPT-2 XL under the naming (the same architecture as gpt2-1.5b).
    transformer("gpt-2-1.5b", Transformer(layers=48, hidden=1600, heads=25, kv_heads=25,
                                          ffn=6400, vocab=50257, seq_len=1024, biases=True,
                                          learned_positions=True),
                sequences=512, source="Radford et al. 2019 (GPT-2 XL, 1.5B)"),
    # GPT-3 175B: 96 layers, d_model 12288, 96 heads, 2048 context (Brown et al. 2020, Table
    # 2.1), GPT-2 vocabulary and learned positions; batch 1536 sequences as in Megatron-LM's
    # 175B runs (Narayanan et al., SC'21, Table 2).
    transformer("gpt-3-175b", Transformer(layers=96, hidden=12288, heads=96, kv_heads=96,
                                          ffn=4 * 12288, vocab=50257, seq_len=2048, biases=True,
                                          learned_positions=True),
                sequences=1536, source="Brown et al. 2020 Table 2.1; Narayanan et al. SC'21"),
    # Llama 3 (Dubey et al. 2024, Table 3; HF configs of Llama-3.1): GQA with 8 KV heads,
    # 128,256-token vocabulary, 8k context in the main pre-training stage. 405B: 16M-token
    # batches (2048 × 8192, Table 4). 8B and 70B: the paper gives no batch; 4M tokens assumed.
    transformer("llama-3-8b", Transformer(layers=32, hidden=4096, heads=32, kv_heads=8,
                                          ffn=14336, vocab=128256, seq_len=8192, gated_mlp=True,
                                          tied_embeddings=False),
                sequences=512, source="Dubey et al. 2024 (Llama 3), HF config"),
    transformer("llama-3-70b", Transformer(layers=80, hidden=8192, heads=64, kv_heads=8,
                                           ffn=28672, vocab=128256, seq_len=8192, gated_mlp=True,
                                           tied_embeddings=False),
                sequences=512, source="Dubey et al. 2024 (Llama 3), HF config"),
    transformer("llama-3-405b", Transformer(layers=126, hidden=16384, heads=128, kv_heads=8,
                                            ffn=53248, vocab=128256, seq_len=8192,
                                            gated_mlp=True, tied_embeddings=False),
                sequences=2048, source="Dubey et al. 2024 (Llama 3) Tables 3-4, HF config"),
    # Mixtral 8x7B: Mistral-7B blocks with 8 SwiGLU experts, top-2 routing (Jiang et al. 2024;
    # HF config). Training batch unpublished: 1024 × 4096 tokens assumed.
    transformer("mixtral-8x7b", Transformer(layers=32, hidden=4096, heads=32, kv_heads=8,
                                            ffn=14336, vocab=32000, seq_len=4096,
                                            gated_mlp=True, tied_embeddings=False, experts=8,
                                            experts_per_token=2),
                sequences=1024, source="Jiang et al. 2024 (Mixtral of Experts), HF config"),
):
    MODELS.add(_model.name, _model)


def model(name: str) -> ModelSpec:
    """Look up a model by catalog name."""
    return MODELS.get(name)

"""Parallel layout of a training job: DP/TP/PP/CP/EP sizes, ZeRO stage, rank → GPU mapping.

A job of ``world = tp × cp × pp × dp`` ranks is cut into groups along each dimension. Expert
parallelism (EP) is carved out of the data-parallel ranks, as in Megatron-LM (the experts of a
mixture-of-experts layer are spread over ``ep`` of the ``dp`` replicas, so ``ep`` divides ``dp``).
Ranks are numbered with the innermost dimension first; the default order is Megatron-LM's
``tp-cp-ep-dp-pp`` (TP innermost, PP outermost: NVIDIA/Megatron-LM
``megatron/core/parallel_state.py``, ``RankGenerator(order="tp-cp-ep-dp-pp")``). Rank ``r`` runs
on the ``r``-th GPU of the job's placement, so with 8 GPUs per node and ``tp <= 8`` every TP group
stays inside one node.

>>> par = Parallelism(tp=2, pp=2, dp=2)
>>> par.world
8
>>> par.group("tp", 0), par.group("dp", 0), par.group("pp", 0)
([0, 1], [0, 2], [0, 4])
>>> par.coordinates(5)
{'tp': 1, 'cp': 0, 'ep': 0, 'dp': 0, 'pp': 1}
"""

from __future__ import annotations

from dataclasses import dataclass

from simcluster.errors import UserError

__all__ = ["DIMENSIONS", "RECOMPUTE", "Parallelism"]

DIMENSIONS = ("tp", "cp", "ep", "dp", "pp")
RECOMPUTE = ("none", "selective", "full")
# Grid dimensions that vary inside a group, for the groups that span more than one dimension.
_VARYING = {"dp": ("cp", "ep", "dp"), "dp_expert": ("cp", "dp")}


@dataclass(frozen=True, slots=True)
class Parallelism:
    """How one training job is split over its GPUs.

    Attributes:
        tp, pp, dp, cp, ep: tensor, pipeline, data, context (sequence) and expert parallel sizes.
        zero: ZeRO stage 0-3 (3 = FSDP full sharding); shards over the ``dp`` ranks.
        virtual_stages: interleaved pipeline stages per GPU (v; 1 = plain 1F1B).
        micro_batch: sequences per micro-batch on one pipeline.
        recompute: activation recomputation: none, selective (attention core) or full.
        order: rank order, innermost first, a permutation of tp, cp, ep, dp, pp.
        dp_overlap: fraction of the data-parallel gradient traffic that may run under the
            backward pass (bucketed, as PyTorch DDP and Megatron-LM ``--overlap-grad-reduce``).
        tp_overlap: fraction of tensor-parallel traffic hidden under compute (0: Megatron-LM's
            synchronous TP all-reduces, Narayanan et al. SC'21).
        flash_attention: fused attention that never stores the s × s scores (Dao et al.,
            FlashAttention, NeurIPS 2022), as current training stacks do.
    """

    tp: int = 1
    pp: int = 1
    dp: int = 1
    cp: int = 1
    ep: int = 1
    zero: int = 0
    virtual_stages: int = 1
    micro_batch: int = 1
    recompute: str = "none"
    order: str = "tp-cp-ep-dp-pp"
    # Bucketed gradient all-reduce runs during the backward pass (Li et al., "PyTorch
    # Distributed", VLDB 2020; Megatron-LM --overlap-grad-reduce): all of it may overlap, bounded
    # by the last micro-batch's backward time in perf.step.
    dp_overlap: float = 1.0
    # Megatron-LM's TP all-reduces block the layer (Narayanan et al. SC'21, section 3.2).
    tp_overlap: float = 0.0
    flash_attention: bool = True

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "dp", "cp", "ep", "virtual_stages", "micro_batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UserError(f"parallelism.{name}: {value!r} is not a positive integer")
        if self.zero not in (0, 1, 2, 3):
            raise UserError(f"parallelism.zero: {self.zero!r}; expected 0, 1, 2 or 3")
        if self.recompute not in RECOMPUTE:
            raise UserError(f"parallelism.recompute: {self.recompute!r}; expected one of "
                            f"{', '.join(RECOMPUTE)}")
        if sorted(self.order.split("-")) != sorted(DIMENSIONS):
            raise UserError(f"parallelism.order: {self.order!r}; expected the five dimensions "
                            f"{', '.join(DIMENSIONS)} joined by '-', innermost first")
        if self.dp % self.ep:
            raise UserError(f"parallelism.ep: {self.ep} must divide dp = {self.dp} (expert "
                            "parallel ranks are carved out of the data-parallel ones)")
        for name in ("dp_overlap", "tp_overlap"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"parallelism.{name}: {getattr(self, name)!r} is not in [0, 1]")

    @property
    def world(self) -> int:
        """GPUs the layout needs: tp × cp × pp × dp."""
        return self.tp * self.cp * self.pp * self.dp

    def sizes(self) -> dict[str, int]:
        """Size of each dimension of the rank grid (dp counts the replicas within one EP set)."""
        return {"tp": self.tp, "cp": self.cp, "ep": self.ep, "dp": self.dp // self.ep,
                "pp": self.pp}

    def strides(self) -> dict[str, int]:
        """Rank distance between neighbours along each dimension, in ``order``."""
        sizes, stride, out = self.sizes(), 1, {}
        for dim in self.order.split("-"):
            out[dim] = stride
            stride *= sizes[dim]
        return out

    def coordinates(self, rank: int) -> dict[str, int]:
        """Position of ``rank`` along each dimension (dp counted within one EP set)."""
        sizes, strides = self.sizes(), self.strides()
        return {d: rank // strides[d] % sizes[d] for d in DIMENSIONS}

    def group(self, dim: str, rank: int = 0) -> list[int]:
        """The ranks of ``rank``'s group along ``dim``. ``dp`` is the full gradient all-reduce
        group: its CP, EP and DP coordinates vary (context-parallel ranks hold the same weights,
        so their gradients are reduced together, as Megatron-LM's data-parallel-with-CP group);
        ``dp_expert`` the expert gradients' group (the CP ranks and the replicas of the same
        experts, ``cp × dp / ep`` ranks); ``ep`` the expert all-to-all group."""
        strides, sizes = self.strides(), self.sizes()
        dims = _VARYING.get(dim, (dim,))
        base = rank
        for d in dims:
            base -= self.coordinates(rank)[d] * strides[d]
        ranks = [base]
        for d in dims:
            ranks = [r + k * strides[d] for r in ranks for k in range(sizes[d])]
        return sorted(ranks)

    def groups(self, dim: str) -> list[list[int]]:
        """Every group along ``dim`` (a partition of the ranks), by their lowest rank.

        >>> Parallelism(tp=2, dp=2).groups("dp")
        [[0, 2], [1, 3]]
        """
        coords = _VARYING.get(dim, (dim,))
        return [self.group(dim, r) for r in range(self.world)
                if not any(self.coordinates(r)[d] for d in coords)]

    def stride(self, dim: str) -> int:
        """Smallest rank distance inside a ``dim`` group (for placement on nodes)."""
        group = self.group(dim, 0)
        return group[1] - group[0] if len(group) > 1 else 1

    def mapping(self, gpu_names: list[str] | None = None, limit: int = 16) -> list[str]:
        """Human-readable rank → GPU lines for the first ``limit`` ranks.

        >>> Parallelism(tp=2, dp=2).mapping(limit=2)
        ['rank 0: tp=0 cp=0 ep=0 dp=0 pp=0 -> gpu 0', 'rank 1: tp=1 cp=0 ep=0 dp=0 pp=0 -> gpu 1']
        """
        lines = []
        for r in range(min(self.world, limit)):
            where = gpu_names[r] if gpu_names is not None else f"gpu {r}"
            coords = " ".join(f"{d}={c}" for d, c in self.coordinates(r).items())
            lines.append(f"rank {r}: {coords} -> {where}")
        return lines

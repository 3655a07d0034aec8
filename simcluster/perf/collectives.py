"""α-β costs of collectives and NCCL-style algorithm choice (pure functions).

p ranks, n bytes, α seconds per algorithm step, B bytes/s of the bottleneck (Thakur, Rabenseifner
and Gropp, IJHPCA 2005; shared/reference/README.md):

* ring all-reduce: 2(p−1)α + 2(p−1)/p · n/B
* ring reduce-scatter, all-gather: (p−1)α + (p−1)/p · n/B
* pipelined ring broadcast: (p−1)α + n/B
* double binary tree all-reduce (NCCL): 2⌈log2 p⌉α + 2n/B (Sanders, Speck and Träff 2009)
* hierarchical all-reduce over N nodes of g GPUs: intra-node reduce-scatter, inter-node all-reduce
  of n/g per rail, intra-node all-gather, one after another
* all-to-all: (p−1)α + (p−1)/p · n/B
* NVLink SHARP all-reduce inside a node: each GPU sends n to the switch and receives n back,
  2α + n/B_nvls

busbw follows nccl-tests (NVIDIA/nccl-tests doc/PERFORMANCE.md): algbw × 2(p−1)/p for all-reduce,
× (p−1)/p for reduce-scatter, all-gather and all-to-all, × 1 for broadcast, reduce, send/recv.

>>> ring_allreduce_time(8, 1e9, 100e9, 0.0)
0.0175
>>> busbw("all_reduce", 8, 1e9, 0.0175) / 1e9
100.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "ALGORITHMS",
    "BUSBW_FACTOR",
    "OPS",
    "Fabric",
    "algorithm_times",
    "busbw",
    "busbw_allreduce",
    "choose_algorithm",
    "collective_time",
    "ring_allgather_time",
    "ring_allreduce_time",
]

OPS = ("all_reduce", "reduce_scatter", "all_gather", "all_to_all", "broadcast", "send_recv")
ALGORITHMS = ("ring", "tree", "hierarchical", "nvls", "direct")
BUSBW_FACTOR = {
    "all_reduce": lambda p: 2.0 * (p - 1) / p,
    "reduce_scatter": lambda p: (p - 1) / p,
    "all_gather": lambda p: (p - 1) / p,
    "all_to_all": lambda p: (p - 1) / p,
    "broadcast": lambda p: 1.0,
    "send_recv": lambda p: 1.0,
}


def ring_allreduce_time(p: int, nbytes: float, bandwidth: float, alpha: float) -> float:
    """Ring all-reduce of ``nbytes`` over ``p`` ranks at ``bandwidth`` bytes/s, seconds."""
    if p <= 1 or nbytes <= 0:
        return 0.0
    return 2.0 * (p - 1) * alpha + 2.0 * (p - 1) / p * nbytes / bandwidth


def ring_allgather_time(p: int, nbytes: float, bandwidth: float, alpha: float) -> float:
    """Ring all-gather (or reduce-scatter) of ``nbytes`` in total over ``p`` ranks, seconds."""
    if p <= 1 or nbytes <= 0:
        return 0.0
    return (p - 1) * alpha + (p - 1) / p * nbytes / bandwidth


def busbw(op: str, p: int, nbytes: float, seconds: float) -> float:
    """nccl-tests bus bandwidth of ``op`` (bytes/s)."""
    return nbytes / seconds * BUSBW_FACTOR[op](p)


def busbw_allreduce(p: int, nbytes: float, seconds: float) -> float:
    """nccl-tests bus bandwidth of an all-reduce: algbw × 2(p−1)/p, bytes/s."""
    return busbw("all_reduce", p, nbytes, seconds)


@dataclass(frozen=True, slots=True)
class Fabric:
    """What the α-β forms need to know about the GPUs of one collective.

    Attributes:
        ranks: GPUs taking part (p).
        nodes: nodes they are on (N); gpus_per_node: g (the fewest on any node).
        channels: parallel rings across nodes (one per NIC used), c.
        nvlink_bw: effective NVLink bandwidth per GPU per direction, bytes/s.
        nic_bw: effective bandwidth of one inter-node route (one rail), bytes/s.
        alpha_intra, alpha_inter: per-step latency inside a node and across nodes, s.
        nvls_bw: NVLink SHARP algorithm bandwidth, bytes/s (0 when not available).
        uniform: every node holds the same number of the collective's GPUs.
    """

    ranks: int
    nodes: int
    gpus_per_node: int
    channels: int
    nvlink_bw: float
    nic_bw: float
    alpha_intra: float
    alpha_inter: float
    nvls_bw: float = 0.0
    uniform: bool = True

    @property
    def ring_bw(self) -> float:
        """Bottleneck of NCCL's rings: NVLink inside a node, c × one rail across nodes."""
        if self.nodes <= 1:
            return self.nvlink_bw
        return min(self.nvlink_bw, self.channels * self.nic_bw)

    @property
    def alpha(self) -> float:
        """Per-step latency of a ring over all ranks (the slowest hop)."""
        return self.alpha_inter if self.nodes > 1 else self.alpha_intra


def algorithm_times(op: str, nbytes: float, f: Fabric, nvls: bool = False) -> dict[str, float]:
    """Predicted seconds of every algorithm that applies to ``op`` on ``f``."""
    p, n = f.ranks, nbytes
    if p <= 1 or n <= 0:
        return {"direct": 0.0}
    if op == "send_recv":
        bw = f.nic_bw if f.nodes > 1 else f.nvlink_bw
        return {"direct": f.alpha + n / bw}
    if op in ("reduce_scatter", "all_gather"):
        return {"ring": ring_allgather_time(p, n, f.ring_bw, f.alpha)}
    if op == "broadcast":
        return {"ring": (p - 1) * f.alpha + n / f.ring_bw}
    if op == "all_to_all":
        if f.nodes <= 1:
            return {"direct": (p - 1) * f.alpha + (p - 1) / p * n / f.nvlink_bw}
        # each GPU sends (N−1)/N of its data off-node through its rail
        inter = (f.nodes - 1) / f.nodes * n / min(f.nic_bw * f.channels / f.gpus_per_node,
                                                  f.nvlink_bw)
        return {"direct": (p - 1) * f.alpha + inter}
    if op != "all_reduce":
        raise ValueError(f"unknown collective {op!r}; expected one of {', '.join(OPS)}")
    times = {"ring": ring_allreduce_time(p, n, f.ring_bw, f.alpha)}
    if f.nodes > 1:  # NCCL's trees span nodes; inside one node its rings are used
        times["tree"] = 2 * math.ceil(math.log2(p)) * f.alpha + 2.0 * n / f.ring_bw
    if f.nodes > 1 and f.gpus_per_node > 1 and f.uniform:  # a stage per node needs equal nodes
        g, big_n = f.gpus_per_node, f.nodes
        intra = ring_allgather_time(g, n, f.nvlink_bw, f.alpha_intra)
        rails = min(g, f.channels)
        inter = ring_allreduce_time(big_n, n / g, f.nic_bw * rails / g, f.alpha_inter)
        times["hierarchical"] = 2 * intra + inter
    if nvls and f.nodes == 1 and f.nvls_bw > 0:
        times["nvls"] = 2 * f.alpha_intra + n / f.nvls_bw
    return times


def choose_algorithm(op: str, nbytes: float, f: Fabric, nvls: bool = False) -> str:
    """The fastest algorithm by the α-β model, as NCCL's tuner picks by its own cost model."""
    return collective_time(op, nbytes, f, "auto", nvls)[1]


def collective_time(op: str, nbytes: float, f: Fabric, algo: str = "auto",
                    nvls: bool = False) -> tuple[float, str]:
    """Uncontended time of ``op`` and the algorithm used (``auto``: the fastest).

    Raises:
        ValueError: a forced ``algo`` that does not apply to ``op`` on this fabric.
    """
    times = algorithm_times(op, nbytes, f, nvls)
    if algo == "auto":
        algo = min(times, key=lambda a: (times[a], a))
    if algo not in times:
        raise ValueError(f"algorithm {algo!r} does not apply to {op} on these GPUs; "
                         f"expected one of {', '.join(sorted(times))}")
    return times[algo], algo

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

NCCL's protocols (:func:`collective_cost`). NCCL moves data with one of three protocols and picks,
per size, the (algorithm, protocol) pair its cost model says is fastest (NVIDIA/nccl
src/graph/tuning.cc, ``ncclTopoTuneModel`` and ``ncclTopoGetAlgoTime``): time = latency + S / bw.

* LL: 8-byte stores with a flag, lowest latency, a quarter of the link bandwidth (a third for
  single-node all-gather/reduce-scatter/broadcast), capped per system size;
* LL128: 128-byte lines with 8 bytes of flag, 0.92 (≈ 120/128) of the bandwidth, mid latency;
* Simple: full bandwidth, highest latency per step.

Latency = a base cost once per collective + per algorithm step a hop cost (NCCL's tables
``baseLat`` and ``hwLat``). The topology's hop latency (router) equals NCCL's ring/LL step, so
another (algorithm, protocol) adds its difference from that entry of ``hwLat``. Multi-node rings
count 2N inter-node steps for all-reduce (N − 1 for reduce-scatter/all-gather) at the network
cost, the others at the NVLink cost (at least NCCL's per-step network post overhead). This is
what makes mid-size busbw ramp up: with the α-β forms alone 64 MiB on 8 GPUs is at the
asymptote, with the protocols' latency it is not.

>>> from simcluster.perf.collectives import Fabric
>>> f = Fabric(8, 1, 8, 1, 370e9, float("inf"), 0.6e-6, 0.0)
>>> [collective_cost("all_reduce", s, f).protocol for s in (2**16, 2**22, 2**30)]
['LL', 'LL128', 'Simple']

busbw follows nccl-tests (NVIDIA/nccl-tests doc/PERFORMANCE.md): algbw × 2(p−1)/p for all-reduce,
× (p−1)/p for reduce-scatter, all-gather and all-to-all, × 1 for broadcast, reduce, send/recv.

>>> ring_allreduce_time(8, 1e9, 100e9, 0.0)
0.0175
>>> busbw("all_reduce", 8, 1e9, 0.0175) / 1e9
100.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

__all__ = [
    "ALGORITHMS",
    "BUSBW_FACTOR",
    "OPS",
    "PROTOCOLS",
    "Cost",
    "Fabric",
    "algorithm_times",
    "busbw",
    "busbw_allreduce",
    "choose_algorithm",
    "collective_cost",
    "collective_time",
    "protocol_latency",
    "protocol_times",
    "step_latencies",
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


# --- NCCL's protocols ----------------------------------------------------------------------
# Constants from NVIDIA/nccl src/graph/tuning.cc, in the copies that list the NVLS algorithms
# (2.19-2.21; read at commit b6475625 of the stored copy). Microseconds as in NCCL.
PROTOCOLS = ("LL", "LL128", "Simple")
# baseLat: once per collective, Ring and Tree rows
_BASE_US = {"ring": {"LL": 6.6, "LL128": 14.0, "Simple": 8.4},
            "tree": {"LL": 6.8, "LL128": 14.0, "Simple": 0.0}}
# hwLat: per algorithm step, NVLINK and NET rows, Ring and Tree columns
_HW_US = {("nvlink", "ring"): {"LL": 0.6, "LL128": 1.9, "Simple": 3.4},
          ("nvlink", "tree"): {"LL": 0.6, "LL128": 1.25, "Simple": 28.0},
          ("net", "ring"): {"LL": 2.7, "LL128": 4.0, "Simple": 14.0},
          ("net", "tree"): {"LL": 5.0, "LL128": 8.5, "Simple": 28.0}}
# hwLat NVLINK, NVLS, Simple: the whole NVLS all-reduce latency inside a node
NVLS_LATENCY_S = 23e-6
# getNetOverhead: 1 us per inter-node ring step on Intel x86 hosts (2 us on AMD), x3 for Simple;
# a ring step's cost is at least this once the ring leaves the node
_NET_OVERHEAD_US = {"LL": 1.0, "LL128": 1.0, "Simple": 3.0}
# llMaxBws (GB/s, a cap on LL's busbw): one node (Ampere/Hopper row) 87.7; more nodes, Intel
# hosts: 39.0 on 2 nodes, 20.4 on 3+ (AMD hosts 22.5 / 19.0; not told apart here)
_LL_MAX_BW = (87.7e9, 39.0e9, 20.4e9)
# Ring: LL busBw × 1/4 (× 1/3 for single-node all-gather, reduce-scatter, broadcast); LL128
# × 0.92 ("120.0/128.0"), × 0.7 with one GPU per node. Tree: × 0.92, then LL × 1/3.8, LL128
# × 7/9 on one node and × 120/128 across nodes. The per-channel caps (perChMaxRingLL128Bw
# 20-36.7 GB/s × channels) do not bind with the 12-32 channels of DGX-class nodes: left out.
_LL128_FRACTION, _LL128_FRACTION_1PPN, _TREE_FRACTION = 0.92, 0.7, 0.92
# treeCorrectionFactor: trees are slower than their model at medium sizes; NCCL scales the tree
# bandwidth by these per protocol, indexed by log2(bytes / 64), from 64 B to 256 MB
_TREE_CORRECTION = {
    "LL": (1.0, 1.0, 1.0, 1.0, .9, .8, .7, .7, .7, .7, .6, .5, .4, .4, .5, .6, .7, .8, .9, 1.0,
           1.0, 1.0, 1.0),
    "LL128": (1.0, 1.0, 1.0, 1.0, 1.0, .9, .8, .8, .8, .7, .6, .6, .6, .6, .6, .6, .8, .9, .9,
              .9, .9, 1.0, 1.0),
    "Simple": (.9, .9, .9, .9, .9, .9, .9, .8, .7, .6, .6, .5, .5, .5, .5, .6, .7, .8, .7, .7,
               .8, .9, .9),
}
# "Plateau effect of ring": a multi-node Simple ring all-reduce of at least 64 bytes per channel
# and rank has its latency x 1.4 on compute capability >= 8.0 (every GPU in the catalog; x 1.9
# before), tuning.cc ncclTopoGetAlgoTime
_RING_PLATEAU = 1.4
_US = 1e-6


@dataclass(frozen=True, slots=True)
class Cost:
    """The uncontended cost of one collective as NCCL's tuner would run it.

    Attributes:
        time: seconds. algorithm, protocol: the pair chosen (protocol ``Simple`` for the
            direct, NVLS and hierarchical algorithms, which have no other).
        latency: the part of ``time`` that is latency (base + steps), s.
        scale: the fraction of the fabric's bandwidths the protocol reaches (the engine caps
            each flow of the collective at that share of its uncontended rate).
    """

    time: float
    algorithm: str
    protocol: str
    latency: float
    scale: float = 1.0


def _hw_kind(algo: str) -> str:
    return "tree" if algo == "tree" else "ring"


def step_latencies(algo: str, proto: str, f: Fabric) -> tuple[float, float]:
    """Seconds of one step inside a node and of one step across nodes for ``algo``/``proto``.

    The fabric's α (router latency) stands for NCCL's ring/LL step on that hop; another pair
    adds its difference from that entry of NCCL's ``hwLat``.
    """
    kind = _hw_kind(algo)
    intra = f.alpha_intra + (_HW_US["nvlink", kind][proto] - _HW_US["nvlink", "ring"]["LL"]) * _US
    inter = f.alpha_inter + (_HW_US["net", kind][proto] - _HW_US["net", "ring"]["LL"]) * _US
    if algo == "ring" and f.nodes > 1:  # every step of a ring that leaves the node posts to the NIC
        intra = max(intra, _NET_OVERHEAD_US[proto] * _US)
    return intra, inter


_RING_STEPS = {"all_reduce": lambda p: 2 * (p - 1), "reduce_scatter": lambda p: p - 1,
               "all_gather": lambda p: p - 1, "broadcast": lambda p: p - 1}
_INTER_STEPS = {"all_reduce": lambda n: 2 * n, "reduce_scatter": lambda n: n - 1,
                "all_gather": lambda n: n - 1, "broadcast": lambda n: n - 1}


def protocol_latency(op: str, algo: str, proto: str, f: Fabric, nbytes: float) -> float:
    """Latency (s) of ``op`` of ``nbytes`` by ``algo`` with ``proto`` on ``f``: NCCL's base +
    step costs."""
    if algo == "nvls":
        return NVLS_LATENCY_S
    intra, inter = step_latencies(algo, proto, f)
    base = _BASE_US[_hw_kind(algo)][proto] * _US
    g, big_n = f.gpus_per_node, f.nodes
    if algo == "tree":  # NCCL's log2i: the floor
        return base + 2 * ((g - 1) * intra + int(math.log2(big_n)) * inter)
    if algo == "hierarchical":
        return base + 2 * (g - 1) * intra + 2 * (big_n - 1) * inter
    steps = _RING_STEPS[op](f.ranks)
    crossing = min(steps, _INTER_STEPS[op](big_n)) if big_n > 1 else 0
    latency = base + (steps - crossing) * intra + crossing * inter
    if (op == "all_reduce" and proto == "Simple" and big_n > 1
            and nbytes / (max(1, f.channels) * f.ranks) >= 64):
        latency *= _RING_PLATEAU
    return latency


def _bandwidth_fraction(op: str, algo: str, proto: str, f: Fabric) -> float:
    one_node = f.nodes <= 1
    if algo == "tree":
        return _TREE_FRACTION * {"LL": 1 / 3.8, "LL128": 7 / 9 if one_node else 120 / 128,
                                 "Simple": 1.0}[proto]
    if proto == "LL":
        return 1 / 3 if one_node and op != "all_reduce" else 1 / 4
    if proto == "LL128":
        return _LL128_FRACTION_1PPN if f.ranks / f.nodes < 2 else _LL128_FRACTION
    return 1.0


def _bandwidth_scale(op: str, algo: str, proto: str, f: Fabric, nbytes: float) -> float:
    """Fraction of the fabric's bandwidths that ``proto`` reaches under ``algo``; LL's cap on
    busbw (llMaxBw) is applied relative to the ring's bottleneck, before the tree's
    size correction (as NCCL: the cap in ncclTopoTuneModel, the correction in GetAlgoTime)."""
    frac = _bandwidth_fraction(op, algo, proto, f)
    if proto == "LL" and 0 < f.ring_bw < math.inf:
        frac = min(frac, _LL_MAX_BW[min(f.nodes, 3) - 1] / f.ring_bw)
    if algo == "tree":
        index = max(0, int(math.log2(max(nbytes / 64, 1))))
        table = _TREE_CORRECTION[proto]
        frac *= table[index] if index < len(table) else 1.0
    return frac


def protocol_times(op: str, nbytes: float, f: Fabric, nvls: bool = False
                   ) -> dict[tuple[str, str], float]:
    """Seconds of every (algorithm, protocol) pair that applies to ``op`` on ``f``.

    Every α-β form's bandwidth term is inversely proportional to the bandwidths, so a protocol
    that reaches a fraction k of them moves the bytes in (bandwidth term at full speed) / k.
    """
    bare = algorithm_times(op, nbytes, f, nvls)
    moving = algorithm_times(op, nbytes, _no_latency(f), nvls)
    out = {}
    for algo, seconds in bare.items():
        if algo == "direct":  # point-to-point: NCCL's Simple path, the α-β form as it is
            out[algo, "Simple"] = seconds
        elif algo == "nvls":
            out[algo, "Simple"] = NVLS_LATENCY_S + moving[algo]
        else:  # hierarchical (NCCL's CollNet-like two-level form) runs Simple only, as CollNet
            for proto in PROTOCOLS if algo != "hierarchical" else ("Simple",):
                k = _bandwidth_scale(op, algo, proto, f, nbytes)
                out[algo, proto] = protocol_latency(op, algo, proto, f, nbytes) + moving[algo] / k
    return out


_SIMPLE_ONLY = ("direct", "nvls", "hierarchical")  # algorithms with no LL / LL128


def _no_latency(f: Fabric) -> Fabric:
    return replace(f, alpha_intra=0.0, alpha_inter=0.0)


def _pick(times: dict[tuple[str, str], float], op: str, algo: str, proto: str
          ) -> tuple[str, str]:
    algos = sorted({a for a, _ in times})
    if algo != "auto" and algo not in algos:
        raise ValueError(f"algorithm {algo!r} does not apply to {op} on these GPUs; "
                         f"expected one of {', '.join(algos)}")
    if proto != "auto" and proto not in PROTOCOLS:
        raise ValueError(f"unknown protocol {proto!r}; expected one of {', '.join(PROTOCOLS)}")
    pairs = [k for k in times if (algo == "auto" or k[0] == algo)
             and (proto == "auto" or k[1] == proto or k[0] in _SIMPLE_ONLY)]
    return min(pairs, key=lambda k: (times[k], k))


def collective_cost(op: str, nbytes: float, f: Fabric, algo: str = "auto",
                    nvls: bool = False, proto: str = "auto") -> Cost:
    """The fastest (algorithm, protocol) pair for ``op``, or the forced ones.

    Raises:
        ValueError: a forced ``algo`` or ``proto`` that does not apply to ``op`` on this fabric.
    """
    if f.ranks <= 1 or nbytes <= 0:
        return Cost(0.0, "direct", "Simple", 0.0)
    times = protocol_times(op, nbytes, f, nvls)
    best_algo, best_proto = _pick(times, op, algo, proto)
    seconds = times[best_algo, best_proto]
    if best_algo == "direct":  # its α-β form: latency is what the bandwidth term leaves
        moving = algorithm_times(op, nbytes, _no_latency(f), nvls)["direct"]
        return Cost(seconds, best_algo, best_proto, seconds - moving)
    if best_algo == "nvls":
        return Cost(seconds, best_algo, best_proto, NVLS_LATENCY_S)
    return Cost(seconds, best_algo, best_proto,
                protocol_latency(op, best_algo, best_proto, f, nbytes),
                _bandwidth_scale(op, best_algo, best_proto, f, nbytes))


def choose_algorithm(op: str, nbytes: float, f: Fabric, nvls: bool = False) -> str:
    """The fastest algorithm by NCCL's protocol cost model, as NCCL's tuner picks."""
    return collective_cost(op, nbytes, f, "auto", nvls).algorithm


def collective_time(op: str, nbytes: float, f: Fabric, algo: str = "auto",
                    nvls: bool = False, proto: str = "auto") -> tuple[float, str]:
    """Uncontended time of ``op`` and the algorithm used (``auto``: the fastest pair of
    algorithm and protocol by :func:`collective_cost`).

    Raises:
        ValueError: a forced ``algo`` that does not apply to ``op`` on this fabric.
    """
    cost = collective_cost(op, nbytes, f, algo, nvls, proto)
    return cost.time, cost.algorithm

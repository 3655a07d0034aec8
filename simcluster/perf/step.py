"""One training iteration of a parallel job, phase by phase (the model behind both
``simcluster estimate train`` and the cluster simulation's training jobs).

Per GPU, for ``m = global_batch / (dp · micro_batch)`` micro-batches per pipeline:

* compute: hardware FLOP / world / (peak × efficiency(layer work)) (:mod:`~simcluster.perf.
  efficiency`), or the HBM time of the weights if longer (roofline);
* TP: 4 all-reduces of ``b·s·h`` BF16 activations per layer and micro-batch (6 with full
  recomputation), on the TP group's NVLink (Megatron-LM, Shoeybi et al. 2019 section 3), exposed
  except for ``tp_overlap``;
* CP: all-gather of K and V forward, reduce-scatter of their gradients backward, per layer,
  exposed only beyond the attention compute they overlap with;
* EP: 4 all-to-alls per MoE layer and micro-batch (dispatch and combine, forward and backward);
* PP: one activation send and one gradient send per micro-batch and virtual stage;
* bubble: (compute + TP + CP + EP + PP) × (p−1)/(v·m) (1F1B; v interleaved stages,
  Narayanan et al. SC'21 section 2.2);
* DP: gradient all-reduce (ZeRO 1-2: reduce-scatter + all-gather, the same volume; ZeRO 3 also
  all-gathers the weights forward and backward of every micro-batch) of the GPU's BF16 shard over
  its DP group; ``dp_overlap`` of it may hide under the last micro-batch's backward pass (under all
  compute for ZeRO 3's prefetched gathers);
* optimizer: Adam reads and writes 28 bytes per parameter it owns in HBM;
* data: the GPU's share of the batch read from storage and decoded on the CPU, hidden by
  prefetching except beyond the iteration time.

Collective times are the uncontended α-β model of :mod:`simcluster.perf.collectives` on each
group's :class:`~simcluster.perf.collectives.Fabric`: from the real placement in the simulator
(:func:`placement_fabrics`), or in closed form for a non-blocking fabric (:func:`ideal_fabrics`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from simcluster.errors import UserError
from simcluster.hardware import LINK_EFFICIENCY, NICS, GPUSpec, NodeSpec
from simcluster.perf.collectives import Fabric, collective_time
from simcluster.perf.efficiency import efficiency
from simcluster.perf.flops import block_matmul_params, iteration_flop
from simcluster.perf.memory import Memory, memory_per_gpu, params_per_gpu
from simcluster.perf.models import ModelSpec
from simcluster.perf.parallelism import Parallelism

__all__ = ["OPTIMIZER_HBM_BYTES", "Step", "check_layout", "ideal_fabrics", "placement_fabrics",
           "step_time"]

# Adam on one parameter: read FP32 master, momentum, variance (12 B) and the BF16 gradient (2 B),
# write the three FP32 values and the BF16 weight (14 B).
OPTIMIZER_HBM_BYTES = 28.0
# NCCL per-step latencies (NCCL src/graph/tuning.cc hwLat, Ring/LL, as in simcluster.hardware):
# NVLink 0.6 µs, network 2.7 µs.
_ALPHA_NVLINK, _ALPHA_NET = 0.6e-6, 2.7e-6


@dataclass(frozen=True, slots=True)
class Step:
    """One iteration's phases (seconds per iteration, on the slowest GPU) and its accounting."""

    compute_s: float
    tp_s: float
    cp_s: float
    ep_s: float
    pp_s: float
    bubble_s: float
    dp_s: float
    optimizer_s: float
    data_s: float
    dp_total_s: float
    model_flop: float
    hardware_flop: float
    world: int
    tokens: float
    microbatches: int
    efficiency: float
    memory: Memory | None
    dp_algorithm: str = "none"
    notes: tuple[str, ...] = field(default=())

    @property
    def iteration_s(self) -> float:
        """The iteration: the sum of the exposed phases."""
        return sum(self.breakdown().values())

    def breakdown(self) -> dict[str, float]:
        """Phase → seconds (communication phases are the exposed parts)."""
        return {"compute": self.compute_s, "tp_comm": self.tp_s, "cp_comm": self.cp_s,
                "ep_comm": self.ep_s, "pp_comm": self.pp_s, "bubble": self.bubble_s,
                "dp_comm": self.dp_s, "optimizer": self.optimizer_s, "data": self.data_s}


def _fabric(n: int, stride: int, node: NodeSpec, device: GPUSpec,
            links: Mapping[str, float]) -> Fabric | None:
    """Closed-form fabric of ``n`` ranks ``stride`` apart, packed on ``node``s, non-blocking."""
    if n <= 1:
        return None
    g = node.gpus_per_node
    per_node = max(1, min(n, g // stride)) if stride < g else 1
    nodes = -(-n // per_node)
    return Fabric(ranks=n, nodes=nodes, gpus_per_node=per_node,
                  channels=min(per_node, node.nics) if nodes > 1 else 1,
                  nvlink_bw=device.nvlink_bandwidth * links.get("nvlink", 1.0),
                  nic_bw=NICS.get(node.nic).bandwidth * links.get("network", 1.0),
                  alpha_intra=_ALPHA_NVLINK, alpha_inter=_ALPHA_NET)


def ideal_fabrics(par: Parallelism, node: NodeSpec, device: GPUSpec,
                  links: Mapping[str, float] = LINK_EFFICIENCY) -> dict[str, Fabric | None]:
    """Each group's fabric when rank r runs on GPU r of packed ``node``s on a non-blocking
    network (one NIC rail per GPU, as DGX/HGX servers)."""
    out = {}
    for dim in ("tp", "cp", "ep", "dp"):
        out[dim] = _fabric(len(par.group(dim)), par.stride(dim), node, device, links)
    out["pp"] = _fabric(2, par.stride("pp"), node, device, links) if par.pp > 1 else None
    # an expert's gradients: its replicas across dp / ep, and the context-parallel ranks
    out["dp_expert"] = _fabric(par.cp * par.dp // par.ep,
                               par.strides()["cp" if par.cp > 1 else "dp"], node, device, links)
    return out


def placement_fabrics(par: Parallelism, gpus: Sequence[int], fabric_of) -> dict[str, Fabric | None]:
    """Each group's fabric on a real placement: rank r on ``gpus[r]``; ``fabric_of(list)`` is
    :func:`simcluster.perf.iteration.fabric_of` bound to the topology (rank 0's groups)."""
    def of(ranks: list[int]) -> Fabric | None:
        return fabric_of([gpus[r] for r in ranks]) if len(ranks) > 1 else None
    out = {dim: of(par.group(dim)) for dim in ("tp", "cp", "ep", "dp")}
    out["pp"] = of([0, par.stride("pp")]) if par.pp > 1 else None
    strides = par.strides()
    out["dp_expert"] = of(sorted(c * strides["cp"] + k * strides["dp"] for c in range(par.cp)
                                 for k in range(par.dp // par.ep)))
    return out


def check_layout(spec: ModelSpec, par: Parallelism, global_batch: int, gpus: int,
                 gpus_per_node: int) -> int:
    """Validate the layout for the model and return the micro-batches per pipeline, m.

    Raises:
        UserError: sizes that do not multiply to the GPUs, or do not divide the model/batch.
    """
    arch = spec.architecture
    if par.world != gpus:
        raise UserError(f"tp × cp × pp × dp = {par.tp}×{par.cp}×{par.pp}×{par.dp} = "
                        f"{par.world}, but the job has {gpus} GPUs")
    if par.tp > gpus_per_node:
        raise UserError(f"tp={par.tp}: tensor parallelism is kept inside a node of "
                        f"{gpus_per_node} GPUs")
    if arch is None and (par.tp, par.pp, par.cp, par.ep) != (1, 1, 1, 1):
        raise UserError(f"model {spec.name!r} has no transformer architecture: only data "
                        "parallelism (tp = pp = cp = ep = 1) applies")
    if arch is not None:
        if arch.heads % par.tp or arch.kv_heads % min(par.tp, arch.kv_heads):
            raise UserError(f"tp={par.tp} must divide the {arch.heads} attention heads")
        if arch.layers < par.pp * par.virtual_stages:
            raise UserError(f"pp × virtual stages = {par.pp * par.virtual_stages} exceeds the "
                            f"{arch.layers} layers of {spec.name}")
        if par.ep > 1 and arch.experts % par.ep:
            raise UserError(f"ep={par.ep} must divide the {arch.experts} experts")
    per_step = par.dp * par.micro_batch
    if global_batch % per_step:
        raise UserError(f"global batch {global_batch} is not a multiple of dp × micro-batch = "
                        f"{par.dp} × {par.micro_batch} = {per_step}")
    return global_batch // per_step


def _data(read: float, decode: float, busy: float, prefetch: int) -> float:
    """Exposed data time: reading and decoding run in parallel to the GPU work when batches are
    prefetched, so only what exceeds it shows; without prefetching all of it shows."""
    load = max(read, decode)
    return max(0.0, load - busy) if prefetch > 0 else load


def _time(op: str, nbytes: float, fabric: Fabric | None, nvls: bool = False) -> float:
    if fabric is None or nbytes <= 0:
        return 0.0
    return collective_time(op, nbytes, fabric, "auto", nvls)[0]


def step_time(spec: ModelSpec, par: Parallelism, global_batch: int, device: GPUSpec,
              fabrics: Mapping[str, Fabric | None], dtype: str = "bf16",
              eff: Mapping[str, float] | None = None, read_bw_per_gpu: float = float("inf"),
              cpu_cores_per_gpu: float = 1.0, gpus_per_node: int = 8,
              nvls: bool = False, prefetch: int = 2) -> Step:
    """The phases of one iteration of ``spec`` at ``global_batch`` sequences.

    Args:
        spec: the model (a transformer for tp/pp/cp/ep > 1).
        par: the layout; ``par.world`` must equal the job's GPUs.
        global_batch: sequences (samples) per iteration.
        device: the GPU. fabrics: per group, from :func:`ideal_fabrics` or
            :func:`placement_fabrics`.
        dtype: math precision. eff: efficiency overrides (``e_max``, ``fixed_s``).
        read_bw_per_gpu: storage read bandwidth per GPU, bytes/s.
        cpu_cores_per_gpu: data-loader cores per GPU.
        nvls: NVLink SHARP may be used by all-reduces inside a node.
        prefetch: batches the data loader reads ahead (0: reading adds to every iteration).
    """
    m = check_layout(spec, par, global_batch, par.world, gpus_per_node)
    arch = spec.architecture
    try:
        peak = device.peak(dtype)
    except ValueError as exc:
        raise UserError(f"dtype {dtype!r}: {exc}") from None
    samples_per_gpu_iter = global_batch / par.dp
    read = samples_per_gpu_iter * spec.bytes_per_sample / read_bw_per_gpu
    decode = samples_per_gpu_iter * spec.cpu_s_per_sample / max(cpu_cores_per_gpu, 1e-9)
    if arch is None:  # data parallel only, the model's measured efficiency
        flop = spec.flop_per_sample * global_batch
        compute = max(flop / par.world / (peak * spec.efficiency),
                      32.0 * spec.params / device.hbm_bandwidth)
        dp_total = _time("all_reduce", 2.0 * spec.params, fabrics.get("dp"), nvls)
        window = compute / m * 2.0 / 3.0
        dp = max(dp_total * (1 - par.dp_overlap), dp_total - window)
        busy = compute + dp
        return Step(compute, 0.0, 0.0, 0.0, 0.0, 0.0, dp, 0.0, _data(read, decode, busy, prefetch),
                    dp_total, flop, flop, par.world, global_batch * spec.seq_len, m,
                    spec.efficiency, None)
    s = arch.seq_len
    tokens_mb = par.micro_batch * s / par.cp  # tokens of one micro-batch on one GPU
    h = arch.hidden
    layers = -(-arch.layers // par.pp)
    flops = iteration_flop(arch, global_batch)
    hw = flops.hardware(par.recompute)
    layer_fwd = 2.0 * (block_matmul_params(arch) / arch.layers + 2.0 * h * s) * tokens_mb / par.tp
    e = efficiency(device.name, dtype, layer_fwd, eff)
    dense, expert = params_per_gpu(arch, par)
    weight_traffic = m * 3 * 2.0 * (dense + expert)  # BF16 weights read fwd, bwd (x2)
    compute = max(hw / par.world / (peak * e), weight_traffic / device.hbm_bandwidth)
    full = par.recompute == "full"
    act = 2.0 * tokens_mb * h  # BF16 activations of one micro-batch
    tp = m * layers * (6 if full else 4) * _time("all_reduce", act, fabrics.get("tp"), nvls)
    tp *= 1.0 - par.tp_overlap
    cp = 0.0
    if par.cp > 1:
        kv = 2.0 * 2.0 * arch.kv_heads * arch.head_dim * par.micro_batch * s / par.tp
        comm = (_time("all_gather", kv, fabrics.get("cp")) * (2 if full else 1)
                + _time("reduce_scatter", kv, fabrics.get("cp")))
        attn = 12.0 * h * s * tokens_mb / par.tp / (peak * e)
        cp = m * layers * max(0.0, comm - attn)
    ep = 0.0
    if par.ep > 1 and arch.experts > 1:
        a2a = act * arch.experts_per_token / par.tp
        ep = m * layers * (6 if full else 4) * _time("all_to_all", a2a, fabrics.get("ep"))
    pp = m * 2 * par.virtual_stages * _time("send_recv", act / par.tp, fabrics.get("pp"))
    bubble = (par.pp - 1) / (par.virtual_stages * m) * (compute + tp + cp + ep + pp)
    gather = (2 * m) if par.zero >= 3 else 0
    dp_op = "reduce_scatter" if par.zero >= 3 else "all_reduce"
    dp_dense = (_time(dp_op, 2.0 * dense, fabrics.get("dp"), nvls)
                + gather * _time("all_gather", 2.0 * dense, fabrics.get("dp")))
    dp_exp = (_time(dp_op, 2.0 * expert, fabrics.get("dp_expert"), nvls)
              + gather * _time("all_gather", 2.0 * expert, fabrics.get("dp_expert")))
    dp_total = dp_dense + dp_exp
    window = compute if par.zero >= 3 else compute / m * (2.0 / (4.0 if full else 3.0))
    dp = max(dp_total * (1.0 - par.dp_overlap), dp_total - window)
    # ZeRO shards dense state over dp and expert state over the dp/ep replicas of each expert
    # (as memory.py counts it)
    owned = (dense / (par.dp if par.zero >= 1 else 1)
             + expert / (max(1, par.dp // par.ep) if par.zero >= 1 else 1))
    optimizer = OPTIMIZER_HBM_BYTES * owned / device.hbm_bandwidth
    busy = compute + tp + cp + ep + pp + bubble + dp + optimizer
    data = _data(read, decode, busy, prefetch)
    memory = memory_per_gpu(arch, par, m)
    return Step(compute, tp, cp, ep, pp, bubble, dp, optimizer, data, dp_total, flops.model, hw,
                par.world, float(global_batch) * s, m, e, memory)

"""``simcluster estimate train``: iteration time, throughput, MFU, memory and time to train.

Closed form from :mod:`simcluster.perf.step` (the model the cluster simulation's training jobs
use), on the default node of ``--gpu``'s generation with a non-blocking network, or on the
cluster of a scenario file (``--topology scenario.toml``: the job takes its first GPUs).

>>> import argparse
>>> p = argparse.ArgumentParser(); add_arguments(p)
>>> r = estimate(p.parse_args(["--model", "Llama-2-7B", "--gpus", "8"]))
>>> r["fits"], round(r["mfu"], 2)  # 7B with plain DP and Adam needs > 80 GiB per GPU
(False, 0.57)
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from simcluster.errors import UserError, closest
from simcluster.hardware import CPUS, GPUS, LINK_EFFICIENCY, NICS, STORAGE, node_spec
from simcluster.hardware import gpu as gpu_spec
from simcluster.perf.iteration import checkpoint_time, fabric_of
from simcluster.perf.memory import GiB, fit_message
from simcluster.perf.models import MODELS, ModelSpec, Transformer, transformer
from simcluster.perf.parallelism import RECOMPUTE, Parallelism
from simcluster.perf.step import ideal_fabrics, placement_fabrics, step_time
from simcluster.routing import Router

__all__ = ["HELP", "add_arguments", "estimate", "format_text", "resolve_model", "train_estimate"]

HELP = ("training step time, tokens/s, TFLOP/s per GPU, MFU/HFU, memory per GPU and time to "
        "train, for a model preset or architecture on N GPUs with DP/TP/PP/CP/EP/ZeRO")
DEFAULT_STORAGE = "AI400X2"  # the scenario schema's default storage server (cluster.storage)
_ARCH = {"layers": "layers", "hidden": "hidden", "heads": "heads", "kv_heads": "kv_heads",
         "ffn": "ffn", "vocab": "vocab", "seq": "seq_len"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``estimate train``."""
    p.add_argument("--model", help="model preset (case-insensitive): " + ", ".join(MODELS))
    for flag in ("layers", "hidden", "heads", "kv-heads", "ffn", "vocab", "seq"):
        p.add_argument(f"--{flag}", type=int, help=f"architecture: {flag} (overrides the preset)")
    p.add_argument("--experts", type=int, help="MoE experts per block")
    p.add_argument("--top-k", type=int, help="MoE experts per token")
    p.add_argument("--gpu", default="H100-SXM", help="GPU type: " + ", ".join(GPUS))
    p.add_argument("--gpus", type=int, default=8, help="GPUs of the job")
    for flag, what in (("tp", "tensor"), ("pp", "pipeline"), ("cp", "context"),
                       ("ep", "expert")):
        p.add_argument(f"--{flag}", type=int, default=1, help=f"{what} parallel size")
    p.add_argument("--dp", type=int, help="data parallel size (default: gpus / (tp·pp·cp))")
    p.add_argument("--vp", type=int, default=1, help="interleaved virtual stages per GPU")
    p.add_argument("--zero", type=int, default=0, choices=(0, 1, 2, 3), help="ZeRO stage")
    p.add_argument("--micro-batch", type=int, default=1, help="sequences per micro-batch")
    p.add_argument("--global-batch", type=int, help="sequences per iteration (default: preset)")
    p.add_argument("--recompute", default="none", choices=RECOMPUTE)
    p.add_argument("--dtype", default="bf16", choices=("bf16", "fp16", "fp8"))
    p.add_argument("--tokens", type=float, default=0.0, help="tokens to train on (e.g. 2e12)")
    p.add_argument("--dp-overlap", type=float, default=1.0,
                   help="fraction of DP traffic that may overlap the backward pass")
    p.add_argument("--tp-overlap", type=float, default=0.0,
                   help="fraction of TP traffic hidden under compute")
    p.add_argument("--e-max", type=float, help="override: large-work fraction of peak")
    p.add_argument("--fixed-s", type=float, help="override: fixed seconds per layer pass")
    p.add_argument("--read-bw", type=float,
                   help="dataset read bandwidth per GPU, bytes/s (default: the node's storage "
                        "NICs shared by its GPUs)")
    # 2: PyTorch DataLoader's default prefetch_factor (torch.utils.data.DataLoader docs)
    p.add_argument("--prefetch", type=int, default=2,
                   help="batches prefetched by the data loader (0: reading is not hidden)")
    p.add_argument("--storage-servers", type=int, default=1,
                   help="AI400X2-class storage servers the checkpoint is written to")
    p.add_argument("--topology", default="nonblocking",
                   help="'nonblocking' (the GPU's default node on a non-blocking network) or a "
                        "scenario file whose cluster the job is placed on (first GPUs)")


def resolve_model(args: argparse.Namespace) -> ModelSpec:
    """The preset (case-insensitive) with architecture flags applied, or a custom model."""
    fields = {f: getattr(args, a) for a, f in _ARCH.items() if getattr(args, a) is not None}
    if args.experts is not None:
        fields["experts"] = args.experts
    if args.top_k is not None:
        fields["experts_per_token"] = args.top_k
    if args.model:
        name = closest(args.model, MODELS.names())
        if name is None or name.lower() != args.model.lower():
            MODELS.get(args.model, "--model")  # raises with the closest name
        base = MODELS.get(name)
        if not fields:
            return base
        if base.architecture is None:
            raise UserError(f"--model {name}: not a transformer; architecture flags do not apply")
        arch = dataclasses.replace(base.architecture, **fields)
        return transformer(f"{name}*", arch, base.samples_per_iteration, base.source)
    missing = [f"--{a.replace('_', '-')}" for a in ("layers", "hidden", "heads")
               if getattr(args, a) is None]
    if missing:
        raise UserError(f"give --model PRESET or the architecture ({', '.join(missing)} missing)")
    h = args.hidden
    fields.setdefault("kv_heads", args.heads)
    fields.setdefault("ffn", 4 * h)
    fields.setdefault("vocab", 32000)
    fields.setdefault("seq_len", 4096)
    # a custom model is Llama-style: SwiGLU MLP, untied output projection, no biases
    arch = Transformer(gated_mlp=True, tied_embeddings=False, **fields)
    return transformer("custom", arch, 1024, "command line")


def _checkpoint_s(spec: ModelSpec, servers: int, nic_bw: float) -> float:
    """Synchronous checkpoint write: every node writes its shard through its storage NICs in
    parallel to the servers (as :func:`~simcluster.perf.iteration.checkpoint_time`)."""
    if servers <= 0:
        return 0.0
    return spec.checkpoint_bytes / min(servers * STORAGE.get(DEFAULT_STORAGE).write_bandwidth,
                                       nic_bw)


def _gpu_name(name: str) -> str:
    hit = closest(name, GPUS.names())
    if hit is None or hit.lower() != name.lower():
        GPUS.get(name, "--gpu")
    return hit


_POSITIVE = ("layers", "hidden", "heads", "kv_heads", "ffn", "vocab", "seq", "experts", "top_k",
             "gpus", "tp", "pp", "cp", "ep", "dp", "vp", "micro_batch", "global_batch",
             "read_bw", "prefetch")


def _check_sizes(args: argparse.Namespace) -> None:
    """Sizes must be positive (a zero TP, head count or batch is a typo, not a model)."""
    for name in _POSITIVE:
        value = getattr(args, name, None)
        if value is not None and not value > 0:
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag}: expected a positive number, got {value}")


def estimate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the step model; the ``--json`` object."""
    _check_sizes(args)
    spec = resolve_model(args)
    gpu = _gpu_name(args.gpu)
    device, node = gpu_spec(gpu), node_spec(gpu)
    if args.gpus < 1:
        raise UserError(f"--gpus: {args.gpus} is not a positive number of GPUs")
    split = args.tp * args.pp * args.cp
    dp = args.dp if args.dp is not None else args.gpus // split
    if dp < 1 or dp * split != args.gpus:
        raise UserError(f"--gpus {args.gpus} is not tp × pp × cp × dp = {args.tp} × {args.pp} × "
                        f"{args.cp} × {dp}")
    par = Parallelism(tp=args.tp, pp=args.pp, dp=dp, cp=args.cp, ep=args.ep, zero=args.zero,
                      virtual_stages=args.vp, micro_batch=args.micro_batch,
                      recompute=args.recompute, dp_overlap=args.dp_overlap,
                      tp_overlap=args.tp_overlap)
    batch = args.global_batch if args.global_batch is not None else spec.samples_per_iteration
    eff = {k: v for k, v in (("e_max", args.e_max), ("fixed_s", args.fixed_s)) if v is not None}
    storage_nic = node.storage_nics * NICS.get(node.storage_nic).bandwidth
    read_bw = args.read_bw if args.read_bw is not None else storage_nic / node.gpus_per_node
    g = node.gpus_per_node
    names = [f"node{r // g}/gpu{r % g}" for r in range(min(par.world, 16))]
    nodes = -(-args.gpus // g)
    ckpt_s = _checkpoint_s(spec, args.storage_servers, nodes * storage_nic)
    if args.topology == "nonblocking":
        fabrics = ideal_fabrics(par, node, device)
    else:
        # imported here: the engine and scenario loading are only needed for --topology
        from simcluster.engine.simulation import build_topology
        from simcluster.experiment.run import load_scenario

        topo = build_topology(load_scenario(Path(args.topology)).cluster)
        gpus = [g for g in range(len(topo.gpus)) if topo.gpu_type(g) == gpu][: args.gpus]
        if len(gpus) < args.gpus:
            raise UserError(f"--topology {args.topology}: {len(gpus)} {gpu} GPUs, "
                            f"{args.gpus} asked")
        router = Router(topo)
        fabrics = placement_fabrics(par, gpus, lambda g: fabric_of(g, topo, router,
                                                                   LINK_EFFICIENCY))
        names = [topo.gpus[x] for x in gpus[:16]]
        hosts = sorted({int(topo.gpu_host[x]) for x in gpus})
        ckpt_s = checkpoint_time(spec, hosts, topo)
        node = topo.host_specs[hosts[0]]  # the scenario's servers, not the catalog default
        if args.read_bw is None:
            read_bw = node.storage_nics * NICS.get(node.storage_nic).bandwidth / \
                node.gpus_per_node
    cores = node.sockets * CPUS.get(node.cpu).cores / node.gpus_per_node
    step = step_time(spec, par, batch, device, fabrics, args.dtype, eff,
                     read_bw_per_gpu=read_bw, cpu_cores_per_gpu=cores,
                     gpus_per_node=node.gpus_per_node, prefetch=args.prefetch)
    it = step.iteration_s
    peak = device.peak(args.dtype)
    message = None
    if spec.architecture is not None:
        message = fit_message(spec.architecture, par, step.microbatches, device.hbm_bytes,
                              node.gpus_per_node, gpu)
    tokens_per_s = step.tokens / it
    train_s = args.tokens / tokens_per_s if args.tokens else 0.0
    return {
        "model": spec.name, "gpu": gpu, "gpus": args.gpus, "dtype": args.dtype,
        "parallelism": {"tp": par.tp, "pp": par.pp, "dp": par.dp, "cp": par.cp, "ep": par.ep,
                        "zero": par.zero, "vp": par.virtual_stages,
                        "micro_batch": par.micro_batch, "global_batch": batch,
                        "microbatches": step.microbatches, "recompute": par.recompute},
        "mapping": par.mapping(names, limit=min(par.world, 16)),
        "iteration_s": it, "tokens_per_s": tokens_per_s,
        "tflops_per_gpu": step.model_flop / it / par.world / 1e12,
        "hw_tflops_per_gpu": step.hardware_flop / it / par.world / 1e12,
        "mfu": step.model_flop / it / par.world / peak,
        "hfu": step.hardware_flop / it / par.world / peak,
        "efficiency": step.efficiency,
        "memory_per_gpu_bytes": step.memory.total if step.memory else None,
        "memory_breakdown_bytes": dataclasses.asdict(step.memory) if step.memory else None,
        "hbm_bytes": device.hbm_bytes, "fits": message is None, "memory_message": message,
        "checkpoint_bytes": spec.checkpoint_bytes, "checkpoint_write_s": ckpt_s,
        "tokens": args.tokens, "train_time_s": train_s,
        "gpu_hours": train_s * args.gpus / 3600.0,
        "breakdown": step.breakdown(),
    }


def train_estimate(model: str | None = None, gpu: str = "H100-SXM", gpus: int = 8,
                   **options: Any) -> dict[str, Any]:
    """The Python form of ``estimate train``: options are the flags with ``_`` for ``-``
    (``tp=8``, ``global_batch=1536``, ``recompute="full"``, ``tokens=2e12``, ...).

    Raises:
        UserError: an unknown option, or a layout or model the step model rejects.
    """
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args([])
    args.model, args.gpu, args.gpus = model, gpu, gpus
    for key, value in options.items():
        if not hasattr(args, key) or key == "json":
            raise UserError(f"train_estimate: unknown option {key!r}")
        setattr(args, key, value)
    return estimate(args)


def format_text(r: dict[str, Any]) -> str:
    """The human-readable answer."""
    p = r["parallelism"]
    lines = [f"{r['model']} on {r['gpus']} x {r['gpu']} ({r['dtype']}): tp={p['tp']} "
             f"pp={p['pp']} dp={p['dp']} cp={p['cp']} ep={p['ep']} zero={p['zero']} "
             f"vp={p['vp']}, global batch {p['global_batch']} = {p['microbatches']} "
             f"micro-batches of {p['micro_batch']}, recompute {p['recompute']}",
             f"iteration         {r['iteration_s']:.3f} s"]
    for phase, sec in r["breakdown"].items():
        if sec > 0:
            lines.append(f"  {phase:<15} {sec:.4f} s ({sec / r['iteration_s']:.1%})")
    lines += [f"tokens/s          {r['tokens_per_s']:,.0f}",
              f"TFLOP/s per GPU   {r['tflops_per_gpu']:.1f} model, "
              f"{r['hw_tflops_per_gpu']:.1f} hardware",
              f"MFU / HFU         {r['mfu']:.1%} / {r['hfu']:.1%}"]
    if r["memory_per_gpu_bytes"] is not None:
        lines.append(f"memory per GPU    {r['memory_per_gpu_bytes'] / GiB:.1f} GiB of "
                     f"{r['hbm_bytes'] / GiB:.0f}")
    if not r["fits"]:
        lines.append("WARNING: " + r["memory_message"])
    lines.append(f"checkpoint        {r['checkpoint_bytes'] / 1e9:.1f} GB, "
                 f"{r['checkpoint_write_s']:.1f} s to write synchronously")
    if r["tokens"]:
        lines.append(f"time to train     {r['train_time_s'] / 86400:.2f} days for "
                     f"{r['tokens']:.3g} tokens, {r['gpu_hours']:,.0f} GPU-hours")
    lines.append("rank -> GPU (first ranks): " + "; ".join(r["mapping"][:4]))
    return "\n".join(lines)

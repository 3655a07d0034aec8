"""Network cases: flow-level collectives against the α-β forms and public nccl-tests figures.

Simulated collectives run through the same flows that training jobs use
(:func:`simcluster.experiment.collective.collective_sweep`), on an idle system built from the
catalog's node spec of each GPU generation.
"""

from __future__ import annotations

from simcluster.experiment.collective import collective_sweep
from simcluster.hardware import node_spec
from simcluster.perf.collectives import (
    collective_cost,
    ring_allgather_time,
    ring_allreduce_time,
)
from simcluster.perf.iteration import fabric_of
from simcluster.routing import Router
from simcluster.topology import Topology, gpu_cluster
from simcluster.validation.cases import Outcome, case, reference

__all__: list[str] = []

MiB = 1 << 20


def _system(gpu: str, nodes: int = 1) -> Topology:
    return gpu_cluster(node_spec(gpu), nodes=nodes, storage_servers=0)


def _busbw(name: str, gpu: str, gpus: int, size: int) -> Outcome:
    topo = _system(gpu)
    ref = reference(name)
    sizes = sorted({size, *map(int, ref.curve_x)})
    table = collective_sweep(topo, "all_reduce", sizes, gpus=list(range(gpus)))
    by_size = dict(zip(table["size_bytes"], table["busbw_GBps"], strict=True))
    curve = None
    if ref.curve_x:
        curve = {"x": list(ref.curve_x), "simulated": [by_size[int(x)] for x in ref.curve_x],
                 "reference": list(ref.curve_y), "xlabel": "message size (B)",
                 "ylabel": "all-reduce busbw (GB/s)", "logx": True}
    row = table.loc[table["size_bytes"] == size].iloc[0]
    return Outcome(float(by_size[size]), curve=curve,
                   detail=f"algorithm {row['algorithm']}, protocol {row['protocol']}")


@case("busbw_h100_8gpu_peak")
def _h100_peak(quick: bool) -> Outcome:
    return _busbw("busbw_h100_8gpu_peak", "H100-SXM", 8, 8 << 30)


@case("busbw_h100_8gpu_64MiB")
def _h100_8(quick: bool) -> Outcome:
    return _busbw("busbw_h100_8gpu_64MiB", "H100-SXM", 8, 64 * MiB)


@case("busbw_h100_8gpu_4MiB")
def _h100_8_small(quick: bool) -> Outcome:
    return _busbw("busbw_h100_8gpu_4MiB", "H100-SXM", 8, 4 * MiB)


@case("busbw_h100_2gpu_64MiB")
def _h100_2(quick: bool) -> Outcome:
    return _busbw("busbw_h100_2gpu_64MiB", "H100-SXM", 2, 64 * MiB)


@case("busbw_a100_8gpu_64MiB")
def _a100_8(quick: bool) -> Outcome:
    return _busbw("busbw_a100_8gpu_64MiB", "A100-80GB", 8, 64 * MiB)


@case("busbw_a100_2gpu_64MiB")
def _a100_2(quick: bool) -> Outcome:
    return _busbw("busbw_a100_2gpu_64MiB", "A100-80GB", 2, 64 * MiB)


@case("busbw_h100_2node_ring_per_nic")
def _h100_two_nodes(quick: bool) -> Outcome:
    topo, size = _system("H100-SXM", nodes=2), 8 << 30
    table = collective_sweep(topo, "all_reduce", [size], algo="ring")
    nics = node_spec("H100-SXM").nics
    row = table.iloc[0]
    return Outcome(float(row["busbw_GBps"]) / nics,
                   detail=f"busbw {row['busbw_GBps']:.1f} GB/s over {nics} NICs, protocol "
                          f"{row['protocol']}")


@case("allreduce_ring_alpha_beta")
def _ring_allreduce(quick: bool) -> Outcome:
    topo, size = _system("H100-SXM", nodes=2), float(1 << 30)
    gpus = list(range(len(topo.gpus)))
    fabric = fabric_of(gpus, topo, Router(topo))
    table = collective_sweep(topo, "all_reduce", [int(size)], algo="ring")
    # the α-β form with the protocol NCCL's model picks: its bandwidth, its total latency
    cost = collective_cost("all_reduce", size, fabric, "ring")
    bandwidth = cost.scale * fabric.ring_bw
    formula = ring_allreduce_time(len(gpus), size, bandwidth, 0.0) + cost.latency
    return Outcome(float(table["time_s"].iloc[0]), formula,
                   detail=f"protocol {cost.protocol}, ring bandwidth {bandwidth / 1e9:.1f} "
                          f"GB/s, latency {cost.latency * 1e6:.1f} us")


@case("allgather_ring_alpha_beta")
def _ring_allgather(quick: bool) -> Outcome:
    topo, size = _system("H100-SXM"), float(1 << 30)
    gpus = list(range(len(topo.gpus)))
    fabric = fabric_of(gpus, topo, Router(topo))
    table = collective_sweep(topo, "all_gather", [int(size)], algo="ring")
    cost = collective_cost("all_gather", size, fabric, "ring")
    formula = ring_allgather_time(len(gpus), size, cost.scale * fabric.ring_bw, 0.0) + cost.latency
    return Outcome(float(table["time_s"].iloc[0]), formula, detail=f"protocol {cost.protocol}")

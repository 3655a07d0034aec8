"""A simulated nccl-tests: time a collective over a range of sizes on a modelled system.

Each size runs once on an otherwise idle network (a fresh SimPy environment), through the same
flow-level collectives that training jobs use. Bandwidths are reported as nccl-tests defines them
(NVIDIA/nccl-tests doc/PERFORMANCE.md): algbw = S / t, busbw = algbw × the operation's factor.

>>> from simcluster.hardware import node_spec
>>> from simcluster.topology import gpu_cluster
>>> table = collective_sweep(gpu_cluster(node_spec("H100-SXM"), 1), "all_reduce", [2**30])
>>> round(table.loc[0, "busbw_GBps"])  # ~370 GB/s: NCCL's NVLink rate on 8 H100, less latency
366
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pandas as pd
import simpy

from simcluster.engine.collectives import run_collective
from simcluster.engine.network import Network
from simcluster.errors import UserError
from simcluster.hardware import LINK_EFFICIENCY
from simcluster.perf.collectives import BUSBW_FACTOR, OPS
from simcluster.routing import Router
from simcluster.topology import Topology

__all__ = ["collective_sweep", "parse_size", "sizes"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?\s*$")


def parse_size(text: str) -> int:
    """A message size as nccl-tests reads it: ``8``, ``8K``, ``8M``, ``1G`` (powers of 1024).

    >>> parse_size("8M"), parse_size("1G"), parse_size("512")
    (8388608, 1073741824, 512)
    """
    match = _SIZE.match(str(text))
    if match is None:
        raise UserError(f"cannot read size {text!r}; expected e.g. 8, 64K, 8M, 1G")
    power = " KMGT".index(match.group(2) or " ")
    return int(float(match.group(1)) * 1024**power)


def sizes(min_bytes: int, max_bytes: int, factor: float = 2.0) -> list[int]:
    """Message sizes from ``min_bytes`` to ``max_bytes`` multiplying by ``factor``."""
    if min_bytes <= 0 or max_bytes < min_bytes:
        raise UserError(f"sizes: need 0 < min ({min_bytes}) <= max ({max_bytes})")
    if factor <= 1:
        raise UserError(f"--factor must be > 1, got {factor}")
    out, size = [], float(min_bytes)
    while size <= max_bytes * (1 + 1e-12):
        out.append(int(size))
        size *= factor
    return out


def collective_sweep(topology: Topology, op: str, message_sizes: Sequence[int],
                     algo: str = "auto", nvls: bool = False,
                     efficiency: Mapping[str, float] | None = None,
                     gpus: Sequence[int] | None = None, proto: str = "auto") -> pd.DataFrame:
    """Time ``op`` at each size on ``topology`` (all its GPUs, or ``gpus``).

    ``proto`` forces NCCL's protocol (LL, LL128, Simple) as ``NCCL_PROTO`` does; ``auto`` lets
    the cost model pick per size, which is what shapes the curve's ramp.

    Returns:
        One row per size: ``size_bytes``, ``time_s``, ``algbw_GBps``, ``busbw_GBps``,
        ``algorithm``, ``protocol``, ``flows``.
    """
    if op not in OPS:
        raise UserError(f"--op: unknown collective {op!r}; expected one of {', '.join(OPS)}")
    ranks = list(range(len(topology.gpus))) if gpus is None else list(gpus)
    if op == "send_recv":
        ranks = [ranks[0], ranks[-1]]  # first GPU to the farthest one
    router = Router(topology)
    rows = []
    for size in message_sizes:
        env = simpy.Environment()
        net = Network(env, topology, router, {**LINK_EFFICIENCY, **(efficiency or {})})
        try:
            proc = env.process(run_collective(net, ranks, op, float(size), algo, nvls,
                                              proto=proto))
            env.run()
        except ValueError as err:
            raise UserError(f"--algo/--proto: {err}") from None
        result = proc.value
        t = result.time_s
        algbw = size / t if t > 0 else float("inf")
        rows.append({"size_bytes": int(size), "time_s": t, "algbw_GBps": algbw / 1e9,
                     "busbw_GBps": algbw * BUSBW_FACTOR[op](len(ranks)) / 1e9,
                     "algorithm": result.algorithm, "protocol": result.protocol,
                     "flows": result.flows})
    return pd.DataFrame(rows)

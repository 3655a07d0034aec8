"""Decode fast-forward: one service, the same requests, with and without it (issue 7).

    python benchmarks/bench_serving.py            # --requests 4000 by default

Reports wall time, SimPy events of the replicas (timeouts yielded), decode iterations, and the
largest difference of any request's latency between the two (it must be float noise).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import simcluster
from simcluster.engine.services import Services
from simcluster.engine.simulation import Simulation


def scenario(requests: int):
    return simcluster.scenario_from_dict({
        "run": {"seed": 1},
        "cluster": {"gpu": "H100-SXM", "nodes": 1},
        "workload": {"jobs": [{"model": "mlp", "gpus": 1, "run_time": "1s"}]},
        "serving": {"cold_start": 0, "load_weights": False},
        "services": [{"name": "chat", "model": "llama-2-7b", "replicas": 2,
                      "requests": {"arrivals": {"kind": "poisson", "rate": 10.0},
                                   "count": requests, "prompt_tokens": [256, 1024, 2048],
                                   "output_tokens": [64, 128, 512]}}],
    })


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    args = parser.parse_args()
    rows = {}
    for fast in (True, False):
        sim = Simulation(scenario(args.requests))
        sim.services = Services(sim, fast_forward=fast)
        began = time.perf_counter()
        result = sim.run()
        wall = time.perf_counter() - began
        rep = result.replicas
        rows[fast] = (wall, int(rep["events"].sum()), int(rep["iterations"].sum()),
                      result.requests)
    (fw, fe, fi, fq), (sw, se, si, sq) = rows[True], rows[False]
    diff = float(np.nanmax(np.abs(fq["e2e_s"].to_numpy() - sq["e2e_s"].to_numpy())))
    print(f"{args.requests} requests, {fi} decode/prefill iterations (token-by-token: {si})")
    print(f"fast-forward:   {fw:7.2f} s wall, {fe:9,} replica events")
    print(f"token-by-token: {sw:7.2f} s wall, {se:9,} replica events")
    print(f"speed-up {sw / fw:.1f}x, events / {se / fe:.1f}; max |e2e difference| {diff:.2e} s")


if __name__ == "__main__":
    main()

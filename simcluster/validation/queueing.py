"""Queueing cases: the engine against the closed forms of queueing theory.

Each case runs ``duration``-fidelity jobs on single-GPU servers (so a GPU is a server and a job a
customer) and compares a steady-state mean with its formula (Kleinrock 1975; Harchol-Balter
2013; shared/reference/README.md "Queueing"). Replications use fixed seeds, so a run is
reproducible; the first ``warmup`` jobs of each replication are dropped.
"""

from __future__ import annotations

import math

import numpy as np
import simpy

from simcluster.engine.network import Network
from simcluster.experiment.estimate_serve import erlang_c
from simcluster.experiment.run import run, scenario_from_dict
from simcluster.hardware import node_spec
from simcluster.metrics.summary import time_average
from simcluster.rng import Streams
from simcluster.routing import Router
from simcluster.topology import gpu_cluster
from simcluster.validation.cases import Outcome, case

__all__ = ["mmc_wait"]


def mmc_wait(c: int, lam: float, mu: float = 1.0) -> float:
    """Mean wait in queue of M/M/c: C(c, a) / (cμ − λ)."""
    return erlang_c(c, lam / mu) / (c * mu - lam)


def _queue(c: int, rate: float, n: int, service: dict) -> dict:
    return {"run": {"fidelity": "duration"},
            "cluster": {"nodes": 1, "gpus_per_node": c, "storage": {"servers": 0}},
            "workload": {"arrivals": {"kind": "poisson", "rate": rate}, "count": n,
                         "checkpoint_interval": 0,
                         "mix": [{"model": "mlp", "gpus": 1, "run_time": service}]},
            "policy": {"queue": "fifo", "placement": "first_fit"}}


def _mean_wait(c: int, rho: float, service: dict, quick: bool,
               scale: int = 1) -> tuple[float, str]:
    reps, jobs, warmup = (3, 4_000 * scale, 400) if quick else (10, 40_000, 2_000)
    scenario = scenario_from_dict(_queue(c, rho * c, jobs, service), source="validation")
    means = []
    for seed in range(100, 100 + reps):
        j = run(scenario, seed=seed).jobs.sort_values("submit_s").iloc[warmup:]
        means.append(float(j["wait_s"].mean()))
    m = np.array(means)
    return float(m.mean()), f"{reps} replications x {jobs} jobs, sd of means {m.std(ddof=1):.4f}"


@case("mm8_wait")
def _mm8(quick: bool) -> Outcome:
    sim, detail = _mean_wait(8, 0.8, {"kind": "exponential", "mean": 1.0}, quick)
    return Outcome(sim, mmc_wait(8, 6.4), detail=detail)


@case("mm1_wait")
def _mm1(quick: bool) -> Outcome:
    sim, detail = _mean_wait(1, 0.5, {"kind": "exponential", "mean": 1.0}, quick)
    return Outcome(sim, mmc_wait(1, 0.5), detail=detail)


@case("md1_wait")
def _md1(quick: bool) -> Outcome:
    # Pollaczek–Khinchine with C_s² = 0: Wq = ρ·E[S]/(2(1−ρ))
    rho = 0.5
    sim, detail = _mean_wait(1, rho, {"kind": "constant", "value": 1.0}, quick)
    return Outcome(sim, rho / (2 * (1 - rho)), detail=detail)


@case("mg1_lognormal_wait")
def _mg1(quick: bool) -> Outcome:
    # lognormal service with median m and shape σ: E[S] = m·e^{σ²/2}, C_s² = e^{σ²} − 1
    sigma, rho = 1.0, 0.5
    median = math.exp(-sigma**2 / 2)  # so that E[S] = 1
    cs2 = math.exp(sigma**2) - 1
    sim, detail = _mean_wait(1, rho, {"kind": "lognormal", "median": median, "sigma": sigma},
                             quick, scale=4)  # a heavier tail needs a larger sample
    return Outcome(sim, rho * (1 + cs2) / (2 * (1 - rho)), detail=detail)


@case("littles_law")
def _little(quick: bool) -> Outcome:
    # L_q = λ·W_q on one sample path that ends empty: exact up to float rounding
    n = 3_000 if quick else 30_000
    result = run(scenario_from_dict(_queue(4, 3.0, n, {"kind": "exponential", "mean": 1.0}),
                                    source="validation"), seed=7)
    end = result.meta["end_s"]
    lq = time_average(result.utilization, "jobs_queued", end)
    lam = len(result.jobs) / end
    return Outcome(lq, lam * float(result.jobs["wait_s"].mean()),
                   detail="time-average queue length vs λ̂·mean wait")


def _ps_sojourn(quick: bool, rho: float) -> float:
    """Mean sojourn of flows sharing one link max-min fairly (= processor sharing): Poisson
    arrivals at rate ρ, each flow one second's worth of the link's bytes."""
    topo = gpu_cluster(node_spec("H100-SXM"), nodes=1, storage_servers=0)
    env = simpy.Environment()
    net = Network(env, topo, Router(topo))
    rate = float(net.capacity[0])  # the server: one directed link, at its effective rate
    gaps = Streams(11).get("validation/ps")
    n = 4_000 if quick else 40_000
    sojourns: list[float] = []

    def customer():
        t0 = env.now
        yield net.start([0], [1.0], rate).done
        sojourns.append(env.now - t0)

    def source():
        for _ in range(n):
            yield env.timeout(float(gaps.exponential(1.0 / rho)))
            env.process(customer())

    env.process(source())
    env.run()
    return float(np.mean(sojourns[n // 10:]))


@case("ps_sojourn")
def _ps(quick: bool) -> Outcome:
    rho = 0.6
    return Outcome(_ps_sojourn(quick, rho), 1.0 / (1.0 - rho),
                   detail="flows max-min sharing one link, 1 s of work each")

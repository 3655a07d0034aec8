"""Fairness: weighted DRF between tenants, finish-time fairness, Jain's index."""

from __future__ import annotations

import numpy as np
import pytest

import simcluster
from simcluster.metrics.tenants import jain_index
from simcluster.policies.fair import FairShare, Ftf, demand_vector
from simcluster.policies.view import StaticJob, StaticView


def run_(i, gpus, tenant, start=0.0):
    return StaticJob(i, size=len(gpus), gpus=tuple(gpus), run_start_s=start, tenant=tenant,
                     submit_s=float(i))


def test_drf_uses_the_dominant_resource():
    view = StaticView([8], cpus_per_host=16.0)
    cpu_heavy = StaticJob(1, size=1)
    assert demand_vector(cpu_heavy, view) == pytest.approx([1 / 8, 2 / 16, 1 / 8])


@pytest.mark.parametrize(("quotas", "first"), [
    ({}, "b"),                          # equal weights: b holds less
    ({"a": 4.0, "b": 1.0}, "a"),        # a holds 2/8 of the cluster, 2/8 / 4 < 1/8 / 1
])
def test_fair_share_order_table(quotas, first):
    view = StaticView([8], gpu_free=[0, 0, 0] + [1] * 5,
                      running=[run_(1, [0, 1], "a"), run_(2, [2], "b")])
    pending = [StaticJob(3, tenant="a", submit_s=0.0), StaticJob(4, tenant="b", submit_s=9.0)]
    policy = FairShare(quotas=quotas)
    ranked = sorted(pending, key=lambda j: policy.key(j, view))
    assert ranked[0].tenant == first


def test_fair_share_preemption_reclaims_from_the_tenant_above_its_share():
    running = [run_(i, [i], "a") for i in range(8)]
    view = StaticView([8], gpu_free=[0] * 8, running=running,
                      pending=[StaticJob(20, tenant="b"), StaticJob(21, tenant="b")], now=10.0)
    victims = FairShare(preempt=True).preempt(view)
    assert len(victims) == 2 and set(victims) <= set(range(8))
    assert FairShare(preempt=False).preempt(view) == []
    own = StaticView([8], gpu_free=[0] * 8, running=running,
                     pending=[StaticJob(20, tenant="a")], now=10.0)
    assert FairShare(preempt=True).preempt(own) == []  # never from the same tenant


def test_ftf_serves_the_worst_finish_time_ratio():
    now = 1000.0
    waited = StaticJob(1, submit_s=0.0, ideal_s=100.0)      # ρ = (1000 + 100) / 100 = 11
    fresh = StaticJob(2, submit_s=900.0, ideal_s=100.0)     # ρ = 2
    assert Ftf.rho(waited, now) == pytest.approx(11.0)
    view = StaticView([1], now=now)
    assert sorted([fresh, waited], key=lambda j: Ftf().key(j, view))[0].id == 1


def test_ftf_timer_is_the_crossing_of_rho():
    run = StaticJob(1, submit_s=0.0, ideal_s=1000.0, remaining=500.0, gpus=(0,),
                    run_start_s=0.0)                        # ρ = (100 + 500) / 1000 = 0.6 ...
    wait = StaticJob(2, submit_s=100.0, ideal_s=100.0)      # ρ(t) = (t - 100 + 100) / 100
    view = StaticView([1], gpu_free=[0], running=[run], pending=[wait], now=100.0)
    ftf = Ftf(min_run_s=0.0)
    # running ρ = (100 - 0 + 500) / 1000 = 0.6; waiting ρ(t) = t / 100 > 0.6 already
    assert ftf.preempt(view) == [1]
    view2 = StaticView([1], gpu_free=[0], running=[run], now=100.0,
                       pending=[StaticJob(2, submit_s=100.0, ideal_s=1000.0)])
    # waiting ρ(t) = (t - 100 + 1000) / 1000 reaches 0.6 … never after t = 100: it is above
    assert ftf.preempt(view2) == [1]


@pytest.mark.parametrize(("values", "index"), [
    ([1, 1, 1, 1], 1.0), ([1, 0, 0, 0], 0.25), ([2, 1], 0.9), ([], float("nan"))])
def test_jain_index(values, index):
    got = jain_index(values)
    assert (np.isnan(got) and np.isnan(index)) or got == pytest.approx(index)


def contention(quotas: dict, preempt: bool):
    # two tenants flood a 16-GPU cluster with 1-GPU jobs: both always have work waiting
    mix = [{"model": "mlp", "gpus": 1, "tenant": t, "weight": 1.0,
            "run_time": {"kind": "uniform", "low": "20min", "high": "40min"}} for t in quotas]
    return simcluster.scenario_from_dict({
        "run": {"fidelity": "duration", "seed": 4},
        "cluster": {"nodes": 2, "storage": {"servers": 0}},
        "workload": {"arrivals": {"kind": "poisson", "rate": "120/h"}, "count": 400,
                     "checkpoint_interval": 0, "mix": mix},
        "policy": {"queue": "fair_share", "placement": "first_fit",
                   "queue_params": {"quotas": quotas, "preempt": preempt},
                   "preemption": {"restart": 0}},
    })


def gpu_share(jobs, tenant, t0, t1):
    """Time-averaged share of 16 GPUs held by ``tenant`` over [t0, t1] (1-GPU jobs)."""
    mine = jobs[(jobs["tenant"] == tenant) & (jobs["preemptions"] == 0)]
    start, end = mine["start_s"].clip(t0, t1), mine["end_s"].clip(t0, t1)
    return float((end - start).clip(lower=0).sum()) / (16 * (t1 - t0))


def test_fair_share_keeps_tenants_near_their_quota_under_contention():
    # Weighted DRF gives a freed GPU to the tenant furthest below its weighted share, so a tenant
    # is never more than one 1-GPU job (1/16 of the cluster) above its quota while the other one
    # waits, hence also never more than 1/16 below. The window is a span where both tenants have
    # jobs waiting (arrivals 2× capacity).
    quotas = {"a": 3.0, "b": 1.0}
    result = simcluster.run(contention(quotas, preempt=False), check=True)
    jobs = result.jobs
    # both tenants wait until the first of them starts its last job; the jobs started before
    # contention (at most 40 min long) are gone by t0
    t0 = 3600.0
    t1 = float(jobs.groupby("tenant")["start_s"].max().min())
    assert t1 - t0 > 3 * 3600
    for tenant, q in quotas.items():
        assert abs(gpu_share(result.jobs, tenant, t0, t1) - q / 4.0) <= 1 / 16 + 1e-9
    equal = simcluster.run(contention({"a": 1.0, "b": 1.0}, preempt=False)).jobs
    t1 = float(equal.groupby("tenant")["start_s"].max().min())
    assert abs(gpu_share(equal, "a", t0, t1) - 0.5) <= 1 / 16 + 1e-9

"""EASY backfilling: the reservation table, and the head job is never delayed."""

from __future__ import annotations

import pytest

import simcluster
from simcluster.engine.simulation import Simulation
from simcluster.policies.backfill import EasyBackfill
from simcluster.policies.view import StaticJob, StaticView

from .policy_helpers import heavy_tailed


def two_running(now=0.0):
    return [StaticJob(1, size=2, remaining=100.0, gpus=(0, 1), run_start_s=0.0),
            StaticJob(2, size=4, remaining=300.0, gpus=(2, 3, 4, 5), run_start_s=0.0)]


@pytest.mark.parametrize(("need", "shadow", "extra"), [
    (2, 0.0, 0.0),      # fits now (2 idle GPUs)
    (3, 100.0, 1.0),    # after job 1 ends: 4 free, one spare
    (6, 300.0, 2.0),    # after both end: 8 free
    (8, 300.0, 0.0),
])
def test_reservation_table(need, shadow, extra):
    view = StaticView([8], gpu_free=[0] * 6 + [1, 1], running=two_running())
    r = EasyBackfill().reserve(StaticJob(9, size=need), view)
    assert (r.shadow_s, r.extra) == (shadow, extra)


@pytest.mark.parametrize(("size", "run", "ok", "extra_after"), [
    (2, 100.0, True, 1.0),    # ends exactly at the shadow time
    (1, 500.0, True, 0.0),    # runs past it, but only on the spare GPU
    (2, 500.0, False, None),  # runs past it on more than the spare
])
def test_admit_table(size, run, ok, extra_after):
    view = StaticView([8], gpu_free=[0] * 6 + [1, 1], running=two_running())
    easy = EasyBackfill()
    r = easy.reserve(StaticJob(9, size=3), view)
    after = easy.admit(StaticJob(10, size=size, ideal_s=run), tuple(range(6, 6 + size)), r, view)
    assert (after is not None) == ok
    if ok:
        assert after.extra == extra_after


def test_job_past_its_estimate_counts_as_ending_now():
    late = [StaticJob(1, size=8, ideal_s=100.0, remaining=0.0, gpus=tuple(range(8)),
                      run_start_s=0.0)]
    view = StaticView([8], gpu_free=[0] * 8, running=late, now=500.0)
    assert EasyBackfill().reserve(StaticJob(9, size=8), view).shadow_s == 500.0


@pytest.mark.parametrize("seed", [1, 2])
def test_easy_never_delays_the_reserved_head_job(seed):
    # duration fidelity and oracle estimates: every reservation is a promise the run must keep
    sim = Simulation(heavy_tailed("easy_backfill", seed=seed, n=250))
    jobs = sim.run().jobs.set_index("job_id")
    reserved = sim.scheduler.reservations
    assert len(reserved) > 20
    for job_id, shadow in reserved.items():
        assert jobs.loc[job_id, "start_s"] <= shadow + 1e-6 * max(1.0, shadow)


def test_easy_backfills_more_than_fifo():
    fifo = simcluster.run(heavy_tailed("fifo", n=250)).summary()
    easy = simcluster.run(heavy_tailed("easy_backfill", n=250)).summary()
    assert easy["mean_wait_s"] < fifo["mean_wait_s"]
    assert easy["gpu_util"] >= fifo["gpu_util"]

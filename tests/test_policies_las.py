"""Least attained service (Tiresias): queues, preemption, starvation, timers."""

from __future__ import annotations

import pytest

import simcluster
from simcluster.policies.queue_las import Las
from simcluster.policies.view import StaticJob, StaticView

from .policy_helpers import heavy_tailed


@pytest.mark.parametrize(("attained", "queue"), [
    (0.0, 0), (99.9, 0), (100.0, 1), (999.0, 1), (1000.0, 2), (1e9, 2)])
def test_queue_bands(attained, queue):
    assert Las(thresholds=[100.0, 1000.0]).queue(StaticJob(1, attained_gpu_s=attained)) == queue


def test_bad_thresholds():
    with pytest.raises(TypeError):
        Las(thresholds=[10.0, 5.0])


def test_fifo_inside_a_queue_and_better_queues_first():
    las = Las(thresholds=[100.0])
    jobs = [StaticJob(1, submit_s=0.0, attained_gpu_s=500.0),
            StaticJob(2, submit_s=5.0), StaticJob(3, submit_s=3.0)]
    assert [j.id for j in sorted(jobs, key=las.key)] == [3, 2, 1]


def view_with(pending, running_attained=500.0, now=1000.0, start=0.0):
    run = StaticJob(1, size=8, gpus=tuple(range(8)), run_start_s=start,
                    attained_gpu_s=running_attained, executed_s=now - start)
    return StaticView([8], gpu_free=[0] * 8, running=[run], pending=pending, now=now)


def test_new_job_preempts_a_demoted_one_but_not_a_peer():
    las = Las(thresholds=[100.0], starvation_factor=0)
    assert las.preempt(view_with([StaticJob(2, submit_s=900.0)])) == [1]
    assert las.preempt(view_with([StaticJob(2, submit_s=900.0)], running_attained=50.0)) == []


def test_threshold_crossing_is_a_timer():
    las = Las(thresholds=[100.0, 1000.0], starvation_factor=0)
    view = view_with([StaticJob(2, attained_gpu_s=5000.0)], running_attained=200.0)
    # the running 8-GPU job reaches 1000 GPU-s after (1000 - 200) / 8 = 100 s more
    assert las.next_event(view) == pytest.approx(1100.0)
    assert las.next_event(view_with([])) is None  # nobody waits: no timer


def test_starving_job_is_promoted_to_queue_zero():
    las = Las(thresholds=[100.0], starvation_factor=2.0)
    starving = StaticJob(2, submit_s=0.0, attained_gpu_s=400.0, executed_s=50.0,
                         queued_since_s=880.0)
    view = view_with([starving], running_attained=150.0, now=950.0)
    assert las.next_event(view) == pytest.approx(980.0)  # 880 + 2 × 50
    assert las.preempt(view) == []
    later = view_with([starving], running_attained=150.0, now=980.0)
    assert las.preempt(later) == [1]
    assert las.queue(starving) == 0 and las.attained(starving) == 0.0


def test_las_runs_are_event_driven_and_finish_everything():
    result = simcluster.run(heavy_tailed("las", {"thresholds": [600.0, 6000.0]}, n=120),
                            check=True)
    jobs = result.jobs
    assert (jobs["state"] == "completed").all()
    assert (jobs["iterations_done"] == jobs["iterations"]).all()
    assert result.summary()["preemptions"] > 0


def test_one_type_fast_path_equals_the_typed_walk():
    """The single-GPU-type walk (floats) stops exactly the jobs the per-type walk stops."""
    from simcluster.policies.preemption import _any_types, _one_type, ideal_set_victims
    from simcluster.policies.view import StaticJob, StaticView, TypeMasks
    from simcluster.rng import Streams

    rng = Streams(5).get("test/preemption")
    stopped = skipped = 0
    for trial in range(300):
        hosts = [8] * int(rng.integers(1, 4))
        n = sum(hosts)
        free_gpus = list(range(n))
        running = []
        for jid in range(int(rng.integers(0, 6))):
            size = int(rng.choice([1, 2, 4]))
            if len(free_gpus) < size:
                break
            gpus = tuple(free_gpus[:size])
            del free_gpus[:size]
            running.append(StaticJob(jid, size=size, gpus=gpus, remaining=float(rng.uniform(1, 99)),
                                     run_start_s=float(rng.uniform(0, 5))))
        pending = [StaticJob(100 + i, size=int(rng.choice([1, 2, 4, 8])),
                             remaining=float(rng.uniform(1, 99)))
                   for i in range(int(rng.integers(1, 6)))]
        gpu_free = [1.0 if g in free_gpus else 0.0 for g in range(n)]
        view = StaticView(hosts, gpu_free=gpu_free, running=running, pending=pending, now=10.0)
        key = lambda j: (j.remaining_s, j.id)  # noqa: E731
        may = (lambda p, r: p.remaining_s < r.remaining_s) if trial % 2 else None
        min_run = float(rng.choice([0.0, 7.0]))
        masks = TypeMasks(view.gpu_types)
        fast = _one_type(list(view.jobs_running), list(view.jobs_pending), view.now, key,
                         min_run, may, masks, float(n))
        typed = _any_types(view, list(view.jobs_pending), key, min_run, may, masks)
        assert fast == typed, (trial, fast, typed)
        # the public entry (which skips the walk when the free GPUs cover every pending job)
        assert ideal_set_victims(view, key, min_run_s=min_run, may_preempt=may) == fast
        stopped += bool(fast)
        skipped += sum(p.request.gpus for p in pending) <= sum(gpu_free)
    assert stopped > 30  # the walks did stop jobs, often
    assert skipped > 30  # and the shortcut was taken, often


@pytest.mark.parametrize("params", [
    {"thresholds": [300.0, 3000.0], "starvation_factor": 2.0},
    {"thresholds": [0.0, 500.0], "starvation_factor": 0.5, "min_run_s": 200.0}])
def test_tracked_queues_give_the_same_run_as_scanning(monkeypatch, params):
    """The engine's start/stop reports (a heap of threshold crossings, the running jobs kept
    ranked for the ideal-set walk) change the cost of a pass, not its decisions: the same run
    with the policy left to scan and rank the running jobs itself."""
    scenario = heavy_tailed("las", params, n=200)
    tracked = simcluster.run(scenario, check=True)
    monkeypatch.setattr(Las, "on_start", lambda self, job: None)
    monkeypatch.setattr(Las, "on_stop", lambda self, job: None)
    scanned = simcluster.run(scenario, check=True)
    assert tracked.summary()["preemptions"] > 10
    cols = ["job_id", "state", "start_s", "end_s", "preemptions", "gpu_hours"]
    assert tracked.jobs[cols].equals(scanned.jobs[cols])

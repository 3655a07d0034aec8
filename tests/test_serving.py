"""Inference services in the cluster (issue 7 part B): the replica engine against queueing theory,
fast-forward against token-by-token stepping, autoscaling against ``estimate serve``, cold starts
as contending flows, allocation shared with training; routing and autoscaling policies on
hand-built views."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import simpy

import simcluster
from simcluster.engine.services import Services
from simcluster.engine.serving import EngineParams, Live, Replica
from simcluster.engine.simulation import Simulation
from simcluster.experiment.estimate_serve import serve_estimate
from simcluster.metrics.results import Results
from simcluster.metrics.serving import replica_counts
from simcluster.policies.autoscale import ServiceState, TargetTracking
from simcluster.policies.request_routing import (
    KvAware,
    LeastOutstanding,
    PowerOfTwo,
    RoundRobin,
    StaticReplica,
)
from simcluster.rng import Streams

TINY_JOB = {"jobs": [{"model": "mlp", "gpus": 1, "run_time": "1s"}]}


def _scenario(service: dict, *, seed: int = 1, horizon=None, nodes: int = 1,
              serving: dict | None = None, workload: dict | None = None, **cluster):
    run = {"seed": seed} | ({"horizon": horizon} if horizon is not None else {})
    return simcluster.scenario_from_dict({
        "run": run,
        "cluster": {"gpu": "H100-SXM", "nodes": nodes, **cluster},
        "workload": workload or TINY_JOB,
        "serving": serving or {"cold_start": 0, "load_weights": False},
        "services": [{"name": "s", "model": "llama-2-7b", **service}],
    })


# --- queueing theory ---------------------------------------------------------------------------

def test_batch_one_replica_is_md1_pollaczek_khinchine():
    """max_batch=1 and fixed lengths: deterministic service, Poisson arrivals, one server, FCFS.
    The mean wait (arrival to admission) must match Pollaczek-Khinchine for M/D/1,
    Wq = λ S² / (2 (1 - ρ)), within the 99% confidence interval of 5 replications (fixed seeds:
    the outcome is deterministic)."""
    rate, n, warm = 5.0, 3000, 200
    means, services = [], []
    for seed in range(1, 6):
        s = _scenario({"replicas": 1, "batching": {"max_batch": 1},
                       "requests": {"arrivals": {"kind": "poisson", "rate": rate}, "count": n,
                                    "prompt_tokens": 256, "output_tokens": 16}}, seed=seed)
        q = Simulation(s).run().requests
        assert (q["state"] == "completed").all() and len(q) == n
        services.append((q["e2e_s"] - q["queue_s"]).to_numpy())
        means.append(q["queue_s"].to_numpy()[warm:].mean())
    service = np.concatenate(services)
    S = float(service.mean())
    assert service.max() - service.min() < 1e-9 * S  # deterministic service time
    rho = rate * S
    assert 0.3 < rho < 0.6
    pk = rate * S * S / (2 * (1 - rho))
    m, sd = float(np.mean(means)), float(np.std(means, ddof=1))
    half = 4.604 * sd / math.sqrt(len(means))  # t(0.995, 4 degrees of freedom)
    assert half < 0.15 * pk  # the interval is tight enough to reject a wrong model
    assert abs(m - pk) <= half, (m, pk, half)
    # ...and the simulated service time is the perf model's: one prefill, then 15 decodes
    perf = simcluster.engine.services.replica_perf("llama-2-7b", "H100-SXM")
    expect = perf.step_time(256, 0, 256) + sum(perf.step_time(0, 1, 256 + k) for k in range(15))
    assert abs(S - expect) <= 1e-9 * expect


# --- fast-forward ------------------------------------------------------------------------------

class _AffinePerf:
    """A stub perf model: affine step time, a small KV cache (forces preemptions)."""

    kv_capacity_tokens = 640

    def __init__(self) -> None:
        self.calls = 0

    def step_time(self, prefill_tokens, decode_seqs, kv_tokens, prefill_seqs=1,
                  cached_pairs=0.0):
        self.calls += 1
        return 1e-3 + 2e-5 * prefill_tokens + 1e-4 * decode_seqs + 1e-6 * kv_tokens


def _run_replica(fast: bool, chunked: bool):
    env = simpy.Environment()
    rng = Streams(5).get("test")
    done: list[Live] = []
    rep = Replica(env, 0, _AffinePerf(), EngineParams(max_batch=6, token_budget=96,
                                                        chunked_prefill=chunked,
                                                        fast_forward=fast), done.append)
    arrivals = np.cumsum(rng.exponential(0.05, 300))
    prompts, outputs = rng.integers(8, 120, 300), rng.integers(1, 200, 300)

    def feed():
        for i, t in enumerate(arrivals):
            yield env.timeout(t - env.now)
            rep.add(Live(i, t, int(prompts[i]), int(outputs[i])))

    env.process(feed())
    env.run()
    rows = sorted((r.id, r.first_token_s, r.done_s, r.preemptions) for r in done)
    return rows, rep


@pytest.mark.parametrize("chunked", [True, False])
def test_fast_forward_equals_token_by_token_stepping(chunked):
    slow, slow_rep = _run_replica(False, chunked)
    fast, fast_rep = _run_replica(True, chunked)
    assert len(slow) == len(fast) == 300
    assert [r[0] for r in slow] == [r[0] for r in fast]
    assert [r[3] for r in slow] == [r[3] for r in fast]
    assert sum(r[3] for r in fast) > 0  # the small cache made it preempt and recompute
    np.testing.assert_allclose([r[1] for r in fast], [r[1] for r in slow], rtol=1e-9)
    np.testing.assert_allclose([r[2] for r in fast], [r[2] for r in slow], rtol=1e-9)
    assert fast_rep.iterations == slow_rep.iterations
    assert fast_rep.busy_s == pytest.approx(slow_rep.busy_s, rel=1e-9)
    assert fast_rep.events < slow_rep.events / 3  # far fewer events than iterations


def test_fast_forward_in_the_cluster_gives_the_same_requests():
    s = _scenario({"replicas": 2, "routing": "least_outstanding",
                   "batching": {"max_batch": 16, "token_budget": 512},
                   "requests": {"arrivals": {"kind": "gamma", "rate": 20.0, "cv": 2.0},
                                "count": 600, "prompt_tokens": [64, 700, 2000],
                                "output_tokens": [1, 40, 300]}})
    tables = []
    for fast in (True, False):
        sim = Simulation(s)
        sim.services = Services(sim, fast_forward=fast)
        tables.append(sim.run().requests)
    a, b = tables
    assert (a["state"] == "completed").all() and len(a) == 600
    for col in ("ttft_s", "tpot_s", "e2e_s", "queue_s"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-9, atol=1e-12)


# --- autoscaling against estimate serve ---------------------------------------------------------

def test_autoscaling_on_p95_ttft_converges_to_estimate_serve():
    prompt, out, B, rate, ttft = 512, 256, 4, 8.0, 0.5
    est = serve_estimate("llama-2-7b", "H100-SXM", prompt_tokens=prompt, output_tokens=out,
                         rate=rate, slo_ttft=ttft, max_seqs=B)
    want = est["replicas_needed"]
    assert want >= 3  # a count the autoscaler has to find, not its minimum
    horizon = 1200.0
    s = _scenario({"batching": {"max_batch": B}, "slo": {"ttft": ttft},
                   "autoscaling": {"min": 1, "max": 16, "metric": "p95_ttft", "target": ttft,
                                   "cooldown": 30},
                   "requests": {"arrivals": {"kind": "poisson", "rate": rate},
                                "prompt_tokens": prompt, "output_tokens": out}},
                  horizon=horizon, nodes=2, serving={"cold_start": 5, "load_weights": False})
    r = Simulation(s).run()
    steps = replica_counts(r.replica_counts, "s", horizon)
    t = np.clip(np.append(steps["time_s"].to_numpy(float), horizon), horizon / 2, horizon)
    mean = float(np.dot(steps["replicas"], np.diff(t)) / (horizon / 2))
    assert abs(mean - want) <= 1.0, (mean, want)
    assert r.services().loc[0, "max_replicas"] >= want  # it scaled up from one


# --- cold start ----------------------------------------------------------------------------------

def _cold_start(replicas: int) -> float:
    s = _scenario({"replicas": replicas, "requests": {
        "arrivals": {"kind": "poisson", "rate": 1.0}, "count": 1,
        "prompt_tokens": 16, "output_tokens": 1}},
        nodes=2, serving={"cold_start": 10, "load_weights": True},
        storage={"servers": 1})
    rep = Simulation(s).run().replicas
    assert len(rep) == replicas and rep["cold_start_s"].notna().all()
    return float(rep["cold_start_s"].mean()) - 10.0


def test_cold_start_grows_when_replicas_load_weights_from_one_server_together():
    one, many = _cold_start(1), _cold_start(8)
    assert one > 0
    assert many > 4 * one  # eight weight reads share the server (and its links)


# --- allocation shared with training ------------------------------------------------------------

def test_serving_preempts_training_without_double_allocation():
    """A full cluster of training jobs; the service needs GPUs: with preempt_training it stops
    jobs, which checkpoint and re-queue; every allocation is checked (--check)."""
    jobs = [{"model": "llama-2-7b", "gpus": 4, "run_time": "2h", "tenant": "batch"}
            for _ in range(2)]
    s = _scenario({"tp": 2, "batching": {"max_batch": 4},
                   "autoscaling": {"min": 1, "max": 4, "metric": "queue_length",
                                   "target": 1.0, "cooldown": 20},
                   "requests": {"arrivals": {"kind": "poisson", "rate": 8.0},
                                "prompt_tokens": 512, "output_tokens": 256}},
                  horizon=400, nodes=1, workload={"jobs": jobs},
                  serving={"cold_start": 5, "preempt_training": True})
    r = Simulation(s, check=True).run()
    assert r.jobs["preemptions"].sum() >= 1
    rep = r.replicas
    assert rep["start_s"].notna().all() and len(rep) >= 3  # more than the free GPUs allowed
    # replicas and running jobs never hold more GPUs than exist
    assert r.utilization["gpus_allocated"].max() <= 8 + 1e-9
    svc = r.services().iloc[0]
    assert svc["completed"] > 0 and svc["gpu_hours"] > 0


def test_without_preemption_the_service_waits_for_gpus():
    jobs = [{"model": "mlp", "gpus": 8, "run_time": "10min"}]
    s = _scenario({"autoscaling": {"min": 0, "max": 1, "metric": "queue_length",
                                   "target": 1.0},
                   "requests": {"arrivals": {"kind": "poisson", "rate": 1.0}, "count": 5,
                                "prompt_tokens": 64, "output_tokens": 8}},
                  workload={"jobs": jobs}, nodes=1)
    r = Simulation(s, check=True).run()
    job_end = float(r.jobs["end_s"].iloc[0])
    assert job_end == pytest.approx(600.0, rel=0.01)
    # scaled from zero by the first request, it got a GPU when the job released them
    assert r.replicas["start_s"].iloc[0] == pytest.approx(job_end)
    assert r.jobs["preemptions"].iloc[0] == 0
    q = r.requests
    assert (q["state"] == "completed").all() and (q["queue_s"] > 500).all()


def test_mixed_scenario_loads_and_its_first_hour_runs():
    root = Path(__file__).resolve().parents[1]
    s = simcluster.load_scenario(root / "scenarios" / "mixed_training_inference.toml",
                                 ["run.horizon=1h"])
    assert s.services[0].autoscaling.metric == "p95_ttft" and s.serving.preempt_training
    r = Simulation(s).run()
    svc = r.services().iloc[0]
    assert svc["completed"] > 100 and 0 < svc["slo_attainment"] <= 1
    assert r.requests["arrival_s"].max() <= 3600.0


def test_static_batching_for_a_non_llm_model():
    """resnet-50 has no KV cache: static batches of at most max_batch finish together."""
    s = _scenario({"model": "resnet-50", "replicas": 1, "batching": {"max_batch": 4},
                   "requests": {"arrivals": {"kind": "poisson", "rate": 1e6}, "count": 10,
                                "prompt_tokens": 1, "output_tokens": 1}})
    r = Simulation(s).run()
    q = r.requests
    assert (q["state"] == "completed").all()
    done = (q["arrival_s"] + q["e2e_s"]).round(12)
    sizes = done.value_counts()
    assert sizes.max() == 4 and sizes.sum() == 10 and len(sizes) < 10
    assert (q["ttft_s"] == q["e2e_s"]).all()
    assert r.replicas["iterations"].iloc[0] == len(sizes)


def test_azure_trace_replay_through_a_service():
    """The first 300 requests of the Azure LLM inference 2023 conversation trace (Vidur form),
    replayed 4x faster through two replicas: every request is served with the trace's lengths
    and arrival times, and none faster than its prefill alone."""
    trace = (Path(__file__).resolve().parents[2] / "shared/data/traces"
             / "azure_llm_inference_2023_vidur" / "splitwise_conv.csv")
    if not trace.exists():
        pytest.skip("shared traces not available")
    rows = np.loadtxt(trace, delimiter=",", skiprows=1, max_rows=300)
    s = _scenario({"replicas": 2, "routing": "kv_aware", "requests": {"arrivals": {
        "kind": "trace", "path": str(trace), "time_scale": 0.25, "limit": 300}}})
    q = Simulation(s).run().requests
    assert len(q) == 300 and (q["state"] == "completed").all()
    np.testing.assert_array_equal(q["prompt_tokens"], rows[:, 1].astype(int))
    np.testing.assert_array_equal(q["output_tokens"], np.maximum(rows[:, 2], 1).astype(int))
    np.testing.assert_allclose(q["arrival_s"], rows[:, 0] * 0.25)
    assert set(q["replica"]) == {0, 1}  # kv_aware spread them
    # no request gets its first token sooner than its prompt's prefill alone on an idle replica
    perf = simcluster.engine.services.replica_perf("llama-2-7b", "H100-SXM")
    alone = np.array([perf.prefill_time(int(p)) for p in q["prompt_tokens"]])
    assert (q["ttft_s"].to_numpy() >= alone * (1 - 1e-9)).all()


def test_results_save_and_load_keep_requests(tmp_path):
    s = _scenario({"replicas": 1, "requests": {"arrivals": {"kind": "poisson", "rate": 2.0},
                                               "count": 20, "prompt_tokens": 128,
                                               "output_tokens": 16}})
    r = Simulation(s).run()
    r.save(tmp_path)
    back = Results.load(tmp_path)
    assert len(back.requests) == 20
    np.testing.assert_allclose(back.requests["ttft_s"], r.requests["ttft_s"])
    assert back.services().loc[0, "completed"] == 20


# --- routing policies --------------------------------------------------------------------------

def test_routing_policies_on_hand_built_replicas():
    rs = [StaticReplica(0, outstanding=4, kv_used_tokens=100, kv_capacity_tokens=1000),
          StaticReplica(1, outstanding=2, kv_used_tokens=900, kv_capacity_tokens=1000),
          StaticReplica(2, outstanding=2, kv_used_tokens=500, kv_capacity_tokens=1000)]
    rr = RoundRobin()
    assert [rr.route(None, rs) for _ in range(4)] == [0, 1, 2, 0]
    assert LeastOutstanding().route(None, rs) == 1  # tie between 1 and 2: lowest id
    assert KvAware().route(None, rs) == 0
    queued = [StaticReplica(0, kv_used_tokens=100, kv_capacity_tokens=1000, queued_tokens=800),
              StaticReplica(1, kv_used_tokens=500, kv_capacity_tokens=1000)]
    assert KvAware().route(None, queued) == 1  # waiting prompts count as pressure
    p2 = PowerOfTwo(Streams(3).get("routing/s"))
    picks = [p2.route(None, rs) for _ in range(300)]
    assert 0 not in picks or picks.count(0) == 0  # replica 0 loses every pair it is in
    assert set(picks) == {1, 2}
    assert PowerOfTwo(Streams(3).get("x")).route(None, rs[:1]) == 0


# --- autoscaling policy ------------------------------------------------------------------------

@pytest.mark.parametrize("metric,value,ready,now,last,want", [
    ("queue_length", 3.0, 2, 100.0, -math.inf, 3),   # proportional: ceil(2 * 3/2)
    ("queue_length", 2.1, 2, 100.0, -math.inf, 2),   # within the 10% tolerance
    ("queue_length", 0.5, 4, 100.0, -math.inf, 1),   # scale in: ceil(4 * 0.25)
    ("queue_length", 0.5, 4, 100.0, 50.0, 4),        # ...not within the cooldown
    ("queue_length", 80.0, 2, 100.0, -math.inf, 10),  # clamped to max
    ("p95_ttft", 5.0, 3, 100.0, -math.inf, 4),       # latency: one step up
    ("p95_ttft", 0.1, 3, 100.0, -math.inf, 2),       # ...and one step down
])
def test_target_tracking_decisions(metric, value, ready, now, last, want):
    target = 2.0 if metric == "queue_length" else 1.0
    p = TargetTracking(metric, target, min_replicas=1, max_replicas=10, up_cooldown_s=30,
                       down_cooldown_s=60)
    state = ServiceState(now=now, replicas=ready, ready=ready, last_change_s=last,
                         **{("p95_ttft_s" if metric == "p95_ttft" else metric): value})
    assert p.desired(state) == want


def test_target_tracking_bounds_and_no_data():
    p = TargetTracking("p95_ttft", 1.0, min_replicas=2, max_replicas=5)
    assert p.desired(ServiceState(now=0.0, replicas=0, ready=0)) == 2  # below min
    assert p.desired(ServiceState(now=0.0, replicas=3, ready=3)) == 3  # no TTFT yet: hold
    with pytest.raises(TypeError):
        TargetTracking("latency", 1.0)


def test_a_failed_gpu_stops_its_replica_and_requests_move_on(tmp_path):
    """Issue 8: a replica on a failed GPU stops, the requests it held are re-routed (their KV
    cache recomputed), and a replacement replica is placed on healthy GPUs."""
    trace = tmp_path / "failures.csv"
    trace.write_text("time_s,component,repair_s\n20,gpu:0,3600\n")
    s = _scenario({"replicas": 2, "routing": "round_robin",
                   "requests": {"arrivals": {"kind": "poisson", "rate": 10.0}, "count": 600,
                                "prompt_tokens": 512, "output_tokens": 128}})
    data = s.model_dump(mode="json")
    data["failures"] = {"trace": str(trace)}
    sim = Simulation(simcluster.scenario_from_dict(data), check=True)
    r = sim.run()
    q, reps = r.requests, r.replicas
    assert (q["state"] == "completed").all() and len(q) == 600  # nothing dropped
    moved = q[q["preemptions"] > 0]
    assert len(moved) > 0  # the failed replica's requests were recomputed elsewhere
    assert len(reps) == 3  # the two first replicas and the replacement
    assert sorted(reps["start_s"].round(6))[-1] == pytest.approx(20.0)  # placed at once
    assert r.meta["failures_gpu"] == 1


def test_a_run_with_services_and_failures_ends_without_a_horizon():
    """Failure processes stop once every service has served its requests (a counted stream
    and no horizon must end, not fail forever)."""
    s = _scenario({"replicas": 1, "requests": {"arrivals": {"kind": "poisson", "rate": 5.0},
                                               "count": 20, "prompt_tokens": 64,
                                               "output_tokens": 8}})
    data = s.model_dump(mode="json")
    data["failures"] = {"processes": [{"component": "gpu", "mtbf": "1000h"}]}
    r = Simulation(simcluster.scenario_from_dict(data)).run()
    assert (r.requests["state"] == "completed").all() and len(r.requests) == 20


def test_requests_are_admitted_by_whole_kv_blocks_and_static_llms_refused():
    from simcluster.errors import UserError
    from simcluster.perf.inference import replica_perf

    perf = replica_perf("llama-2-7b", "H100-SXM", 1, "bf16", activation_tokens=8192)
    block = 16
    blocks = int(perf.kv_capacity_tokens // block)
    too_big = blocks * block + 1  # fits the token count, not the whole blocks
    s = _scenario({"replicas": 1, "batching": {"block_size": block},
                   "requests": {"arrivals": {"kind": "poisson", "rate": 1.0}, "count": 1,
                                "prompt_tokens": too_big - 1, "output_tokens": 1}})
    r = Simulation(s).run()
    assert r.requests["state"].tolist() == ["rejected"]
    with pytest.raises(UserError, match="'static' is for models"):
        Simulation(_scenario({"replicas": 1, "batching": {"mode": "static"},
                              "requests": {"arrivals": {"kind": "poisson", "rate": 1.0},
                                           "count": 1, "prompt_tokens": 8,
                                           "output_tokens": 8}}))

"""The inference performance model (perf/inference.py) and `estimate serve`, against closed forms
and the figures in shared/reference/README.md."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from simcluster.cli import main
from simcluster.errors import UserError
from simcluster.experiment.estimate_serve import (
    cycle,
    cycle_time,
    erlang_c,
    replicas_for_rate,
    serve_estimate,
)
from simcluster.hardware import GPUS
from simcluster.perf.inference import DTYPE_BYTES, replica_perf
from simcluster.perf.models import MODELS

LLMS = ["llama-2-7b", "llama-2-70b"]


def shapes():
    """Every (model, GPU, tp, dtype) of the catalog's LLMs that fits on one node."""
    for model in LLMS:
        for gpu in GPUS:
            for tp in (1, 2, 4, 8):
                for dtype in DTYPE_BYTES:
                    try:
                        yield replica_perf(model, gpu, tp, dtype)
                    except UserError:
                        continue


# --- KV cache ------------------------------------------------------------------------------
@pytest.mark.parametrize("model, layers, kv_heads, head_dim, expected", [
    ("llama-2-7b", 32, 32, 128, 524_288),   # MHA; shared/reference/README.md
    ("llama-2-70b", 80, 8, 128, 327_680),   # GQA with 8 KV heads
])
def test_kv_bytes_per_token(model, layers, kv_heads, head_dim, expected):
    r = replica_perf(model, "H100-SXM", tp=8)
    assert r.kv_bytes_per_token == 2 * layers * kv_heads * head_dim * 2 == expected
    assert replica_perf(model, "H100-SXM", tp=8, kv_dtype="fp8").kv_bytes_per_token \
        == expected / 2


def test_kv_capacity_is_hbm_left_after_weights():
    r = replica_perf("llama-2-7b", "H100-SXM")
    free = 0.9 * r.gpu.hbm_bytes - r.weight_bytes - r.activation_reserve_bytes
    assert r.kv_capacity_tokens == math.floor(free / r.kv_bytes_per_token)
    # a replica of 8 GPUs holds more cache than 8 x one GPU minus 7 extra weight copies
    r8 = replica_perf("llama-2-7b", "H100-SXM", tp=8)
    assert r8.kv_capacity_tokens > 8 * r.kv_capacity_tokens


@pytest.mark.parametrize("dtype, ratio", [("fp8", 0.5), ("int8", 0.5), ("int4", 0.25)])
def test_quantised_weights_shrink_weights_and_grow_cache(dtype, ratio):
    bf16 = replica_perf("llama-2-70b", "H100-SXM", tp=4)
    q = replica_perf("llama-2-70b", "H100-SXM", tp=4, dtype=dtype)
    assert q.weight_bytes == pytest.approx(ratio * bf16.weight_bytes)
    assert q.weight_bytes == pytest.approx(MODELS.get("llama-2-70b").params * DTYPE_BYTES[dtype])
    assert q.kv_capacity_tokens > bf16.kv_capacity_tokens
    assert q.decode_time(1, 1000) < bf16.decode_time(1, 1000)


def test_fp8_math_only_where_the_gpu_has_fp8_tensor_cores():
    assert replica_perf("llama-2-7b", "H100-SXM", dtype="fp8").math_dtype == "fp8"
    assert replica_perf("llama-2-7b", "A100-80GB", dtype="fp8").math_dtype == "bf16"
    assert replica_perf("llama-2-7b", "H100-SXM", dtype="int4").math_dtype == "bf16"


# --- decode ---------------------------------------------------------------------------------
@pytest.mark.parametrize("efficiency", [None, 1.0])
def test_decode_batch1_never_beats_hbm_bandwidth_over_weight_bytes(efficiency):
    over = {} if efficiency is None else {"bandwidth_efficiency": 1.0, "compute_efficiency": 1.0}
    n = 0
    for r in shapes():
        if over:
            r = replica_perf(r.model.name, r.gpu.name, r.tp, r.dtype, **over)
        for context in (1, 1000, 4000):
            tokens_per_s = 1.0 / r.decode_time(1, context)
            assert tokens_per_s <= r.tp * r.gpu.hbm_bandwidth / r.weight_bytes
        n += 1
    assert n > 40  # the catalog really was covered


def test_decode_batch1_is_weights_over_bandwidth_plus_allreduce_latency():
    r = replica_perf("llama-2-70b", "H100-SXM", tp=8)
    arch = r.model.architecture
    read = r.weight_bytes + r.kv_bytes_per_token * (100 + 1)
    memory = read / (8 * r.gpu.hbm_bandwidth * r.bandwidth_efficiency)
    # ring all-reduce of one token's activations, twice per layer, with NCCL's LL protocol
    # (NVIDIA/nccl src/graph/tuning.cc): baseLat 6.6 µs + 2(p-1) steps of α, and the bytes at
    # 1/4 of the bandwidth, busbw capped at llMaxBw 87.7 GB/s on one node
    ll = min(r.allreduce_bw / 4, 87.7e9)
    one = 6.6e-6 + 2 * 7 * r.allreduce_alpha_s + 2 * 7 / 8 * arch.hidden * 2 / ll
    assert r.decode_time(1, 100) == pytest.approx(memory + 2 * arch.layers * one)
    assert r.bound(0, 1, 100) == "memory"


def test_throughput_grows_with_batch_until_compute_binds():
    r = replica_perf("llama-2-7b", "H100-SXM")
    context = 64  # short contexts: the KV cache allows large batches
    limit = r.max_batch(context)
    assert limit > 1024
    rates = {b: b / r.decode_time(b, context) for b in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512,
                                                         1024)}
    bounds = {b: r.bound(0, b, b * context) for b in rates}
    assert bounds[1] == "memory" and bounds[1024] == "compute"
    flip = min(b for b in rates if bounds[b] == "compute")
    for b in rates:
        if 2 * b in rates and bounds[2 * b] == "memory":
            assert rates[2 * b] > 1.5 * rates[b]  # memory-bound: near-free extra sequences
        if b >= flip and 2 * b in rates:
            assert rates[2 * b] < 1.05 * rates[b]  # compute roof: flat
    # the crossover b·f/Pe = (W + b·m)/Be, with f FLOP and m KV bytes per sequence
    arch = r.model.architecture
    pe = r.gpu.peak("bf16") * r.compute_efficiency
    be = r.gpu.hbm_bandwidth * r.bandwidth_efficiency
    f = r.flop_per_token + 4 * arch.layers * arch.hidden * context
    m = r.kv_bytes_per_token * (context + 1)
    crossover = (r.weight_bytes / be) / (f / pe - m / be)
    assert flip / 2 < crossover <= flip


def test_kv_cache_binds_before_compute_for_long_contexts():
    est = serve_estimate("llama-2-7b", "H100-SXM", prompt_tokens=1024, output_tokens=128,
                         slo_tpot=1.0)
    assert est["max_batch"] == replica_perf("llama-2-7b", "H100-SXM").kv_capacity_tokens // 1152
    assert est["batch"] == est["max_batch"] and est["batch_limit"] == "kv_cache"
    big = serve_estimate("llama-2-70b", "H100-SXM", tp=8, dtype="fp8", slo_tpot=1.0)
    assert big["max_batch"] > 256 and big["batch_limit"] == "max_seqs"


# --- prefill --------------------------------------------------------------------------------
def test_prefill_scales_with_prompt_length():
    r = replica_perf("llama-2-70b", "H100-SXM", tp=4)
    arch = r.model.architecture
    times = {p: r.prefill_time(p) for p in (512, 1024, 2048, 4096)}
    for p in (512, 1024, 2048):
        assert r.bound(p, 0, 0) == "compute"
        # compute: linear layers, plus the O(s^2) attention term
        assert 2.0 < r.compute_time(2 * p, 0, 0) / r.compute_time(p, 0, 0) < 2.2
        # all-reduce latency (α per ring step) is fixed, so the total grows a bit slower
        assert 1.9 < times[2 * p] / times[p] < 2.2
    # closed form: (2 N s + 2 L d s^2) / (tp · peak · e) + all-reduces of s tokens
    s = 4096
    flop = 2 * r.model.params * s + 2 * arch.layers * arch.hidden * s * s
    compute = flop / (4 * r.gpu.peak("bf16") * r.compute_efficiency)
    assert times[s] == pytest.approx(compute + r.comm_time(s))
    # shared/reference/README.md: prefill >= 2·N·prompt / (peak · efficiency)
    assert times[s] >= 2 * r.model.params * s / (4 * r.gpu.peak("bf16") * 0.5)


def test_mixed_iteration_is_one_roofline():
    r = replica_perf("llama-2-7b", "H100-SXM")
    mixed = r.step_time(512, 64, 64 * 1000)
    alone = r.step_time(512, 0, 0) + r.step_time(0, 64, 64 * 1000)
    assert max(r.step_time(512, 0, 0), r.step_time(0, 64, 64 * 1000)) <= mixed < alone


# --- errors ---------------------------------------------------------------------------------
def test_bad_inputs_are_user_errors():
    with pytest.raises(UserError, match="does not fit.*tp >= 2"):
        replica_perf("llama-2-70b", "H100-SXM", tp=1)
    with pytest.raises(UserError, match="did you mean 'llama-2-7b'"):
        replica_perf("llama2-7b", "H100-SXM")
    with pytest.raises(UserError, match="dtype"):
        replica_perf("llama-2-7b", "H100-SXM", dtype="int3")
    with pytest.raises(UserError, match="tp"):
        replica_perf("llama-2-7b", "H100-SXM", tp=16)
    with pytest.raises(UserError, match="bandwidth_efficiency"):
        replica_perf("llama-2-7b", "H100-SXM", bandwidth_efficiency=1.5)
    with pytest.raises(UserError, match="not a transformer"):
        serve_estimate("resnet-50", "H100-SXM")


# --- replicas at an SLO ---------------------------------------------------------------------
def test_erlang_c_closed_forms():
    for rho in (0.1, 0.5, 0.9):
        assert erlang_c(1, rho) == pytest.approx(rho)  # M/M/1: P(wait) = ρ
        assert erlang_c(2, 2 * rho) == pytest.approx(2 * rho**2 / (1 + rho))  # M/M/2
    assert erlang_c(3, 3.0) == 1.0


def test_replicas_for_rate_is_the_smallest_count_meeting_the_tail():
    hold, slots, slack, pct = 10.0, 32, 0.5, 0.95
    for rate in (1.0, 10.0, 50.0):
        n, _ = replicas_for_rate(rate, slots, hold, slack, pct)
        c = n * slots
        assert c / hold > rate
        assert erlang_c(c, rate * hold) * math.exp(-(c / hold - rate) * slack) <= 1 - pct
        if n > 1:
            c = (n - 1) * slots
            a = rate * hold
            assert a >= c or erlang_c(c, a) * math.exp(-(c / hold - rate) * slack) > 1 - pct


def test_estimate_replicas_scale_with_rate_and_meet_both_slos():
    one = serve_estimate("llama-2-70b", "H100-SXM", tp=4, rate=5.0)
    ten = serve_estimate("llama-2-70b", "H100-SXM", tp=4, rate=50.0)
    assert one["replicas_needed"] >= math.ceil(5.0 / one["requests_per_s"])
    assert ten["replicas_needed"] >= math.ceil(50.0 / ten["requests_per_s"])
    assert ten["replicas_needed"] > one["replicas_needed"]
    assert ten["tpot_s"] <= 0.1 and ten["ttft_s"] < 1.0
    assert ten["utilization"] < 1.0
    # a TTFT SLO below the unloaded first-token time cannot be met by any count
    none = serve_estimate("llama-2-70b", "H100-SXM", tp=4, rate=5.0, slo_ttft=0.01)
    assert none["replicas_needed"] is None and none["replicas_binds"] == "infeasible"


def test_cycle_time_without_chunking_adds_prefills_to_decodes():
    r = replica_perf("llama-2-7b", "H100-SXM")
    b, p, o = 16, 1024, 128
    expected = o * r.decode_time(b, p + o / 2) + b * r.prefill_time(p)
    assert cycle_time(r, b, p, o, chunked=False) == pytest.approx(expected)
    assert cycle_time(r, b, p, o, chunked=True) < expected  # prefill rides on memory-bound steps


# --- CLI ------------------------------------------------------------------------------------
def test_cli_estimate_serve_json(capsys):
    assert main(["estimate", "serve", "--model", "llama-2-70b", "--gpu", "H100-SXM", "--tp", "4",
                 "--dtype", "fp8", "--prompt-tokens", "1024", "--output-tokens", "256",
                 "--rate", "20/s", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("prefill_s", "decode_step_s", "max_batch", "tokens_per_s", "replicas_needed"):
        assert key in data
    assert data["replicas_needed"] >= 1 and data["bound"] in ("compute", "memory")
    assert data["batch_limit"] in ("kv_cache", "max_seqs", "slo_tpot")


def test_cli_estimate_serve_text_and_errors(capsys):
    assert main(["estimate", "serve", "--batch", "8"]) == 0
    out = capsys.readouterr().out
    assert "prefill" in out and "max batch" in out
    assert main(["estimate", "serve", "--model", "llama-2-70b"]) == 2
    assert "does not fit" in capsys.readouterr().err
    assert main(["estimate", "serve", "--rate", "fast"]) == 2


@pytest.mark.parametrize("model, tp, context", [("llama-2-7b", 1, 10), ("llama-2-7b", 1, 3000),
                                                ("llama-2-70b", 8, 500)])
def test_decode_step_times_match_step_time(model, tp, context):
    r = replica_perf(model, "H100-SXM", tp=tp)
    for b in (1, 100, 300):
        times = r.decode_step_times(b, b * context, 400)
        each = [r.step_time(0, b, b * context + k * b) for k in range(400)]
        assert times == pytest.approx(each, rel=1e-12)
    assert len(r.decode_step_times(0, 0, 5)) == 5 and r.decode_step_times(4, 0, 0).size == 0


def test_mixture_of_experts_reads_only_routed_experts():
    if "mixtral-8x7b" not in MODELS:
        pytest.skip("no MoE model in the catalog")
    r = replica_perf("mixtral-8x7b", "H100-SXM", tp=2)
    arch = r.model.architecture
    # one token reads exactly its active parameters; a large batch touches every expert
    assert r.weights_read(1) == pytest.approx(arch.active_params * 2.0)
    assert r.weights_read(1000) == pytest.approx(r.weight_bytes)
    assert r.flop_per_token == 2.0 * arch.active_params < 2.0 * r.model.params
    assert 1.0 / r.decode_time(1, 100) <= 2 * r.gpu.hbm_bandwidth / r.weights_read(1)


# --- published measurements -----------------------------------------------------------------
def test_against_nim_llama_3_70b_fp8_on_two_h100():
    """NVIDIA NIM benchmarking docs (LLM, version 1.0.0, "Performance"): Llama-3.3-70B-Instruct,
    NIM 1.8.0, 2 x H100 80GB, FP8, TP2, concurrency 1: 5,000 input tokens -> TTFT 406.77 ms,
    inter-token latency 18.58 ms; 500 input tokens -> TTFT 47.77 ms, ITL 18.91 ms. Llama 3.3
    70B has llama-3-70b's architecture. The model leaves out engine overheads, so it may be
    faster, but not by more than ~30% on these single-request figures."""
    if "llama-3-70b" not in MODELS:
        pytest.skip("llama-3-70b not in the catalog")
    r = replica_perf("llama-3-70b", "H100-SXM", tp=2, dtype="fp8")
    for prompt, ttft, itl in ((5000, 0.40677, 0.01858), (500, 0.04777, 0.01891)):
        assert 0.7 < r.prefill_time(prompt) / ttft < 1.1
        assert 0.7 < r.decode_time(1, prompt + 250) / itl < 1.1


def test_chunked_cycle_closed_form():
    r = replica_perf("llama-2-7b", "H100-SXM")
    b, p, o = 16, 1024, 128
    ctx = p + o / 2
    t_dec = r.step_time(0, b, round(b * ctx))
    t_pf = r.step_time(p, b - 1, round((b - 1) * ctx))  # one prompt rides on b-1 decodes
    c = cycle(r, b, p, o)
    assert c.seconds == pytest.approx((o - b) * t_dec + b * t_pf)
    assert c.ttft_s == pytest.approx(t_pf)
    # a prompt longer than the budget enters in chunks, one per iteration
    long = cycle(r, 4, 20_000, 2048, budget=8192)
    q = math.ceil(20_000 / (8192 - 3))
    piece = math.ceil(20_000 / q)
    assert long.ttft_s == pytest.approx(q * r.step_time(piece, 3, round(3 * (20_000 + 1024))))


def test_estimate_throughput_grows_with_batch_and_reports_the_roof():
    # GQA 70B, short prompts, long outputs: memory-bound at small batches, compute at large
    rows = [serve_estimate("llama-2-70b", "H100-SXM", tp=4, prompt_tokens=128,
                           output_tokens=512, batch=b) for b in (1, 4, 16, 64, 256, 512)]
    rates = [row["tokens_per_s"] for row in rows]
    assert all(y > x for x, y in itertools.pairwise(rates))
    assert rows[0]["bound"] == "memory" and rows[-1]["bound"] == "compute"
    assert rates[1] > 3.5 * rates[0]  # memory-bound: four sequences cost little more than one
    assert rates[-1] < 1.1 * rates[-2]  # compute roof: doubling the batch gains little
    # MHA 7B: every sequence's KV reads keep decode memory-bound; the KV cache caps the batch
    free = serve_estimate("llama-2-7b", "H100-SXM", prompt_tokens=128, output_tokens=512,
                          slo_tpot=10.0)
    assert free["batch_limit"] == "kv_cache" and free["batch"] == free["max_batch"]
    assert free["decode_bound"] == "memory"


def test_a_later_prefill_chunk_attends_its_whole_cached_prefix():
    """A chunk of c tokens after ctx cached ones does c·ctx + c²/2 attention pairs."""
    r = replica_perf("llama-2-7b", "H100-SXM")
    arch = r.model.architecture
    c, ctx = 2048, 30_000
    extra = r.flop(c, 0, ctx + c, cached_pairs=(c - 1) * ctx) - r.flop(c, 0, ctx + c)
    assert extra == pytest.approx(4.0 * arch.layers * arch.hidden * (c - 1) * ctx)
    pairs = ctx + c + (c - 1) * ctx + c * c / 2  # what the step counts in all
    assert pairs == pytest.approx(c * ctx + c * c / 2 + c)

"""``simcluster estimate serve``: one replica's prefill, decode, batch and throughput, and the
replicas needed for a request rate at an SLO, in closed form from :mod:`simcluster.perf.inference`.

Steady state of continuous batching with b running sequences, prompts of P tokens and outputs
of O tokens, contexts averaging P + O/2 during decode:

* a cycle serves b requests in about O iterations. With chunked prefill (vLLM's default: an
  iteration fills its token budget with the running decodes and then prompt tokens), a prompt
  enters in q = ⌈P / (budget − b + 1)⌉ chunks, each riding on one iteration with the b − 1 other
  sequences' decodes, so m = b·q iterations are mixed and the rest decode only:
  T(b) = (O − m)·step(0, b, kv) + m·step(P/q, b − 1, kv') while m ≤ O (arrivals spread out;
  when m > O every iteration is mixed and the budget is shared evenly,
  T(b) = n·step(b·P/n, b·O/n, …) with n = max(O, b(P+O)/budget)). Without chunking, prompts
  run alone and stall the decodes: T(b) = O·step(0, b, kv) + b·prefill(P);
* TPOT(b) = T(b) / O, throughput μ(b) = b / T(b) requests/s (b·O / T(b) output tokens/s);
* the operating batch b* is the largest b ≤ min(max batch by KV cache, max sequences) with
  TPOT(b) ≤ the TPOT SLO; what stopped it is reported (``kv_cache``, ``max_seqs``,
  ``slo_tpot``), and so is the roof the cycle spends most of its time under (``compute``
  or ``memory``);
* replicas for a rate λ: the service is c = n·b* slots, each held T(b*) by a request; with
  Poisson arrivals and a pooled queue (least-outstanding routing) the wait tail of M/M/c is
  P(W > t) = C(c, λT) · exp(−(c/T − λ) t) (Erlang C; Kleinrock 1975), and n is the smallest count
  with P(W > TTFT SLO − TTFT₀) ≤ 1 − percentile, where TTFT₀ = q·step(P/q, b* − 1, …) is the
  first-token time of a request admitted at once. Exponential holding times make this margin
  conservative for near-deterministic decode.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

from simcluster.errors import UserError
from simcluster.perf.inference import ACTIVATION_TOKENS, MAX_SEQS, ReplicaPerf, replica_perf
from simcluster.units import format_quantity, parse

__all__ = ["HELP", "Cycle", "add_arguments", "cycle", "cycle_time", "erlang_c", "estimate",
           "format_text", "replicas_for_rate", "serve_estimate"]

HELP = ("LLM serving on one replica: prefill, decode step, max batch by KV cache, throughput, "
        "and replicas needed for a request rate at TTFT/TPOT SLOs")

# Defaults near the Azure LLM inference 2023 conversation trace (median prompt 1,020 tokens,
# median output 129; shared/data/traces/azure_llm_inference_2023_vidur/SOURCE.md).
PROMPT_TOKENS = 1024
OUTPUT_TOKENS = 128
# SLO defaults: inside DistServe's chatbot SLOs (Zhong et al., OSDI'24: TTFT 0.25-4 s,
# TPOT 0.1-0.2 s); as simcluster.scenario_serving.SLOConfig.
SLO_TTFT = 1.0
SLO_TPOT = 0.1
PERCENTILE = 0.95


@dataclass(frozen=True, slots=True)
class Cycle:
    """One steady-state cycle of a replica running ``batch`` sequences (see the module doc).

    Attributes:
        seconds: T(b), the time to serve ``batch`` requests.
        compute_s: the part of it spent in compute-bound iterations.
        ttft_s: first-token time of a request admitted at once (its prefill iterations).
    """

    seconds: float
    compute_s: float
    ttft_s: float

    @property
    def bound(self) -> str:
        """The roof the cycle spends most of its time under: ``compute`` or ``memory``."""
        return "compute" if self.compute_s >= self.seconds / 2 else "memory"


def cycle(perf: ReplicaPerf, batch: int, prompt: int, output: int, chunked: bool = True,
          budget: int = ACTIVATION_TOKENS) -> Cycle:
    """The steady-state cycle in which a replica running ``batch`` sequences serves ``batch``
    requests of ``prompt`` + ``output`` tokens."""
    b, context = batch, prompt + output / 2.0
    kv = round(b * context)
    t_dec = perf.step_time(0, b, kv)
    dec_compute = t_dec if perf.bound(0, b, kv) == "compute" else 0.0
    if not chunked:  # prompts run alone, whole, while the decodes wait
        t_pre = perf.prefill_time(prompt)
        pre_compute = t_pre if perf.bound(prompt, 0, 0) == "compute" else 0.0
        return Cycle(output * t_dec + b * t_pre, output * dec_compute + b * pre_compute, t_pre)
    room = max(1, budget - (b - 1))  # prompt tokens an iteration has left beside the decodes
    chunks = math.ceil(prompt / room)
    piece, others = math.ceil(prompt / chunks), round((b - 1) * context)
    t_pf = perf.step_time(piece, b - 1, others)
    ttft = chunks * t_pf
    m = b * chunks  # iterations that carry a prompt chunk (one each when arrivals spread out)
    if m <= output:
        pf_compute = t_pf if perf.bound(piece, b - 1, others) == "compute" else 0.0
        return Cycle((output - m) * t_dec + m * t_pf,
                     (output - m) * dec_compute + m * pf_compute, ttft)
    # prompts share iterations: every iteration is mixed, the budget shared evenly
    n = max(float(output), b * (prompt + output) / budget)
    pre, dec = round(b * prompt / n), max(1, round(b * output / n))
    args = (pre, dec, round(dec * context), max(1, round(b / n)))
    step = perf.step_time(*args)
    return Cycle(n * step, n * step if perf.bound(*args) == "compute" else 0.0, ttft)


def cycle_time(perf: ReplicaPerf, batch: int, prompt: int, output: int,
               chunked: bool = True, budget: int = ACTIVATION_TOKENS) -> float:
    """T(b): seconds for a replica running ``batch`` sequences to serve ``batch`` requests."""
    return cycle(perf, batch, prompt, output, chunked, budget).seconds


def erlang_c(c: int, a: float) -> float:
    """Probability of waiting in M/M/c with offered load ``a`` = λ/μ < c (Erlang C).

    >>> round(erlang_c(1, 0.5), 3), round(erlang_c(2, 1.0), 4)
    (0.5, 0.3333)
    """
    if a >= c:
        return 1.0
    b = 1.0  # Erlang B by its stable recursion
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    rho = a / c
    return b / (1.0 - rho * (1.0 - b))


def replicas_for_rate(rate: float, slots: int, hold_s: float, slack_s: float,
                      percentile: float) -> tuple[int, str]:
    """Smallest replica count whose M/M/c wait meets the TTFT slack at ``percentile``.

    Returns the count and what decided it: ``throughput`` (the fewest replicas that keep up
    already meet the SLO) or ``ttft`` (more are needed for the wait tail).
    """
    a = rate * hold_s
    n = max(1, math.floor(a / slots) + 1)
    first = n
    while True:
        c = n * slots
        tail = erlang_c(c, a) * math.exp(-(c / hold_s - rate) * slack_s)
        if tail <= 1.0 - percentile:
            return n, "throughput" if n == first else "ttft"
        n += 1


def serve_estimate(model: str, gpu: str, tp: int = 1, dtype: str = "bf16",
                   prompt_tokens: int = PROMPT_TOKENS, output_tokens: int = OUTPUT_TOKENS,
                   batch: int | None = None, rate: float | None = None,
                   slo_ttft: float = SLO_TTFT, slo_tpot: float = SLO_TPOT,
                   percentile: float = PERCENTILE, max_seqs: int = MAX_SEQS,
                   token_budget: int = ACTIVATION_TOKENS, chunked_prefill: bool = True,
                   **overrides: Any) -> dict[str, Any]:
    """The ``estimate serve`` answer as a dict (see the module docstring for the formulas)."""
    if prompt_tokens < 1 or output_tokens < 1:
        raise UserError(f"--prompt-tokens/--output-tokens: {prompt_tokens}/{output_tokens}; "
                        f"expected positive token counts")
    if batch is not None and rate is not None:
        raise UserError("--batch and --rate: give one of them")
    if not 0.0 < percentile < 1.0:
        raise UserError(f"--percentile: {percentile}; expected a fraction in (0, 1)")
    if token_budget < 1 or max_seqs < 1:
        raise UserError(f"--token-budget/--max-seqs: {token_budget}/{max_seqs}; expected "
                        f"positive counts")
    perf = replica_perf(model, gpu, tp, dtype, activation_tokens=token_budget, **overrides)
    if perf.model.architecture is None:
        raise UserError(f"--model: {model!r} is not a transformer (no prefill/decode); expected "
                        f"an LLM from the catalog")
    P, Q = prompt_tokens, output_tokens  # Q: output
    kv_batch = perf.max_batch(P + Q)
    if kv_batch < 1:
        need = (P + Q) * perf.kv_bytes_per_token
        raise UserError(f"one request of {P}+{Q} tokens needs {need:.3g} B of KV cache; "
                        f"the replica has {perf.kv_capacity_tokens} tokens of "
                        f"cache; expected a larger tp, a smaller dtype or shorter requests")

    def tpot(b: int) -> float:
        return cycle_time(perf, b, P, Q, chunked_prefill, token_budget) / Q

    cap = min(kv_batch, max_seqs)
    if batch is not None:
        if not 1 <= batch <= kv_batch:
            raise UserError(f"--batch: {batch}; expected 1..{kv_batch} (the KV cache holds "
                            f"{kv_batch} requests of {P}+{Q} tokens)")
        b, limit = batch, "batch"
    elif tpot(1) > slo_tpot:
        b, limit = 1, "slo_tpot"
    else:
        lo, hi = 1, cap  # tpot grows with b: largest b meeting the SLO by bisection
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if tpot(mid) <= slo_tpot else (lo, mid - 1)
        b = lo
        limit = ("slo_tpot" if b < cap else "kv_cache" if kv_batch <= max_seqs else "max_seqs")
    context = P + Q / 2.0
    cyc = cycle(perf, b, P, Q, chunked_prefill, token_budget)
    cycle_s, ttft0 = cyc.seconds, cyc.ttft_s
    decode_s = perf.decode_time(b, context)
    result: dict[str, Any] = {
        "model": model, "gpu": gpu, "tp": tp, "dtype": dtype,
        "prompt_tokens": P, "output_tokens": Q,
        "prefill_s": perf.prefill_time(P),
        "decode_step_s": decode_s,
        "decode_step_batch1_s": perf.decode_time(1, context),
        "max_batch": kv_batch,
        "batch": b,
        "batch_limit": limit,
        # the roof the cycle spends most of its time under, and that of a pure decode step
        "bound": cyc.bound,
        "decode_bound": perf.bound(0, b, round(b * context)),
        "tokens_per_s": b * Q / cycle_s,
        "total_tokens_per_s": b * (P + Q) / cycle_s,
        "requests_per_s": b / cycle_s,
        "ttft_s": ttft0,
        "tpot_s": cycle_s / Q,
        "e2e_s": ttft0 + cycle_s,
        "weight_bytes": perf.weight_bytes,
        "kv_bytes_per_token": perf.kv_bytes_per_token,
        "kv_capacity_tokens": perf.kv_capacity_tokens,
        "slo_ttft_s": slo_ttft, "slo_tpot_s": slo_tpot, "percentile": percentile,
        "meets_tpot": cycle_s / Q <= slo_tpot,
        "rate": rate,
        "replicas_needed": None,
        "replicas_binds": None,
        "gpus_needed": None,
    }
    if rate is not None:
        slack = slo_ttft - ttft0
        if slack <= 0 or cycle_s / Q > slo_tpot:
            result["replicas_binds"] = "infeasible"  # no replica count meets the SLO
        else:
            n, why = replicas_for_rate(rate, b, cycle_s, slack, percentile)
            result.update(replicas_needed=n, replicas_binds=why, gpus_needed=n * tp,
                          utilization=rate * cycle_s / (n * b))
    return result


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``estimate serve``."""
    p.add_argument("--model", default="llama-2-7b", help="catalog model (default llama-2-7b)")
    p.add_argument("--gpu", default="H100-SXM", help="catalog GPU (default H100-SXM)")
    p.add_argument("--tp", type=int, default=1, help="GPUs per replica (tensor parallel)")
    p.add_argument("--dtype", default="bf16", help="weights: bf16, fp16, fp8, int8, int4")
    p.add_argument("--prompt-tokens", type=int, default=PROMPT_TOKENS,
                   help=f"prompt length (default {PROMPT_TOKENS})")
    p.add_argument("--output-tokens", type=int, default=OUTPUT_TOKENS,
                   help=f"output length (default {OUTPUT_TOKENS})")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--batch", type=int, help="running sequences (default: the largest "
                                                 "that meets the TPOT SLO)")
    group.add_argument("--rate", help='request rate to serve ("20", "20/s", "5000/h"); '
                                      "prints the replicas needed")
    p.add_argument("--slo-ttft", default=str(SLO_TTFT),
                   help=f"time-to-first-token SLO (default {SLO_TTFT}s)")
    p.add_argument("--slo-tpot", default=str(SLO_TPOT),
                   help=f"time-per-output-token SLO (default {SLO_TPOT}s)")
    p.add_argument("--percentile", type=float, default=PERCENTILE,
                   help=f"fraction of requests that must meet the TTFT SLO (default "
                        f"{PERCENTILE})")
    p.add_argument("--max-seqs", type=int, default=MAX_SEQS,
                   help=f"running sequences at most (default {MAX_SEQS}, as vLLM)")
    p.add_argument("--token-budget", type=int, default=ACTIVATION_TOKENS,
                   help=f"tokens per iteration (default {ACTIVATION_TOKENS}, as vLLM)")
    p.add_argument("--no-chunked-prefill", action="store_true",
                   help="prefills run alone and stall decodes")
    p.add_argument("--kv-dtype", default="bf16", help="KV cache element type: bf16 or fp8")


def estimate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the estimate for parsed CLI arguments."""
    def quantity(flag: str, value: Any, dimension: str) -> float:
        try:
            return parse(value, dimension)
        except (UserError, ValueError) as err:
            raise UserError(f"{flag}: {value!r}: {err}") from None

    return serve_estimate(
        args.model, args.gpu, args.tp, args.dtype, args.prompt_tokens, args.output_tokens,
        batch=args.batch,
        rate=None if args.rate is None else quantity("--rate", args.rate, "rate"),
        slo_ttft=quantity("--slo-ttft", args.slo_ttft, "time"),
        slo_tpot=quantity("--slo-tpot", args.slo_tpot, "time"),
        percentile=args.percentile, max_seqs=args.max_seqs, token_budget=args.token_budget,
        chunked_prefill=not args.no_chunked_prefill, kv_dtype=args.kv_dtype)


def format_text(r: dict[str, Any]) -> str:
    """Human-readable answer."""
    def t(x: float) -> str:
        return format_quantity(x, "time")

    lines = [
        f"{r['model']} on {r['tp']} x {r['gpu']} ({r['dtype']} weights, "
        f"{r['weight_bytes'] / 2**30:.1f} GiB), {r['prompt_tokens']} prompt + "
        f"{r['output_tokens']} output tokens",
        f"  prefill (alone):      {t(r['prefill_s'])}",
        f"  decode step:          {t(r['decode_step_s'])} at batch {r['batch']} "
        f"({t(r['decode_step_batch1_s'])} at batch 1); {r['decode_bound']}-bound",
        f"  KV cache:             {r['kv_capacity_tokens']:,} tokens "
        f"({r['kv_bytes_per_token'] / 2**10:.0f} KiB each) -> max batch {r['max_batch']}",
        f"  operating batch:      {r['batch']} (limited by {r['batch_limit']})",
        f"  throughput:           {r['tokens_per_s']:,.0f} output tokens/s, "
        f"{r['requests_per_s']:.2f} requests/s per replica ({r['bound']}-bound)",
        f"  TTFT (no queue):      {t(r['ttft_s'])}   SLO {t(r['slo_ttft_s'])}",
        f"  TPOT:                 {t(r['tpot_s'])}   SLO {t(r['slo_tpot_s'])}"
        + ("" if r["meets_tpot"] else "   (missed even at batch 1)"),
    ]
    if r["rate"] is not None:
        if r["replicas_needed"] is None:
            lines.append(f"  replicas for {r['rate']:g}/s: none meets the SLOs (TTFT or TPOT "
                         f"above target even without queueing)")
        else:
            lines.append(f"  replicas for {r['rate']:g}/s: {r['replicas_needed']} "
                         f"({r['gpus_needed']} GPUs, {r['utilization']:.0%} busy; decided by "
                         f"{r['replicas_binds']}) at p{r['percentile'] * 100:g} TTFT")
    return "\n".join(lines)

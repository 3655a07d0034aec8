"""Inference cases: the replica roofline (:mod:`simcluster.perf.inference`) against published
single-request serving measurements."""

from __future__ import annotations

from simcluster.perf.inference import replica_perf
from simcluster.validation.cases import Outcome, case

__all__: list[str] = []


def _nim():
    # Llama 3.3 70B has Llama 3 70B's architecture; FP8 weights, TP2 on two H100 SXM
    return replica_perf("llama-3-70b", "H100-SXM", tp=2, dtype="fp8")


@case("infer_nim_70b_fp8_ttft_5000")
def _ttft_long(quick: bool) -> Outcome:
    return Outcome(_nim().prefill_time(5000))


@case("infer_nim_70b_fp8_ttft_500")
def _ttft_short(quick: bool) -> Outcome:
    return Outcome(_nim().prefill_time(500))


@case("infer_nim_70b_fp8_itl_5000")
def _itl(quick: bool) -> Outcome:
    # one sequence decoding at about the middle of its 500 output tokens
    return Outcome(_nim().decode_time(1, 5000 + 250))

"""Request streams (workload/requests.py) and the serving schema (scenario_serving.py): arrival
processes by their moments, the diurnal curve's shape, and the Azure LLM inference 2023 trace."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from simcluster.errors import UserError
from simcluster.hardware import GPUS
from simcluster.perf.models import MODELS
from simcluster.rng import Streams
from simcluster.scenario_serving import DiurnalRequests, RequestsConfig, ServiceConfig
from simcluster.workload.requests import (
    DAY,
    diurnal_rate,
    diurnal_times,
    gamma_times,
    poisson_times,
    read_trace,
    request_stream,
    trace_rows,
)

AZURE = Path(__file__).resolve().parents[2] / "shared/data/traces/azure_llm_inference_2023_vidur"
CONV, CODE = AZURE / "splitwise_conv.csv", AZURE / "splitwise_code.csv"
needs_trace = pytest.mark.skipif(not CONV.exists(), reason="shared traces not available")


def gaps(times, n):
    t = np.fromiter(itertools.islice(times, n), dtype=float, count=n)
    return np.diff(np.concatenate([[0.0], t]))


# --- arrival processes ----------------------------------------------------------------------
def test_poisson_rate_and_cv_by_moments():
    rate, n = 4.0, 100_000
    g = gaps(poisson_times(rate, Streams(3).get("arrivals")), n)
    # sample mean of exponential gaps: sd = (1/λ)/√n; 4 sd
    assert abs(g.mean() - 1 / rate) < 4 * (1 / rate) / math.sqrt(n)
    # CV = 1; its estimator's relative sd ≈ sqrt((2 + 6)/(4n) + 1/n) (kurtosis 9)
    assert abs(g.std() / g.mean() - 1.0) < 4 * math.sqrt(8 / (4 * n) + 1 / n)


@pytest.mark.parametrize("cv", [0.5, 2.0])
def test_gamma_rate_and_cv_by_moments(cv):
    rate, n = 2.0, 200_000
    g = gaps(gamma_times(rate, cv, Streams(5).get("arrivals")), n)
    k = 1 / cv**2  # shape; excess kurtosis 6/k
    assert abs(g.mean() - 1 / rate) < 4 * cv / rate / math.sqrt(n)
    se = math.sqrt((2 + 6 / k) / (4 * n) + cv**2 / n)  # delta method, relative
    assert abs(g.std() / g.mean() / cv - 1.0) < 4 * se


def test_diurnal_sinusoid_shape():
    cfg = DiurnalRequests(rate=0.5, amplitude=0.6, peak=14 * 3600.0)
    curve, top = diurnal_rate(cfg)
    days = 4
    times = diurnal_times(curve, top, Streams(11).get("arrivals"))
    t = np.fromiter(itertools.takewhile(lambda x: x < days * DAY, times), dtype=float)
    hours = np.bincount(((t % DAY) // 3600).astype(int), minlength=24)
    # expected count per hour: days × ∫ λ(t) dt over that hour (closed form of the cosine)
    w = 2 * math.pi / DAY
    edges = np.arange(25) * 3600.0
    integral = cfg.rate * (np.diff(edges) + cfg.amplitude / w * np.diff(
        np.sin(w * (edges - cfg.peak))))
    expected = days * integral
    assert np.all(np.abs(hours - expected) < 4 * np.sqrt(expected))
    assert abs(len(t) - days * DAY * cfg.rate) < 4 * math.sqrt(days * DAY * cfg.rate)
    assert int(np.argmax(expected)) in (13, 14)  # the hours around the 14:00 peak
    assert hours[13:15].sum() > 3 * hours[1:3].sum()  # 1.6/0.4 peak-to-trough, minus noise


def test_diurnal_hourly_table():
    weights = [0.0] * 6 + [1.0] * 12 + [3.0] * 6  # quiet nights, busy evenings
    cfg = DiurnalRequests(rate=1.0, hourly=weights)
    curve, top = diurnal_rate(cfg)
    assert top == pytest.approx(3.0 / np.mean(weights))
    t = np.fromiter(itertools.takewhile(
        lambda x: x < 2 * DAY, diurnal_times(curve, top, Streams(2).get("a"))), dtype=float)
    hours = ((t % DAY) // 3600).astype(int)
    assert not np.any(hours < 6)
    evening, day = np.sum(hours >= 18), np.sum((hours >= 6) & (hours < 18))
    # 6 h at weight 3 vs 12 h at weight 1: ratio 1.5
    assert evening / day == pytest.approx(1.5, rel=0.05)
    assert len(t) == pytest.approx(2 * DAY, rel=0.02)  # the daily mean rate is kept


# --- the Azure LLM inference 2023 trace -----------------------------------------------------
@needs_trace
def test_azure_trace_rows_checked_by_hand():
    conv = read_trace(CONV)
    assert conv.shape == (19_366, 3)
    # first rows, as SOURCE.md quotes them (they match the Azure originals 374/44, 396/109, 879/55)
    assert conv[:3].tolist() == [[0.0, 374, 44], [4.314579, 396, 109], [4.541877, 879, 55]]
    assert conv[-1, 0] == pytest.approx(3501.721937)
    assert np.median(conv[:, 1]) == 1020 and np.median(conv[:, 2]) == 129
    assert conv[:, 1].mean() == pytest.approx(1155, abs=1)
    assert conv[:, 2].mean() == pytest.approx(211, abs=1)
    assert np.all(np.diff(conv[:, 0]) >= 0)
    code = list(trace_rows(CODE))
    assert len(code) == 8_819
    assert code[:2] == [(0.0, 4808, 10), (0.052, 3180, 8)]
    assert np.median([r[1] for r in code]) == 1469 and np.median([r[2] for r in code]) == 13


@needs_trace
def test_trace_replay_stream():
    cfg = RequestsConfig.model_validate({"arrivals": {"kind": "trace", "path": str(CONV),
                                                      "time_scale": 0.5, "offset": 100}})
    reqs = list(request_stream(cfg, Streams(1), "chat"))
    assert len(reqs) == 19_366
    assert [(r.arrival_s, r.prompt_tokens, r.output_tokens) for r in reqs[:2]] == [
        (100.0, 374, 44), (100 + 4.314579 / 2, 396, 109)]
    assert [r.id for r in reqs[:3]] == [0, 1, 2]
    limited = list(request_stream(cfg, Streams(1), "chat", horizon=110.0))
    assert all(r.arrival_s <= 110.0 for r in limited) and len(limited) < 100
    relative = RequestsConfig.model_validate({"arrivals": {"kind": "trace",
                                                           "path": CONV.name, "limit": 5}})
    assert len(list(request_stream(relative, Streams(1), "chat", data_dir=AZURE))) == 5


@needs_trace
def test_lengths_drawn_jointly_from_a_trace():
    cfg = RequestsConfig.model_validate({"arrivals": {"kind": "poisson", "rate": 10},
                                         "lengths_trace": str(CODE), "count": 2000})
    pairs = {(int(p), int(o)) for _, p, o in read_trace(CODE)}
    reqs = list(request_stream(cfg, Streams(4), "code"))
    assert len(reqs) == 2000
    assert all((r.prompt_tokens, r.output_tokens) in pairs for r in reqs)
    # code completions: short outputs (trace median 13)
    assert np.median([r.output_tokens for r in reqs]) < 40


def test_length_distributions_and_reproducibility():
    cfg = RequestsConfig.model_validate({
        "arrivals": {"kind": "gamma", "rate": 5, "cv": 3},
        "prompt_tokens": {"kind": "lognormal", "median": 1000, "sigma": 0.8},
        "output_tokens": [10, 100], "count": 20_000})
    a = list(request_stream(cfg, Streams(9), "svc"))
    b = list(request_stream(cfg, Streams(9), "svc"))
    c = list(request_stream(cfg, Streams(9), "other"))
    assert a == b and a != c
    prompts = np.array([r.prompt_tokens for r in a], dtype=float)
    assert np.median(prompts) == pytest.approx(1000, rel=0.03)
    assert {r.output_tokens for r in a} == {10, 100}
    assert all(x.arrival_s <= y.arrival_s for x, y in itertools.pairwise(a))  # gaps may be 0


def test_bad_traces_are_user_errors(tmp_path):
    cfg = RequestsConfig.model_validate({"arrivals": {"kind": "trace", "path": "missing.csv"}})
    with pytest.raises(UserError, match="missing.csv"):
        list(request_stream(cfg, Streams(1), "s", data_dir=tmp_path))
    bad = tmp_path / "bad.csv"
    bad.write_text("time,prompt\n1,2\n")
    with pytest.raises(UserError, match="arrived_at"):
        list(trace_rows(bad))
    azure = tmp_path / "azure.csv"
    azure.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                     "2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.9951690,396,109\n")
    assert [r[1:] for r in trace_rows(azure)] == [(374, 44), (396, 109)]
    assert list(trace_rows(azure))[1][0] == pytest.approx(4.314579)


# --- schema ---------------------------------------------------------------------------------
def test_service_config_validation():
    ctx = {"registries": {"model": MODELS, "GPU": GPUS}}
    base = {"name": "chat", "model": "llama-2-7b",
            "requests": {"arrivals": {"kind": "poisson", "rate": "2/s"},
                         "prompt_tokens": 512, "output_tokens": 64}}
    s = ServiceConfig.model_validate(base, context=ctx)
    assert s.replicas == 1 and s.batching.token_budget == 8192 and s.slo.percentile == 0.95
    scaled = ServiceConfig.model_validate(
        {**base, "autoscaling": {"min": 1, "max": 8, "metric": "p95_ttft", "target": 0.5}})
    assert scaled.replicas is None and scaled.autoscaling.max == 8
    with pytest.raises(ValidationError, match="did you mean 'llama-2-7b'"):
        ServiceConfig.model_validate({**base, "model": "llama2-7b"}, context=ctx)
    with pytest.raises(ValidationError, match="replicas or autoscaling"):
        ServiceConfig.model_validate({**base, "replicas": 2,
                                      "autoscaling": {"max": 4, "target": 1}})
    with pytest.raises(ValidationError, match="24 values"):
        DiurnalRequests(rate=1.0, hourly=[1.0] * 23)
    with pytest.raises(ValidationError, match="prompt_tokens and output_tokens"):
        RequestsConfig.model_validate({"arrivals": {"kind": "poisson", "rate": 1}})
    with pytest.raises(ValidationError, match="max"):
        ServiceConfig.model_validate({**base, "autoscaling": {"min": 4, "max": 2, "target": 1}})

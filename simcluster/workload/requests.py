"""Inference request streams: arrival processes and prompt/output lengths, as lazy iterators.

Arrival processes (all from one named RNG stream per service, so a run draws the same requests
whatever the policies do):

* Poisson at rate λ: exponential gaps of mean 1/λ;
* Gamma renewal: gaps ~ Gamma(k = 1/cv², θ = 1/(λk)), mean 1/λ and coefficient of variation cv;
* diurnal: non-homogeneous Poisson with a daily rate curve, by thinning (Lewis and Shedler,
  Naval Research Logistics Quarterly 26(3), 1979): candidates at the curve's maximum rate,
  each kept with probability λ(t)/λ_max;
* trace replay: the Azure LLM inference 2023 trace (Patel et al., Splitwise, ISCA'24; as
  processed by Vidur: ``arrived_at, num_prefill_tokens, num_decode_tokens``).

>>> from simcluster.rng import Streams
>>> from simcluster.scenario_serving import RequestsConfig
>>> cfg = RequestsConfig.model_validate({"arrivals": {"kind": "poisson", "rate": 2.0},
...                                      "prompt_tokens": 512, "output_tokens": 128})
>>> reqs = list(request_stream(cfg, Streams(1), "chat", horizon=10.0))
>>> all(r.prompt_tokens == 512 and r.output_tokens == 128 for r in reqs), reqs[0].service
(True, 'chat')
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simcluster.errors import UserError
from simcluster.rng import Streams
from simcluster.scenario_serving import (
    DiurnalRequests,
    GammaRequests,
    PoissonRequests,
    RequestsConfig,
    TraceRequests,
)
from simcluster.scenario_traces import resolve_data_path
from simcluster.workload.distributions import sample

__all__ = [
    "DAY",
    "RequestSpec",
    "arrival_times",
    "diurnal_rate",
    "diurnal_times",
    "gamma_times",
    "poisson_times",
    "read_trace",
    "request_stream",
    "trace_rows",
]

DAY = 86400.0

# column names of the two published forms of the Azure LLM inference 2023 trace
_VIDUR = ("arrived_at", "num_prefill_tokens", "num_decode_tokens")
_AZURE = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One inference request.

    Attributes:
        id: request id (unique within its stream).
        arrival_s: arrival time, s.
        prompt_tokens: tokens of the prompt (prefill).
        output_tokens: tokens to generate (decode), at least 1.
        service: the service it is sent to.
    """

    id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    service: str


# --- arrival processes ----------------------------------------------------------------------
def poisson_times(rate: float, rng: np.random.Generator, start: float = 0.0) -> Iterator[float]:
    """Arrival times of a Poisson process of ``rate`` per second after ``start``."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    t, mean = start, 1.0 / rate
    while True:
        t += float(rng.exponential(mean))
        yield t


def gamma_times(rate: float, cv: float, rng: np.random.Generator,
                start: float = 0.0) -> Iterator[float]:
    """Renewal arrivals with Gamma gaps: mean 1/``rate``, coefficient of variation ``cv``."""
    if rate <= 0 or cv <= 0:
        raise ValueError(f"rate and cv must be positive, got {rate}, {cv}")
    shape = 1.0 / (cv * cv)
    scale = 1.0 / (rate * shape)
    t = start
    while True:
        t += float(rng.gamma(shape, scale))
        yield t


def diurnal_rate(cfg: DiurnalRequests) -> tuple[Callable[[float], float], float]:
    """The rate curve λ(t) (per second, period one day) and its maximum.

    >>> from simcluster.scenario_serving import DiurnalRequests
    >>> f, top = diurnal_rate(DiurnalRequests(rate=1.0, amplitude=0.5, peak=0.0))
    >>> f(0.0), f(43200.0), top
    (1.5, 0.5, 1.5)
    """
    if cfg.hourly is not None:
        weights = np.asarray(cfg.hourly, dtype=float)
        levels = cfg.rate * weights / weights.mean()

        def hourly(t: float) -> float:
            return float(levels[int((t % DAY) // 3600.0) % 24])

        return hourly, float(levels.max())
    mean, amp, peak = cfg.rate, cfg.amplitude, cfg.peak

    def sinusoid(t: float) -> float:
        return mean * (1.0 + amp * math.cos(2.0 * math.pi * (t - peak) / DAY))

    return sinusoid, mean * (1.0 + amp)


def diurnal_times(rate: Callable[[float], float], rate_max: float, rng: np.random.Generator,
                  start: float = 0.0) -> Iterator[float]:
    """Non-homogeneous Poisson arrivals of intensity ``rate(t)`` ≤ ``rate_max``, by thinning."""
    if rate_max <= 0:
        raise ValueError("the rate curve is zero everywhere")
    for t in poisson_times(rate_max, rng, start):
        if rng.random() * rate_max < rate(t):
            yield t


# --- traces ---------------------------------------------------------------------------------
def trace_rows(path: str | Path) -> Iterator[tuple[float, int, int]]:
    """Rows ``(arrival_s, prompt_tokens, output_tokens)`` of a request trace CSV, lazily.

    Reads the Vidur form (``arrived_at`` in seconds since the first request) or the original
    Azure form (``TIMESTAMP`` as a date-time; converted to seconds since the first row).

    Raises:
        UserError: a missing file or unknown columns.
    """
    p = Path(path)
    try:
        handle = p.open(newline="")
    except OSError as err:
        raise UserError(f"requests trace {str(p)!r}: cannot read ({err.strerror}); expected "
                        f"a CSV with columns {', '.join(_VIDUR)}") from None
    with handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader, [])]
        if all(c in header for c in _VIDUR):
            cols, azure = [header.index(c) for c in _VIDUR], False
        elif all(c in header for c in _AZURE):
            cols, azure = [header.index(c) for c in _AZURE], True
        else:
            raise UserError(f"requests trace {str(p)!r}: columns {header}; expected "
                            f"{', '.join(_VIDUR)} or {', '.join(_AZURE)}")
        first = None
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                if azure:
                    stamp = np.datetime64(row[cols[0]].strip()[:26])
                    first = stamp if first is None else first
                    t = float((stamp - first) / np.timedelta64(1, "us")) / 1e6
                else:
                    t = float(row[cols[0]])
                prompt, output = int(float(row[cols[1]])), int(float(row[cols[2]]))
            except (ValueError, IndexError):
                raise UserError(f"requests trace {str(p)!r} line {lineno}: {row!r}; expected "
                                f"a time and two token counts") from None
            yield t, prompt, output


def read_trace(path: str | Path) -> np.ndarray:
    """The whole trace as an (n, 3) float array: arrival_s, prompt_tokens, output_tokens."""
    rows = list(trace_rows(path))
    return np.asarray(rows, dtype=float).reshape(len(rows), 3)


# --- streams --------------------------------------------------------------------------------
def arrival_times(arrivals: PoissonRequests | GammaRequests | DiurnalRequests,
                  rng: np.random.Generator, start: float = 0.0) -> Iterator[float]:
    """Arrival times of a configured synthetic process."""
    match arrivals:
        case PoissonRequests(rate=rate):
            return poisson_times(rate, rng, start)
        case GammaRequests(rate=rate, cv=cv):
            return gamma_times(rate, cv, rng, start)
        case DiurnalRequests():
            curve, top = diurnal_rate(arrivals)
            return diurnal_times(curve, top, rng, start)
    raise TypeError(f"not a synthetic arrival process: {arrivals!r}")


def request_stream(cfg: RequestsConfig, streams: Streams, service: str,
                   horizon: float | None = None, data_dir: str | Path | None = None,
                   first_id: int = 0) -> Iterator[RequestSpec]:
    """The requests of one service, in arrival order, lazily.

    Args:
        cfg: the stream's configuration.
        streams: the simulation's RNG streams; draws use ``arrivals/<service>`` and
            ``lengths/<service>``.
        service: the service name (also names the streams).
        horizon: stop at the first arrival after this time (s); None = no limit.
        data_dir: relative trace paths are resolved against it; default: the data
            directory (``$SIMCLUSTER_DATA``, else ``./data``), as for job traces.
        first_id: id of the first request.

    Stops after ``cfg.count`` requests, at ``horizon``, or at the trace's end.
    """
    arrivals_rng = streams.get(f"arrivals/{service}")
    lengths_rng = streams.get(f"lengths/{service}")
    limit = cfg.count if cfg.count is not None else math.inf
    arr = cfg.arrivals
    if isinstance(arr, TraceRequests):
        rows = trace_rows(resolve_data_path(arr.path, data_dir))
        times: Iterator[tuple[float, int, int]] = (
            (arr.offset + t * arr.time_scale, p, o) for t, p, o in rows)
        if arr.limit is not None:
            limit = min(limit, arr.limit)
    else:
        times = ((t, 0, 0) for t in arrival_times(arr, arrivals_rng))
    pairs = None
    if cfg.lengths_trace is not None:
        table = read_trace(resolve_data_path(cfg.lengths_trace, data_dir))
        if len(table) == 0:
            raise UserError(f"lengths_trace {cfg.lengths_trace!r}: no rows")
        pairs = table[:, 1:].astype(int)
    for n, (t, prompt, output) in enumerate(times):
        if n >= limit or (horizon is not None and t > horizon):
            return
        if pairs is not None:
            prompt, output = (int(v) for v in pairs[int(lengths_rng.integers(len(pairs)))])
        elif cfg.prompt_tokens is not None and cfg.output_tokens is not None:
            prompt = round(sample(cfg.prompt_tokens, lengths_rng))
            output = round(sample(cfg.output_tokens, lengths_rng))
        yield RequestSpec(id=first_id + n, arrival_s=t, prompt_tokens=max(1, prompt),
                          output_tokens=max(1, output), service=service)

"""Autoscaling of an inference service: pure target-tracking policies.

An autoscaling policy has ``desired(state) -> int``: the replica count it wants given a
read-only :class:`ServiceState`. Target tracking follows the Kubernetes Horizontal Pod
Autoscaler rule (kubernetes.io, "Horizontal Pod Autoscaling", algorithm details):
``desired = ceil(current * value / target)``, no change while ``|value / target - 1|`` is within
a tolerance (HPA default 0.1), clamped to ``[min_replicas, max_replicas]``, and rate-limited by
cooldowns: a scale-up no sooner than ``up_cooldown_s`` after the last change, a scale-down no
sooner than ``down_cooldown_s`` (HPA's default scale-down stabilisation window is 300 s).

Metrics (per ready replica unless stated):

- ``queue_length``: requests waiting for admission;
- ``outstanding``: requests queued or running (concurrency; by Little's law rate x latency);
- ``kv_usage``: fraction of the KV cache in use;
- ``p95_ttft``: 95th percentile time to first token (s) over the recent window (service-wide);
  scaled one replica at a time (step scaling), since latency does not grow in proportion to load.

>>> p = TargetTracking("queue_length", target=2.0, min_replicas=1, max_replicas=10)
>>> p.desired(ServiceState(now=100.0, replicas=2, ready=2, queue_length=3.0))
3
>>> p.desired(ServiceState(now=100.0, replicas=2, ready=2, queue_length=2.1))  # in tolerance
2
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simcluster.registry import Registry

__all__ = ["AUTOSCALE_POLICIES", "METRICS", "ServiceState", "TargetTracking"]

AUTOSCALE_POLICIES: Registry[type] = Registry("autoscaling policy")

METRICS = ("queue_length", "outstanding", "kv_usage", "p95_ttft")

# Kubernetes HPA defaults (kube-controller-manager flags, kubernetes.io reference):
HPA_TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance
HPA_DOWNSCALE_WINDOW_S = 300.0  # --horizontal-pod-autoscaler-downscale-stabilization (5 min)
HPA_SYNC_PERIOD_S = 15.0  # --horizontal-pod-autoscaler-sync-period


@dataclass(frozen=True)
class ServiceState:
    """What an autoscaling policy sees of one service at ``now``.

    Attributes:
        now: simulated time (s).
        replicas: replicas held or asked for (starting, ready), the count the policy changes.
        ready: replicas serving requests.
        queue_length: mean waiting requests per ready replica.
        outstanding: mean queued + running requests per ready replica.
        kv_usage: mean KV-cache fraction in use over ready replicas.
        p95_ttft_s: 95th percentile TTFT over the recent window (s); nan if none.
        last_change_s: time of the last scaling decision (-inf if none).
    """

    now: float
    replicas: int
    ready: int
    queue_length: float = 0.0
    outstanding: float = 0.0
    kv_usage: float = 0.0
    p95_ttft_s: float = float("nan")
    last_change_s: float = -math.inf

    def value(self, metric: str) -> float:
        """The named metric's value."""
        return {"queue_length": self.queue_length, "outstanding": self.outstanding,
                "kv_usage": self.kv_usage, "p95_ttft": self.p95_ttft_s}[metric]


@AUTOSCALE_POLICIES.register("target_tracking")
class TargetTracking:
    """Keep ``metric`` near ``target`` by scaling the replica count proportionally.

    Args:
        metric: one of :data:`METRICS`.
        target: the metric's target value (requests, a fraction, or seconds for p95_ttft).
        min_replicas, max_replicas: bounds.
        up_cooldown_s: least time between a change and a following scale-up (s). Default 60 s:
            an assumption (a cold start is tens of seconds), not a published default.
        down_cooldown_s: least time between a change and a following scale-down (s); default
            300 s, the HPA scale-down stabilisation window.
        tolerance: relative dead band around the target; default 0.1, as the HPA.
        interval_s: least time between two evaluations (s); default 15 s, the HPA sync period.
        scale_in_ratio: with ``p95_ttft``, scale in only when the metric is below this fraction
            of the target (an assumption: 0.5 keeps one step of headroom on the latency cliff).
    """

    def __init__(self, metric: str = "outstanding", target: float = 8.0,
                 min_replicas: int = 1, max_replicas: int = 8,
                 up_cooldown_s: float = 60.0, down_cooldown_s: float = HPA_DOWNSCALE_WINDOW_S,
                 tolerance: float = HPA_TOLERANCE, interval_s: float = HPA_SYNC_PERIOD_S,
                 scale_in_ratio: float = 0.5) -> None:
        if metric not in METRICS:
            raise TypeError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        if not target > 0:
            raise TypeError(f"target must be positive, got {target!r}")
        if not 0 <= min_replicas <= max_replicas or max_replicas < 1:
            raise TypeError(f"need 0 <= min_replicas <= max_replicas and max_replicas >= 1, "
                            f"got {min_replicas}, {max_replicas}")
        if min(up_cooldown_s, down_cooldown_s, tolerance, interval_s) < 0:
            raise TypeError("cooldowns, tolerance and interval must be non-negative")
        self.metric, self.target = metric, float(target)
        self.min_replicas, self.max_replicas = int(min_replicas), int(max_replicas)
        self.up_cooldown_s, self.down_cooldown_s = float(up_cooldown_s), float(down_cooldown_s)
        self.tolerance, self.interval_s = float(tolerance), float(interval_s)
        self.scale_in_ratio = float(scale_in_ratio)

    def desired(self, state: ServiceState) -> int:
        """The replica count wanted now (``state.replicas`` when nothing should change)."""
        current = state.replicas
        clamp = max(self.min_replicas, min(self.max_replicas, current))
        if clamp != current:
            return clamp
        value = state.value(self.metric)
        if state.ready == 0 or not math.isfinite(value):
            return current  # nothing measured yet: wait for replicas to serve
        ratio = value / self.target
        if abs(ratio - 1.0) <= self.tolerance:
            return current
        if self.metric == "p95_ttft":
            # latency is not proportional to load (near zero until the queue builds, then
            # unbounded): step one replica at a time, and scale in only well below the target
            # (hysteresis), so the count settles at the fewest replicas that keep the tail
            # under the target instead of cycling across the cliff
            if ratio < 1 and ratio > self.scale_in_ratio:
                return current
            want = state.ready + (1 if ratio > 1 else -1)
        else:
            # proportional to the replicas measured (ready), as the HPA counts ready pods
            want = math.ceil(state.ready * ratio - 1e-9)
        want = max(self.min_replicas, min(self.max_replicas, want))
        since = state.now - state.last_change_s
        if want > current and since < self.up_cooldown_s:
            return current
        if want < current and since < self.down_cooldown_s:
            return current
        return want if want != current and (want > current) == (ratio > 1) else current

    def next_evaluation(self, state: ServiceState) -> float:
        """The earliest time a decision could change without any other event: the end of the
        pending cooldown (the engine evaluates again then, once; never a polling loop)."""
        return state.last_change_s + min(self.up_cooldown_s, self.down_cooldown_s)

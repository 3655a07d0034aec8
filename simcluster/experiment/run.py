"""Load and run scenarios: the Python API behind ``simcluster run``.

>>> import simcluster
>>> s = simcluster.scenario_from_dict({
...     "cluster": {"nodes": 1},
...     "workload": {"jobs": [{"model": "mlp", "gpus": 1, "run_time": "10min"}]}})
>>> r = simcluster.run(s, seed=3)
>>> r.summary()["jobs_completed"]
1
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from simcluster.engine.progress import Progress
from simcluster.engine.simulation import Simulation
from simcluster.errors import UserError
from simcluster.experiment.imports import ImportingRegistry
from simcluster.hardware import GPUS, NICS, STORAGE
from simcluster.metrics.results import Results
from simcluster.perf.fluid import SOLVERS
from simcluster.perf.models import MODELS
from simcluster.policies.admission import ADMISSION_POLICIES
from simcluster.policies.checkpoint import CHECKPOINT_POLICIES
from simcluster.policies.placement import PLACEMENT_POLICIES
from simcluster.policies.queue import QUEUE_POLICIES
from simcluster.policies.request_routing import ROUTING_POLICIES
from simcluster.scenario import Scenario
from simcluster.scenario_load import apply_overrides, load_scenario_file, parse_scenario
from simcluster.topology import FABRICS
from simcluster.workload.fit import PRESETS
from simcluster.workload.traces import TRACE_FORMATS

__all__ = ["load_scenario", "registries", "run", "scenario_from_dict"]


def registries(allow_import: bool = False) -> dict[str, Any]:
    """Every registry a scenario's names are checked against, by the kind named in errors.

    Policies may also be named ``module:Class``; such a module is imported (its code runs) only
    with ``allow_import`` (:mod:`simcluster.experiment.imports`).
    """
    return {
        "GPU": GPUS, "NIC": NICS, "storage": STORAGE, "model": MODELS, "fabric": FABRICS,
        "queue policy": ImportingRegistry(QUEUE_POLICIES, allow_import),
        "placement policy": ImportingRegistry(PLACEMENT_POLICIES, allow_import),
        "admission policy": ImportingRegistry(ADMISSION_POLICIES, allow_import),
        "checkpoint policy": CHECKPOINT_POLICIES,
        "fluid solver": SOLVERS, "workload preset": PRESETS,
        "routing": ROUTING_POLICIES,  # services.routing (issue 7)
        "trace format": TRACE_FORMATS,  # workload.trace.format (issue 6)
    }


def load_scenario(path: str | Path, overrides: Sequence[str] = (),
                  allow_import: bool = False) -> Scenario:
    """Read and validate a TOML scenario file, with ``key.path=value`` overrides.

    Raises:
        UserError: anything wrong with the file, naming the file, key, value and expectation.
    """
    return preflight(load_scenario_file(path, overrides, registries(allow_import)), str(path))


def scenario_from_dict(data: Mapping[str, Any], overrides: Sequence[str] = (),
                       source: str = "<dict>", allow_import: bool = False) -> Scenario:
    """Validate a scenario given as a (nested) dict, e.g. built in a notebook."""
    return preflight(parse_scenario(apply_overrides(data, overrides), source,
                                    registries(allow_import)), source)


def preflight(scenario: Scenario, source: str) -> Scenario:
    """Cross-checks that need the catalogs: build the simulation (topology, policies with their
    parameters, network) without running it, and check the math precision exists on the GPU.

    Raises:
        UserError: naming ``source`` and the key at fault.
    """
    dtype = scenario.run.dtype
    for pool in scenario.cluster.node_pools():
        gpu = GPUS.get(pool.gpu)
        offered = [d for d in ("bf16", "fp16", "fp8", "tf32") if getattr(gpu, f"{d}_flops", 0.0)]
        if dtype not in offered:
            raise UserError(f"{source}: run.dtype: {gpu.name} has no {dtype} peak; expected one "
                            f"of {', '.join(offered)}")
    try:
        Simulation(scenario)
    except UserError as err:
        raise UserError(f"{source}: {err}") from None
    return scenario


def run(scenario: Scenario | str | Path, seed: int | None = None, check: bool = False,
        max_wall_s: float | None = None, progress: Progress | None = None,
        trace_events: bool = False) -> Results:
    """Run one simulation.

    Args:
        scenario: a validated scenario, or a path to a TOML file.
        seed: root seed; the scenario's ``run.seed`` if None.
        check: verify allocation invariants after every scheduling pass (slower).
        max_wall_s: wall-clock limit (s); when it passes the run stops cleanly and the results
            so far are kept, with ``results.meta["partial"]`` True. None: no limit.
        progress: a progress line to update (drawn only on a terminal), or None.
        trace_events: keep the scheduling event log (``results.events``: every decision with
            its reason; :mod:`simcluster.metrics.events`).

    Returns:
        The run's :class:`~simcluster.metrics.results.Results`.
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    return Simulation(scenario, seed=seed, check=check, trace_events=trace_events).run(
        max_wall_s=max_wall_s, progress=progress)

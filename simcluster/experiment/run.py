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

from simcluster.engine.simulation import Simulation
from simcluster.hardware import GPUS, NICS, STORAGE
from simcluster.metrics.results import Results
from simcluster.perf.fluid import SOLVERS
from simcluster.perf.models import MODELS
from simcluster.policies.admission import ADMISSION_POLICIES
from simcluster.policies.placement import PLACEMENT_POLICIES
from simcluster.policies.queue import QUEUE_POLICIES
from simcluster.scenario import Scenario, apply_overrides, load_scenario_file, parse_scenario
from simcluster.topology import FABRICS

__all__ = ["load_scenario", "registries", "run", "scenario_from_dict"]


def registries() -> dict[str, Any]:
    """Every registry a scenario's names are checked against, by the kind named in errors."""
    return {
        "GPU": GPUS, "NIC": NICS, "storage": STORAGE, "model": MODELS, "fabric": FABRICS,
        "queue policy": QUEUE_POLICIES, "placement policy": PLACEMENT_POLICIES,
        "admission policy": ADMISSION_POLICIES,
        "fluid solver": SOLVERS,
    }


def load_scenario(path: str | Path, overrides: Sequence[str] = ()) -> Scenario:
    """Read and validate a TOML scenario file, with ``key.path=value`` overrides.

    Raises:
        UserError: anything wrong with the file, naming the file, key, value and expectation.
    """
    return load_scenario_file(path, overrides, registries())


def scenario_from_dict(data: Mapping[str, Any], overrides: Sequence[str] = (),
                       source: str = "<dict>") -> Scenario:
    """Validate a scenario given as a (nested) dict, e.g. built in a notebook."""
    return parse_scenario(apply_overrides(data, overrides), source, registries())


def run(scenario: Scenario | str | Path, seed: int | None = None, check: bool = False) -> Results:
    """Run one simulation.

    Args:
        scenario: a validated scenario, or a path to a TOML file.
        seed: root seed; the scenario's ``run.seed`` if None.
        check: verify allocation invariants after every scheduling pass (slower).

    Returns:
        The run's :class:`~simcluster.metrics.results.Results`.
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    return Simulation(scenario, seed=seed, check=check).run()

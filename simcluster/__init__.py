"""simcluster: a discrete-event simulator of GPU clusters.

The public API is imported on first use (PEP 562), so ``simcluster estimate ...`` and other
light commands start without loading the engine, pandas' statistics or matplotlib.

>>> import simcluster
>>> sorted(simcluster.__all__)[:3]
['Results', 'Scenario', 'UserError']
>>> simcluster.run.__module__
'simcluster.experiment.run'
"""

from importlib import import_module
from typing import Any

import simcluster.scenario  # noqa: F401 (first: the scenario_* modules build on it)
from simcluster.errors import UserError
from simcluster.scenario import Scenario

_LAZY = {
    "Results": "simcluster.metrics.results", "load_results": "simcluster.experiment.store",
    "load_scenario": "simcluster.experiment.run", "plan": "simcluster.experiment.plan",
    "replicate": "simcluster.experiment.replicate", "run": "simcluster.experiment.run",
    "scenario_from_dict": "simcluster.experiment.run", "sweep": "simcluster.experiment.sweep",
}

__all__ = [
    "Results", "Scenario", "UserError", "load_results", "load_scenario", "plan", "replicate", "run",
    "scenario_from_dict", "sweep",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'simcluster' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

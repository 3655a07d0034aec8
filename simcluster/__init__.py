"""simcluster: a discrete-event simulator of GPU clusters.

>>> import simcluster
>>> sorted(simcluster.__all__)[:3]
['Results', 'Scenario', 'UserError']
"""

from simcluster.errors import UserError
from simcluster.experiment.plan import plan
from simcluster.experiment.replicate import replicate
from simcluster.experiment.run import load_scenario, run, scenario_from_dict
from simcluster.experiment.store import load_results
from simcluster.experiment.sweep import sweep
from simcluster.metrics.results import Results
from simcluster.scenario import Scenario

__all__ = [
    "Results", "Scenario", "UserError", "load_results", "load_scenario", "plan", "replicate", "run",
    "scenario_from_dict", "sweep",
]
__version__ = "0.1.0"

"""The layer rule of DESIGN.md section 2: a module imports only from layers below it (or its own).

Policies must not import SimPy or the engine; no module may use the ``random`` module or
``np.random.*`` functions for draws (convention 2), only simcluster.rng streams.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "simcluster"

# top to bottom in DESIGN.md; a higher number may import any lower one
RANK = {
    "units": 0, "rng": 0, "registry": 0, "errors": 0,
    "metrics": 1,
    "scenario": 2, "scenario_load": 2, "scenario_traces": 2, "scenario_failures": 2,
    "scenario_serving": 2, "scenario_training": 2, "scenario_inference": 2,
    "hardware": 3,
    "topology": 4, "routing": 4,
    "perf": 5,
    "workload": 6,
    "policies": 7,
    "engine": 8,
    "report": 9,
    "experiment": 10, "validation": 10,
    "cli": 11, "__main__": 11,
    "__init__": 12,
}


def component(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else rel.stem


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_component_has_a_rank():
    assert {component(p) for p in MODULES} <= set(RANK)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_respect_layers(path):
    own = component(path)
    for line, name in imports(path):
        parts = name.split(".")
        if parts[0] == "simcluster" and len(parts) > 1:
            target = parts[1]
            assert RANK[target] <= RANK[own], (
                f"{path.relative_to(PACKAGE)}:{line} imports {name}: layer {own} "
                f"({RANK[own]}) may not import {target} ({RANK[target]})")
        if own == "policies":
            assert parts[0] != "simpy", f"{path}:{line}: policies must not import simpy"
        assert parts[0] != "random", f"{path}:{line}: use simcluster.rng streams, not random"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_global_numpy_random_draws(path):
    text = path.read_text()
    for banned in ("np.random.seed", "np.random.rand", "np.random.choice",
                   "np.random.normal", "np.random.exponential", "np.random.default_rng("):
        assert banned not in text, f"{path}: {banned}"

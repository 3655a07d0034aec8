"""The README's Python examples and the notebooks run as written (outputs are not stored)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import matplotlib
import pytest

from .conftest import ROOT

matplotlib.use("Agg")

README = (ROOT / "README.md").read_text()


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_examples_run(tmp_path):
    # in a fresh interpreter: the examples register policies, which must not leak into the
    # registries other tests iterate over
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    blocks = python_blocks(README)
    assert len(blocks) >= 2
    script = tmp_path / "readme_examples.py"
    script.write_text("import matplotlib\nmatplotlib.use('Agg')\n" + "\n".join(blocks))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "out" / "summary.json").exists()


def test_readme_test_command_is_what_ci_runs():
    marker = README.index("<!-- test-command")
    command = README[marker:].split("```bash\n", 1)[1].split("\n", 1)[0]
    assert "pytest" in command
    assert "test-command" in (ROOT / ".ci" / "run").read_text()


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom_without_stored_outputs(path, monkeypatch):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    monkeypatch.chdir(path.parent)
    namespace: dict = {"__name__": "notebook"}
    for cell in code:
        exec(compile("".join(cell["source"]), f"{path.name}", "exec"), namespace)
    assert os.getcwd() == str(path.parent)

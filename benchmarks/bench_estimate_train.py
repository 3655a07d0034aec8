"""How long ``simcluster estimate train`` takes: the step model per preset, and the CLI's
start-up (imports), measured in one invocation.

    python benchmarks/bench_estimate_train.py
"""

from __future__ import annotations

import subprocess
import sys
import time

from simcluster.experiment.estimate_train import train_estimate
from simcluster.perf.models import MODELS

LAYOUTS = {"mlp": {}, "resnet-50": {}, "gpt2-1.5b": {}, "gpt-2-1.5b": {},
           "bert-large": {"tp": 2, "zero": 1}}


def main() -> None:
    rows = []
    for name in MODELS.names():
        kw = LAYOUTS.get(name, {"tp": 8, "zero": 1})
        start = time.perf_counter()
        for _ in range(20):
            train_estimate(name, gpus=64, **kw)
        rows.append((name, (time.perf_counter() - start) / 20 * 1e3))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "simcluster", "estimate", "train", "--model",
                    "llama-3-405b", "--gpus", "16384", "--tp", "8", "--pp", "16", "--json"],
                   check=True, capture_output=True)
    cli = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import simcluster.cli"], check=True)
    imports = time.perf_counter() - start
    print("| preset | estimate (ms) |\n|---|---:|")
    for name, ms in rows:
        print(f"| {name} | {ms:.2f} |")
    print(f"\nCLI call, wall: {cli:.2f} s; of which `import simcluster.cli`: {imports:.2f} s")


if __name__ == "__main__":
    main()

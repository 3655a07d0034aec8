"""Training cases: ``estimate train`` (the step model the simulator also uses) against the
iteration rates, utilisation and GPU-hours that large public training runs report.

Two rows set the efficiency coefficients (one per GPU generation, see
:mod:`simcluster.perf.efficiency`); they are marked ``calibration`` in the data file.
"""

from __future__ import annotations

import argparse

from simcluster.experiment.estimate_train import add_arguments, estimate
from simcluster.validation.cases import Outcome, case

__all__: list[str] = []

_A530 = ("--layers 105 --hidden 20480 --heads 128 --ffn 81920 --vocab 51200 --seq 2048 "
         "--gpu A100-80GB --gpus 2240 --tp 8 --pp 35 --global-batch 2240")
_405B = "--model llama-3-405b --gpu H100-SXM --tp 8 --pp 16 --vp 4 --zero 1"

# case name -> (estimate train flags, the output compared)
RUNS = {
    "train_gpt3_175b_1536_a100": (
        "--model gpt-3-175b --gpu A100-80GB --gpus 1536 --tp 8 --pp 12 --recompute full",
        "hw_tflops_per_gpu"),
    "train_530b_selective_mfu": (_A530 + " --recompute selective", "mfu"),
    "train_530b_full_mfu": (_A530 + " --recompute full", "mfu"),
    "train_llama3_405b_8k_mfu": (_405B + " --gpus 8192", "mfu"),
    "train_llama3_405b_16k_mfu": (_405B + " --gpus 16384", "mfu"),
    "train_llama3_405b_16k_tflops": (_405B + " --gpus 16384", "tflops_per_gpu"),
    "train_llama3_405b_cp16_mfu": (_405B + " --gpus 16384 --cp 16 --seq 131072 "
                                   "--global-batch 128", "mfu"),
    "train_llama2_70b_gpu_hours": (
        "--model llama-2-70b --gpu A100-80GB --gpus 2048 --tp 8 --pp 4 --zero 1 --tokens 2e12",
        "gpu_hours"),
    "train_llama2_7b_gpu_hours": (
        "--model llama-2-7b --gpu A100-80GB --gpus 1024 --zero 1 --tokens 2e12", "gpu_hours"),
}


def _estimate(flags: str) -> dict:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return estimate(parser.parse_args(flags.split()))


def _register(name: str, flags: str, key: str) -> None:
    @case(name)
    def run(quick: bool) -> Outcome:
        return Outcome(float(_estimate(flags)[key]), detail=f"estimate train {flags}")


for _name, (_flags, _key) in RUNS.items():
    _register(_name, _flags, _key)

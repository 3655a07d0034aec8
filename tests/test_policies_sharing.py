"""GPU-sharing placements (gpu_milli packing, FGD) and the fragmentation metric."""

from __future__ import annotations

import numpy as np
import pytest

import simcluster
from simcluster.policies.sharing import Fgd, GpuMilli, host_fragmentation, milli
from simcluster.policies.view import StaticJob, StaticView
from simcluster.workload.jobs import Request


@pytest.mark.parametrize(("free", "request_", "packing", "fgd"), [
    # a shared GPU that fits exactly is best for both
    ([0.5, 1.0, 0.7, 1.0], Request(0.5), (0,), (0,)),
    # packing takes the fullest shared GPU; FGD avoids leaving a 0.1 sliver nobody can use
    ([0.6, 1.0, 0.5, 1.0], Request(0.5), (2,), (2,)),
    # nothing fits
    ([0.2, 0.1, 0.3, 0.0], Request(0.5), None, None),
    # whole GPUs: both take a host that fits
    ([1.0, 1.0, 0.5, 1.0], Request(2), (0, 1), (0, 1)),
])
def test_sharing_table(free, request_, packing, fgd):
    mix = [StaticJob(i, size=0.5) for i in range(4)]
    view = StaticView([2, 2], gpu_free=free, pending=mix)
    assert GpuMilli().place(request_, view) == packing
    assert Fgd().place(request_, view) == fgd


def test_milli_units():
    assert milli(np.array([0.3333, 1.0])).tolist() == [333, 1000]


@pytest.mark.parametrize(("free", "mix", "expected"), [
    ([1.0, 1.0], [(Request(1), 1.0)], 0.0),                # all usable
    ([0.5, 1.0], [(Request(1), 1.0)], 0.5),                # the half GPU is a fragment
    ([0.5, 1.0], [(Request(0.5), 1.0)], 0.0),              # not for half-GPU tasks
    ([0.5, 0.5], [(Request(1), 1.0)], 1.0),                # a whole-GPU task cannot fit at all
    ([0.5, 1.0], [(Request(1), 0.5), (Request(0.5), 0.5)], 0.25),
])
def test_host_fragmentation_table(free, mix, expected):
    got = host_fragmentation(np.array(free), ("H100-SXM",) * len(free), 100.0, 10.0, mix)
    assert got == pytest.approx(expected)


def sharing_scenario(placement):
    return simcluster.scenario_from_dict({
        "run": {"fidelity": "duration", "seed": 2},
        "cluster": {"nodes": 2, "storage": {"servers": 0}},
        "workload": {"arrivals": {"kind": "poisson", "rate": "200/h"}, "count": 300,
                     "checkpoint_interval": 0,
                     "mix": [{"model": "mlp", "gpus": {"kind": "choice",
                                                       "values": [0.25, 0.5, 1, 2]},
                              "run_time": {"kind": "exponential", "mean": "20min"}}]},
        "policy": {"placement": placement, "queue": "fifo",
                   "queue_params": {"blocking": False}},
    })


def test_fgd_fragments_less_than_first_fit_on_a_sharing_workload():
    frag = {p: simcluster.run(sharing_scenario(p), check=True).summary()["mean_gpus_fragmented"]
            for p in ("first_fit", "fgd")}
    assert frag["fgd"] <= frag["first_fit"]

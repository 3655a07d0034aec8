"""GPU-sharing placements (gpu_milli packing, FGD) and the fragmentation metric."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

import simcluster
from simcluster.experiment.packing import allocation_curve
from simcluster.policies.sharing import Fgd, GpuMilli, host_fragmentation, milli, target_workload
from simcluster.policies.view import StaticJob, StaticView, TypeMasks
from simcluster.workload.jobs import Request
from tests.conftest import SCENARIOS, TRACES

OPENB = TRACES / "alibaba_pai_v2023_openb"


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


# FGD's incremental table, its target workload, and the ATC'23 ranking on openb ---------------
def test_fgd_incremental_table_matches_a_fresh_policy():
    """One Fgd instance, whose per-host fragment table is updated only for the hosts that
    changed, decides exactly as a fresh instance (full recomputation) along a packing run on
    mixed GPU types with CPU limits."""
    rng = np.random.default_rng(3)
    sizes = [0.1, 0.25, 0.5, 0.7, 1, 2, 4]
    hosts = OpenbHosts([(8, 64.0), (8, 96.0), (4, 24.0), (2, 16.0), (1, 8.0), (2, 104.0)],
                       types=["A", "A", "B", "B", "A", "B"])
    kept, mismatches = Fgd(), 0
    for i in range(120):
        request = Request(float(rng.choice(sizes)), cpus_per_gpu=float(rng.choice([0, 2, 6, 12])),
                          gpu_type=[None, "A", "B"][i % 3])
        hosts.running.append(StaticJob(i, size=request.gpus))
        got = kept.place(request, hosts)
        mismatches += got != Fgd().place(request, hosts)
        if got is not None:
            hosts.allocate(request, got)
        if i % 7 == 0:  # a host's CPUs change alone (its GPU shares do not)
            hosts.host_cpus_free[i % len(hosts.host_rack)] *= 0.1
    assert mismatches == 0
    assert hosts.allocated > 0.7 * len(hosts.gpu_free)  # the run did fill the cluster


def test_fgd_target_workload_steers_placement():
    # a half-GPU request on [0.5 free, 1.0 free]: if the target is all whole-GPU tasks, taking
    # the idle GPU would leave no whole GPU (fragment +0.5); filling the half GPU costs nothing
    view = StaticView([2], gpu_free=[0.5, 1.0])
    assert Fgd(target=[{"gpus": 1, "weight": 1}]).place(Request(0.5), view) == (0,)
    assert target_workload([Request(1), Request(0.5), Request(1)]) == [
        {"gpus": 1, "weight": 2}, {"gpus": 0.5, "weight": 1}]
    with pytest.raises(TypeError, match="gpus and weight"):
        Fgd(target=[{"gpus": 1}])
    with pytest.raises(TypeError, match="whole number"):  # not silently 3 GPUs
        Fgd(target=[{"gpus": 3.5, "weight": 1}])
    with pytest.raises(TypeError, match="cpus_per_gpu"):
        Fgd(target=[{"gpus": 1, "weight": 1, "cpus_per_gpu": -3}])
    with pytest.raises(simcluster.UserError, match="did you mean 'H100-SXM'"):
        Fgd(target=[{"gpus": 1, "weight": 1, "gpu_type": "H100-SMX"}]).place(Request(1), view)


def test_openb_ranking_fgd_over_best_fit_over_random_with_cpus(monkeypatch):
    """Weng et al., ATC'23 Fig. 9 (default openb trace): as arrived GPU demand passes 100%,
    FGD allocates more GPUs than best fit, and best fit more than random. The committed
    scenario (scenarios/openb_packing.toml: the nodes' CPUs and memory, the pods' requests) on
    a 10% sample of each kind of openb node (126 nodes, 638 GPUs), through its script's public
    path: pods drawn with replacement arrive once and fail if they do not fit."""
    monkeypatch.setenv("SIMCLUSTER_DATA", str(TRACES))
    module = _openb_script()
    scenario = simcluster.load_scenario(SCENARIOS / "openb_packing.toml",
                                        ["cluster.nodes_from.scale=0.1"])
    curve = pd.concat([allocation_curve(module.with_target(scenario, name, "trace", 1), [name],
                                        step=0.1, seed=1)
                       for name in ("fgd", "best_fit", "random")])
    table = curve.pivot(index="arrived_demand_pct", columns="policy", values="allocated_pct")
    fgd, best_fit, random = (table.loc[[90.0, 100.0, 110.0, 130.0], k].to_numpy()
                             for k in ("fgd", "best_fit", "random"))
    assert fgd[0] == best_fit[0] > 89.9  # at 90% demand both still place every pod
    assert (fgd[1:] > best_fit[1:] + 0.2).all(), table
    assert (best_fit > random + 1.0).all(), table


def _openb_script():
    spec = importlib.util.spec_from_file_location("openb_packing", SCENARIOS / "openb_packing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class OpenbHosts:
    """A mutable :class:`ClusterView` of hosts (GPUs, CPU cores) that pods are allocated on."""

    def __init__(self, nodes, types=None):
        counts = np.array([g for g, _ in nodes])
        cpus = np.array([c for _, c in nodes], dtype=float)
        self.gpu_host = np.repeat(np.arange(len(nodes)), counts)
        self.host_rack = np.zeros(len(nodes), dtype=int)
        self.gpu_types = tuple((types or ["gpu"] * len(nodes))[h] for h in self.gpu_host)
        self.gpu_labels = (None,) * len(self.gpu_types)
        self.gpu_type_mask = TypeMasks(self.gpu_types)
        self.gpu_free = np.ones(len(self.gpu_host))
        self.host_cpus_free, self.host_cpus_per_gpu = cpus.copy(), cpus / counts
        self.host_memory_free = np.full(len(nodes), 2.0**60)  # memory is not limiting here
        self.host_memory_per_gpu = self.host_memory_free / counts
        self.now, self.running, self.jobs_pending = 0.0, [], ()
        self.allocated = 0.0

    @property
    def jobs_running(self):
        return self.running

    def allocate(self, request, gpus):
        share = request.gpus if request.fractional else 1.0
        cpg = self.host_cpus_per_gpu if request.cpus_per_gpu is None else np.full(
            len(self.host_rack), request.cpus_per_gpu)
        for g in gpus:
            self.gpu_free[g] -= share
            self.host_cpus_free[self.gpu_host[g]] -= share * cpg[self.gpu_host[g]]
        assert (self.gpu_free >= -1e-9).all() and (self.host_cpus_free >= -1e-9).all()
        self.allocated += share * len(gpus)


def test_openb_packing_script_gives_fgd_the_trace_as_target(tmp_path, monkeypatch):
    module = _openb_script()
    monkeypatch.setenv("SIMCLUSTER_DATA", str(TRACES))
    scenario = simcluster.load_scenario(SCENARIOS / "openb_packing.toml")
    target = module.with_target(scenario, "fgd", "trace", 1).policy.placement_params["target"]
    # the 7,064 GPU pods of the default list (1,088 CPU-only pods left out), 126 task types:
    # distinct (num_gpu, gpu_milli, cpu_milli, memory_mib) (24 by GPU share alone)
    assert sum(t["weight"] for t in target) == 7064 and len(target) == 126
    assert all(t["cpus_per_gpu"] > 0 for t in target)
    assert target[0]["weight"] >= target[-1]["weight"]
    assert module.with_target(scenario, "best_fit", "trace", 1).policy.placement_params == {}
    out = tmp_path / "allocation.csv"
    assert module.main(["--scale", "0.03", "--step", "50", "--policies", "fgd,best_fit",
                        "--out", str(out)]) == 0
    curve = pd.read_csv(out)
    assert list(curve.columns) == ["policy", "arrived_demand_pct", "allocated_pct"]
    assert set(curve["policy"]) == {"fgd", "best_fit"} and curve["arrived_demand_pct"].max() == 100

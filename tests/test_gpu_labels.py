"""GPU-type constraints on pool labels and "|" alternatives (issue 6: openb ``gpu_spec``).

A GPU carries its pool's label (``[[cluster.pools]] label``, a node list's GPU model); a
request's ``gpu_type`` names catalog types or labels, alternatives joined by "|", and a GPU
matches when its type or its label is one of them (:class:`TypeMasks`, the one place).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import simcluster
from simcluster.cli import main
from simcluster.engine.cluster import ClusterState
from simcluster.engine.simulation import build_topology
from simcluster.policies.preemption import ideal_set_victims
from simcluster.policies.view import StaticJob, StaticView, TypeMasks
from simcluster.workload.traces import TraceReport, read_trace

OPENB = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces" / \
    "alibaba_pai_v2023_openb"

# three pools of 2 GPUs each, numbered pool by pool: GPUs 0-1 T4, 2-3 V100M16, 4-5 unlabelled
POOLS = [{"gpu": "A100-40GB", "nodes": 1, "gpus_per_node": 2, "label": "T4"},
         {"gpu": "A100-40GB", "nodes": 1, "gpus_per_node": 2, "label": "V100M16"},
         {"gpu": "H100-SXM", "nodes": 1, "gpus_per_node": 2}]
ALLOWED = {"T4": {0, 1}, "V100M16": {2, 3}, "T4|V100M16": {0, 1, 2, 3},
           "V100M16|H100-SXM": {2, 3, 4, 5}, "A100-40GB": {0, 1, 2, 3}, None: set(range(6))}


def test_type_masks_match_catalog_types_labels_and_alternatives():
    view = StaticView([2, 2, 2], gpu_types=["A100-40GB", "A100-40GB", "H100-SXM"],
                      gpu_labels=["T4", "V100M16", None])
    assert view.gpu_labels == ("T4", "T4", "V100M16", "V100M16", None, None)
    for gpu_type, gpus in ALLOWED.items():
        assert set(view.gpu_type_mask(gpu_type).nonzero()[0]) == gpus, gpu_type
    assert not view.gpu_type_mask("P100").any() and not view.gpu_type_mask("P100|B200").any()
    masks = TypeMasks(("A", "A", "B"), ("x", "x", "x"))
    assert masks.classes == (("A", "x"), ("B", "x")) and masks.class_of.tolist() == [0, 0, 1]
    assert masks("x").all() and masks("B|y").tolist() == [False, False, True]
    assert masks("x") is masks("x")  # cached per gpu_type string
    assert not masks("x").flags.writeable


def test_topology_and_engine_carry_pool_labels():
    scenario = simcluster.scenario_from_dict({"cluster": {"pools": POOLS}, "workload": {
        "jobs": [{"gpus": 1, "run_time": "1h"}]}})
    topo = build_topology(scenario.cluster)
    assert [topo.gpu_label(g) for g in range(6)] == ["T4"] * 2 + ["V100M16"] * 2 + [None] * 2
    assert build_topology(simcluster.scenario_from_dict({"workload": {
        "jobs": [{"gpus": 1, "run_time": "1h"}]}}).cluster).host_labels == ()


@pytest.mark.parametrize("placement", ["pack", "best_fit", "random", "fgd"])
def test_placement_never_puts_a_constrained_job_on_a_non_matching_gpu(monkeypatch, placement):
    placed: list[tuple[str | None, tuple[int, ...]]] = []
    allocate = ClusterState.allocate

    def spy(self, request, gpus):
        placed.append((request.gpu_type, tuple(gpus)))
        return allocate(self, request, gpus)

    monkeypatch.setattr(ClusterState, "allocate", spy)
    kinds = [("T4", 1), ("V100M16", 0.5), ("T4|V100M16", 2), ("V100M16|H100-SXM", 1),
             ("A100-40GB", 1), (None, 1), ("T4", 0.25)]
    jobs = [{"gpus": gpus, "run_time": 600.0 + 420 * (i % 5), "submit": 60.0 * i,
             **({"gpu_type": t} if t else {})}
            for i, (t, gpus) in enumerate(kinds * 6)]
    scenario = simcluster.scenario_from_dict({
        "cluster": {"pools": POOLS}, "workload": {"jobs": jobs},
        "policy": {"placement": placement}})
    result = simcluster.run(scenario, check=True)
    assert (result.jobs["state"] == "completed").all()
    assert len(placed) >= len(jobs)
    for gpu_type, gpus in placed:
        assert set(gpus) <= ALLOWED[gpu_type], (gpu_type, gpus)
    # the cluster filled up: every GPU was used, and the alternatives used both their pools
    assert {g for _, gs in placed for g in gs} == set(range(6))
    either = {g for t, gs in placed if t == "T4|V100M16" for g in gs}
    assert either & {0, 1} and either & {2, 3}


def test_preemption_walk_counts_gpus_per_label_and_alternatives():
    """Three hosts of one catalog type labelled x, y, z, all busy: a short pending job on
    ``y|z`` stops the worst-ranked job on z (a job it can use); one on ``y`` alone stops
    nobody, since the worst-ranked job holds z GPUs it cannot use."""
    running = [StaticJob(1, size=2, gpus=(0, 1), remaining=50.0, run_start_s=0.0),
               StaticJob(2, size=2, gpus=(2, 3), remaining=60.0, run_start_s=0.0),
               StaticJob(3, size=2, gpus=(4, 5), remaining=70.0, run_start_s=0.0)]

    def victims(gpu_type, labels=("x", "y", "z")):
        view = StaticView([2, 2, 2], gpu_type="A", gpu_labels=list(labels),
                          gpu_free=[0.0] * 6, running=running, now=10.0,
                          pending=[StaticJob(9, size=2, remaining=1.0, gpu_type=gpu_type)])
        return ideal_set_victims(view, key=lambda j: (j.remaining_s, j.id))

    assert victims("y|z") == [3]
    assert victims("z") == [3]
    assert victims("y") == []
    assert victims("A") == [3]  # the catalog type admits every GPU
    assert victims("w") == []  # a label no GPU has: never runs, stops nobody
    # one class (type A, label x everywhere): the walk on plain numbers admits x, A, "w|x"
    assert victims("x", "xxx") == victims("w|x", "xxx") == victims("A", "xxx") == [3]
    assert victims("w", "xxx") == []


def test_openb_gpuspec33_keeps_gpu_spec_as_labels():
    path = OPENB / "openb_pod_list_gpuspec33.csv"
    report = TraceReport()
    pods = list(read_trace("openb_pods", path, gpu_labels=True, report=report))
    assert len(pods) == 7_064 and report.filtered == {"CPU-only pod": 1_088}
    constrained = [p.request.gpu_type for p in pods if p.request.gpu_type]
    assert len(constrained) == 2_388  # every pod with a gpu_spec (all of them GPU pods)
    assert sum("|" in t for t in constrained) == 378
    assert constrained.count("T4") == 1_291
    by_time = {p.submit_s: p.request for p in pods}
    # by hand, line 11: "openb-pod-0009,12000,16384,1,1000,V100M16|V100M32,LS,...,4975773"
    assert (by_time[4975773.0].gpu_type, by_time[4975773.0].gpus) == ("V100M16|V100M32", 1.0)
    # line 23: "openb-pod-0021,8000,30517,1,440,G2|P100|T4|V100M16|V100M32,...,9671707,..."
    assert by_time[9671707.0].gpu_type == "G2|P100|T4|V100M16|V100M32"
    assert by_time[9671707.0].gpus == 0.44
    # line 24: "openb-pod-0022,4000,15258,1,220,T4,BE,Running,9679175,..."
    assert by_time[9679175.0].gpu_type == "T4"
    # "V100M16|V100M32|V100M32" (22 pods) is one constraint, its repeat dropped
    assert "V100M16|V100M32|V100M32" not in constrained
    # gpu_types still maps catalog names (then kept beside the labels that do not map)
    mapped = list(read_trace("openb_pods", path, gpu_labels=True,
                             gpu_types={"V100M32": "H100-SXM"}))
    assert next(p for p in mapped if p.submit_s == 4975773.0).request.gpu_type == \
        "V100M16|H100-SXM"


def test_openb_constraints_bind_on_the_node_list_cluster(monkeypatch):
    """The openb node list's pools carry their models as labels: constrained pods land on
    GPUs of an allowed model, and the allocation sees them."""
    monkeypatch.setenv("SIMCLUSTER_DATA", str(OPENB.parent))
    scenario = simcluster.load_scenario(
        Path(__file__).resolve().parents[1] / "scenarios" / "openb_packing.toml",
        ["cluster.nodes_from.scale=0.02",
         "workload.trace.path=alibaba_pai_v2023_openb/openb_pod_list_gpuspec33.csv",
         "workload.trace.gpu_labels=true",
         "workload.trace.transforms.max_jobs=300"])
    topo = build_topology(scenario.cluster)
    labels = {topo.gpu_label(g) for g in range(len(topo.gpus))}
    assert labels == {"P100", "T4", "V100M16", "V100M32", "A10", "G2", "G3"}
    placed: list[tuple[str | None, tuple[int, ...]]] = []
    allocate = ClusterState.allocate
    monkeypatch.setattr(ClusterState, "allocate", lambda self, request, gpus: (
        placed.append((request.gpu_type, tuple(gpus))), allocate(self, request, gpus))[1])
    jobs = simcluster.run(scenario).jobs
    typed = [(t, gs) for t, gs in placed if t]
    trace = scenario.workload.trace
    wanted = sum(1 for pod in read_trace("openb_pods", OPENB.parent / trace.path,
                                         gpu_labels=True, transforms=trace.transforms)
                 if pod.request.gpu_type)
    # every constrained pod of the workload was placed, once (97 of the first 300 pods)
    assert (jobs["state"] == "completed").all() and len(typed) == wanted > 0
    for gpu_type, gpus in typed:
        assert all(topo.gpu_label(g) in gpu_type.split("|") for g in gpus), (gpu_type, gpus)


def test_bad_gpu_type_is_a_clear_check_error(tmp_path, capsys):
    pools = "".join(f"[[cluster.pools]]\ngpu = '{p['gpu']}'\nnodes = 1\n"
                    + (f"label = '{p['label']}'\n" if "label" in p else "") for p in POOLS)
    path = tmp_path / "bad.toml"
    job = "[workload]\njobs = [{{ run_time = '1h', gpu_type = '{}' }}]\n"
    path.write_text(pools + job.format("V100M16|V100M61"))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: workload.jobs[0].gpu_type: bad value 'V100M16|V100M61'" in err
    assert "unknown GPU type or pool label 'V100M61'" in err and "(T4, V100M16)" in err
    assert "did you mean 'V100M16'?" in err
    path.write_text(pools + job.format("T4|B200"))
    capsys.readouterr()
    assert main(["check", str(path)]) == 0
    # the summary counts GPUs per catalog type and pool label
    out = capsys.readouterr().out
    assert all(f"({label})" in out for label in ("T4", "V100M16")), out

"""Trace loaders, transforms, node lists, trace scenarios (issue 6 part A).

Real files come from ``../shared/data/traces`` (conftest.TRACES); PAI job tables and Helios job
logs, of which only schemas are there, from tiny fixtures in their schema (tests/fixtures/traces).
Expected figures are the ones the traces' SOURCE.md files state, or rows read by hand.
"""

from __future__ import annotations

import io
import math
import tomllib
import tracemalloc
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

import simcluster
from simcluster.cli import main
from simcluster.engine.progress import Progress
from simcluster.engine.simulation import Simulation, build_topology
from simcluster.errors import UserError
from simcluster.experiment.packing import allocation_curve
from simcluster.scenario_traces import read_nodes
from simcluster.workload.traces import (
    TRACE_FORMATS,
    TraceReport,
    read_requests,
    read_trace,
    trace_frame,
)

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
TRACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces"
FIXTURES = ROOT / "tests" / "fixtures" / "traces"
RFOLD = TRACES / "philly_rfold" / "philly_trace.csv"
POLLUX_PHILLY = TRACES / "philly_pollux" / "philly.csv"
OPENB = TRACES / "alibaba_pai_v2023_openb"


def hist(frame, column="gpus"):
    return {float(k): int(v) for k, v in frame[column].value_counts().items()}


# loaders on the real files ---------------------------------------------------------------------
def test_registry_has_every_format():
    assert {"philly_rfold", "philly_pollux", "openb_pods", "pai_v2020", "helios", "tiresias",
            "pollux", "azure_llm", "csv"} <= set(TRACE_FORMATS.names())


def test_philly_rfold():
    report = TraceReport()
    f = trace_frame("philly_rfold", RFOLD, report=report)
    # 111,549 data rows: job ids 0..111548 (SOURCE.md rounds to "111,548 jobs")
    assert len(f) == report.rows == 111_549 and not report.sorted_in_memory
    h = hist(f)
    assert (h[1], h[2], h[4], h[8], h[16], h[32], h[64], h[128]) == (
        96_662, 2_522, 5_487, 5_716, 852, 212, 28, 11)
    assert f["run_time_s"].mean() == pytest.approx(35_595, abs=1)
    assert f["run_time_s"].median() == 1_321 and f["run_time_s"].max() == 5_196_151
    assert f["submit_s"].iloc[-1] / 86400 == pytest.approx(129.4, abs=0.05)
    # by hand: "0,0.0,CLOS,1,1,3613033.0", "1,266563.0,CLOS,1,1,3222990.0",
    # last "111548,11176511.0,CLOS,1,1,64.0"
    assert f.iloc[0][["submit_s", "gpus", "run_time_s"]].tolist() == [0.0, 1.0, 3613033.0]
    assert f.iloc[1][["submit_s", "run_time_s", "line"]].tolist() == [266563.0, 3222990.0, 3]
    assert f.iloc[-1][["submit_s", "run_time_s", "name"]].tolist() == [11176511.0, 64.0,
                                                                         "111548"]


def test_philly_pollux_unsorted_file_comes_out_sorted():
    report = TraceReport()
    f = trace_frame("philly_pollux", POLLUX_PHILLY, report=report)
    assert len(f) == 82_247 and report.sorted_in_memory
    assert f["submit_s"].is_monotonic_increasing and f["submit_s"].iloc[0] == 0.0
    h = hist(f)
    assert (h[1], h[2], h[4], h[8], h[16], h[128]) == (76_627, 1_818, 1_870, 1_643, 199, 3)
    assert f["run_time_s"].mean() == pytest.approx(13_136, abs=1)
    assert f["run_time_s"].median() == 1_144 and f["tenant"].nunique() == 15
    # first data line, by hand: "2017-10-09 07:01:55,66.0,1,66.0,11cb48"
    row = f[f["line"] == 2].iloc[0]
    assert (row["gpus"], row["run_time_s"], row["tenant"]) == (1.0, 66.0, "11cb48")
    earliest = min(datetime.fromisoformat(line.split(",")[0]) for line in
                   POLLUX_PHILLY.read_text().splitlines()[1:] if line)
    assert earliest.date().isoformat() == "2017-09-04"  # SOURCE.md: 2017-09-04 .. 2017-12-22
    assert row["submit_s"] == (datetime.fromisoformat("2017-10-09 07:01:55")
                               - earliest).total_seconds()


def test_openb_pods_fractional_and_gpu_types():
    report = TraceReport()
    jobs = list(read_trace("openb_pods", OPENB / "openb_pod_list_default.csv", report=report))
    assert report.rows == 8_152 and report.filtered == {"CPU-only pod": 1_088}
    assert len(jobs) == 7_064 == report.jobs
    assert sum(j.request.fractional for j in jobs) == 3_078
    # by hand: "openb-pod-0001,6000,12288,1,460,,LS,Running,427061,12902960,427061"
    pod = jobs[1]
    assert (pod.submit_s, pod.request.gpus, pod.run_time_s, pod.tenant) == (
        427061.0, 0.46, 12902960.0 - 427061.0, "LS")
    assert pod.request.gpu_type is None and pod.model == "resnet-50"
    counts = {g: sum(j.request.gpus == g for j in jobs) for g in (2, 4, 8)}
    assert counts == {2: 16, 4: 15, 8: 44}
    # GPU-type constraints (gpuspec33): the first allowed type that maps becomes the constraint
    spec = list(read_trace("openb_pods", OPENB / "openb_pod_list_gpuspec33.csv",
                           gpu_types={"T4": "A100-40GB", "V100M32": "H100-SXM"}))
    frame = trace_frame("openb_pods", OPENB / "openb_pod_list_gpuspec33.csv")
    assert (frame["gpu_type"] == "T4").sum() == 1_291
    assert sum(j.request.gpu_type == "A100-40GB" for j in spec) >= 1_291
    assert sum(j.request.gpu_type == "H100-SXM" for j in spec) >= 141  # "V100M16|V100M32"
    # by hand, line 11: "openb-pod-0009,12000,16384,1,1000,V100M16|V100M32,...": the first
    # allowed type that maps (V100M32 -> H100-SXM; V100M16 is not mapped)
    assert next(j for j in spec if j.submit_s == 4975773.0).request.gpu_type == "H100-SXM"


def test_openb_pods_carry_cpu_and_memory_per_gpu():
    report = TraceReport()
    pods = list(read_trace("openb_pods", OPENB / "openb_pod_list_default.csv", report=report,
                           host_resources=True))
    assert report.filtered == {"CPU-only pod": 1_088} and len(pods) == 7_064
    assert all(p.request.cpus_per_gpu > 0 for p in pods)
    # one GPU pod asks for no memory: "openb-pod-1523,14000,0,1,1000,..."
    assert [p.request.memory_per_gpu for p in pods if not p.request.memory_per_gpu > 0] == [0.0]
    mib = 2.0**20
    # by hand: "openb-pod-0000,12000,16384,1,1000,...": one GPU, 12 cores, 16 GiB
    assert (pods[0].request.gpus, pods[0].request.cpus_per_gpu,
            pods[0].request.memory_per_gpu) == (1.0, 12.0, 16384 * mib)
    # "openb-pod-0001,6000,12288,1,460,...": per GPU, so its 0.46 share holds 6 cores, 12 GiB
    r = pods[1].request
    assert math.isclose(r.gpus * r.cpus_per_gpu, 6.0)
    assert math.isclose(r.gpus * r.memory_per_gpu, 12288 * mib)
    # "openb-pod-0017,88000,327680,8,1000,...": 8 GPUs, 11 cores and 40 GiB per GPU
    big = next(p.request for p in pods if p.submit_s == 9437497.0)
    assert (big.gpus, big.cpus_per_gpu, big.memory_per_gpu) == (8.0, 11.0, 40960 * mib)
    # and the engine takes exactly the pod's cores and memory from the host
    s = simcluster.scenario_from_dict({
        "cluster": {"pools": [{"gpu": "A100-40GB", "nodes": 1, "gpus_per_node": 2, "cpus": 16,
                               "memory_gib": 120}], "storage": {"servers": 0}},
        "workload": {"jobs": [{"run_time": 1}]}})
    cluster = Simulation(s).cluster
    assert cluster.host_cpus_free.tolist() == [16.0]
    allocation = cluster.allocate(r, (0,))
    assert math.isclose(allocation.host_cpus[0], 6.0)
    assert math.isclose(cluster.host_memory_free[0], (120 * 1024 - 12288) * mib)


def test_openb_and_pai_node_lists_build_clusters():
    nodes = read_nodes("openb_nodes", OPENB / "openb_node_list_gpu_node.csv")
    assert len(nodes) == 1_213 and sum(n.gpus for n in nodes) == 6_212
    # by hand: "openb-node-0000,64000,262144,2,P100"; "openb-node-0022,128000,786432,8,G3"
    assert nodes[0] == ("openb-node-0000", "P100", 2, 64.0, 256.0)
    assert nodes[22] == ("openb-node-0022", "G3", 8, 128.0, 768.0)
    assert sum(n.cpus for n in nodes) == 107_018  # sum of cpu_milli / 1000
    pai = read_nodes("pai_machines", TRACES / "alibaba_pai_v2020" / "pai_machine_spec.csv")
    assert len(pai) == 1_897 - 83 and sum(n.gpus for n in pai) == 6_742
    # first GPU machine, by hand: "0ada2343597a34b8ab9a3d00,T4,96,512,2"
    assert pai[0] == ("0ada2343597a34b8ab9a3d00", "T4", 2, 96.0, 512.0)
    by_type = {}
    for n in pai:
        by_type[n.gpu_type] = by_type.get(n.gpu_type, 0) + n.gpus
    assert by_type == {"MISC": 2_240, "P100": 1_596, "V100M32": 1_080, "T4": 994, "V100": 832}
    s = simcluster.scenario_from_dict({
        "cluster": {"nodes_from": {"format": "openb_nodes", "gpu": "A100-40GB",
                                   "path": str(OPENB / "openb_node_list_gpu_node.csv")},
                    "storage": {"servers": 0}},
        "workload": {"jobs": [{"run_time": 1}]}})
    pools = s.cluster.node_pools()
    assert sum(p.nodes for p in pools) == 1_213
    assert sum(p.nodes * p.gpus_per_node for p in pools) == 6_212
    # one pool per (model, GPUs, CPUs, memory): models that map to one catalog GPU stay apart
    assert len(pools) == 15 and {p.label for p in pools} == {
        "A10", "G2", "G3", "P100", "T4", "V100M16", "V100M32"}
    assert sum(p.nodes * p.cpus for p in pools) == 107_018
    g2 = next(p for p in pools if p.label == "G2")
    assert (g2.nodes, g2.gpus_per_node, g2.cpus, g2.memory_gib) == (549, 8, 96.0, 384.0)
    topology = build_topology(s.cluster)
    assert sum(h.cpu_cores for h in topology.host_specs) == 107_018
    assert sum(h.host_memory_bytes for h in topology.host_specs) == sum(
        p.nodes * p.memory_gib * 2**30 for p in pools)
    assert s.model_dump()["cluster"]["nodes_from"]["format"] == "openb_nodes"
    pai_cluster = simcluster.scenario_from_dict({
        "cluster": {"nodes_from": {"format": "pai_machines", "gpu_types": {"T4": "H100-SXM"},
                                   "path": str(TRACES / "alibaba_pai_v2020" /
                                               "pai_machine_spec.csv")},
                    "storage": {"servers": 0}},
        "workload": {"jobs": [{"run_time": 1}]}})
    gpus = {}
    for p in pai_cluster.cluster.node_pools():
        gpus[p.gpu] = gpus.get(p.gpu, 0) + p.nodes * p.gpus_per_node
    assert gpus == {"H100-SXM": 994, "A100-40GB": 6_742 - 994}
    pai_pools = pai_cluster.cluster.node_pools()
    assert sum(p.nodes * p.cpus for p in pai_pools) == 96 * (1_897 - 83) - 32 * 798  # P100: 64


@pytest.mark.parametrize(("pool", "message"), [
    ({"cpus": 0}, "cpus"), ({"cpus": -8}, "cpus"), ({"cpus": "many"}, "cpus"),
    ({"memory_gib": 0}, "memory_gib"), ({"memory_gib": "lots"}, "memory_gib"),
])
def test_pool_cpus_and_memory_are_checked(pool, message):
    data = {"cluster": {"pools": [{"gpu": "A100-40GB", "nodes": 2, **pool}],
                        "storage": {"servers": 0}},
            "workload": {"jobs": [{"run_time": 1}]}}
    with pytest.raises(UserError, match=rf"cluster\.pools\[0\]\.{message}: bad value"):
        simcluster.scenario_from_dict(data)
    data["cluster"]["pools"][0] |= {"cpus": 12.5, "memory_gib": 64}
    host = build_topology(simcluster.scenario_from_dict(data).cluster).host_specs[0]
    assert (host.cpu_cores, host.host_memory_bytes) == (12.5, 64 * 2**30)
    assert host.gpus_per_node == 8 and host.name == "DGX-A100-40GB/12.5cpu/64GiB"


def test_node_list_with_a_bad_cpu_column_names_file_and_line(tmp_path):
    path = tmp_path / "nodes.csv"
    path.write_text("sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,2,P100\n"
                    "n1,-5,262144,2,P100\n")
    with pytest.raises(ValueError, match=r"nodes.csv:3: column 'cpu_milli': expected a number"):
        read_nodes("openb_nodes", path)
    path.write_text("sn,cpu_milli,memory_mib,gpu,model\nn0,,,2,P100\n")
    assert read_nodes("openb_nodes", path)[0] == ("n0", "P100", 2, None, None)  # empty: spec's


def test_pai_task_table_fixture():
    report = TraceReport()
    f = trace_frame("pai_v2020", FIXTURES / "pai_task_table.csv", report=report)
    assert report.rows == 6 and report.filtered == {"no GPUs": 1, "no end time": 1}
    # job_a/worker: 2 instances x 50% = 1 GPU, 3600 s; job_c: 4 x 100%; job_e: 3 x 50% -> 2
    assert f["name"].tolist() == ["job_a/worker", "job_b/tensorflow", "job_c/worker",
                                  "job_e/worker"]
    assert f["gpus"].tolist() == [1.0, 1.0, 4.0, 2.0]
    assert f["run_time_s"].tolist() == [3600.0, 60.0, 7200.0, 1000.0]
    assert f["submit_s"].tolist() == [0.0, 100.0, 200.0, 400.0]
    assert f["gpu_type"].tolist() == ["V100", "P100", "MISC", "V100M32"]


def test_helios_fixture():
    report = TraceReport()
    f = trace_frame("helios", FIXTURES / "helios_cluster_log.csv", report=report)
    assert report.filtered == {"CPU-only job": 1}
    assert f["gpus"].tolist() == [8.0, 16.0, 1.0]
    assert f["submit_s"].tolist() == [0.0, 120.0, 300.0]
    assert f["run_time_s"].tolist() == [3600.0, 600.0, 30.0]
    assert f["tenant"].tolist() == ["vcA", "vcA", "vcC"]
    assert f["state"].tolist() == ["COMPLETED", "FAILED", "CANCELLED"]
    assert len(trace_frame("helios", FIXTURES / "helios_cluster_log.csv",
                           transforms={"states": ["COMPLETED"]})) == 1


def test_tiresias_and_pollux():
    report = TraceReport()
    jobs = list(read_trace("tiresias", TRACES / "tiresias_sample" / "60_job.csv",
                           report=report))
    assert len(jobs) == 60
    assert {g: sum(j.request.gpus == g for j in jobs) for g in (1, 2, 4, 8)} == {
        1: 30, 2: 10, 4: 10, 8: 10}
    assert (jobs[0].submit_s, jobs[0].run_time_s, jobs[1].submit_s) == (0.0, 164.0, 30.0)
    assert sum(report.notes.values()) == 60  # vgg19 etc. are not in the catalog
    pollux = list(read_trace("pollux", TRACES / "pollux_workloads" / "workloads" /
                             "workload-1.csv"))
    assert len(pollux) == 160
    # by hand: "cifar10-0,107,cifar10,6,2048" -> t 0, 6 GPUs, 0.5 GPU-h / 6 (stated assumption)
    assert (pollux[0].submit_s, pollux[0].request.gpus) == (0.0, 6.0)
    assert pollux[0].run_time_s == pytest.approx(0.5 * 3600 / 6)


def test_azure_llm_requests():
    reqs = list(read_requests(TRACES / "azure_llm_inference_2023_vidur" / "splitwise_conv.csv"))
    assert len(reqs) == 19_366
    assert reqs[-1].arrival_s == pytest.approx(3_502, abs=1)
    assert (reqs[0].prompt_tokens, reqs[0].output_tokens) == (374, 44)
    assert np.median([r.prompt_tokens for r in reqs]) == 1_020
    with pytest.raises(UserError, match="requests"):
        next(read_trace("azure_llm", TRACES / "azure_llm_inference_2023_vidur" /
                        "splitwise_conv.csv"))


def test_generic_csv_mapping(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("when,n,start,end,team\n"
                    "2024-01-01T00:00:10,4,100,160,a\n2024-01-01T00:00:00,1,0,30,b\n")
    jobs = list(read_trace("csv", path, mapping={"submit": "when", "gpus": "n", "start": "start",
                                                 "end": "end", "tenant": "team"}))
    assert [(j.submit_s, j.request.gpus, j.run_time_s, j.tenant) for j in jobs] == [
        (0.0, 1.0, 30.0, "b"), (10.0, 4.0, 60.0, "a")]
    with pytest.raises(UserError, match="did you mean 'submit'"):
        read_trace("csv", path, mapping={"submt": "when"})


# bad rows ---------------------------------------------------------------------------------------
BAD = ("submit,gpus,start,end\n"
       "0,1,0,10\n"
       "1,1,5\n"            # line 3: missing column
       "2,x,0,10\n"         # line 4: non-numeric
       "3,1,50,20\n"        # line 5: end before start
       "4,2,0,10\n")


def test_bad_rows_error_with_file_and_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(BAD)
    with pytest.raises(UserError, match=r"bad.csv:3: missing column 'end'"):
        list(read_trace("csv", path))
    report = TraceReport()
    jobs = list(read_trace("csv", path, on_bad_row="skip", report=report))
    assert len(jobs) == 2 and report.rows == 5 and report.skipped == 3
    assert [(b.line, b.reason.split(" ")[0]) for b in report.bad] == [
        (3, "missing"), (4, "column"), (5, "end")]
    assert "expected a number, got 'x'" in report.bad[1].reason
    neg = tmp_path / "neg.csv"
    neg.write_text("submit,gpus,run_time\n0,1,-5\n")
    with pytest.raises(UserError, match=r"neg.csv:2: negative duration"):
        list(read_trace("csv", neg))


def test_cli_on_bad_row_and_data_dir(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "bad.csv").write_text(BAD)
    scenario = tmp_path / "s.toml"
    scenario.write_text('[run]\nfidelity = "duration"\n[cluster]\nnodes = 1\n'
                        'storage = { servers = 0 }\n[workload]\ncheckpoint_interval = 0\n'
                        '[workload.trace]\nformat = "csv"\npath = "bad.csv"\n')
    assert main(["run", str(scenario), "--data-dir", str(data), "--quiet"]) == 2
    assert "bad.csv:3: missing column" in capsys.readouterr().err
    assert main(["run", str(scenario), "--data-dir", str(data), "--on-bad-row", "skip",
                 "--json"]) == 0
    out = capsys.readouterr()
    assert '"trace_rows_skipped": 3' in out.out and '"jobs_completed": 2' in out.out
    assert "3 malformed trace rows skipped" in out.err
    assert main(["check", str(scenario), "--data-dir", str(data)]) == 0
    capsys.readouterr()
    assert main(["check", str(scenario), "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "nowhere/bad.csv' not found" in capsys.readouterr().err
    scenario.write_text(scenario.read_text().replace('"csv"', '"philly_rfld"'))
    assert main(["check", str(scenario), "--data-dir", str(data)]) == 2
    assert "did you mean 'philly_rfold'" in capsys.readouterr().err


# transforms -------------------------------------------------------------------------------------
def test_window_on_philly():
    base = trace_frame("philly_rfold", RFOLD, transforms={"window": ["50d", "51d"]})
    assert base["submit_s"].min() >= 0 and base["submit_s"].max() < 86400
    assert len(base) == 2_579  # arrivals on day 50 (0-based) of the trace


@pytest.fixture
def synthetic(tmp_path):
    path = tmp_path / "t.csv"
    with path.open("w") as out:
        out.write("submit,gpus,run_time,tenant,state\n")
        out.writelines(f"{i * 10},{2 ** (i % 4)},{100 + i},{'ab'[i % 2]},"
                       f"{'OK' if i % 3 else 'FAILED'}\n" for i in range(3000))
    return path


def test_transforms(synthetic):
    base = trace_frame("csv", synthetic)
    fast = trace_frame("csv", synthetic, transforms={"load_scale": 2})
    assert np.allclose(fast["submit_s"], base["submit_s"] / 2)
    win = trace_frame("csv", synthetic, transforms={"window": ["100s", "200s"]})
    assert win["submit_s"].tolist() == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0,
                                        90.0]
    big = trace_frame("csv", synthetic, transforms={"size_scale": 2, "max_gpus": 4})
    assert sorted(set(big["gpus"])) == [2.0, 4.0, 8.0] and len(big) == 2250
    slow = trace_frame("csv", synthetic, transforms={"duration_scale": 3})
    assert np.allclose(slow["run_time_s"], 3 * base["run_time_s"])
    picked = trace_frame("csv", synthetic, transforms={"tenants": ["b"], "states": ["OK"],
                                                       "min_gpus": 2})
    assert set(picked["tenant"]) == {"b"} and set(picked["state"]) == {"OK"}
    assert picked["gpus"].min() == 2 and len(picked) == 1000
    p = 0.3
    report = TraceReport()
    sampled = trace_frame("csv", synthetic, transforms={"sample": p}, seed=5, report=report)
    sd = math.sqrt(len(base) * p * (1 - p))
    assert abs(len(sampled) - p * len(base)) < 4 * sd
    assert report.filtered["sampled out"] == len(base) - len(sampled)
    again = trace_frame("csv", synthetic, transforms={"sample": p}, seed=5)
    assert sampled["line"].tolist() == again["line"].tolist()
    assert len(trace_frame("csv", synthetic, transforms={"max_jobs": 7})) == 7
    with pytest.raises(UserError, match="window"):
        trace_frame("csv", synthetic, transforms={"window": ["2d", "1d"]})


def test_fractional_size_scale():
    small = trace_frame("openb_pods", OPENB / "openb_pod_list_default.csv",
                        transforms={"size_scale": 0.5, "tenants": ["BE"]})
    assert set(small["tenant"]) == {"BE"} and small["gpus"].max() <= 4
    assert small["gpus"].min() > 0


def test_transforms_recorded_in_resolved_scenario(monkeypatch):
    monkeypatch.setenv("SIMCLUSTER_DATA", str(TRACES))
    s = simcluster.load_scenario(SCENARIOS / "philly_replay.toml",
                                 ['workload.trace.transforms.window=["1d","2d"]',
                                  "workload.trace.transforms.load_scale=1.5"])
    t = s.model_dump(mode="json")["workload"]["trace"]["transforms"]
    assert t["window"] == [86400.0, 172800.0] and t["load_scale"] == 1.5


# streaming --------------------------------------------------------------------------------------
def _peak_reading(path: Path) -> int:
    tracemalloc.start()
    n = sum(1 for _ in read_trace("csv", path))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n > 0
    return peak


def test_streaming_memory_is_flat(tmp_path, monkeypatch):
    # the order scan reads the submit column in chunks: make a chunk smaller than both files
    monkeypatch.setattr("simcluster.workload.traces.core.SCAN_CHUNK", 500)
    paths = {}
    for n in (2_000, 20_000):
        path = paths[n] = tmp_path / f"jobs{n}.csv"
        with path.open("w") as out:
            out.write("submit,gpus,run_time\n")
            out.writelines(f"{i * 7.5},{1 + i % 8},{600 + i % 977}\n" for i in range(n))
    small, large = _peak_reading(paths[2_000]), _peak_reading(paths[20_000])
    assert large < 1.5 * small + 64_000, (small, large)  # 10x the rows, not 10x the memory


def test_unsorted_file_sorted_stably(tmp_path):
    path = tmp_path / "u.csv"
    path.write_text("submit,gpus,run_time,name\n5,1,1,a\n0,1,1,b\n5,1,1,c\n2,1,1,d\n")
    report = TraceReport()
    f = trace_frame("csv", path, report=report)
    assert f["name"].tolist() == ["b", "d", "a", "c"] and report.sorted_in_memory


# scenarios --------------------------------------------------------------------------------------
def test_philly_replay_scenario_size(monkeypatch):
    monkeypatch.setenv("SIMCLUSTER_DATA", str(TRACES))
    s = simcluster.load_scenario(SCENARIOS / "philly_replay.toml")
    pools = s.cluster.node_pools()
    assert sum(p.nodes for p in pools) == 552  # max `total` of philly_node_sequence.csv
    assert sum(p.nodes * p.gpus_per_node for p in pools) == 2_490
    seq = np.loadtxt(TRACES / "philly_node_sequence" / "philly_node_sequence.csv",
                     delimiter=",", skiprows=1, usecols=2)
    assert seq.max() == 552


def test_philly_replay_las_and_srtf_beat_fifo(monkeypatch):
    monkeypatch.setenv("SIMCLUSTER_DATA", str(TRACES))
    data = tomllib.loads((SCENARIOS / "philly_replay.toml").read_text())
    data["cluster"] = {"nodes": 8, "gpus_per_node": 8, "fabric": "fat_tree",
                       "storage": {"servers": 0}}  # a busy slice of the cluster
    data["workload"]["trace"]["transforms"] = {"window": ["45d", "45.2d"], "max_gpus": 8}
    jct = {}
    for queue in ("fifo", "las", "srtf"):
        data["policy"]["queue"] = queue
        r = simcluster.run(simcluster.scenario_from_dict(data))
        summary = r.summary()
        assert summary["jobs_completed"] == summary["trace_jobs"] == 127
        jct[queue] = summary["mean_jct_s"]
    assert jct["las"] < 0.9 * jct["fifo"] and jct["srtf"] < 0.9 * jct["fifo"], jct


def test_openb_packing_ranking(monkeypatch):
    monkeypatch.setenv("SIMCLUSTER_DATA", str(TRACES))
    s = simcluster.load_scenario(SCENARIOS / "openb_packing.toml",
                                 ["cluster.nodes_from.scale=0.03"])
    curve = allocation_curve(s, ["fgd", "best_fit", "random"], step=0.1, seed=2)
    assert set(curve.columns) >= {"policy", "arrived_demand_pct", "allocated_pct"}
    table = curve.pivot(index="arrived_demand_pct", columns="policy", values="allocated_pct")
    low = table.loc[table.index <= 80]
    assert np.allclose(low["random"], low.index, atol=1.0)  # everything fits at low demand
    near = table.loc[table.index >= 100]
    assert (near["fgd"] >= near["best_fit"] - 1e-9).all()
    assert (near["best_fit"] > near["random"] + 1.0).all()
    assert (table.diff().fillna(0) >= -1e-9).all().all()  # pods never leave


# progress ---------------------------------------------------------------------------------------
def test_progress_line_only_when_enabled():
    scenario = simcluster.scenario_from_dict({
        "run": {"fidelity": "duration"}, "cluster": {"nodes": 1, "storage": {"servers": 0}},
        "workload": {"jobs": [{"run_time": "1d", "submit": i * 3600} for i in range(5)],
                     "checkpoint_interval": 0}})
    out = io.StringIO()
    simcluster.run(scenario, progress=Progress(out, enabled=True, interval_s=0.0))
    text = out.getvalue()
    assert "5 jobs done" in text and "simulated days" in text and "events/s" in text
    quiet = io.StringIO()
    simcluster.run(scenario, progress=Progress(quiet))  # StringIO is not a terminal
    assert quiet.getvalue() == ""

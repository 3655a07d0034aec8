"""The trace formats: how a row of each public trace becomes a :class:`TraceRow`.

Each format cites where its schema is published (the files' SOURCE.md in the data directory gives
commits and licences). Times are seconds; the reader rebases them so that 0 is the earliest
submission in the file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from simcluster.errors import UserError, closest
from simcluster.workload.traces.core import (
    TRACE_FORMATS,
    RowError,
    Skip,
    TraceFormat,
    TraceRow,
    field_text,
    number,
    seconds,
)

__all__ = ["PAI_TASK_COLUMNS", "POLLUX_GPU_HOURS", "csv_format"]

MIB = 2**20


def _add(fmt: TraceFormat) -> TraceFormat:
    TRACE_FORMATS.add(fmt.name, fmt)
    return fmt


def _span(row: Mapping[str, str], start_key: str, end_key: str) -> tuple[float, float]:
    start, end = seconds(row, start_key), seconds(row, end_key)
    if end < start:
        raise RowError(f"end before start ({end_key} {end:g} < {start_key} {start:g})")
    return start, end


def _gpu_count(value: float, key: str) -> float:
    if value != int(value):
        raise RowError(f"column {key!r}: expected a whole number of GPUs, got {value:g}")
    return value


def _gpus(row: Mapping[str, str], key: str, skip: str = "no GPUs") -> float:
    """Column ``key`` as a whole GPU count; a row with none is left out (counted as ``skip``)."""
    gpus = _gpu_count(number(row, key), key)
    if gpus == 0:
        raise Skip(skip)
    return gpus


# Philly, as flattened by RFold (shuoshuc/RFold WorkloadGen/data/philly_trace.csv):
# "#job id,arrival time (sec),topology,shape,size,duration (sec)"; size = GPUs.
def _rfold(row: Mapping[str, str], line: int) -> TraceRow:
    gpus = _gpus(row, "size")
    return TraceRow(line, number(row, "arrival time (sec)"), gpus=gpus,
                    run_time_s=number(row, "duration (sec)"), name=field_text(row, "job id"),
                    extra={"shape": field_text(row, "shape")})


_add(TraceFormat("philly_rfold", "jobs", lambda r: number(r, "arrival time (sec)"), _rfold,
                 submit_column="arrival time (sec)",
                 description="Philly jobs flattened by RFold: job id, arrival time (sec), "
                             "topology, shape, size, duration (sec)"))


# Philly, as flattened by the Pollux artifact (petuum/adaptdl osdi21-artifact
# simulator/traces/philly.csv): timestamp, duration (s), num_gpus, gpu_time, cluster (VC).
def _pollux_philly(row: Mapping[str, str], line: int) -> TraceRow:
    gpus = _gpus(row, "num_gpus")
    return TraceRow(line, seconds(row, "timestamp"), gpus=gpus,
                    run_time_s=number(row, "duration"), tenant=field_text(row, "cluster"))


_add(TraceFormat("philly_pollux", "jobs", lambda r: seconds(r, "timestamp"), _pollux_philly,
                 submit_column="timestamp",
                 description="Philly jobs flattened by Pollux: timestamp, duration, num_gpus, "
                             "gpu_time, cluster"))


# Alibaba GPU-sharing trace 2023 (alibaba/clusterdata cluster-trace-gpu-v2023, openb_pod_list_*):
# name, cpu_milli, memory_mib, num_gpu, gpu_milli (share of one GPU when num_gpu == 1), gpu_spec
# (allowed GPU models, "|"-separated: kept as the row's gpu_type; with [workload.trace] gpu_labels
# it binds against the labels of a nodes_from cluster's pools), qos, pod_phase, creation_time,
# deletion_time, scheduled_time (s). cpu_milli and memory_mib become the row's cpus and memory_bytes
# (the whole pod's); with host_resources the loader asks for them per GPU of the pod's share (a
# 0.46-GPU pod of 6 cores asks 6 / 0.46 cores per GPU, so its share holds 6). CPU-only pods (num_gpu
# 0) are left out and counted ("CPU-only pod" in the report): Weng et al. place them on CPUs too,
# but a request here always holds some GPU share, and the GPU node list has no CPU-only nodes.
def _openb(row: Mapping[str, str], line: int) -> TraceRow:
    num_gpu = _gpu_count(number(row, "num_gpu"), "num_gpu")
    milli = number(row, "gpu_milli", default=1000.0)
    if num_gpu == 0:
        raise Skip("CPU-only pod")
    if not 0 < milli <= 1000:
        raise RowError(f"column 'gpu_milli': expected 1..1000, got {milli:g}")
    gpus = milli / 1000.0 if num_gpu == 1 else num_gpu
    created = seconds(row, "creation_time")
    scheduled = seconds(row, "scheduled_time", default=created)  # empty: never scheduled
    start, end = scheduled, seconds(row, "deletion_time")
    if end < start:
        raise RowError(f"end before start (deletion_time {end:g} < scheduled_time {start:g})")
    spec = field_text(row, "gpu_spec")
    return TraceRow(line, created, gpus=gpus, run_time_s=end - start,
                    tenant=field_text(row, "qos") or "default", state=field_text(row, "pod_phase"),
                    gpu_type=spec or None, name=field_text(row, "name"),
                    cpus=number(row, "cpu_milli") / 1000.0,
                    memory_bytes=number(row, "memory_mib") * MIB)


_add(TraceFormat("openb_pods", "jobs", lambda r: seconds(r, "creation_time"), _openb,
                 submit_column="creation_time",
                 description="Alibaba GPU 2023 (openb) pods: name, cpu_milli, memory_mib, "
                             "num_gpu, gpu_milli, gpu_spec, qos, pod_phase, creation_time, "
                             "deletion_time, scheduled_time"))


# Alibaba PAI 2020 task table (alibaba/clusterdata cluster-trace-gpu-v2020, pai_task_table.header;
# the CSV has no header row): plan_gpu is percent of one GPU per instance (100 = one GPU), so a
# task asks inst_num x plan_gpu / 100 GPUs (rounded up above one GPU). PAI records no submit time
# in the task table; start_time stands for it. Tasks without GPUs or without an end (still running
# when the trace ends) are left out and counted.
PAI_TASK_COLUMNS = ("job_name", "task_name", "inst_num", "status", "start_time", "end_time",
                    "plan_cpu", "plan_mem", "plan_gpu", "gpu_type")


def _pai(row: Mapping[str, str], line: int) -> TraceRow:
    plan_gpu = number(row, "plan_gpu", default=0.0)
    instances = number(row, "inst_num", default=1.0)
    if plan_gpu <= 0:
        raise Skip("no GPUs")
    if field_text(row, "end_time") == "":
        raise Skip("no end time")
    start, end = _span(row, "start_time", "end_time")
    total = instances * plan_gpu / 100.0
    gpus = total if total < 1 else float(math.ceil(total - 1e-9))
    gpu_type = field_text(row, "gpu_type")
    return TraceRow(line, start, gpus=gpus, run_time_s=end - start,
                    state=field_text(row, "status"), gpu_type=gpu_type or None,
                    name=f"{field_text(row, 'job_name')}/{field_text(row, 'task_name')}",
                    cpus=instances * number(row, "plan_cpu", default=0.0) / 100.0,
                    memory_bytes=instances * number(row, "plan_mem", default=0.0) * 2**30)


_add(TraceFormat("pai_v2020", "jobs", lambda r: seconds(r, "start_time"), _pai,
                 columns=PAI_TASK_COLUMNS,
                 submit_column="start_time",
                 description="Alibaba PAI 2020 task table (no header): " + ", ".join(
                     PAI_TASK_COLUMNS)))


# Helios job logs (S-Lab-System-Group/HeliosData data/<cluster>/cluster_log.csv, Hu et al. SC'21):
# job_id, user, vc, gpu_num, cpu_num, node_num, state, submit_time, start_time, end_time,
# duration (s), queue (s). CPU-only jobs (gpu_num 0) are left out and counted.
def _helios(row: Mapping[str, str], line: int) -> TraceRow:
    gpus = _gpu_count(number(row, "gpu_num"), "gpu_num")
    submit = seconds(row, "submit_time")
    if gpus == 0:
        raise Skip("CPU-only job")
    start, end = _span(row, "start_time", "end_time")
    duration = number(row, "duration", default=end - start)
    return TraceRow(line, submit, gpus=gpus, run_time_s=duration, tenant=field_text(row, "vc"),
                    state=field_text(row, "state"), name=field_text(row, "job_id"),
                    cpus=number(row, "cpu_num", default=0.0) or None,
                    extra={"user": field_text(row, "user")})


_add(TraceFormat("helios", "jobs", lambda r: seconds(r, "submit_time"), _helios,
                 submit_column="submit_time",
                 description="Helios job log: job_id, user, vc, gpu_num, cpu_num, node_num, "
                             "state, submit_time, start_time, end_time, duration, queue"))


# Tiresias simulator sample (SymbioticLab/Tiresias simulator/60_job.csv): job_id, num_gpu,
# submit_time (s), iterations, model_name, duration (s), interval.
def _tiresias(row: Mapping[str, str], line: int) -> TraceRow:
    gpus = _gpus(row, "num_gpu")
    return TraceRow(line, number(row, "submit_time"), gpus=gpus,
                    run_time_s=number(row, "duration"), model=field_text(row, "model_name"),
                    name=field_text(row, "job_id"),
                    iterations=int(number(row, "iterations")))


_add(TraceFormat("tiresias", "jobs", lambda r: number(r, "submit_time"), _tiresias,
                 submit_column="submit_time",
                 description="Tiresias job CSV: job_id, num_gpu, submit_time, iterations, "
                             "model_name, duration, interval"))


# Pollux workloads (petuum/adaptdl osdi21-artifact simulator/workloads*/workload-*.csv):
# name, time (s), application, num_replicas, batch_size. Pollux jobs run to a convergence target
# the file does not carry, so run times are an ASSUMPTION stated here, not a trace figure: each
# application gets total GPU-hours at the log-midpoint of the GPU-time class Pollux's sampler
# draws it from (classes 0-1, 1-10, 10-100, 100-1000 GPU-hours, simulator/workload.py; the
# application-to-class assignment below is ours), divided by num_replicas.
POLLUX_GPU_HOURS = {"cifar10": 0.5, "ncf": 0.5, "deepspeech2": 3.0, "yolov3": 30.0,
                    "bert": 3.0, "imagenet": 300.0}
_POLLUX_MODELS = {"imagenet": "resnet-50", "bert": "bert-large"}


def _pollux(row: Mapping[str, str], line: int) -> TraceRow:
    app = field_text(row, "application")
    replicas = _gpu_count(number(row, "num_replicas"), "num_replicas")
    if replicas <= 0:
        raise RowError(f"column 'num_replicas': expected >= 1, got {replicas:g}")
    if app not in POLLUX_GPU_HOURS:
        raise RowError(f"column 'application': unknown {app!r}; expected one of "
                       + ", ".join(sorted(POLLUX_GPU_HOURS)))
    return TraceRow(line, number(row, "time"), gpus=replicas,
                    run_time_s=POLLUX_GPU_HOURS[app] * 3600.0 / replicas,
                    model=_POLLUX_MODELS.get(app), name=field_text(row, "name"),
                    extra={"application": app, "batch_size": number(row, "batch_size")})


_add(TraceFormat("pollux", "jobs", lambda r: number(r, "time"), _pollux,
                 submit_column="time",
                 description="Pollux workload CSV: name, time, application, num_replicas, "
                             "batch_size (run times assumed per application)"))


# Azure LLM inference trace 2023 (Azure/AzurePublicDataset AzureLLMInferenceTrace_{conv,code}):
# TIMESTAMP, ContextTokens, GeneratedTokens; or as processed for Vidur (microsoft/vidur
# data/processed_traces/splitwise_*.csv): arrived_at (s), num_prefill_tokens, num_decode_tokens.
def _azure_time(row: Mapping[str, str]) -> float:
    return seconds(row, "arrived_at" if "arrived_at" in row else "TIMESTAMP")


def _azure(row: Mapping[str, str], line: int) -> TraceRow:
    vidur = "arrived_at" in row
    prompt = number(row, "num_prefill_tokens" if vidur else "ContextTokens")
    output = number(row, "num_decode_tokens" if vidur else "GeneratedTokens")
    if prompt < 0 or output < 0:
        raise RowError("negative token count")
    return TraceRow(line, _azure_time(row), gpus=0.0,
                    extra={"prompt_tokens": int(prompt), "output_tokens": int(output)})


_add(TraceFormat("azure_llm", "requests", _azure_time, _azure,
                 description="Azure LLM inference requests: arrived_at, num_prefill_tokens, "
                             "num_decode_tokens (or TIMESTAMP, ContextTokens, GeneratedTokens)"))


# A generic CSV with a header row and a user mapping {our field: their column}.
CSV_FIELDS = ("submit", "gpus", "run_time", "start", "end", "tenant", "state", "gpu_type",
              "model", "name", "iterations")


def csv_format(mapping: Mapping[str, str] | None) -> TraceFormat:
    """The generic ``csv`` format for one column mapping.

    ``mapping`` maps our fields to the file's column names: ``submit`` (required; seconds or a
    date-time), ``gpus`` (default 1 GPU per job), ``run_time`` (s) or both ``start`` and ``end``,
    and optionally ``tenant``, ``state``, ``gpu_type``, ``model``, ``name``, ``iterations``.
    Missing mapping entries default to the field's own name when the file has that column.
    """
    given = dict(mapping or {})
    unknown = sorted(set(given) - set(CSV_FIELDS))
    if unknown:
        hint = closest(unknown[0], CSV_FIELDS)
        raise UserError(f"mapping: unknown field {unknown[0]!r}; expected some of "
                        f"{', '.join(CSV_FIELDS)}" + (f" (did you mean {hint!r}?)" if hint else ""))

    def col(row: Mapping[str, str], key: str) -> str | None:
        name = given.get(key, key)
        return name if name in row else None

    def submit(row: Mapping[str, str]) -> float:
        name = col(row, "submit")
        if name is None:
            raise RowError(f"missing column {given.get('submit', 'submit')!r}")
        return seconds(row, name)

    def parse(row: Mapping[str, str], line: int) -> TraceRow:
        out = TraceRow(line, submit(row))
        if (name := col(row, "gpus")) is not None:
            out.gpus = number(row, name)
            if out.gpus == 0:
                raise Skip("no GPUs")
        if (name := col(row, "run_time")) is not None:
            out.run_time_s = number(row, name)
        elif col(row, "start") is not None or col(row, "end") is not None:
            start, end = _span(row, given.get("start", "start"), given.get("end", "end"))
            out.run_time_s = end - start
        for key in ("tenant", "state", "gpu_type", "model", "name"):
            if (name := col(row, key)) is not None and (text := field_text(row, name)):
                setattr(out, key, text)
        if (name := col(row, "iterations")) is not None and field_text(row, name):
            out.iterations = int(number(row, name))
        if out.run_time_s is None and out.iterations is None:
            raise RowError("no run time: map run_time, start and end, or iterations")
        return out

    return TraceFormat("csv", "jobs", submit, parse, description="CSV with a column mapping",
                       submit_column=given.get("submit", "submit"))


_add(csv_format(None))

"""Scenario tables for trace replay: ``[workload.trace]`` and ``cluster.nodes_from``.

Trace paths are relative to the data directory: ``--data-dir`` on the command line, else the
``SIMCLUSTER_DATA`` environment variable, else ``./data`` (absolute paths are used as given).

>>> t = TraceTransforms.model_validate({"window": ["1d", "2d"], "load_scale": 2})
>>> t.window, t.load_scale
((86400.0, 172800.0), 2.0)
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from simcluster.errors import UserError, unknown_name
from simcluster.units import parse

# This module does not import scenario.py (scenario.py imports it at its top, so there is no
# import cycle whichever module is imported first); _Model and Time mirror scenario.py's.


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _time(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse(value, "time")
        except UserError as err:
            raise ValueError(str(err)) from None
    return value


Time = Annotated[float, BeforeValidator(_time), Field(ge=0)]


def _known(kind: str, value: str, info: ValidationInfo) -> str:
    """Check a name against the registry of ``kind`` in the validation context (as
    scenario._check_name does)."""
    registry = (info.context or {}).get("registries", {}).get(kind)
    if registry is not None and value not in registry:
        raise ValueError(str(unknown_name(kind, value, registry)))
    return value


def _known_gpus(mapping: dict[str, str], info: ValidationInfo) -> dict[str, str]:
    for value in mapping.values():
        _known("GPU", value, info)
    return mapping

__all__ = ["DATA_ENV", "Node", "NodesFrom", "TraceConfig", "TraceTransforms", "data_dir",
           "expand_nodes_from", "read_nodes", "resolve_data_path"]

DATA_ENV = "SIMCLUSTER_DATA"


def data_dir(explicit: str | Path | None = None) -> Path:
    """The data directory: ``explicit``, else ``$SIMCLUSTER_DATA``, else ``./data``."""
    return Path(explicit or os.environ.get(DATA_ENV) or "data")


def resolve_data_path(path: str | Path, explicit: str | Path | None = None) -> Path:
    """A trace path from a scenario, resolved against the data directory (absolute: as is).

    >>> str(resolve_data_path("philly_rfold/philly_trace.csv", "/d"))
    '/d/philly_rfold/philly_trace.csv'
    """
    path = Path(path).expanduser()
    return path if path.is_absolute() else data_dir(explicit) / path


class TraceTransforms(_Model):
    """``workload.trace.transforms``, applied in this order (all optional):

    Attributes:
        states: keep only rows whose recorded final state is one of these.
        tenants: keep only these tenants / virtual clusters.
        min_gpus, max_gpus: keep jobs asking for this many GPUs (inclusive).
        window: ``[start, end)`` of submission times (s after the trace's first submission);
            kept jobs are shifted so that ``start`` becomes time 0.
        sample: keep each job with this probability (stream ``trace/sample``, keyed by the row's
            line, so a job's fate does not depend on the others).
        size_scale: multiply GPU counts (whole-GPU jobs stay whole: max(1, round(g * f));
            fractional ones stay at most one GPU).
        duration_scale: multiply run times.
        load_scale: compress inter-arrival times by this factor (2 = twice the arrival rate).
        max_jobs: stop after this many jobs.
    """

    states: list[str] | None = None
    tenants: list[str] | None = None
    min_gpus: float | None = Field(None, ge=0)
    max_gpus: float | None = Field(None, gt=0)
    window: tuple[Time, Time] | None = None
    sample: float | None = Field(None, gt=0, le=1)
    size_scale: float = Field(1.0, gt=0)
    duration_scale: float = Field(1.0, gt=0)
    load_scale: float = Field(1.0, gt=0)
    max_jobs: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> TraceTransforms:
        if self.window is not None and self.window[1] <= self.window[0]:
            raise ValueError(f"window end ({self.window[1]}) must be after its start "
                             f"({self.window[0]})")
        if (self.min_gpus is not None and self.max_gpus is not None
                and self.max_gpus < self.min_gpus):
            raise ValueError(f"max_gpus ({self.max_gpus}) is below min_gpus ({self.min_gpus})")
        return self


class TraceConfig(_Model):
    """``[workload.trace]``: replay a trace file.

    Attributes:
        format: a trace format name (``philly_rfold``, ``philly_pollux``, ``openb_pods``,
            ``pai_v2020``, ``helios``, ``tiresias``, ``pollux``, ``csv``).
        path: the file, relative to the data directory.
        mapping: for ``csv``: our field -> the file's column (``submit``, ``gpus``, ``run_time``
            or ``start``/``end``, ``tenant``, ``state``, ``gpu_type``, ``model``, ...).
        on_bad_row: ``error`` stops at the first malformed row (file and line in the message);
            ``skip`` skips and counts them (the count is in the run summary).
        model: model catalog name for jobs whose trace names none (or one not in the catalog).
            Default ``resnet-50``: the traces bundled (Philly 2017, PAI 2020, openb 2023) are
            dominated by vision/recommendation-era jobs with no model named, and ResNet-50 is
            the MLPerf reference vision workload; at ``duration`` fidelity it does not matter.
        gpu_types: trace GPU type -> GPU catalog name, for GPU-type constraints; types not
            mapped impose no constraint (unless ``gpu_labels``).
        gpu_labels: keep the trace's GPU type as the job's constraint, "|" alternatives and
            all (openb's ``gpu_spec``, e.g. ``"V100M16|V100M32"``), each name mapped by
            ``gpu_types`` where it maps, else kept as a pool label (a cluster built with
            ``nodes_from`` labels its pools with the node list's GPU models); a job naming only
            types no GPU has is rejected at submit.
        host_resources: also ask for the CPU cores and host memory the trace gives.
        transforms: filters and scalings (recorded with the resolved scenario).
    """

    format: str
    path: str
    mapping: dict[str, str] = {}
    on_bad_row: Literal["error", "skip"] = "error"
    model: str = "resnet-50"
    gpu_types: dict[str, str] = {}
    gpu_labels: bool = False
    host_resources: bool = False
    transforms: TraceTransforms = TraceTransforms()

    _format = field_validator("format")(lambda v, info: _known("trace format", v, info))
    _model = field_validator("model")(lambda v, info: _known("model", v, info))
    _gpu_types = field_validator("gpu_types")(_known_gpus)

    @model_validator(mode="after")
    def _exists(self) -> TraceConfig:
        path = resolve_data_path(self.path)
        if not path.is_file():
            raise ValueError(f"trace file {str(path)!r} not found (path is relative to the data "
                             f"directory: --data-dir, else ${DATA_ENV}, else ./data)")
        if self.mapping and self.format != "csv":
            raise ValueError(f"mapping is only for format 'csv', not {self.format!r}")
        return self


class NodesFrom(_Model):
    """``cluster.nodes_from``: build the cluster's pools from a node list.

    Attributes:
        format: ``openb_nodes`` (Alibaba GPU 2023 ``openb_node_list_*.csv``: sn, cpu_milli,
            memory_mib, gpu, model) or ``pai_machines`` (Alibaba PAI 2020
            ``pai_machine_spec.csv``, no header: machine, gpu_type, cap_cpu, cap_mem, cap_gpu).
        path: the file, relative to the data directory.
        gpu: GPU catalog name every node type becomes, unless ``gpu_types`` maps it (the
            catalog holds datacenter parts; T4/P100/V100 stand-ins keep the node's GPU count).
        gpu_types: trace GPU type -> GPU catalog name.
        scale: fraction of the nodes of each kind to keep (rounded, at least one per kind).

    Nodes of one kind share GPU model, GPU count, CPU cores and memory; each kind becomes a
    pool with the list's CPU cores and memory (openb ``cpu_milli``, ``memory_mib``; PAI
    ``cap_cpu``, ``cap_mem``), which bind when the workload asks for CPUs and memory
    (``[workload.trace] host_resources = true``).
    """

    format: Literal["openb_nodes", "pai_machines"]
    path: str
    gpu: str = "A100-40GB"
    gpu_types: dict[str, str] = {}
    scale: Annotated[float, Field(gt=0, le=1)] = 1.0

    _gpu = field_validator("gpu")(lambda v, info: _known("GPU", v, info))
    _gpu_types = field_validator("gpu_types")(_known_gpus)



# node-list schemas (column names; the PAI machine spec has no header row)
_NODE_COLUMNS = {
    # alibaba/clusterdata cluster-trace-gpu-v2023 openb_node_list_*.csv
    "openb_nodes": ("sn", "cpu_milli", "memory_mib", "gpu", "model"),
    # alibaba/clusterdata cluster-trace-gpu-v2020 pai_machine_spec.header
    "pai_machines": ("machine", "gpu_type", "cap_cpu", "cap_mem", "cap_gpu"),
}
# (name, GPUs, GPU model, CPU, memory) columns and the CPU and memory units in cores and GiB:
# openb cpu_milli is milli-cores and memory_mib MiB (Weng et al.'s trace README); PAI cap_cpu
# is cores and cap_mem "GB of main memory" (cluster-trace-gpu-v2020/README.md), read as GiB as
# the PAI task loader reads plan_mem (DESIGN.md convention 7: vendors' GB of memory are GiB).
_NODE_FIELDS = {
    "openb_nodes": ("sn", "gpu", "model", "cpu_milli", "memory_mib", 1e-3, 1 / 1024),
    "pai_machines": ("machine", "cap_gpu", "gpu_type", "cap_cpu", "cap_mem", 1.0, 1.0),
}


class Node(NamedTuple):
    """One GPU node of a node list: name, GPU model (as the list names it), GPUs, CPU cores
    and host memory in GiB (None where the list leaves them empty)."""

    name: str
    gpu_type: str
    gpus: int
    cpus: float | None
    memory_gib: float | None


def _whole(path: Path, lineno: int, row: dict[str, str], col: str) -> int:
    value = _number(path, lineno, row, col)
    if value is None or value < 0 or value != int(value):
        raise ValueError(f"{path}:{lineno}: column {col!r}: expected a whole number >= 0, "
                         f"got {row.get(col)!r}")
    return int(value)


def _number(path: Path, lineno: int, row: dict[str, str], col: str) -> float | None:
    """Column ``col`` as a number; None if the row has no such column or leaves it empty."""
    text = (row.get(col) or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path}:{lineno}: column {col!r}: expected a number, "
                         f"got {text!r}") from None


def _positive(path: Path, lineno: int, row: dict[str, str], col: str,
              unit: float) -> float | None:
    value = _number(path, lineno, row, col)
    if value is not None and not value > 0:
        raise ValueError(f"{path}:{lineno}: column {col!r}: expected a number > 0, "
                         f"got {row[col]!r}")
    return None if value is None else value * unit


def read_nodes(format: str, path: str | Path) -> list[Node]:
    """The GPU nodes of a node list (CPU-only nodes left out), in file order.

    Raises:
        ValueError: unknown format, missing file or a malformed row (file and line given).
    """
    if format not in _NODE_COLUMNS:
        raise ValueError(f"unknown node list format {format!r}; expected one of "
                         + ", ".join(sorted(_NODE_COLUMNS)))
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: node list not found (paths are relative to the data "
                         f"directory: --data-dir or ${DATA_ENV}, default ./data)")
    name_col, gpu_col, type_col, cpu_col, mem_col, cpu_unit, mem_unit = _NODE_FIELDS[format]
    nodes = []
    with path.open(newline="") as handle:
        header = list(_NODE_COLUMNS[format])
        for lineno, values in enumerate(csv.reader(handle), start=1):
            if format == "openb_nodes" and lineno == 1:
                header = [v.strip() for v in values]
                continue
            if not values:
                continue
            row = dict(zip(header, values, strict=False))
            if gpu_col not in row:
                raise ValueError(f"{path}:{lineno}: missing column {gpu_col!r}")
            gpus = _whole(path, lineno, row, gpu_col)
            if gpus > 0:
                nodes.append(Node(row.get(name_col, str(lineno)), row.get(type_col, "") or "?",
                                  gpus, _positive(path, lineno, row, cpu_col, cpu_unit),
                                  _positive(path, lineno, row, mem_col, mem_unit)))
    return nodes


def expand_nodes_from(cls: type, data: Any) -> Any:
    """Before-validator of ``[cluster]``: turn ``nodes_from`` into ``pools``.

    Nodes are grouped by (GPU model, GPUs per node, CPU cores, memory); each group becomes one
    pool of the GPU catalog type that ``gpu_types`` maps its model to (else ``gpu``), with the
    group's CPU cores and memory and the model as its ``label`` (so models that map to one
    catalog GPU stay apart). The pools are what the resolved scenario records.
    """
    if not isinstance(data, dict) or data.get("nodes_from") is None:
        return data
    if data.get("pools"):
        raise ValueError("give either cluster.nodes_from or [[cluster.pools]], not both")
    spec = data["nodes_from"]
    source = spec if isinstance(spec, NodesFrom) else NodesFrom.model_validate(spec)
    nodes = read_nodes(source.format, resolve_data_path(source.path))
    groups = Counter((n.gpu_type, n.gpus, n.cpus, n.memory_gib) for n in nodes)
    pools = [_pool(source, kind, gpus, cpus, mem, count)
             for (kind, gpus, cpus, mem), count in sorted(groups.items(), key=_group_order)]
    return {**data, "pools": pools, "nodes_from": source}


def _group_order(item: tuple[tuple, int]) -> tuple:
    (kind, gpus, cpus, mem), _ = item
    return kind, gpus, cpus or 0.0, mem or 0.0


def _pool(source: NodesFrom, kind: str, gpus: int, cpus: float | None, mem: float | None,
          count: int) -> dict[str, Any]:
    pool: dict[str, Any] = {"gpu": source.gpu_types.get(kind, source.gpu),
                            "nodes": max(1, round(count * source.scale)),
                            "gpus_per_node": gpus, "label": kind}
    if cpus is not None:
        pool["cpus"] = cpus
    if mem is not None:
        pool["memory_gib"] = mem
    return pool

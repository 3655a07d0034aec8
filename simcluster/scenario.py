"""The scenario schema: pydantic models of the TOML file, loading, overrides and clear errors.

A scenario has four tables: ``run``, ``cluster``, ``workload``, ``policy``. Quantities take units
(``"6h"``, ``"400Gbps"``, ``"120/day"``; see :mod:`simcluster.units`). Names of GPUs, models,
fabrics and policies are checked against the registries passed in the validation context
(``{"registries": {"GPU": GPUS, ...}}``), so this module stays below the layers that define them.

>>> s = Scenario.model_validate({"cluster": {"nodes": 2},
...                               "workload": {"jobs": [{"run_time": "1h"}]}})
>>> s.cluster.gpu, s.cluster.nodes, s.workload.jobs[0].run_time
('H100-SXM', 2, 3600.0)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from annotated_types import GroupedMetadata
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from simcluster.errors import UserError, closest
from simcluster.scenario_traces import NodesFrom, TraceConfig, expand_nodes_from
from simcluster.scenario_training import TrainingParallelism
from simcluster.units import parse

__all__ = [
    "ClusterConfig",
    "CostConfig",
    "JobEntry",
    "MixEntry",
    "NetworkConfig",
    "PoolConfig",
    "ThroughputsConfig",
    "PolicyConfig",
    "PreemptionConfig",
    "Preset",
    "RunConfig",
    "Scenario",
    "WorkloadConfig",
    "json_schema",
]

# Sizes beyond any built cluster are typos, not plans (the largest public GPU clusters are ~100k
# GPUs, ~12.5k 8-GPU nodes; an NVL72 rack is the largest NVLink domain, 72 GPUs): refused at
# load instead of spending minutes building the topology.
MAX_NODES = 20_000
MAX_GPUS_PER_NODE = 72


# what the JSON Schema says a quantity of each dimension is (units for editors' hovers)
_UNITS = {
    "time": 'a time: seconds, or a string with a unit ("90s", "1.5ms", "6h", "7d")',
    "bytes": 'a size: bytes, or a string with a unit ("80GiB" = 80 x 2^30, "1.5TB" = 1.5e12)',
    "rate": 'a rate: per second, or a string with a unit ("120/day", "5/h")',
}


@dataclass(frozen=True)
class _Quantity(GroupedMetadata):
    """A quantity field: parses ``"6h"``-style strings, and documents itself in the schema."""

    dimension: str

    def __iter__(self) -> Iterator[Any]:
        dimension = self.dimension

        def convert(value: Any) -> Any:
            if isinstance(value, str):
                try:
                    return parse(value, dimension)
                except UserError as err:
                    raise ValueError(str(err)) from None
            return value

        yield BeforeValidator(convert)
        yield WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string"}],
                              "description": _UNITS[dimension]})


def _quantity(dimension: str) -> _Quantity:
    return _Quantity(dimension)


Time = Annotated[float, _quantity("time"), Field(ge=0)]
Bytes = Annotated[float, _quantity("bytes"), Field(ge=0)]
Rate = Annotated[float, _quantity("rate"), Field(gt=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(kind: str, value: str | None, info: ValidationInfo) -> str | None:
    """Check ``value`` against the registry of ``kind`` in the validation context."""
    registries = (info.context or {}).get("registries", {})
    registry = registries.get(kind)
    if value is None or registry is None or value in registry:
        return value
    names = sorted(registry)
    hint = closest(value, names)
    message = f"unknown {kind} {value!r}; expected one of {', '.join(names)}"
    if hint:
        message += f" (did you mean {hint!r}?)"
    raise ValueError(message)


def _check_gpu_type(value: str | None, info: ValidationInfo) -> str | None:
    """A job's ``gpu_type``: GPU catalog names or labels of the cluster's pools, alternatives
    joined by "|" (a GPU matches when its type or label is one of them)."""
    context = info.context or {}
    registry = context.get("registries", {}).get("GPU")
    if value is None or registry is None:
        return value
    labels = list(context.get("pool labels", []))
    for name in value.split("|"):
        if name in registry or name in labels:
            continue
        names = [*sorted(registry), *labels]
        message = (f"unknown GPU type or pool label {name!r}; expected a GPU catalog name "
                   f"({', '.join(sorted(registry))}) or a label of the cluster's pools "
                   f"({', '.join(labels) or 'none'}), alternatives joined by '|'")
        hint = closest(name, names)
        if hint:
            message += f" (did you mean {hint!r}?)"
        raise ValueError(message)
    return value


class RunConfig(_Model):
    """``[run]``: seed, horizon, fidelity.

    Attributes:
        seed: root seed of all random streams.
        horizon: simulated time at which the run stops (s); None runs until every job ends.
        fidelity: ``duration`` (black-box run time), ``coarse`` (perf model and network load
            per placement) or ``iteration`` (every iteration's phases as events; DESIGN.md).
        dtype: math precision of training compute.
        warmup: summaries ignore jobs submitted before this time (s).
    """

    seed: int = Field(1, ge=0)
    horizon: Annotated[float, _quantity("time"), Field(gt=0)] | None = None
    fidelity: Literal["duration", "coarse", "iteration"] = "coarse"
    dtype: Literal["bf16", "fp16", "fp8", "tf32"] = "bf16"
    warmup: Time = 0.0


class StorageConfig(_Model):
    """``cluster.storage``: shared storage servers on the fabric."""

    servers: int = Field(1, ge=0)
    kind: str = "AI400X2"

    _kind = field_validator("kind")(lambda v, info: _check_name("storage", v, info))


class CostConfig(_Model):
    """``cluster.cost``: prices behind ``cost_usd`` (on-demand) and ``tco_usd``.

    Attributes:
        hourly_usd: on-demand $ per GPU-hour; the GPU catalog's AWS-derived figure if None.
        gpu_price_usd: purchase price per GPU; the catalog's street estimate if None.
        node_price_usd: purchase price of each server without its GPUs.
        lifetime: amortisation period (s). Default 5 years: hyperscalers depreciate servers over
            5-6 years (Meta 10-K 2023: 5.5 years; Alphabet 10-K 2023: 6 years).
        electricity_usd_per_kwh: default 0.0804, the 2023 US average industrial retail price (EIA
            Electric Power Monthly, Table 5.3).
        pue: facility power usage effectiveness. Default 1.58, the 2023 industry average (Uptime
            Institute Global Data Center Survey 2023).
    """

    hourly_usd: float | None = Field(None, ge=0)
    gpu_price_usd: float | None = Field(None, ge=0)
    node_price_usd: float = Field(0.0, ge=0)
    lifetime: Time = Field(5 * 365 * 86400.0, gt=0)
    electricity_usd_per_kwh: float = Field(0.0804, ge=0)
    pue: float = Field(1.58, ge=1.0)


class PoolConfig(_Model):
    """One ``[[cluster.pools]]`` entry: nodes of one GPU type in a mixed cluster.

    Attributes:
        gpu: GPU catalog name; the node spec of that generation supplies the rest.
        nodes: number of nodes.
        gpus_per_node: GPUs per node, if not the node spec's.
        cpus: CPU cores per node, if not the node spec's (a node list's figure).
        memory_gib: host memory per node in GiB, if not the node spec's.
        label: what the nodes are called where they came from (a node list's GPU model, e.g.
            openb's ``T4``), kept so that pools of different models stay apart; every GPU of
            the pool carries it, and a job's ``gpu_type`` may name it (GPU-type constraints).

    >>> PoolConfig(gpu="A100-40GB", nodes=2, cpus=64, memory_gib=256).memory_gib
    256.0
    """

    gpu: str
    nodes: int = Field(ge=1, le=MAX_NODES)
    gpus_per_node: int | None = Field(None, ge=1, le=MAX_GPUS_PER_NODE)
    cpus: float | None = Field(None, gt=0)
    memory_gib: float | None = Field(None, gt=0)
    label: str | None = None

    _gpu = field_validator("gpu")(lambda v, info: _check_name("GPU", v, info))


class ThroughputsConfig(_Model):
    """``cluster.throughputs``: a measured throughput table behind relative speeds.

    ``cluster.throughputs = "path.json"`` is short for ``{ path = "path.json" }``.

    Attributes:
        path: JSON file, Gavel's ``simulation_throughputs.json`` schema or plain
            ``{job type: {gpu type: throughput}}``.
        gpus: GPU catalog name -> the table's GPU type (default: the catalog name).
        models: model catalog name -> the table's job type (default: the model name).
    """

    path: str
    gpus: dict[str, str] = {}
    models: dict[str, str] = {}


def _throughputs(value: Any) -> Any:
    return {"path": value} if isinstance(value, str) else value


class ClusterConfig(_Model):
    """``[cluster]``: nodes of one GPU generation, or pools of several, on one fabric.

    Attributes:
        gpu: GPU catalog name; the node spec of that generation supplies the rest.
        nodes: number of nodes.
        gpus_per_node: GPUs per node, if not the node spec's (NICs are capped to match).
        pools: ``[[cluster.pools]]`` of different GPU types instead of ``gpu``/``nodes``.
        throughputs: measured throughputs for relative speeds on a mixed cluster.
        fabric: ``rail_optimized`` or ``fat_tree``.
        nodes_per_rack: nodes per rack (scalable unit).
        oversubscription: leaf downlink / uplink bandwidth ratio (1 = non-blocking).
        storage: storage servers.
        cost: prices.
    """

    gpu: str = "H100-SXM"
    nodes: int = Field(1, ge=1, le=MAX_NODES)
    gpus_per_node: int | None = Field(None, ge=1, le=MAX_GPUS_PER_NODE)
    fabric: str = "rail_optimized"
    nodes_per_rack: int = Field(32, ge=1)
    oversubscription: float = Field(1.0, ge=1.0)
    storage: StorageConfig = StorageConfig()
    cost: CostConfig = CostConfig()
    pools: list[PoolConfig] = []
    nodes_from: NodesFrom | None = None  # pools from a node list (issue 6, scenario_traces.py)
    throughputs: Annotated[ThroughputsConfig | None, BeforeValidator(
        _throughputs, json_schema_input_type=str | ThroughputsConfig | None)] = None

    _gpu = field_validator("gpu")(lambda v, info: _check_name("GPU", v, info))
    _fabric = field_validator("fabric")(lambda v, info: _check_name("fabric", v, info))

    _nodes_from = model_validator(mode="before")(expand_nodes_from)

    @model_validator(mode="after")
    def _share_labels(self, info: ValidationInfo) -> ClusterConfig:
        """Hand the pools' labels to the checks of the jobs' ``gpu_type`` (the workload is
        validated after the cluster, in the same validation context)."""
        if info.context is not None:
            info.context["pool labels"] = sorted({p.label for p in self.node_pools() if p.label})
        return self

    @model_validator(mode="after")
    def _one_form(self) -> ClusterConfig:
        both = sorted({"gpu", "nodes", "gpus_per_node"} & self.model_fields_set)
        if self.pools and both:
            raise ValueError(f"give either [[cluster.pools]] or cluster.{'/'.join(both)}, "
                             "not both")
        return self

    def node_pools(self) -> list[PoolConfig]:
        """The pools of the cluster (one pool for the single ``gpu``/``nodes`` form).

        >>> ClusterConfig(nodes=2).node_pools()[0].nodes
        2
        """
        if self.pools:
            return list(self.pools)
        return [PoolConfig(gpu=self.gpu, nodes=self.nodes, gpus_per_node=self.gpus_per_node)]


class Constant(_Model):
    """A fixed value."""

    kind: Literal["constant"] = "constant"
    value: Annotated[float, _quantity("time"), Field(ge=0)]


class Exponential(_Model):
    """Exponential with the given mean."""

    kind: Literal["exponential"] = "exponential"
    mean: Annotated[float, _quantity("time"), Field(gt=0)]


class Lognormal(_Model):
    """Lognormal with the given median and sigma (of the underlying normal)."""

    kind: Literal["lognormal"] = "lognormal"
    median: Annotated[float, _quantity("time"), Field(gt=0)]
    sigma: float = Field(ge=0)


class Uniform(_Model):
    """Uniform on [low, high]."""

    kind: Literal["uniform"] = "uniform"
    low: Annotated[float, _quantity("time"), Field(ge=0)]
    high: Annotated[float, _quantity("time"), Field(ge=0)]

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self


class Choice(_Model):
    """An empirical distribution: one of ``values`` with ``weights`` (uniform if omitted)."""

    kind: Literal["choice"] = "choice"
    values: list[Annotated[float, _quantity("time"), Field(ge=0)]] = Field(min_length=1)
    weights: list[Annotated[float, Field(ge=0)]] | None = None

    @model_validator(mode="after")
    def _weights(self) -> Choice:
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError(f"{len(self.weights)} weights for {len(self.values)} values")
            if sum(self.weights) <= 0:
                raise ValueError("weights must not all be zero")
        return self


Distribution = Annotated[
    Constant | Exponential | Lognormal | Uniform | Choice, Field(discriminator="kind")
]


def shorthand_distribution(value: Any) -> Any:
    """``8`` or ``[1, 2, 4]`` are shorthands for a constant and a uniform choice (GPU counts,
    token lengths); tables pass through."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return {"kind": "constant", "value": value}
    if isinstance(value, list):
        return {"kind": "choice", "values": value}
    return value


def check_gpu_count(value: float) -> float:
    """``value`` if it is a GPU count a job may ask for (a share of one GPU, or whole GPUs)."""
    if value <= 0:
        raise ValueError(f"a job needs a positive number of GPUs, got {value}")
    if value > 1 and value != int(value):
        raise ValueError(f"more than one GPU must be a whole number, got {value}")
    return value


class JobFields(_Model):
    """Fields shared by generated and listed jobs."""

    model: str = "resnet-50"
    tenant: str = "default"
    fidelity: Literal["duration", "coarse", "iteration"] | None = None
    gpu_type: str | None = None
    cpus_per_gpu: float | None = Field(None, ge=0)
    memory_per_gpu: Bytes | None = None
    parallelism: TrainingParallelism | None = None  # DP/TP/PP/ZeRO layout (issue 4)

    _model = field_validator("model")(lambda v, info: _check_name("model", v, info))
    _gpu_type = field_validator("gpu_type")(lambda v, info: _check_gpu_type(v, info))


class MixEntry(JobFields):
    """One ``[[workload.mix]]`` entry: a class of generated jobs.

    Attributes:
        gpus: GPUs per job: a number, a list (uniform choice) or a distribution table.
        run_time: uncontended run time on the requested GPUs (a distribution).
        weight: relative share of arrivals.
    """

    gpus: Annotated[Distribution, BeforeValidator(
        shorthand_distribution, json_schema_input_type=float | list[float] | Distribution)] = \
        Constant(value=1)
    run_time: Distribution
    weight: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _gpu_values(self) -> MixEntry:
        values = {Constant: lambda d: [d.value], Choice: lambda d: d.values}
        getter = values.get(type(self.gpus))
        if getter is None:
            raise ValueError("gpus must be a number, a list or a choice table")
        for v in getter(self.gpus):
            check_gpu_count(v)
        return self


class JobEntry(JobFields):
    """One ``[[workload.jobs]]`` entry: a job given explicitly.

    Exactly one of ``run_time`` (uncontended seconds on the requested GPUs) and ``iterations``.
    """

    submit: Time = 0.0
    gpus: float = 1.0
    run_time: Time | None = None
    iterations: int | None = Field(None, ge=1)

    _gpus = field_validator("gpus")(lambda v: check_gpu_count(v))

    @model_validator(mode="after")
    def _work(self) -> JobEntry:
        if (self.run_time is None) == (self.iterations is None):
            raise ValueError("give exactly one of run_time and iterations")
        return self


class Poisson(_Model):
    """Poisson arrivals at ``rate`` jobs per second (e.g. ``"120/day"``)."""

    kind: Literal["poisson"] = "poisson"
    rate: Rate


class Preset(JobFields):
    """Arrivals, sizes and run times from a fitted preset (:mod:`simcluster.workload.fit`).

    Attributes:
        preset: a built-in preset name (e.g. ``"philly"``) or a preset ``.json`` file.
        rate: mean arrival rate instead of the fitted one (the daily/weekly cycle is kept).
        rate_scale: multiplies the arrival rate (load scaling).
        run_time: ``empirical`` (the fitted quantiles) or ``lognormal`` (the fitted lognormal).
        tenant: ``"default"`` draws tenants from the preset's tenant mix (if it has one).
    """

    kind: Literal["preset"] = "preset"
    preset: str
    rate: Rate | None = None
    rate_scale: float = Field(1.0, gt=0)
    run_time: Literal["empirical", "lognormal"] = "empirical"

    _preset = field_validator("preset")(
        lambda v, info: v if v.endswith(".json") else _check_name("workload preset", v, info))


def _arrivals_kind(value: Any) -> Any:
    """``kind`` of an arrivals table; ``poisson`` when omitted."""
    return value.get("kind", "poisson") if isinstance(value, dict) else getattr(value, "kind", None)


class WorkloadConfig(_Model):
    """``[workload]``: generated arrivals of a job mix, and/or an explicit job list.

    Attributes:
        arrivals: arrival process of generated jobs (needs ``mix``).
        count: number of generated jobs (at most); without it, generation stops at the horizon.
        mix: job classes drawn for each arrival by weight.
        jobs: explicit jobs.
        checkpoint_interval: work between checkpoints (s of uncontended run time); 0 disables.
            Default 1 h: a common training practice, and near the Young/Daly optimum for a
            few-minute checkpoint on a node-day-scale MTBF.
    """

    arrivals: Annotated[Annotated[Poisson, Tag("poisson")] | Annotated[Preset, Tag("preset")],
                        Discriminator(_arrivals_kind)] | None = None
    count: int | None = Field(None, ge=1)
    mix: list[MixEntry] = []
    jobs: list[JobEntry] = []
    trace: TraceConfig | None = None  # [workload.trace]: replay a trace file (issue 6)
    checkpoint_interval: Time = 3600.0

    @model_validator(mode="after")
    def _sources(self) -> WorkloadConfig:
        if isinstance(self.arrivals, Poisson) and not self.mix:
            raise ValueError("arrivals need at least one [[workload.mix]] entry")
        if isinstance(self.arrivals, Preset) and self.mix:
            raise ValueError("preset arrivals bring their own job mix: drop [[workload.mix]]")
        if self.mix and self.arrivals is None:
            raise ValueError("a [[workload.mix]] needs workload.arrivals")
        if self.arrivals is None and not self.jobs and self.trace is None:
            raise ValueError("no jobs: give workload.arrivals with a mix, or [[workload.jobs]]")
        return self


class NetworkConfig(_Model):
    """``[network]``: the flow-level network model.

    Attributes:
        solver: max-min solver, ``numpy`` (vectorised) or ``heap``.
        efficiency: achieved fraction of line rate per link kind (``nvlink``, ``network``,
            ``pcie``, ``storage``); defaults in :data:`simcluster.hardware.LINK_EFFICIENCY`.
        algorithm: all-reduce algorithm of training jobs: ``auto`` (fastest by the α-β model,
            as NCCL's tuner) or ``ring``, ``tree``, ``hierarchical``.
        nvls: allow NVLink SHARP inside a node.
    """

    solver: str = "numpy"
    efficiency: dict[Literal["nvlink", "network", "pcie", "storage"],
                     Annotated[float, Field(gt=0, le=1)]] = {}
    algorithm: Literal["auto", "ring", "tree", "hierarchical"] = "auto"
    nvls: bool = False

    _solver = field_validator("solver")(lambda v, info: _check_name("fluid solver", v, info))


class PreemptionConfig(_Model):
    """``policy.preemption``: what a preemption costs.

    Attributes:
        checkpoint: a preempted job writes a checkpoint before releasing its GPUs (time from the
            storage model); if false it loses the work since its last periodic checkpoint.
        restart: fixed cost of resuming (process start, communicator setup) before the
            checkpoint is read back. Default 30 s: an assumption, not a measurement; set it from
            your own restart times.
    """

    checkpoint: bool = True
    restart: Time = 30.0


class PolicyConfig(_Model):
    """``[policy]``: admission, queue and placement policies by registered name, with their
    parameters, and the cost of preemption."""

    queue: str = "fifo"
    placement: str = "pack"
    admission: str = "accept_all"
    queue_params: dict[str, Any] = {}
    placement_params: dict[str, Any] = {}
    admission_params: dict[str, Any] = {}
    preemption: PreemptionConfig = PreemptionConfig()

    _queue = field_validator("queue")(lambda v, info: _check_name("queue policy", v, info))
    _placement = field_validator("placement")(
        lambda v, info: _check_name("placement policy", v, info))
    _admission = field_validator("admission")(
        lambda v, info: _check_name("admission policy", v, info))


from simcluster.scenario_failures import FailuresConfig  # noqa: E402 (it builds on the above)
from simcluster.scenario_inference import ServingOptions  # noqa: E402 (issue 7)
from simcluster.scenario_serving import ServiceConfig  # noqa: E402 (issue 7)


class Scenario(_Model):
    """A whole scenario file."""

    name: str = "scenario"
    description: str = ""
    run: RunConfig = RunConfig()
    cluster: ClusterConfig = ClusterConfig()
    workload: WorkloadConfig
    policy: PolicyConfig = PolicyConfig()
    network: NetworkConfig = NetworkConfig()
    failures: FailuresConfig | None = None  # [failures]: issue 8
    services: list[ServiceConfig] = []  # [[services]]: inference services (issue 7)
    serving: ServingOptions = ServingOptions()  # [serving]: cold start, preemption (issue 7)

    @model_validator(mode="after")
    def _bounded(self) -> Scenario:
        w = self.workload
        if w.arrivals is not None and w.count is None and self.run.horizon is None:
            raise ValueError("generated arrivals need workload.count or run.horizon to end")
        return self


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a scenario file, for editors that complete and check
    TOML (e.g. Taplo, Even Better TOML). Names of GPUs, models and policies are plain strings
    here: they are checked against the registries when the scenario is loaded.

    >>> sorted(json_schema()["properties"])[:4]
    ['cluster', 'description', 'failures', 'name']
    """
    schema = Scenario.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "simcluster scenario",
            **{k: v for k, v in schema.items() if k != "title"}}

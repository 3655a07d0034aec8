"""Device catalog: frozen specs of GPUs, CPUs, NICs, storage, and one default node per GPU.

Every figure carries its public source next to it. All values are SI: FLOP/s, bytes, bytes/s,
seconds, watts, US dollars. Vendors' "80 GB" of HBM is 80 GiB (DESIGN.md convention 7).

>>> gpu("H100-SXM").peak("bf16") / 1e12
989.4
>>> node_spec("H100-SXM").gpus_per_node
8
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

from simcluster.registry import Registry

__all__ = [
    "LINK_EFFICIENCY",
    "NVLS_EFFICIENCY",
    "NVLS_GPUS",
    "CPUS",
    "GPUS",
    "NICS",
    "NODES",
    "STORAGE",
    "CPUSpec",
    "GPUSpec",
    "NICSpec",
    "NodeSpec",
    "StorageSpec",
    "gpu",
    "nic",
    "node_spec",
    "storage",
]

GB = 1e9
GiB = 2.0**30
TFLOPS = 1e12
GBPS = 1e9  # GB/s in bytes/s
Gbit = 1e9 / 8  # one Gb/s in bytes/s

GPUS: Registry[GPUSpec] = Registry("GPU")
CPUS: Registry[CPUSpec] = Registry("CPU")
NICS: Registry[NICSpec] = Registry("NIC")
STORAGE: Registry[StorageSpec] = Registry("storage")
NODES: Registry[NodeSpec] = Registry("node spec")


@dataclass(frozen=True, slots=True)
class GPUSpec:
    """One GPU model.

    Attributes:
        name: catalog name.
        bf16_flops, fp16_flops, fp8_flops, tf32_flops: dense peak FLOP/s per dtype (0 = absent).
        hbm_bytes: HBM capacity in bytes.
        hbm_bandwidth: HBM bandwidth in bytes/s.
        nvlink_bandwidth: NVLink bandwidth per GPU per direction in bytes/s.
        idle_power_w, max_power_w: board power idle and at full load (TDP), W.
        price_usd: purchase price of one GPU (street estimate, see source).
        hourly_usd: on-demand cloud price per GPU-hour.
        source: where the figures come from.
    """

    name: str
    bf16_flops: float
    fp16_flops: float
    fp8_flops: float
    tf32_flops: float
    hbm_bytes: float
    hbm_bandwidth: float
    nvlink_bandwidth: float
    idle_power_w: float
    max_power_w: float
    price_usd: float
    hourly_usd: float
    source: str = ""

    def peak(self, dtype: str = "bf16") -> float:
        """Dense peak FLOP/s for ``dtype`` (bf16, fp16, fp8, tf32)."""
        value = {"bf16": self.bf16_flops, "fp16": self.fp16_flops, "fp8": self.fp8_flops,
                 "tf32": self.tf32_flops}.get(dtype)
        if not value:
            raise ValueError(f"{self.name} has no {dtype} peak")
        return value


@dataclass(frozen=True, slots=True)
class CPUSpec:
    """A host CPU socket: cores and TDP (W)."""

    name: str
    cores: int
    tdp_w: float
    source: str = ""


@dataclass(frozen=True, slots=True)
class NICSpec:
    """A network adapter and the fabric it implies.

    Attributes:
        bandwidth: line rate per direction, bytes/s.
        latency_s: one link's latency (adapter + cable + switch port), s.
    """

    name: str
    bandwidth: float
    latency_s: float
    source: str = ""


@dataclass(frozen=True, slots=True)
class StorageSpec:
    """A storage server (appliance) or drive.

    Attributes:
        read_bandwidth, write_bandwidth: sustained bytes/s of the disks.
        capacity_bytes: usable capacity.
        nic: NIC kind of its fabric ports; nics: their count.
    """

    name: str
    read_bandwidth: float
    write_bandwidth: float
    capacity_bytes: float
    nic: str
    nics: int
    source: str = ""


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """The default server of one GPU generation (used when a scenario names only a GPU).

    Attributes:
        gpu: GPU catalog name; gpus_per_node: how many.
        nic: compute-fabric NIC kind; nics: their count (one per GPU on DGX-class servers).
        storage_nic: NIC kind for the storage network; storage_nics: how many storage
            adapters (cards), each counted at one port's line rate (DGX storage cards are
            dual-port, but one PCIe x16 slot cannot carry both ports at full rate).
        cpu: CPU catalog name; sockets: CPU sockets.
        host_memory_bytes: host DRAM.
        max_power_w: system maximum power, W (whole server, GPUs included).
        nvlink_latency_s: one NVLink hop's latency (GPU to NVSwitch), s.
        cores: the node's CPU cores when given apart from its CPU model (a node list's
            figure, e.g. openb's ``cpu_milli`` / 1000); None: ``sockets`` x the CPU's cores.
    """

    name: str
    gpu: str
    gpus_per_node: int
    nic: str
    nics: int
    storage_nic: str
    storage_nics: int
    cpu: str
    sockets: int
    host_memory_bytes: float
    max_power_w: float
    nvlink_latency_s: float
    source: str = ""
    extra: dict[str, float] = field(default_factory=dict, compare=False)
    cores: float | None = None

    @property
    def cpu_cores(self) -> float:
        """Total CPU cores of the node."""
        return CPUS.get(self.cpu).cores * self.sockets if self.cores is None else self.cores

    @property
    def host_power_w(self) -> float:
        """Power of everything but the GPUs at full load: system maximum minus GPU TDPs, W.

        Used as the node's constant non-GPU draw (an upper bound; DGX datasheets give no idle
        figure for the host).
        """
        return max(0.0, self.max_power_w - self.gpus_per_node * GPUS.get(self.gpu).max_power_w)


def gpu(name: str) -> GPUSpec:
    """Look up a GPU by catalog name."""
    return GPUS.get(name)


def nic(name: str) -> NICSpec:
    """Look up a NIC by catalog name."""
    return NICS.get(name)


def storage(name: str) -> StorageSpec:
    """Look up a storage server or drive by catalog name."""
    return STORAGE.get(name)


def node_spec(gpu_name: str) -> NodeSpec:
    """The default node spec for a GPU generation."""
    GPUS.get(gpu_name)  # a clear error for an unknown GPU
    return NODES.get(gpu_name)


# --- GPUs ------------------------------------------------------------------------------------
# Peak dense FLOP/s (no 2:4 sparsity), HBM and NVLink: NVIDIA A100 Tensor Core GPU datasheet
# (2021, SXM4 column), NVIDIA H100 Tensor Core GPU datasheet (SXM5 column; the datasheet gives
# sparse peaks, dense = half: BF16 989.4, FP8 1,978.9, TF32 494.7), NVIDIA H200 product page
# (SXM column; same Hopper die and peaks as H100), NVIDIA Blackwell datasheet (HGX B200, 1,000 W,
# per GPU, dense). Collected in shared/reference/README.md. nvlink_bandwidth is per direction:
# NVLink3 300 GB/s, NVLink4 450 GB/s, NVLink5 900 GB/s (datasheets quote both directions).
# HBM: vendors' "N GB" is stored as N GiB (DESIGN.md convention 7); nvidia-smi memory.total agrees
# to within 1% (H100 81,559 MiB = 79.6 GiB; H200 143,771 MiB = 140.4 GiB; B200 183,359 MiB =
# 179.1 GiB). B200 "180 GB" is the DGX B200 User Guide's 1,440 GB total / 8 (the die carries
# 192 GB of HBM3e, not all exposed).
# Idle power: ESTIMATES, not a controlled measurement. No paper or vendor document giving idle
# board power for these parts was found. The values are typical nvidia-smi power.draw readings
# at P0 with no process and 0 MiB used, as pasted in public GitHub issues and READMEs (e.g.
# allenai/PeerRead issue #40: A100-SXM4-80GB 59-62 W). Ranges seen: A100-SXM4-40GB 45-55 W,
# A100-SXM4-80GB 59-62 W, H100 80GB HBM3 64-71 W, H200 73-78 W (a few near 120 W), B200
# 136-145 W. nvidia-smi reads the board only; host power is in NodeSpec.host_power_w.
# On-demand $/GPU-hour: AWS EC2 On-Demand price, us-east-1, Linux, shared tenancy, of the 8-GPU
# instance divided by 8, as in the AWS Price List for us-east-1 of 2026-07-28 (read in secondary
# transcriptions of that list; several agree to the cent). These prices include AWS's June 2025
# cut for P4d/P4de/P5/P5en (P5 -44%, P4d/P4de -33%); before it the list prices were p4d
# $32.7726/h, p4de $40.96575/h, p5 $98.32/h. p6-b200 launched in May 2025 at $113.9328/h and
# was not cut. p5e.48xlarge (8x H200) has no On-Demand price (Capacity Blocks only), so the
# H200 uses p5en.48xlarge (also 8x H200; faster EFA and newer host CPUs).
# Purchase price: ESTIMATES. NVIDIA publishes no GPU list price; see each entry for the press
# report, and read each as +/-25% at least.
for _spec in (
    GPUSpec("A100-40GB", bf16_flops=312 * TFLOPS, fp16_flops=312 * TFLOPS, fp8_flops=0.0,
            tf32_flops=156 * TFLOPS, hbm_bytes=40 * GiB, hbm_bandwidth=1555 * GBPS,
            nvlink_bandwidth=300 * GBPS,
            idle_power_w=50.0,  # estimate: nvidia-smi snapshots 45-55 W (see above)
            max_power_w=400.0,
            price_usd=10_000.0,  # "roughly $10,000" per A100 (CNBC, 23 Feb 2023; variant unstated)
            hourly_usd=21.957642 / 8,  # p4d.24xlarge, us-east-1, 2026-07-28 list
            source="NVIDIA A100 datasheet (SXM4 40GB); idle: nvidia-smi snapshots (estimate); "
                   "AWS p4d.24xlarge $21.957642/h (us-east-1 On-Demand, 2026-07-28); "
                   "price: CNBC Feb 2023 (~$10k, estimate)"),
    GPUSpec("A100-80GB", bf16_flops=312 * TFLOPS, fp16_flops=312 * TFLOPS, fp8_flops=0.0,
            tf32_flops=156 * TFLOPS, hbm_bytes=80 * GiB, hbm_bandwidth=2039 * GBPS,
            nvlink_bandwidth=300 * GBPS,
            idle_power_w=60.0,  # estimate: nvidia-smi 59-62 W (allenai/PeerRead issue #40)
            max_power_w=400.0,
            # No press figure found for the 80 GB part; $15k is an assumption (the 40 GB price
            # plus a memory premium). Secondary price guides quote $8k-15k new in 2026.
            price_usd=15_000.0,
            hourly_usd=27.44705 / 8,  # p4de.24xlarge, us-east-1, 2026-07-28 list
            source="NVIDIA A100 datasheet (SXM4 80GB); idle: nvidia-smi snapshots (estimate); "
                   "AWS p4de.24xlarge $27.44705/h (us-east-1 On-Demand, 2026-07-28); "
                   "price: assumption, no press source"),
    GPUSpec("H100-SXM", bf16_flops=989.4 * TFLOPS, fp16_flops=989.4 * TFLOPS,
            fp8_flops=1978.9 * TFLOPS, tf32_flops=494.7 * TFLOPS, hbm_bytes=80 * GiB,
            hbm_bandwidth=3350 * GBPS, nvlink_bandwidth=450 * GBPS,
            idle_power_w=70.0,  # estimate: nvidia-smi snapshots 64-71 W
            max_power_w=700.0,
            price_usd=30_000.0,  # top of Raymond James' $25-30k (Barron's, via TechSpot, 2023)
            hourly_usd=55.04 / 8,  # p5.48xlarge, us-east-1, 2026-07-28 list
            source="NVIDIA H100 datasheet (SXM5); idle: nvidia-smi snapshots (estimate); "
                   "AWS p5.48xlarge $55.04/h (us-east-1 On-Demand, 2026-07-28; $98.32 before "
                   "the June 2025 cut); price: Raymond James $25-30k, 2023 (estimate)"),
    GPUSpec("H200", bf16_flops=989.4 * TFLOPS, fp16_flops=989.4 * TFLOPS,
            fp8_flops=1978.9 * TFLOPS, tf32_flops=494.7 * TFLOPS, hbm_bytes=141 * GiB,
            hbm_bandwidth=4800 * GBPS, nvlink_bandwidth=450 * GBPS,
            idle_power_w=75.0,  # estimate: nvidia-smi snapshots 73-78 W
            max_power_w=700.0,
            # No press figure found; secondary guides quote $25-35k. $35k is an assumption
            # (H100 price plus a memory premium).
            price_usd=35_000.0,
            hourly_usd=63.296 / 8,  # p5en.48xlarge (p5e has no On-Demand price), 2026-07-28
            source="NVIDIA H200 product page (SXM); idle: nvidia-smi snapshots (estimate); "
                   "AWS p5en.48xlarge $63.296/h (us-east-1 On-Demand, 2026-07-28; p5e.48xlarge "
                   "is Capacity Blocks only); price: assumption, no press source"),
    GPUSpec("B200", bf16_flops=2250 * TFLOPS, fp16_flops=2250 * TFLOPS,
            fp8_flops=4500 * TFLOPS, tf32_flops=1100 * TFLOPS, hbm_bytes=180 * GiB,
            hbm_bandwidth=8000 * GBPS, nvlink_bandwidth=900 * GBPS,
            idle_power_w=140.0,  # estimate: nvidia-smi snapshots 136-145 W
            max_power_w=1000.0,
            price_usd=40_000.0,  # top of "$30,000 to $40,000" (Jensen Huang, CNBC, March 2024)
            hourly_usd=113.9328 / 8,  # p6-b200.48xlarge, us-east-1, 2026-07-28 list
            source="NVIDIA Blackwell datasheet (HGX B200, 1,000 W); HBM: DGX B200 User Guide "
                   "(1,440 GB / 8); idle: nvidia-smi snapshots (estimate); AWS p6-b200.48xlarge "
                   "$113.9328/h (us-east-1 On-Demand, 2026-07-28); price: Huang on CNBC, "
                   "March 2024, $30-40k (estimate)"),
):
    GPUS.add(_spec.name, _spec)

# --- CPUs ------------------------------------------------------------------------------------
# Core counts: the DGX user guides (DGX A100: 2x EPYC 7742, 64 cores each; DGX H100/H200: 2x Xeon
# 8480C, 56 cores each; DGX B200: 2x Xeon 8570, 56 cores each). TDP: the vendors' spec pages
# (AMD EPYC 7742 225 W; Intel Xeon Platinum 8480+ 350 W; Xeon Platinum 8570 350 W), not re-read
# from a stored copy for this catalog. The 8480C is an NVIDIA-only SKU with no public spec page;
# its TDP is assumed equal to the 8480+'s.
for _cpu in (
    CPUSpec("EPYC-7742", cores=64, tdp_w=225.0,
            source="AMD EPYC 7742 spec page (225 W); DGX A100 User Guide (64 cores)"),
    CPUSpec("Xeon-8480C", cores=56, tdp_w=350.0,
            source="DGX H100/H200 User Guide (56 cores); TDP assumed = Xeon Platinum 8480+ "
                   "(350 W, Intel ark), the 8480C has no public spec page"),
    CPUSpec("Xeon-8570", cores=56, tdp_w=350.0,
            source="DGX B200 User Guide (56 cores, 2.1/4.0 GHz); Intel ark Xeon Platinum "
                   "8570 (350 W)"),
):
    CPUS.add(_cpu.name, _cpu)

# --- NICs ------------------------------------------------------------------------------------
# Line rates: InfiniBand Trade Association roadmap (HDR 200 Gb/s, NDR 400 Gb/s, XDR 800 Gb/s);
# IEEE 802.3 for Ethernet. Latency: NCCL src/graph/tuning.cc, table hwLat, row NET, Ring, LL
# protocol = 2.7 us per ring step (the same in every recent copy checked, i.e. those that
# already list the NVLS algorithms; older releases used 0.9 us). That figure is NCCL's whole
# per-step cost, software included, not a wire latency; this simulator splits it over a
# same-leaf route's links: 0.9 us on each network link (NIC-leaf, leaf-NIC) and half that on
# each PCIe GPU-NIC link, so GPU->NIC->leaf->NIC->GPU sums to 2.7 us and each extra switch hop
# adds 0.9 us (a modelling choice). NCCL does not tell InfiniBand from RoCE, so the Ethernet
# kinds reuse the same value (an assumption).
for _nic in (
    NICSpec("HDR", bandwidth=200 * Gbit, latency_s=0.9e-6,
            source="ConnectX-6 HDR, 200 Gb/s (IBTA); latency: NCCL hwLat NET/Ring/LL 2.7 us / 3"),
    NICSpec("NDR", bandwidth=400 * Gbit, latency_s=0.9e-6,
            source="ConnectX-7 NDR, 400 Gb/s (IBTA); latency: NCCL hwLat NET/Ring/LL 2.7 us / 3"),
    NICSpec("XDR", bandwidth=800 * Gbit, latency_s=0.9e-6,
            source="ConnectX-8 XDR, 800 Gb/s (IBTA); latency: NCCL hwLat NET/Ring/LL 2.7 us / 3"),
    NICSpec("100GbE", bandwidth=100 * Gbit, latency_s=0.9e-6,
            source="IEEE 802.3 100GbE; latency: as InfiniBand (assumption)"),
    NICSpec("400GbE", bandwidth=400 * Gbit, latency_s=0.9e-6,
            source="IEEE 802.3 400GbE; latency: as InfiniBand (assumption)"),
):
    NICS.add(_nic.name, _nic)

# --- Storage ---------------------------------------------------------------------------------
for _st in (
    # Throughput and ports: DDN AI400X2 datasheet (90 GB/s read, 65 GB/s write; 8 HDR200
    # InfiniBand / 200GbE ports). The NDR ports belong to the later AI400X2 Turbo. The 90/65 GB/s
    # figures were not found in a stored copy of the datasheet for this check. Capacity is an
    # ESTIMATE: it depends on drive size and expansion shelves; 1 PB is a round assumption.
    StorageSpec("AI400X2", read_bandwidth=90 * GBPS, write_bandwidth=65 * GBPS,
                capacity_bytes=1e15, nic="HDR", nics=8,
                source="DDN AI400X2 datasheet: 90 GB/s read, 65 GB/s write, 8x HDR200 ports; "
                       "capacity 1 PB is an assumption"),
    # Samsung PM1733 launch announcement (Sept 2019, as reported by Hardwareluxx): U.2 6,400 MB/s
    # sequential read, 3,800 MB/s write (HHHL card: 8,000 / 3,800). Later Samsung product pages
    # may list up to 7,000 MB/s read for U.2; not verified here. DGX A100/H100/B200 data caches
    # are 3.84 TB U.2 NVMe drives (DGX user guides); the drive model varies by build.
    StorageSpec("NVMe-PM1733", read_bandwidth=6.4 * GBPS, write_bandwidth=3.8 * GBPS,
                capacity_bytes=3.84e12, nic="NDR", nics=0,
                source="Samsung PM1733 U.2 launch specs (2019): 6.4 GB/s read, 3.8 GB/s write; "
                       "3.84 TB as in DGX data-cache drives"),
):
    STORAGE.add(_st.name, _st)

# --- Nodes (one per GPU generation) ----------------------------------------------------------
# Component lists and power: NVIDIA DGX A100 User Guide (DU-09821-001, Introduction: hardware
# overview, power specifications), DGX H100/H200 User Guide and DGX B200 User Guide
# (Introduction: component descriptions, power specifications).
# NVLink hop latency: NCCL src/graph/tuning.cc, table hwLat, row NVLINK, Ring, LL = 0.6 us per
# ring step (same copies as above; older releases used 0.4 us), split over the GPU->NVSwitch and
# NVSwitch->GPU links = 0.3 us each. As for the NICs, the split is a modelling choice.
for _node in (
    NodeSpec("DGX-A100-40GB", gpu="A100-40GB", gpus_per_node=8, nic="HDR", nics=8,
             storage_nic="HDR", storage_nics=1, cpu="EPYC-7742", sockets=2,
             host_memory_bytes=1024 * GiB, max_power_w=6500.0, nvlink_latency_s=0.3e-6,
             source="NVIDIA DGX A100 User Guide (320 GB system): 8x single-port ConnectX-6 "
                    "HDR compute, 1x dual-port ConnectX-6 storage, 2x EPYC 7742, 1 TB, "
                    "6.5 kW max"),
    NodeSpec("DGX-A100-80GB", gpu="A100-80GB", gpus_per_node=8, nic="HDR", nics=8,
             storage_nic="HDR", storage_nics=2, cpu="EPYC-7742", sockets=2,
             host_memory_bytes=2048 * GiB, max_power_w=6500.0, nvlink_latency_s=0.3e-6,
             source="NVIDIA DGX A100 User Guide (640 GB system): 8x single-port ConnectX-6 "
                    "HDR compute, 2x dual-port ConnectX-6 storage, 2x EPYC 7742, 2 TB, "
                    "6.5 kW max"),
    NodeSpec("DGX-H100", gpu="H100-SXM", gpus_per_node=8, nic="NDR", nics=8,
             storage_nic="NDR", storage_nics=2, cpu="Xeon-8480C", sockets=2,
             host_memory_bytes=2048 * GiB, max_power_w=10200.0, nvlink_latency_s=0.3e-6,
             source="NVIDIA DGX H100/H200 User Guide: 8x ConnectX-7 400 Gb/s compute, 2x "
                    "dual-port ConnectX-7 storage, 2x Xeon 8480C, 2 TB, 10.2 kW max"),
    NodeSpec("DGX-H200", gpu="H200", gpus_per_node=8, nic="NDR", nics=8,
             storage_nic="NDR", storage_nics=2, cpu="Xeon-8480C", sockets=2,
             host_memory_bytes=2048 * GiB, max_power_w=10200.0, nvlink_latency_s=0.3e-6,
             source="NVIDIA DGX H100/H200 User Guide: as DGX H100 with H200 GPUs, "
                    "10.2 kW max"),
    NodeSpec("DGX-B200", gpu="B200", gpus_per_node=8, nic="NDR", nics=8,
             storage_nic="NDR", storage_nics=2, cpu="Xeon-8570", sockets=2,
             host_memory_bytes=2048 * GiB, max_power_w=14300.0, nvlink_latency_s=0.3e-6,
             source="NVIDIA DGX B200 User Guide: 8x ConnectX-7 400 Gb/s compute, 2x dual-port "
                    "BlueField-3 storage (400 Gb/s), 2x Xeon 8570, 2 TB (4 TB option), "
                    "14.3 kW max"),
):
    NODES.add(_node.gpu, _node)


# --- Achieved fraction of line rate, per link kind ------------------------------------------
# NVLink: "450GB/s is the line rate. With the protocol overhead (~20%) NCCL can get an effective
# NVLink bandwidth of 370GB/s" (S. Jeaugey, NCCL maintainer, NVIDIA/nccl-tests issue #212, 2024,
# about 8x H100): 370 / 450 = 0.822. Network (InfiniBand): 3 DGX-class servers with 4x HDR
# (theoretical 100 GB/s of busbw) peaked at ~96 GB/s all-reduce busbw (NVIDIA/nccl-tests issue
# #119, 2022): 0.96. PCIe and storage links carry no collective; 1.0 until measured.
LINK_EFFICIENCY = MappingProxyType({"nvlink": 370.0 / 450.0, "network": 0.96, "pcie": 1.0,
                                    "storage": 1.0})
# NVLink SHARP (in-switch reduction): peak all-reduce busbw ~480 GB/s, algbw ~275 GB/s on 8 H100
# (same NVIDIA/nccl-tests #212 comment). With NVLS an all-reduce moves S bytes each way per GPU,
# so t = S / (NVLS_EFFICIENCY × NVLink line rate): 275 / 450 = 0.611.
NVLS_EFFICIENCY = 275.0 / 450.0
# NVLink SHARP needs third-generation NVSwitch chips (HGX H100 and later; NVIDIA H100 Tensor Core
# GPU Architecture whitepaper, "NVLink Switch System"); A100 systems have none.
NVLS_GPUS = frozenset({"H100-SXM", "H200", "B200"})

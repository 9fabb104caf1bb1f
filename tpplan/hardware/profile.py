"""HardwareProfile: one system's GPUs, links, collective-cost parameters and efficiencies, in base units.

Built from YAML by tpplan.hardware.loader (pydantic validates at that boundary only). Link bandwidths are
unidirectional per GPU (NVLink4 = 450 GB/s, NDR InfiniBand = 50 GB/s); peak FLOP/s are dense.
"""

from __future__ import annotations

from dataclasses import field
from typing import TYPE_CHECKING, Literal

from tpplan.errors import ProfileError
from tpplan.records import record

if TYPE_CHECKING:  # a measured table is optional: its module loads only with a profile that has one
    from tpplan.hardware.kernel_table import KernelTable

Tier = Literal["nvlink", "pcie", "network"]
"""Which fabric a TP group's collective crosses: inside an NVLink domain, between domains in a node
(usually PCIe), or between nodes."""
Protocol = Literal["ll", "ll128", "simple"]


@record
class GpuSpec:
    name: str
    memory_bytes: int
    """Usable capacity (nvidia-smi's total: 81,559 MiB on an H100 80GB)."""
    memory_bandwidth_bytes_per_s: float
    peak_flops_per_s: dict[str, float]
    """Dense peak per dtype (bf16, fp16, fp8, int8, fp32)."""

    def peak_flops_for(self, dtype: str) -> float:
        """Dense peak for matmuls in `dtype`; a dtype the GPU lists no rate for (int4 weight-only kernels,
        fp32 on tensor-core GPUs) computes in 16-bit. Never another dtype's peak: the loader refuses a profile
        without a 16-bit one."""
        table = self.peak_flops_per_s
        peak = table.get(dtype) or table.get("bf16") or table.get("fp16")
        if peak is None:
            raise ProfileError(f"gpu {self.name!r} lists no 16-bit peak (peak_flops has {', '.join(table) or 'none'}) "
                               f"and none for {dtype}; add gpu.peak_flops.bf16 (dense, from the datasheet)")
        return peak


@record
class LinkSpec:
    kind: str
    """nvlink, nvswitch, xgmi, pcie, infiniband, roce, ethernet, loopback."""
    bandwidth_bytes_per_s: float
    """Unidirectional, per GPU."""
    latency_s: float = 0.0


@record
class ProtocolParams:
    """One protocol's line in T(S, t) = base + hops(t) x hop + factor(t) x S / busbw (DESIGN.md §3)."""

    base_latency_s: float
    hop_latency_s: float
    busbw_bytes_per_s: float
    busbw_by_group_size: tuple[tuple[int, float], ...] = ()
    """Measured bus bandwidth at given group sizes (PCIe collapses with more GPUs); sorted by size."""

    def busbw_at(self, group_size: int) -> float:
        """Bus bandwidth for a group: the measured point, else log-log interpolation between measured points
        (clamped at the ends), else `busbw_bytes_per_s`."""
        import math

        table = self.busbw_by_group_size
        if not table:
            return self.busbw_bytes_per_s
        if group_size <= table[0][0]:
            return table[0][1]
        for (t0, b0), (t1, b1) in zip(table, table[1:], strict=False):
            if t0 <= group_size <= t1:
                frac = math.log(group_size / t0) / math.log(t1 / t0)
                return math.exp(math.log(b0) + frac * math.log(b1 / b0))
        return table[-1][1]


@record
class Efficiency:
    matmul: float
    """Achieved / peak FLOP/s for large 16-bit GEMMs."""
    matmul_fp8: float
    """Achieved / 8-bit dense peak FLOP/s for large fp8/int8 (and narrower) GEMMs: the doubled tensor-core rate
    leaves the same data movement and epilogue per tile, so a smaller share of peak is reached (H100: 0.72 vs
    0.79 in bf16, benchmarks/data/h100_gemm.csv)."""
    memory: float
    """Achieved / peak HBM bandwidth for weight and KV streaming."""
    runtime_reserve_bytes: int
    """Per GPU: CUDA context, NCCL buffers, activation workspace not counted elsewhere."""
    step_overhead_s: float
    """Fixed per forward step: scheduler, sampling, kernel launches not hidden by CUDA graphs."""
    kernel_overhead_s: float
    """Fixed time every kernel of a step costs on top of its roofline when replayed from a CUDA graph
    (launch gap, ramp-up and tail of the grid): ~3 us per matmul on H100 (shared/reference/gpu/h100_gemm.csv)."""
    attention_decode_memory: float
    """Achieved / peak HBM bandwidth of decode attention reading the KV cache (paged decode kernels read each
    sequence's blocks once, in small scattered pieces, below the rate of a large weight matrix)."""
    attention_decode_memory_fused: float | None = None
    """attention_decode_memory of the serving engines' fused paged-decode kernels (TensorRT-LLM's XQA / masked MHA,
    FlashAttention-3 and FlashInfer decode in vLLM and SGLang: one kernel reads each block of K and V once and keeps
    the scores on chip), where attention_decode_memory describes the attention of the measurement harnesses
    (shared/reference/gpu: unfused PyTorch; `tpplan measure` fits both from its SDPA decode curves). None:
    attention_decode_memory (a profile that states attention_decode_memory and not this)."""
    decode_sequence_overhead_s: float = 0.0
    """GPU time per running sequence per decoder layer of a decode step on top of the KV bytes it reads: the work
    unit each sequence is in the paged decode kernel (block-table lookup, the partly filled last block, the softmax
    reduction across KV splits, the output write) and its KV-cache append, which take a fixed time however short the
    sequence's context or however few of its heads a GPU holds. Does not shrink with TP. Charged to the engines'
    fused kernels in layers with a KV cache (tpplan.cost.step._decode_sequence_time_s). 0: none."""
    attention_prefill_matmul: float
    """Achieved / dense 16-bit peak FLOP/s of causal flash attention in prefill (softmax and masking keep it
    below GEMM efficiency: FlashAttention-2 reaches ~35% of H100 peak, FlashAttention-3 paper, Fig. 5)."""
    attention_prefill_matmul_native: float | None = None
    """attention_prefill_matmul for flash attention written for this GPU's own tensor-core pipeline, where the engine
    runs one (TensorRT-LLM's context FMHA on Hopper: fmha_v2 *_tma_ws_sm90 kernels, TMA loads and warp-specialized
    wgmma like FlashAttention-3); FlashAttention-2-style kernels (PyTorch SDPA, vLLM <= 0.6) reach only
    attention_prefill_matmul there. None: attention_prefill_matmul."""
    matmul_epilogue_k: float = 0.0
    """Reduction depth (elements of K) of tensor-core time that every output element of a 16-bit GEMM costs on top of
    its own K: each output tile's pipeline fill and epilogue (accumulator read-out, conversion, store) take a fixed
    time, worth this many K-steps, so a GEMM of shape [M, K] x [K, N] runs 2 x M x N x (K + this) FLOPs' worth at the
    matmul rate. Thin-K shards (the row-parallel O and down projections at high TP) fall below the large-GEMM share
    by K / (K + this). 0: every GEMM reaches the large-GEMM share."""
    matmul_epilogue_k_fp8: float = 0.0
    """matmul_epilogue_k for 8-bit and narrower GEMMs: the same epilogue against twice the tensor-core rate (plus the
    scaling of the accumulators) is worth more K-steps."""
    moe_expert_fixed_tokens: float = 0.0
    """Tokens of matmul work each expert that receives tokens costs a grouped GEMM on top of its own tokens
    (tile padding, per-group pipeline fill and scheduling): achieved FLOP/s = dense x m / (m + this) at m tokens
    per expert. 0: grouped GEMMs as fast as dense ones."""
    matmul_fp4: float | None = None
    """Achieved / 4-bit dense peak FLOP/s for large block-scaled FP4 GEMMs (NVFP4: an FP8 scale per 16 values,
    activations quantized to FP4 before each GEMM). None: the matmul_fp8 share. On B200 these GEMMs reach ~0.35 of
    the FP4 peak where fp8 reaches more (sources in hardware_profiles/dgx-b200.yaml)."""
    sustained_clock: float = 1.0
    """SM clock the GPU holds under continuous compute-bound load at its board power limit, as a share of the clock
    that short measurements run at (the matmul efficiencies above and a measured kernel table describe those).
    Serving at a steady batch is such a load: its FLOP-bound kernels run this much slower; memory-bound kernels
    are paced by the HBM clock and are not scaled. A measured kernel table's compute-bound points stretch the same way
    (tpplan.cost.coefficients.sustained_curve); `tpplan measure` compares its bursts unscaled. 1.0: no throttling
    assumed."""
    pipeline_sequence_overhead_s: float = 0.0
    """Host time per running sequence per pipeline-stage boundary in a PP round: each micro-batch's sampled tokens
    travel rank to rank on the host and each stage's executor updates, schedules and prepares the micro-batch's
    sequences before it can launch it, so this work sits on the round's critical path (tpplan.cost.step
    `_pipeline_step`). 0: none."""


@record
class HardwareProfile:
    name: str
    description: str
    gpu: GpuSpec
    gpus_per_node: int
    nvlink_domain_size: int
    """GPUs that share the fast fabric (8 on HGX, 2 on bridge pairs, 72 on NVL72, 1 on PCIe-only boxes)."""
    gpus_per_host: int = 0
    """GPUs per operating-system host where a node spans several (GB200 NVL72: 4 per tray); 0: gpus_per_node.
    Only launch commands use it (`host_gpus`)."""
    intra_domain_link: LinkSpec
    inter_domain_link: LinkSpec
    network: LinkSpec | None
    nodes: int
    collectives: dict[str, dict[str, ProtocolParams]]
    """tier -> protocol -> parameters."""
    efficiency: Efficiency
    price_per_gpu_hour: float | None = None
    sources: dict[str, str] = field(default_factory=dict)
    origin: str = ""
    """Where the profile was read from (file path or 'built-in')."""
    kernel_table: KernelTable | None = None
    """Optional kernel times measured on this node by `tpplan measure` (tpplan.hardware.kernel_table)."""
    defaulted: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Values the profile's YAML leaves out, by the defaults file they came from: "kernels" -> the efficiency keys
    taken from hardware_profiles/defaults/kernels.yaml, "collectives" -> the tiers derived from the link bandwidths
    by hardware_profiles/defaults/collectives.yaml (tpplan.hardware.loader.DEFAULTS_FILES). Empty: all stated."""

    @property
    def host_gpus(self) -> int:
        """GPUs one host (one launch command's machine) has."""
        return self.gpus_per_host or self.gpus_per_node

    @property
    def total_gpus(self) -> int:
        return self.gpus_per_node * self.nodes

    def tier_for_group(self, group_size: int) -> Tier:
        """The slowest fabric a TP group of `group_size` consecutive GPUs crosses."""
        if group_size <= self.nvlink_domain_size:
            return "nvlink"
        if group_size <= self.gpus_per_node:
            return "pcie"
        return "network"

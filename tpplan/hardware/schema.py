"""The YAML hardware-profile format (schema_version 1), validated with pydantic (extra="forbid").

Quantities are numbers in the unit the key names, or strings with a unit ("450 GB/s", "400 Gb/s",
"80 GiB", "6 us"); parsing goes through tpplan.units. This module is the boundary: it is converted at once
into tpplan.hardware.profile dataclasses in base units.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from tpplan.units import parse_quantity


def _quantity(kind: str, unit: str, *, allow_zero: bool = False):
    def parse(value: object) -> float:
        try:
            number = parse_quantity(value, kind=kind, default_unit=unit)
        except Exception as exc:  # UnitError: re-raised as a pydantic error carrying the field's path
            raise ValueError(str(exc)) from None
        if number == float("inf") or not (number >= 0 if allow_zero else number > 0):
            raise ValueError("must be a " + ("non-negative" if allow_zero else "positive") + ", finite quantity")
        return number

    return BeforeValidator(parse)


QUANTITY_PATTERN = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*[A-Za-zµ/]*\s*$"
"""A number with an optional unit, as tpplan.units reads it (which unit is valid is checked by `profiles validate`)."""


def _json(description: str, *, allow_zero: bool = False) -> WithJsonSchema:
    """JSON Schema of a quantity: a number in the key's unit, or a string with a unit (the YAML accepts both)."""
    number = {"type": "number", "minimum": 0} if allow_zero else {"type": "number", "exclusiveMinimum": 0}
    return WithJsonSchema({"anyOf": [number, {"type": "string", "pattern": QUANTITY_PATTERN}],
                           "description": description})


Bytes = Annotated[float, _quantity("bytes", "GiB"), _json("memory; a number is GiB, or '80 GiB'")]
Bandwidth = Annotated[float, _quantity("bandwidth", "GB/s"),
                      _json("unidirectional; a number is GB/s, or '450 GB/s' / '400 Gb/s'")]
Seconds = Annotated[float, _quantity("time", "us", allow_zero=True),
                    _json("a number is microseconds, or '6 us'", allow_zero=True)]
Flops = Annotated[float, _quantity("flops", "TFLOP/s"), _json("dense; a number is TFLOP/s, or '989 TFLOP/s'")]
Fraction = Annotated[float, Field(gt=0, le=1)]

LinkKind = Literal["nvlink", "nvswitch", "xgmi", "pcie", "infiniband", "roce", "ethernet", "loopback"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuIn(_Strict):
    name: str
    memory: Bytes
    memory_bandwidth: Bandwidth
    peak_flops: dict[Literal["bf16", "fp16", "fp8", "int8", "fp4", "fp32"], Flops] = Field(min_length=1)


class LinkIn(_Strict):
    kind: LinkKind
    bandwidth: Bandwidth
    latency: Seconds | None = None


class NodeIn(_Strict):
    gpus_per_node: int = Field(ge=1, le=1024, strict=True)
    nvlink_domain_size: int = Field(ge=1, le=1024, strict=True)
    gpus_per_host: int | None = Field(default=None, ge=1, le=1024, strict=True)
    """GPUs per operating-system host when a node's NVLink domain spans several (GB200 NVL72: 18 trays of 4); only
    launch commands (--emit) use it. Default: gpus_per_node."""
    intra_domain_link: LinkIn
    inter_domain_link: LinkIn


class NetworkIn(_Strict):
    kind: Literal["infiniband", "roce", "ethernet"]
    bandwidth_per_gpu: Bandwidth
    latency: Seconds


class ProtocolIn(_Strict):
    base_latency: Seconds
    hop_latency: Seconds
    busbw: Bandwidth
    busbw_by_group_size: dict[Annotated[int, Field(ge=2, le=1024)], Bandwidth] | None = None
    """Measured bus bandwidth per group size (e.g. PCIe: {2: 19 GB/s, 8: 1.4 GB/s}); interpolated log-log."""


class TierIn(_Strict):
    ll: ProtocolIn | None = None
    ll128: ProtocolIn | None = None
    simple: ProtocolIn


class CollectivesIn(_Strict):
    nvlink: TierIn | None = None
    pcie: TierIn | None = None
    network: TierIn | None = None


class EfficiencyIn(_Strict):
    matmul: Fraction
    memory: Fraction
    runtime_reserve: Bytes
    step_overhead: Seconds
    matmul_fp8: Fraction | None = None
    """Large 8-bit GEMMs' achieved / 8-bit peak FLOP/s; left out: hardware_profiles/defaults/kernels.yaml."""
    matmul_fp4: Fraction | None = None
    """Large block-scaled FP4 GEMMs' achieved / 4-bit dense peak FLOP/s; left out: the matmul_fp8 share."""
    kernel_overhead: Seconds | None = None
    """Fixed time per kernel in a CUDA-graph step; left out: hardware_profiles/defaults/kernels.yaml."""
    attention_decode_memory: Fraction | None = None
    """Decode attention's achieved / peak HBM bandwidth; left out: defaults/kernels.yaml."""
    attention_decode_memory_fused: Fraction | None = None
    """The same for the serving engines' fused paged-decode kernels; left out: attention_decode_memory where the
    section states that, else defaults/kernels.yaml."""
    decode_sequence_overhead: Seconds | None = None
    """GPU time per running sequence per decoder layer of a decode step beyond its KV reads; left out:
    defaults/kernels.yaml."""
    attention_prefill_matmul: Fraction | None = None
    """Causal flash attention's achieved / dense 16-bit peak FLOP/s; left out: defaults/kernels.yaml."""
    attention_prefill_matmul_native: Fraction | None = None
    """The same for flash attention written for this GPU's own tensor-core pipeline (Hopper: TMA + warp-specialized
    wgmma) where the engine runs one; left out: attention_prefill_matmul."""
    matmul_epilogue_k: float | None = Field(default=None, ge=0, le=65536)
    """K-steps of tensor-core time each output element of a 16-bit GEMM costs beyond its own K (tile pipeline fill
    and epilogue); left out: defaults/kernels.yaml."""
    matmul_epilogue_k_fp8: float | None = Field(default=None, ge=0, le=65536)
    """The same for 8-bit and narrower GEMMs; left out: defaults/kernels.yaml."""
    moe_expert_fixed_tokens: float | None = Field(default=None, ge=0)
    """Tokens of work each expert with tokens adds to a grouped GEMM; left out: defaults/kernels.yaml."""
    sustained_clock: Fraction | None = None
    """SM clock held under continuous compute-bound load at the power limit / the clock of short measurements;
    left out: defaults/kernels.yaml."""
    pipeline_sequence_overhead: Seconds | None = None
    """Host time per running sequence per pipeline-stage boundary of a PP round; left out: defaults/kernels.yaml."""


class MatmulCurveIn(_Strict):
    n: int = Field(ge=1, strict=True)
    k: int = Field(ge=1, strict=True)
    dtype: Literal["bf16", "fp16", "fp8", "int8", "fp32"]
    tokens: list[Annotated[int, Field(ge=1, strict=True)]] = Field(min_length=1)
    time: list[Seconds] = Field(min_length=1)

    @model_validator(mode="after")
    def _points(self):
        _check_curve(self.tokens, self.time, "tokens")
        return self


class AttentionCurveIn(_Strict):
    mode: Literal["decode", "prefill"]
    heads: int = Field(ge=1, strict=True)
    kv_heads: int = Field(ge=1, strict=True)
    head_dim: int = Field(ge=1, strict=True)
    batch: int = Field(default=1, ge=1, strict=True)
    dtype: Literal["bf16", "fp16", "fp8", "int8", "fp32"]
    length: list[Annotated[int, Field(ge=1, strict=True)]] = Field(min_length=1)
    time: list[Seconds] = Field(min_length=1)

    @model_validator(mode="after")
    def _points(self):
        _check_curve(self.length, self.time, "length")
        return self


def _check_curve(xs: list[int], times: list[float], name: str) -> None:
    if len(xs) != len(times):
        raise ValueError(f"{name} has {len(xs)} values but time has {len(times)}; give one time per {name}")
    if any(b <= a for a, b in zip(xs, xs[1:], strict=False)):
        raise ValueError(f"{name} must be strictly increasing")


class KernelTableIn(_Strict):
    """Optional: kernel times measured on this node (`tpplan measure --out` writes it)."""

    source: str = Field(min_length=1)
    kernel_fixed_time: Seconds = 0.0
    layer_overhead: dict[Literal["decode", "prefill"], Seconds] = Field(default_factory=dict)
    matmul: list[MatmulCurveIn] = Field(default_factory=list)
    attention: list[AttentionCurveIn] = Field(default_factory=list)


class ProfileIn(_Strict):
    schema_version: Literal[1]
    name: str = Field(min_length=1)
    description: str = ""
    gpu: GpuIn
    node: NodeIn
    nodes: int = Field(default=1, ge=1, le=100_000, strict=True)
    network: NetworkIn | None = None
    collectives: CollectivesIn | None = None
    """Tiers left out are derived from the link bandwidths (hardware_profiles/defaults/collectives.yaml)."""
    efficiency: EfficiencyIn
    price_per_gpu_hour: float | None = Field(default=None, gt=0)
    source: dict[str, str] = Field(default_factory=dict)
    kernel_table: KernelTableIn | None = None


def json_schema() -> dict:
    schema = ProfileIn.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tpplan hardware profile (schema_version 1)"
    return schema

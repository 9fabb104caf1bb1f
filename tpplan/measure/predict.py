"""Predictions, from the cost model with a given profile, for every measured item. `predict_item` is the one
entry point (the lead swaps in the planner's single evaluation function here: issue 15).

Collectives: tpplan.cost.collectives.collective_time_s (0 at tp 1: engines run none).
Matmuls: the profile's kernel table when it has the shape (tpplan.hardware.kernel_table), else the roofline
max(FLOPs / (peak x matmul_eff), bytes / (HBM x memory_eff)) + the fitted per-kernel fixed time; bytes =
weight + input + output.
A layer: its four shard matmuls + attention (decode reads B x (C+1) cached tokens; prefill is causal, one
kernel each) + 2 all-reduces of tokens x hidden (none when the item is compute-only: tp 1 or an emulated shard)
+ the fitted per-layer overhead of its mode.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from tpplan.cost.collectives import collective_time_s
from tpplan.cost.kernels import KernelRates, gemm_time_s, kernel_rates
from tpplan.cost.kernels import matmul_time_s as kernel_time_s
from tpplan.hardware.kernel_table import matmul_time_s
from tpplan.hardware.profile import HardwareProfile
from tpplan.measure.shapes import LayerShape
from tpplan.models.dtypes import MEASURE_DTYPE_BYTES

COLLECTIVE_KINDS = ("allreduce", "allgather", "reducescatter")


@dataclass(frozen=True, slots=True, kw_only=True)
class Physics:
    """The fitted terms the roofline lacks (0 before calibration); written to the profile's kernel_table."""

    kernel_fixed_time_s: float = 0.0
    layer_overhead_s: dict[str, float] = field(default_factory=dict)


def rates_for(profile: HardwareProfile, dtype: str, physics: Physics) -> KernelRates:
    """The cost model's kernel rates (tpplan.cost.kernels) with the fixed time per kernel fitted so far."""
    return dataclasses.replace(kernel_rates(profile, dtype), kernel_overhead_s=physics.kernel_fixed_time_s)


def matmul_bytes(m: int, n: int, k: int, elem: int) -> int:
    return (n * k + m * k + m * n) * elem


def predict_matmul_s(profile: HardwareProfile, *, m: int, n: int, k: int, dtype: str, physics: Physics) -> float:
    table = matmul_time_s(profile.kernel_table, m=m, n=n, k=k, dtype=dtype)
    if table is not None:
        return table
    elem = MEASURE_DTYPE_BYTES[dtype]
    return gemm_time_s(rates_for(profile, dtype, physics), m_tokens=m, n=n, k=k, bytes_per_param=elem,
                       act_bytes=elem)


def layer_matmuls(s: LayerShape, *, tp: int, tokens: int) -> list[tuple[int, int, int]]:
    """(m, n, k) of the qkv, o, gate_up and down shard matmuls."""
    d, h = s.head_dim, s.hidden
    kv_local, f_local = s.kv_heads_local(tp), s.intermediate // tp
    return [(tokens, (s.heads // tp + 2 * kv_local) * d, h), (tokens, h, (s.heads // tp) * d),
            (tokens, (2 if s.gated else 1) * f_local, h), (tokens, h, f_local)]


def predict_layer_s(profile: HardwareProfile, s: LayerShape, *, tp: int, tokens: int, mode: str, context: int,
                    dtype: str, compute_only: bool, physics: Physics) -> float:
    elem = MEASURE_DTYPE_BYTES[dtype]
    t = sum(predict_matmul_s(profile, m=m, n=n, k=k, dtype=dtype, physics=physics)
            for m, n, k in layer_matmuls(s, tp=tp, tokens=tokens))
    heads_local, kv_local = s.heads // tp, s.kv_heads_local(tp)
    if mode == "decode":
        pairs, kv_tokens = tokens * (context + 1), tokens * (context + 1)
    else:
        pairs, kv_tokens = tokens * tokens / 2, tokens
    t += kernel_time_s(rates_for(profile, dtype, physics), flops=4 * pairs * heads_local * s.head_dim,
                       n_bytes=2 * kv_tokens * kv_local * s.head_dim * elem)
    if not compute_only:
        t += 2 * collective_time_s(profile, kind="allreduce", group_size=tp, n_bytes=tokens * s.hidden * elem)
    return t + physics.layer_overhead_s.get(mode, 0.0)


def predict_item(profile: HardwareProfile, item: dict, *, shape: LayerShape | None, dtype: str,
                 physics: Physics | None = None) -> float | None:
    """Predicted seconds (or bytes for memory items) for one measured item; None when it cannot be predicted."""
    kind, physics = item["kind"], physics or Physics()
    if kind in COLLECTIVE_KINDS:
        return collective_time_s(profile, kind=kind, group_size=item["tp"], n_bytes=item["bytes"])
    if kind == "matmul":
        return predict_matmul_s(profile, m=item["m"], n=item["n"], k=item["k"], dtype=dtype, physics=physics)
    if kind == "layer" and shape is not None:
        compute_only = bool(item.get("compute_only")) or item["tp"] == 1
        return predict_layer_s(profile, shape, tp=item["tp"], tokens=item["tokens"], mode=item["mode"],
                               context=item["context"], dtype=dtype, compute_only=compute_only, physics=physics)
    if kind == "memory" and shape is not None:
        return shape.shard_weight_bytes(item["tp"], MEASURE_DTYPE_BYTES[dtype])
    return None

"""Predictions, from the cost model with a given profile, for every measured item.

Collectives: tpplan.cost.collectives.collective_time_s. Matmuls: the roofline of tpplan.cost.step
(max(FLOPs / (peak x matmul_eff), bytes / (HBM x memory_eff))), bytes = weight + input + output.
A layer: its four shard matmuls + attention (decode reads B x (C+1) cached tokens; prefill is causal)
+ 2 all-reduces of tokens x hidden + a fixed per-layer overhead (0 until calibrated).
"""

from __future__ import annotations

from tpplan.cost.collectives import collective_time_s
from tpplan.cost.step import effective_rates, roofline_time_s
from tpplan.hardware.profile import HardwareProfile
from tpplan.measure.shapes import LayerShape
from tpplan.models.dtypes import MEASURE_DTYPE_BYTES


def roofline_s(profile: HardwareProfile, *, flops: float, n_bytes: float, dtype: str) -> float:
    flops_per_s, bytes_per_s = effective_rates(profile, dtype)
    return roofline_time_s(flops, n_bytes, flops_per_s=flops_per_s, bytes_per_s=bytes_per_s)


def matmul_bytes(m: int, n: int, k: int, elem: int) -> int:
    return (n * k + m * k + m * n) * elem


def layer_matmuls(s: LayerShape, *, tp: int, tokens: int) -> list[tuple[int, int, int]]:
    """(m, n, k) of the qkv, o, gate_up and down shard matmuls."""
    d, h = s.head_dim, s.hidden
    kv_local, f_local = s.kv_heads_local(tp), s.intermediate // tp
    return [(tokens, (s.heads // tp + 2 * kv_local) * d, h), (tokens, h, (s.heads // tp) * d),
            (tokens, (2 if s.gated else 1) * f_local, h), (tokens, h, f_local)]


def predict_layer_s(profile: HardwareProfile, s: LayerShape, *, tp: int, tokens: int, mode: str, context: int,
                    dtype: str, layer_overhead_s: float = 0.0) -> float:
    elem = MEASURE_DTYPE_BYTES[dtype]
    t = sum(roofline_s(profile, flops=2 * m * n * k, n_bytes=matmul_bytes(m, n, k, elem), dtype=dtype)
            for m, n, k in layer_matmuls(s, tp=tp, tokens=tokens))
    heads_local, kv_local = s.heads // tp, s.kv_heads_local(tp)
    if mode == "decode":
        pairs, kv_tokens = tokens * (context + 1), tokens * (context + 1)
    else:
        pairs, kv_tokens = tokens * tokens / 2, tokens
    t += roofline_s(profile, flops=4 * pairs * heads_local * s.head_dim,
                    n_bytes=2 * kv_tokens * kv_local * s.head_dim * elem, dtype=dtype)
    t += 2 * collective_time_s(profile, kind="allreduce", group_size=tp, n_bytes=tokens * s.hidden * elem)
    return t + layer_overhead_s


def predict_item(profile: HardwareProfile, item: dict, *, shape: LayerShape | None, dtype: str,
                 layer_overhead_s: float = 0.0) -> float | None:
    """Predicted seconds (or bytes for memory items) for one measured item."""
    kind = item["kind"]
    if kind in ("allreduce", "allgather", "reducescatter"):
        return collective_time_s(profile, kind=kind, group_size=item["tp"], n_bytes=item["bytes"])
    if kind == "matmul":
        elem = MEASURE_DTYPE_BYTES[dtype]
        return roofline_s(profile, flops=item["flops"],
                          n_bytes=matmul_bytes(item["m"], item["n"], item["k"], elem), dtype=dtype)
    if kind == "layer" and shape is not None:
        return predict_layer_s(profile, shape, tp=item["tp"], tokens=item["tokens"], mode=item["mode"],
                               context=item["context"], dtype=dtype, layer_overhead_s=layer_overhead_s)
    if kind == "memory" and shape is not None:
        return shape.shard_weight_bytes(item["tp"], MEASURE_DTYPE_BYTES[dtype])
    return None

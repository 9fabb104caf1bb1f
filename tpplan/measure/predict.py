"""Predictions, from the cost model with a given profile, for every measured item. `predict_item` is the one
entry point; it calls the planner's own cost functions, so calibration tunes the model `recommend` runs.

Collectives: tpplan.cost.collectives.collective_time_s (0 at tp 1: engines run none).
Matmuls: the profile's kernel table when it has the shape (tpplan.hardware.kernel_table), else the cost model's
kernel roofline (tpplan.cost.kernels.gemm_time_s): max(FLOPs / (peak x matmul_eff), bytes / (HBM x memory_eff))
+ the profile's per-kernel fixed time; bytes = weight + input + output.
A layer: tpplan.cost.step.decoder_layers on the measured shape as a one-layer model, with the kernel set of the
harness (FUSIONS["torch"]: unfused PyTorch in a CUDA graph): its four shard matmuls, elementwise kernels,
attention (decode reads B x (C+1) cached tokens; prefill is causal), 2 all-reduces of tokens x hidden (none when
the item is compute-only: tp 1 or an emulated shard), and the profile's fitted per-layer overhead of its mode.
"""

from __future__ import annotations

from tpplan.cost.coefficients import coefficients, shard_matmul_shapes
from tpplan.cost.collectives import collective_time_s
from tpplan.cost.kernels import FUSIONS, gemm_time_s, kernel_rates
from tpplan.cost.step import causal_pairs, decoder_layers
from tpplan.hardware.kernel_table import matmul_time_s
from tpplan.hardware.profile import HardwareProfile
from tpplan.measure.shapes import LayerShape
from tpplan.models.dtypes import MEASURE_DTYPE_BYTES

COLLECTIVE_KINDS = ("allreduce", "allgather", "reducescatter")


def matmul_bytes(m: int, n: int, k: int, elem: int) -> int:
    return (n * k + m * k + m * n) * elem


def predict_matmul_s(profile: HardwareProfile, *, m: int, n: int, k: int, dtype: str) -> float:
    table = matmul_time_s(profile.kernel_table, m=m, n=n, k=k, dtype=dtype)
    if table is not None:
        return table
    elem = MEASURE_DTYPE_BYTES[dtype]
    rates = kernel_rates(profile, dtype, sustained=False)  # short timed bursts, not continuous load
    return gemm_time_s(rates, m_tokens=m, n=n, k=k, bytes_per_param=elem, act_bytes=elem)


def layer_matmuls(s: LayerShape, *, tp: int, tokens: int) -> list[tuple[int, int, int]]:
    """(m, n, k) of the qkv, o, gate_up and down shard matmuls (the cost model's shard shapes)."""
    shapes = shard_matmul_shapes(s.as_spec(), tp=tp)
    return [(tokens, n, k) for n, k in shapes["attn"] + shapes["mlp"]]


def predict_layer_s(profile: HardwareProfile, s: LayerShape, *, tp: int, tokens: int, mode: str, context: int,
                    dtype: str, compute_only: bool) -> float:
    spec = s.as_spec()
    c = coefficients(spec, profile, tp=tp, dtype=dtype, kv_cache_dtype=dtype, fusion=FUSIONS["torch"],
                     sustained=False)  # short timed bursts, not continuous load
    if mode == "decode":
        step = decoder_layers(c, profile, decode_seqs=tokens, context_len=context + 1, compute_only=compute_only)
    else:
        step = decoder_layers(c, profile, prefill_tokens=tokens, prefill_pairs=causal_pairs(c, tokens),
                              compute_only=compute_only)
    return step.total_s


def predict_item(profile: HardwareProfile, item: dict, *, shape: LayerShape | None, dtype: str) -> float | None:
    """Predicted seconds (or bytes for memory items) for one measured item; None when it cannot be predicted."""
    kind = item["kind"]
    if kind in COLLECTIVE_KINDS:
        return collective_time_s(profile, kind=kind, group_size=item["tp"], n_bytes=item["bytes"])
    if kind == "matmul":
        return predict_matmul_s(profile, m=item["m"], n=item["n"], k=item["k"], dtype=dtype)
    if kind == "layer" and shape is not None:
        compute_only = bool(item.get("compute_only")) or item["tp"] == 1
        return predict_layer_s(profile, shape, tp=item["tp"], tokens=item["tokens"], mode=item["mode"],
                               context=item["context"], dtype=dtype, compute_only=compute_only)
    if kind == "memory" and shape is not None:
        return shape.shard_weight_bytes(item["tp"], MEASURE_DTYPE_BYTES[dtype])
    return None

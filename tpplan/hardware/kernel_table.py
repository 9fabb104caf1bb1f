"""The optional `kernel_table:` section of a hardware profile: kernel times measured on the user's own node.

`tpplan measure --out` writes it (hardware_profiles/README.md documents the YAML): per shard matmul shape
[M, K] x [K, N] and dtype, the time over tokens M; attention time over context (decode) and over prompt length
(prefill); and the calibrated per-kernel fixed time and per-layer overhead. Peers ship vendor-measured tables
of this kind (TensorRT-LLM's perf database, aiconfigurator's per-GPU GEMM tables); this one is the user's.

Interpolation is piecewise linear in M between measured points; below the first point the first time holds
(a matmul that small is bound by its weight bytes, which do not shrink with M); above the last point time
grows in proportion to M (compute-bound). A shape or dtype the table lacks gives None: the caller falls back
to the roofline.
"""

from __future__ import annotations

from dataclasses import field
from typing import Literal

from tpplan.records import record
from tpplan.units import maximum, minimum

AttentionMode = Literal["decode", "prefill"]


@record
class MatmulCurve:
    """Seconds of one [M, k] x [k, n] matmul at each measured M."""

    n: int
    k: int
    dtype: str
    tokens: tuple[int, ...]
    """M values, strictly increasing."""
    time_s: tuple[float, ...]


@record
class AttentionCurve:
    """Seconds of attention of one rank's heads: decode over the cached context per sequence (at `batch`
    sequences), prefill over the prompt length (one prompt)."""

    mode: AttentionMode
    heads: int
    kv_heads: int
    head_dim: int
    batch: int
    dtype: str
    lengths: tuple[int, ...]
    """Context (decode) or prompt length (prefill) in tokens, strictly increasing."""
    time_s: tuple[float, ...]


@record
class KernelTable:
    source: str
    """Where and when it was measured (the `tpplan measure` command, device, versions)."""
    kernel_fixed_time_s: float = 0.0
    """Fitted time one small kernel costs beyond its bytes and FLOPs (launch, tail, sync): the intercept of
    matmul time against weight bytes. Seconds."""
    layer_overhead_s: dict[str, float] = field(default_factory=dict)
    """Per mode (decode, prefill): fitted seconds per layer that the matmuls, attention and collectives do not
    explain (norms, elementwise kernels, KV-cache writes)."""
    matmul: tuple[MatmulCurve, ...] = ()
    attention: tuple[AttentionCurve, ...] = ()


def interpolate_s(xs: tuple[int, ...], ys: tuple[float, ...], x):
    """Piecewise linear in x; flat below the first point; proportional to x above the last. x may be a float or
    a numpy array (sum of clipped segments, no branches: `tpplan sweep` evaluates whole grids at once)."""
    t = ys[0]
    for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:], strict=False):
        t = t + (y1 - y0) / (x1 - x0) * (minimum(maximum(x, x0), x1) - x0)
    return t + ys[-1] / xs[-1] * (maximum(x, xs[-1]) - xs[-1])


def matmul_curve(table: KernelTable | None, *, n: int, k: int, dtype: str) -> MatmulCurve | None:
    """The measured curve of an [M, k] x [k, n] matmul in `dtype`; None when the table lacks it."""
    if table is None:
        return None
    return next((c for c in table.matmul if (c.n, c.k, c.dtype) == (n, k, dtype)), None)


def matmul_time_s(table: KernelTable | None, *, m: int, n: int, k: int, dtype: str) -> float | None:
    """Seconds of an [m, k] x [k, n] matmul from the table; None when the table lacks the shape or dtype."""
    curve = matmul_curve(table, n=n, k=k, dtype=dtype)
    return None if curve is None else interpolate_s(curve.tokens, curve.time_s, m)


def attention_time_s(table: KernelTable | None, *, mode: AttentionMode, heads: int, kv_heads: int, head_dim: int,
                     batch: int, length: int, dtype: str) -> float | None:
    """Seconds of one rank's attention from the table (decode scales with batch from the nearest measured
    batch, since each sequence reads its own cache); None when the table lacks the head layout or dtype."""
    if table is None:
        return None
    curves = [c for c in table.attention if (c.mode, c.heads, c.kv_heads, c.head_dim, c.dtype)
              == (mode, heads, kv_heads, head_dim, dtype)]
    if not curves:
        return None
    curve = min(curves, key=lambda c: abs(c.batch - batch))
    return interpolate_s(curve.lengths, curve.time_s, length) * batch / curve.batch

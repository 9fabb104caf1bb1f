"""The per-kernel table: what `kernel_table` runs for a model, and the KernelTable built from its results.

Shapes are the model's shard matmuls (qkv, o, gate_up, down) at each degree measured; M runs 1 ... 8192 on
GPU (a few small values on CPU, where the layer is scaled down). The table's own accuracy is checked by
leaving every other M out, interpolating it from the rest, and reporting the median |error| of those points.
"""

from __future__ import annotations

import statistics

from tpplan.hardware.kernel_table import AttentionCurve, KernelTable, MatmulCurve, interpolate_s
from tpplan.measure.predict import layer_matmuls
from tpplan.measure.shapes import LayerShape

GPU_TOKENS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
GPU_TOKENS_QUICK = (1, 16, 128, 1024, 8192)
CPU_TOKENS = (1, 8, 64)
"""CPU quick-run budget (< 30 s in all): three M values of the scaled-down shapes."""
GPU_CONTEXTS, GPU_LENGTHS = (256, 1152, 4096, 16384), (512, 1024, 4096)
CPU_CONTEXTS, CPU_LENGTHS = (64, 256), (64, 256)


def shard_shapes(shape: LayerShape, degrees: list[int]) -> list[tuple[int, int]]:
    """Distinct (N, K) of the shard matmuls over the degrees."""
    return sorted({(n, k) for tp in degrees for _m, n, k in layer_matmuls(shape, tp=tp, tokens=1)})


def table_args(*, backend: str, quick: bool, dtype: str, shape: LayerShape, degrees: list[int]) -> list[str]:
    cpu = backend == "gloo"
    tokens = CPU_TOKENS if cpu else (GPU_TOKENS_QUICK if quick else GPU_TOKENS)
    dtypes = dtype if cpu else f"{dtype},fp8"  # the kernel skips fp8 where the GPU lacks it
    layouts = sorted({(shape.heads // t, shape.kv_heads_local(t)) for t in degrees})
    contexts, lengths = (CPU_CONTEXTS, CPU_LENGTHS) if cpu else (GPU_CONTEXTS, GPU_LENGTHS)
    reps = ["--warmup", "1", "--iters", "2", "--repeats", "2"] if cpu else ["--repeats", "3" if quick else "5"]
    return ["--shapes", ",".join(f"{n}x{k}" for n, k in shard_shapes(shape, degrees)),
            "--tokens", ",".join(map(str, tokens)), "--dtypes", dtypes, "--head-dim", str(shape.head_dim),
            "--head-layouts", ",".join(f"{h}x{kv}" for h, kv in layouts), "--contexts", ",".join(map(str, contexts)),
            "--lengths", ",".join(map(str, lengths)), "--backend", backend, *reps]


def build_table(results: list[dict], *, source: str) -> KernelTable:
    """The KernelTable of a run's kernel_table items (if any); calibration adds the fitted per-kernel and
    per-layer terms (tpplan.measure.calibrate)."""
    items = [it for r in results if r.get("workload") == "kernel_table" for it in r["items"]]
    curves: dict[tuple, list[tuple[int, float]]] = {}
    for it in items:
        if it["kind"] == "kernel_matmul":
            key = ("m", it["n"], it["k"], it["dtype"])
            curves.setdefault(key, []).append((it["m"], it["measured_s"]))
        elif it["kind"] == "kernel_attention":
            key = ("a", it["mode"], it["heads"], it["kv_heads"], it["head_dim"], it["batch"], it["dtype"])
            curves.setdefault(key, []).append((it["length"], it["measured_s"]))
    matmul, attention = [], []
    for key, pts in sorted(curves.items()):
        xs, ys = zip(*sorted(dict(pts).items()), strict=True)
        if key[0] == "m":
            matmul.append(MatmulCurve(n=key[1], k=key[2], dtype=key[3], tokens=xs, time_s=ys))
        else:
            attention.append(AttentionCurve(mode=key[1], heads=key[2], kv_heads=key[3], head_dim=key[4],
                                            batch=key[5], dtype=key[6], lengths=xs, time_s=ys))
    return KernelTable(source=source, matmul=tuple(matmul), attention=tuple(attention))


def held_out_interpolation_error_pct(table: KernelTable) -> float | None:
    """Median |interpolated - measured| / measured (%) of the odd points of every matmul curve, interpolated
    from the even ones (the endpoints always kept): how well the table predicts an M it did not measure."""
    errors = []
    for c in table.matmul:
        keep = sorted(set(range(0, len(c.tokens), 2)) | {len(c.tokens) - 1})
        xs, ys = tuple(c.tokens[i] for i in keep), tuple(c.time_s[i] for i in keep)
        errors += [100 * abs(interpolate_s(xs, ys, c.tokens[i]) - c.time_s[i]) / c.time_s[i]
                   for i in range(len(c.tokens)) if i not in keep]
    return statistics.median(errors) if errors else None

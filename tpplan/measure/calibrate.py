"""Fit the profile's collective parameters and matmul/memory efficiencies to measurements; hold some out.

Hold-out: within each collective (kind, group size) every other size, sorted by bytes; within each layer mode
every other token count per (kind, mode, tp). The fit sees only the rest; `median_abs_error_pct_after` is
computed on the held-out items alone. Fits use the best window's mean per call (`measured_s`).

Collectives, per tier, per regime (messages < 256 KiB -> the `ll` protocol, larger -> `simple`): weighted
least squares of T = base + hops x hop + factor x S / busbw (weights 1/T, so small messages count); with a
single group size the hop latency is kept and only base and busbw are fitted.
Matmuls: T = t0 + bytes / (HBM x memory_eff) or t0 + 2 m n (k + K0) / (peak x matmul_eff) by the current
roofline's class, with one per-kernel fixed time t0 (the H100 table: small shards cost 4-6 us beyond their bytes,
shared/reference/gpu/README.md) and the per-output epilogue depth K0 (efficiency.matmul_epilogue_k): fitted first,
with the rates free, where a 16-bit run's compute-bound matmuls span two K or more, else the profile's; then the
rates and t0 at that K0. An efficiency above 1 raises the peak.
Attention: the efficiencies of decode (KV bytes / HBM) and causal prefill (FLOPs / 16-bit peak) from the kernel
table's attention curves, one per-kernel time taken out.
Layers: per mode (decode, prefill), the median residual (measured - predicted, at least 0) over the training
layers becomes a fixed per-layer overhead, capped at the shortest layer measured in that mode: a time every layer
pays cannot exceed a whole layer (a long prefill's rate error, which grows with tokens, once made the term larger
than the 128-token layer). On three CPU runs saved on 2026-12-08 (not kept; `measure --from` on each), the
layer's held-out error after calibration: median 9.8% / 9.1% on two quick runs, 21.2% on a full one, against
16.5% / 19.5% / 32.2% with the smallest residual and 9.8% / 9.1% / 33.2% (worst 101.7%) with an uncapped median;
a reviewer's earlier quick run got worse with it (5.2% -> 16.3%): two to six held-out items on a loaded 2-core
machine decide little.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import field

from tpplan.cost.collectives import bus_factor, ring_hops
from tpplan.cost.kernels import ATTENTION_PREFILL_DTYPE, FLOPS_PER_MAC, matmul_epilogue_k
from tpplan.hardware.kernel_table import KernelTable
from tpplan.hardware.profile import HardwareProfile, ProtocolParams
from tpplan.measure.predict import COLLECTIVE_KINDS, matmul_bytes, predict_item
from tpplan.measure.shapes import LayerShape
from tpplan.models.dtypes import MEASURE_DTYPE_BYTES
from tpplan.records import record
from tpplan.units import KiB

SMALL_MESSAGE_BYTES = 256 * KiB


@record
class Fit:
    profile: HardwareProfile
    """The fitted profile: collectives, efficiencies, efficiency.kernel_overhead_s = the fitted per-kernel time,
    and a kernel_table holding the measured curves, that time and the per-layer overhead per mode."""
    held_out: frozenset[int]
    notes: list[str] = field(default_factory=list)


def held_out_indices(items: list[dict]) -> frozenset[int]:
    """Every other size per collective group and every other token count per layer mode."""
    out: set[int] = set()
    buckets: dict[tuple, list[tuple[float, int]]] = {}
    for i, it in enumerate(items):
        if it["kind"] in COLLECTIVE_KINDS:
            buckets.setdefault(("c", it["kind"], it["tp"], it.get("source")), []).append((it["bytes"], i))
        elif it["kind"] in ("matmul", "layer"):
            buckets.setdefault(("t", it["kind"], it["mode"], it["tp"]), []).append((it["tokens"], i))
    for members in buckets.values():
        keys = sorted({k for k, _ in members})
        held = set(keys[1::2])
        out |= {i for k, i in members if k in held}
    return frozenset(out)


def _wls(rows: list[list[float]], y: list[float]) -> list[float]:
    import numpy as np

    a, b = np.asarray(rows, float), np.asarray(y, float)
    w = 1 / b
    sol, *_ = np.linalg.lstsq(a * w[:, None], b * w, rcond=None)
    return sol.tolist()


def _fit_regime(points: list[tuple[int, float, float]], fallback: ProtocolParams) -> ProtocolParams | None:
    """points: (hops, factor x bytes, seconds); needs 3 points over at least 2 sizes."""
    if len(points) < 3 or len({x for _, x, _ in points}) < 2:
        return None
    if len({h for h, _, _ in points}) >= 2 and len(points) >= 4:
        base, hop, inv_bw = _wls([[1, h, x] for h, x, _ in points], [t for _, _, t in points])
    else:
        hop = fallback.hop_latency_s
        base, inv_bw = _wls([[1, x] for _, x, _ in points], [t - h * hop for h, _, t in points])
    bw = 1 / inv_bw if inv_bw > 0 else fallback.busbw_bytes_per_s
    return ProtocolParams(base_latency_s=max(0.0, base), hop_latency_s=max(0.0, hop), busbw_bytes_per_s=bw)


def _fit_tier(pts: list[tuple[bool, tuple[int, float, float]]], old: dict[str, ProtocolParams]):
    """One line over all sizes, or two (ll for small messages, simple for large) when both regimes have data and
    the split is physical: Simple has the higher latency and the higher bandwidth, as in NCCL's tables. `old` (the
    tier's current protocols, never empty: a schema tier needs `simple`) gives the hop latency a single group size
    cannot fit and the bandwidth of a fit whose slope is not positive."""
    simple_old = old.get("simple") or next(iter(old.values()))
    whole = _fit_regime([p for _, p in pts], simple_old)
    small = _fit_regime([p for is_small, p in pts if is_small], old.get("ll", simple_old))
    large = _fit_regime([p for is_small, p in pts if not is_small], simple_old)
    if small and large and large.base_latency_s >= small.base_latency_s and \
            large.busbw_bytes_per_s >= small.busbw_bytes_per_s:
        return {"ll": small, "simple": large}
    return {"simple": whole} if whole else None


def fit_collectives(profile: HardwareProfile, items: list[dict]) -> HardwareProfile:
    tiers = {k: dict(v) for k, v in profile.collectives.items()}
    by_tier: dict[str, list[dict]] = {}
    for it in items:
        if it["kind"] in COLLECTIVE_KINDS and it["tp"] > 1:
            by_tier.setdefault(profile.tier_for_group(it["tp"]), []).append(it)
    for tier, its in by_tier.items():
        if not tiers.get(tier):  # compare() refuses such items first (check_tiers); nothing to start a fit from
            continue
        pts = [(it["bytes"] < SMALL_MESSAGE_BYTES, (ring_hops(it["kind"], it["tp"]),
                bus_factor(it["kind"], it["tp"]) * it["bytes"], measured_s(it))) for it in its]
        fitted = _fit_tier(pts, tiers.get(tier, {}))
        if fitted:
            tiers[tier] = fitted
    return dataclasses.replace(profile, collectives=tiers)


def measured_s(it: dict) -> float:
    """The fit statistic: the best window's mean (kernels of this version), p25 of per-call samples (older)."""
    return it.get("measured_s") or it["p25_s"]


EPILOGUE_FIT_DTYPES = ("bf16", "fp16")
"""Measured dtypes whose compute-bound matmuls refit the profile's epilogue depth (efficiency.matmul_epilogue_k,
the 16-bit one); an fp32 run (CPU, gloo) keeps it."""
EPILOGUE_FIT_MIN_ROWS = 4
"""Compute-bound matmuls the epilogue depth is fitted from; fewer: the profile's."""
EPILOGUE_FIT_MIN_K_RATIO = 2.0
"""Largest / smallest K among those matmuls: the depth is told apart from the rate only by how much the share of
the rate changes with K, so shapes closer than this leave it to the noise (K 4096 and 4608 at 3% noise: 0 to 700)."""
CLASS_PASSES = 3
"""Fits of the matmuls, each sorting them into memory- and compute-bound by the previous fit's roofline."""


def _matmul_rows(profile: HardwareProfile, items: list[dict], dtype: str) -> tuple[list[list[float]], list[float]]:
    """Rows [1, bytes if memory-bound, 2 m n k and 2 m n if compute-bound] (bound by `profile`'s roofline,
    epilogue included) and seconds: a compute-bound matmul takes t0 + (2 m n k + 2 m n K0) / F."""
    e, elem = profile.efficiency, MEASURE_DTYPE_BYTES[dtype]
    peak, hbm = profile.gpu.peak_flops_for(dtype), profile.gpu.memory_bandwidth_bytes_per_s
    depth = matmul_epilogue_k(e, dtype)
    rows = []
    for it in items:
        n_bytes = matmul_bytes(it["m"], it["n"], it["k"], elem)
        outputs = FLOPS_PER_MAC * it["m"] * it["n"]
        compute = (it["flops"] + outputs * depth) / (peak * e.matmul) >= n_bytes / (hbm * e.memory)
        rows.append([1.0, 0.0 if compute else n_bytes, it["flops"] if compute else 0.0, outputs if compute else 0.0])
    return rows, [measured_s(it) for it in items]


def _fit_epilogue(rows: list[list[float]], y: list[float], dtype: str) -> tuple[float | None, str]:
    """(K0, why) from one fit with the epilogue depth free: t = t0 + bytes / B + (2 m n k + 2 m n K0) / F. Fitted
    only from a 16-bit run whose compute-bound rows number EPILOGUE_FIT_MIN_ROWS and span K by
    EPILOGUE_FIT_MIN_K_RATIO (K = column 2 / column 3), when the fit is physical (t0 >= 0, B, F > 0) and K0 is at
    most the largest K measured; a slightly negative K0 is clamped to 0 (an epilogue the noise hides). None with
    the reason otherwise (the caller holds the profile's K0)."""
    if dtype not in EPILOGUE_FIT_DTYPES:
        return None, ""
    ks = [r[2] / r[3] for r in rows if r[3]]
    if len(ks) < EPILOGUE_FIT_MIN_ROWS or max(ks) < EPILOGUE_FIT_MIN_K_RATIO * min(ks):
        return None, (f"the compute-bound matmuls ({len(ks)}) span K less than {EPILOGUE_FIT_MIN_K_RATIO:g}x"
                      if ks else "no matmul was compute-bound")
    cols = [1, 2, 3] if len({r[1] for r in rows if r[1]}) >= 2 else [2, 3]
    sol = _wls([[r[0]] + [r[j] for j in cols] for r in rows], y)
    t0, inv = sol[0], dict(zip(cols, sol[1:], strict=True))
    if t0 < 0 or any(inv[j] <= 0 for j in cols if j != 3) or inv[3] / inv[2] > max(ks):
        return None, "the fit with it free was unphysical"
    return max(inv[3] / inv[2], 0.0), ""


def _fit_rates(profile: HardwareProfile, rows: list[list[float]], y: list[float],
               dtype: str) -> tuple[HardwareProfile, float, list[str]]:
    """One pass of `fit_matmuls` on `rows`, sorted by `profile`'s roofline (`_matmul_rows`)."""
    fitted_depth, why = _fit_epilogue(rows, y, dtype)
    depth = matmul_epilogue_k(profile.efficiency, dtype) if fitted_depth is None else fitted_depth
    if fitted_depth is not None:
        profile = dataclasses.replace(profile, efficiency=dataclasses.replace(profile.efficiency,
                                                                              matmul_epilogue_k=depth))
    rows = [[r[0], r[1], r[2] + r[3] * depth] for r in rows]  # FLOPs with the epilogue at the depth the model uses
    cols = [j for j in (1, 2) if len({r[j] for r in rows if r[j]}) >= 2]
    t0, inv = 0.0, {}
    if cols:
        sol = _wls([[r[0]] + [r[j] for j in cols] for r in rows], y)
        t0, inv = sol[0], dict(zip(cols, sol[1:], strict=True))
    if t0 < 0 or any(v <= 0 for v in inv.values()):
        t0, inv = 0.0, {}
    for j in (1, 2):  # a class without a usable slope: median rate at the fitted t0
        xs = [(r[j], t) for r, t in zip(rows, y, strict=True) if r[j]]
        if j not in inv and xs:
            inv[j] = statistics.median(max(t - t0, t * 1e-3) / x for x, t in xs)
    fitted, notes = _with_rates(profile, dtype, bytes_per_s=1 / inv[1] if 1 in inv else None,
                                flops_per_s=1 / inv[2] if 2 in inv else None)
    if fitted_depth is not None:
        notes.append(f"matmul epilogue fitted: {depth:.0f} K-steps per output (efficiency.matmul_epilogue_k)")
    elif dtype in EPILOGUE_FIT_DTYPES:
        notes.append(f"matmul epilogue held at the profile's {depth:.0f} K-steps per output: {why}")
    return fitted, t0, notes


def fit_matmuls(profile: HardwareProfile, items: list[dict], dtype: str) -> tuple[HardwareProfile, float, list[str]]:
    """T = t0 + bytes / (HBM x memory_eff) for memory-bound matmuls, t0 + 2 m n (k + K0) / (peak x matmul_eff) for
    compute-bound ones: one weighted least-squares fit (weights 1/T) with a shared per-kernel time t0, and the
    epilogue depth K0 (efficiency.matmul_epilogue_k) fitted first where a 16-bit run's compute-bound matmuls span
    K enough (`_fit_epilogue`), else held at the profile's. The rows are sorted into the two classes by the
    profile's roofline, then again by each fit's, up to CLASS_PASSES fits or until the sorting stops changing.
    A class with too few distinct points keeps the profile's efficiency; a negative t0 is clamped to 0 and the
    rates refitted as medians. Returns (profile, t0 seconds, notes)."""
    if not items:
        return profile, profile.efficiency.kernel_overhead_s, []
    current, classes = profile, None
    for _ in range(CLASS_PASSES):
        rows, y = _matmul_rows(current, items, dtype)
        sorting = [bool(r[2]) for r in rows]
        if sorting == classes:
            break
        classes = sorting
        fitted, t0, notes = _fit_rates(current, rows, y, dtype)
        # the next pass sorts by this fit's roofline: its rates and K0 on the caller's profile
        current = dataclasses.replace(profile, gpu=fitted.gpu, efficiency=dataclasses.replace(
            profile.efficiency, matmul=fitted.efficiency.matmul, memory=fitted.efficiency.memory,
            matmul_epilogue_k=fitted.efficiency.matmul_epilogue_k))
    return fitted, t0, notes


def _with_rates(profile: HardwareProfile, dtype: str, *, bytes_per_s: float | None,
                flops_per_s: float | None) -> tuple[HardwareProfile, list[str]]:
    e, gpu, notes = profile.efficiency, profile.gpu, []
    peaks, matmul_eff, memory_eff = dict(gpu.peak_flops_per_s), e.matmul, e.memory
    if flops_per_s:
        matmul_eff = flops_per_s / gpu.peak_flops_for(dtype)
        if matmul_eff > 1:
            peaks[dtype], matmul_eff = flops_per_s, 1.0
            notes.append(f"measured {dtype} matmul rate {flops_per_s:.3g} FLOP/s exceeds the profile's peak; raised")
    if bytes_per_s:
        memory_eff = bytes_per_s / gpu.memory_bandwidth_bytes_per_s
        if memory_eff > 1:
            gpu, memory_eff = dataclasses.replace(gpu, memory_bandwidth_bytes_per_s=bytes_per_s), 1.0
            notes.append(f"measured matmul byte rate {bytes_per_s:.3g} B/s exceeds the profile's memory bandwidth; "
                         f"raised")
    gpu = dataclasses.replace(gpu, peak_flops_per_s=peaks)
    eff = dataclasses.replace(e, matmul=max(1e-4, matmul_eff), memory=max(1e-4, memory_eff))
    return dataclasses.replace(profile, gpu=gpu, efficiency=eff), notes


def _attention_rate(points: list[tuple[float, float]], fixed_s: float) -> float | None:
    """Median achieved rate (work per second) over (work, seconds) points, one kernel's fixed time taken out."""
    rates = [w / (t - fixed_s) for w, t in points if t > fixed_s and w > 0]
    return statistics.median(rates) if rates else None


def fit_attention(profile: HardwareProfile, table: KernelTable, *, fixed_s: float) -> tuple[HardwareProfile, list[str]]:
    """The attention efficiencies from the table's attention curves (one fused kernel per call, PyTorch SDPA): decode,
    KV bytes = 2 x batch x kv_heads x length x head_dim x element bytes over HBM bandwidth, both as the harness's
    own rate (efficiency.attention_decode_memory, per-sequence time included) and as the engines' fused-kernel rate
    once efficiency.decode_sequence_overhead x batch is taken out of each call (attention_decode_memory_fused,
    which the cost model adds that time back to), over the same calls (those longer than the fixed and per-sequence
    time). The per-sequence time itself is the profile's, not fitted: the table times decode at one batch. Prefill,
    causal FLOPs = 4 x batch x length^2 / 2 x heads x head_dim over the 16-bit peak
    (efficiency.attention_prefill_matmul). Capped at 1 (a note says so)."""
    gpu, e, notes = profile.gpu, profile.efficiency, []
    decode, decode_fused, prefill_pts = [], [], []
    for c in table.attention:
        elem = MEASURE_DTYPE_BYTES.get(c.dtype, 2)
        for length, t in zip(c.lengths, c.time_s, strict=True):
            if c.mode == "decode":
                kv_bytes = 2 * c.batch * c.kv_heads * length * c.head_dim * elem
                per_sequence_s = c.batch * e.decode_sequence_overhead_s
                if t - fixed_s - per_sequence_s > 0:  # the same calls for both shares
                    decode.append((kv_bytes, t))
                    decode_fused.append((kv_bytes, t - per_sequence_s))
            else:
                prefill_pts.append((4 * c.batch * length * length / 2 * c.heads * c.head_dim, t))
    updates, peak_flops = {}, gpu.peak_flops_for(ATTENTION_PREFILL_DTYPE)
    bandwidth = gpu.memory_bandwidth_bytes_per_s
    for field_name, pts, peak in (("attention_decode_memory", decode, bandwidth),
                                  ("attention_decode_memory_fused", decode_fused, bandwidth),
                                  ("attention_prefill_matmul", prefill_pts, peak_flops)):
        rate = _attention_rate(pts, fixed_s)
        if rate is None:
            if field_name == "attention_decode_memory_fused" and any(c.mode == "decode" for c in table.attention):
                notes.append("no decode-attention call ran longer than its fixed and per-sequence time; "
                             f"attention_decode_memory_fused kept at the profile's {e.attention_decode_memory_fused}")
            continue
        if rate > peak:
            unit = "FLOP/s" if field_name == "attention_prefill_matmul" else "B/s"
            notes.append(f"measured {field_name} rate {rate:.3g} {unit} exceeds the profile's peak; capped at 1")
        updates[field_name] = min(1.0, rate / peak)
    return dataclasses.replace(profile, efficiency=dataclasses.replace(e, **updates)), notes


def _with_kernel_terms(profile: HardwareProfile, table: KernelTable, *, fixed_s: float,
                       layer_overhead_s: dict[str, float]) -> HardwareProfile:
    eff = dataclasses.replace(profile.efficiency, kernel_overhead_s=fixed_s)
    table = dataclasses.replace(table, kernel_fixed_time_s=fixed_s, layer_overhead_s=layer_overhead_s)
    return dataclasses.replace(profile, efficiency=eff, kernel_table=table)


def layer_overheads(residuals: dict[str, list[tuple[int, float, float]]]) -> dict[str, float]:
    """The fixed per-layer time per mode from its training layers' (tokens, measured s, measured - predicted s):
    the median residual, at least 0 and at most the shortest layer measured in the mode (module docstring); a mode
    without layers takes the median of all, at most the shortest layer measured."""
    every = [r for rows in residuals.values() for _, _, r in rows]
    shortest = min((t for rows in residuals.values() for _, t, _ in rows), default=0.0)
    overall = min(max(0.0, statistics.median(every)), shortest) if every else 0.0
    return {mode: min(max(0.0, statistics.median([r for _, _, r in rows])), min(t for _, t, _ in rows))
            if (rows := residuals.get(mode)) else overall for mode in ("decode", "prefill")}


def calibrate(profile: HardwareProfile, items: list[dict], *, shape: LayerShape | None, dtype: str,
              table: KernelTable | None = None) -> Fit:
    """Fit on the items not held out: collectives per tier, matmul rates and per-kernel time, then the
    per-layer overhead per mode as the capped median residual of the training layers (module docstring), predicted
    (like everything else) by the cost model with the fitted profile and the measured kernel `table`, as
    `recommend` will."""
    held = held_out_indices(items)
    train = [it for i, it in enumerate(items) if i not in held]
    fitted = fit_collectives(profile, train)
    fitted, t0, notes = fit_matmuls(fitted, [it for it in train if it["kind"] == "matmul"], dtype)
    table = table or KernelTable(source="tpplan measure")
    fitted, attention_notes = fit_attention(fitted, table, fixed_s=t0)
    notes += attention_notes
    fitted = _with_kernel_terms(fitted, table, fixed_s=t0, layer_overhead_s={})
    residuals: dict[str, list[tuple[int, float, float]]] = {}
    for it in train:
        if it["kind"] == "layer":
            predicted = predict_item(fitted, it, shape=shape, dtype=dtype)
            residuals.setdefault(it["mode"], []).append((it["tokens"], measured_s(it), measured_s(it) - predicted))
    overhead = layer_overheads(residuals)
    return Fit(profile=_with_kernel_terms(fitted, table, fixed_s=t0, layer_overhead_s=overhead), held_out=held,
               notes=notes)

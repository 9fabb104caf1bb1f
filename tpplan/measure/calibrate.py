"""Fit the profile's collective parameters and matmul/memory efficiencies to measurements; hold some out.

Hold-out: within each collective (kind, group size) every other size, sorted by bytes; within each layer mode
every other token count. The fit sees only the rest; `median_abs_error_pct_after` is computed on the held-out
items alone. All fits use p25 timings (CPU timings are bimodal: FACTS.md §8).

Collectives, per tier, per regime (messages < 256 KiB -> the `ll` protocol, larger -> `simple`): weighted
least squares of T = base + hops x hop + factor x S / busbw (weights 1/T, so small messages count); with a
single group size the hop latency is kept and only base and busbw are fitted.
Matmuls: items classified compute- or memory-bound by the current roofline; matmul_eff = median achieved
FLOP/s / peak, memory_eff = median achieved bytes/s / HBM bandwidth; an efficiency above 1 raises the peak.
Layers: per mode (decode, prefill), the median residual on training layers becomes a fixed per-layer overhead.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass, field

from tpplan.cost.collectives import bus_factor, ring_hops
from tpplan.hardware.profile import HardwareProfile, ProtocolParams
from tpplan.measure.predict import matmul_bytes, predict_item
from tpplan.measure.shapes import LayerShape
from tpplan.models.dtypes import MEASURE_DTYPE_BYTES
from tpplan.units import KiB

SMALL_MESSAGE_BYTES = 256 * KiB
COLLECTIVE_KINDS = ("allreduce", "allgather", "reducescatter")


@dataclass
class Fit:
    profile: HardwareProfile
    layer_overhead_s: dict[str, float]
    """Per layer mode (decode, prefill): fixed seconds per layer the roofline and collectives do not explain
    (framework dispatch, norms and elementwise ops, ranks arriving late at the all-reduce)."""
    held_out: set[int]
    notes: list[str] = field(default_factory=list)


def held_out_indices(items: list[dict]) -> set[int]:
    """Every other size per collective group and every other token count per layer mode."""
    out: set[int] = set()
    buckets: dict[tuple, list[tuple[float, int]]] = {}
    for i, it in enumerate(items):
        if it["kind"] in COLLECTIVE_KINDS:
            buckets.setdefault(("c", it["kind"], it["tp"], it.get("source")), []).append((it["bytes"], i))
        elif it["kind"] in ("matmul", "layer"):
            buckets.setdefault(("t", it["mode"]), []).append((it["tokens"], i))
    for members in buckets.values():
        keys = sorted({k for k, _ in members})
        held = set(keys[1::2])
        out |= {i for k, i in members if k in held}
    return out


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
    the split is physical: Simple has the higher latency and the higher bandwidth, as in NCCL's tables."""
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
        pts = [(it["bytes"] < SMALL_MESSAGE_BYTES, (ring_hops(it["kind"], it["tp"]),
                bus_factor(it["kind"], it["tp"]) * it["bytes"], it["p25_s"])) for it in its]
        fitted = _fit_tier(pts, tiers.get(tier, {}))
        if fitted:
            tiers[tier] = fitted
    return dataclasses.replace(profile, collectives=tiers)


def fit_matmuls(profile: HardwareProfile, items: list[dict], dtype: str) -> tuple[HardwareProfile, list[str]]:
    e, notes = profile.efficiency, []
    peak, hbm = profile.gpu.peak_flops_for(dtype), profile.gpu.memory_bandwidth_bytes_per_s
    compute, memory = [], []
    for it in items:
        n_bytes = matmul_bytes(it["m"], it["n"], it["k"], MEASURE_DTYPE_BYTES[dtype])
        bound = it["flops"] / (peak * e.matmul) >= n_bytes / (hbm * e.memory)
        (compute if bound else memory).append((it["flops"] / it["p25_s"], n_bytes / it["p25_s"]))
    peaks = dict(profile.gpu.peak_flops_per_s)
    matmul_eff, memory_eff, gpu = e.matmul, e.memory, profile.gpu
    if compute:
        rate = statistics.median(c for c, _ in compute)
        matmul_eff = rate / peak
        if matmul_eff > 1:
            peaks[dtype], matmul_eff = rate, 1.0
            notes.append(f"measured {dtype} matmul rate {rate:.3g} FLOP/s exceeds the profile's peak; peak raised")
    if memory:
        rate = statistics.median(b for _, b in memory)
        memory_eff = rate / hbm
        if memory_eff > 1:
            gpu = dataclasses.replace(gpu, memory_bandwidth_bytes_per_s=rate)
            memory_eff = 1.0
            notes.append(f"measured matmul byte rate {rate:.3g} B/s exceeds the profile's memory bandwidth; raised")
    gpu = dataclasses.replace(gpu, peak_flops_per_s=peaks)
    eff = dataclasses.replace(e, matmul=max(1e-4, matmul_eff), memory=max(1e-4, memory_eff))
    return dataclasses.replace(profile, gpu=gpu, efficiency=eff), notes


def calibrate(profile: HardwareProfile, items: list[dict], *, shape: LayerShape | None, dtype: str) -> Fit:
    held = held_out_indices(items)
    train = [it for i, it in enumerate(items) if i not in held]
    fitted = fit_collectives(profile, train)
    fitted, notes = fit_matmuls(fitted, [it for it in train if it["kind"] == "matmul"], dtype)
    residuals: dict[str, list[float]] = {}
    for it in train:
        if it["kind"] == "layer":
            predicted = predict_item(fitted, it, shape=shape, dtype=dtype)
            residuals.setdefault(it["mode"], []).append(it["p25_s"] - predicted)
    every = [r for rs in residuals.values() for r in rs]
    overall = max(0.0, statistics.median(every)) if every else 0.0
    overhead = {mode: max(0.0, statistics.median(residuals[mode])) if residuals.get(mode) else overall
                for mode in ("decode", "prefill")}
    return Fit(profile=fitted, layer_overhead_s=overhead, held_out=held, notes=notes)

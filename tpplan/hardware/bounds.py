"""Values no accelerator can have: refused when a user profile loads (a unit slip such as `1e30 GiB` would otherwise
plan nonsense in silence). The bounds are generous by orders of magnitude on either side of any real part; values
that are possible but unlikely are tpplan.hardware.lint's warnings, not errors."""

from __future__ import annotations

from typing import Any

from tpplan.units import GB, TB, TERA, GiB, TiB, parse_quantity

MEMORY_BYTES_RANGE = (1 * GiB, 100 * TiB)
"""One GPU's memory: from the smallest inference parts (a few GiB) to well beyond any package (B200: 180 GB)."""
MEMORY_BANDWIDTH_RANGE = (1 * GB, 10_000 * TB)
"""Bytes/s of one GPU's memory: 1 GB/s to 10 PB/s (B200's HBM3e: 8 TB/s; a 1000x slip such as `3350 TB/s` for an
H100 is lint's warning)."""
PEAK_FLOPS_RANGE = (TERA / 1000, 10**7 * TERA)
"""FLOP/s of one GPU at any dtype: 1 GFLOP/s to 10 EFLOP/s (B200 dense FP4: 9 PFLOP/s)."""

_FIELDS = (("memory", "bytes", "GiB", MEMORY_BYTES_RANGE, "1 GiB to 100 TiB"),
           ("memory_bandwidth", "bandwidth", "GB/s", MEMORY_BANDWIDTH_RANGE, "1 GB/s to 10 PB/s"))


def bound_problems(d: dict[str, Any]) -> list[tuple[tuple[str, ...], str, Any, str]]:
    """(key path, what, value as written, expected) for each GPU value outside its physical range; `d` is a profile
    dict that passed the schema."""
    g, out = d["gpu"], []
    for key, kind, default, (low, high), spelled in _FIELDS:
        value = parse_quantity(g[key], kind=kind, default_unit=default)
        if not low <= value <= high:
            out.append((("gpu", key), "impossible for one GPU", g[key],
                        f"{spelled}: check the number and its unit"))
    low, high = PEAK_FLOPS_RANGE
    for dtype, raw in g["peak_flops"].items():
        value = parse_quantity(raw, kind="flops", default_unit="TFLOP/s")
        if not low <= value <= high:
            out.append((("gpu", "peak_flops", str(dtype)), "impossible for one GPU", raw,
                        "1 GFLOP/s to 10 EFLOP/s (dense): check the number and its unit"))
    return out

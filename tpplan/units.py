"""Unit constants and the only place where human units are parsed or formatted.

Inside tpplan every quantity is in base units: bytes, seconds, FLOP, bytes/s, FLOP/s. Memory sizes are
binary (GiB = 2**30 bytes); bandwidths are decimal (GB/s = 1e9 bytes/s) as vendors quote them; network
links quoted in bits (Gb/s) are divided by 8. An unknown unit is an error, never a guess.
"""

from __future__ import annotations

import re

from tpplan.errors import UnitError

KiB = 2**10
MiB = 2**20
GiB = 2**30
TiB = 2**40
KB = 10**3
MB = 10**6
GB = 10**9
TB = 10**12
BITS_PER_BYTE = 8
US = 1e-6
MS = 1e-3
TERA = 1e12
MILLION = 10**6
MINUTE_S = 60
HOUR_S = 3600

_BYTES = {"b": 1, "kib": KiB, "mib": MiB, "gib": GiB, "tib": TiB, "kb": KB, "mb": MB, "gb": GB, "tb": TB}
# Bandwidth: uppercase B = bytes, lowercase b = bits. Binary prefixes are accepted for bytes/s too.
_BANDWIDTH = {
    "B/s": 1, "KB/s": KB, "MB/s": MB, "GB/s": GB, "TB/s": TB,
    "KiB/s": KiB, "MiB/s": MiB, "GiB/s": GiB, "TiB/s": TiB,
    "b/s": 1 / BITS_PER_BYTE, "Kb/s": KB / BITS_PER_BYTE, "Mb/s": MB / BITS_PER_BYTE,
    "Gb/s": GB / BITS_PER_BYTE, "Tb/s": TB / BITS_PER_BYTE,
    "Gbps": GB / BITS_PER_BYTE, "Mbps": MB / BITS_PER_BYTE, "Tbps": TB / BITS_PER_BYTE,
}
_TIME = {"s": 1.0, "ms": MS, "us": US, "µs": US, "ns": 1e-9}
_FLOPS = {"flop/s": 1.0, "gflop/s": 1e9, "tflop/s": TERA, "pflop/s": 1e15,
          "flops": 1.0, "gflops": 1e9, "tflops": TERA, "pflops": 1e15}

_BITS_SIZE = re.compile(r"[KMGT]i?b")
"""A size written in bits (Gb, Mib): refused for memory, where bytes are meant, rather than read case-blind."""
_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-zµ/]*)\s*$")

KINDS = {"bytes": "bytes (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)",
         "bandwidth": "bandwidth (GB/s, MB/s, TB/s, GiB/s, or bits: Gb/s, Gbps)",
         "time": "time (s, ms, us, ns)",
         "flops": "FLOP/s (TFLOP/s, TFLOPS, PFLOP/s, GFLOP/s)"}


def _scale(kind: str, unit: str) -> float | None:
    if kind == "bytes":
        return _BYTES.get(unit.lower())
    if kind == "bandwidth":
        return _BANDWIDTH.get(unit)
    if kind == "time":
        return _TIME.get(unit)
    if kind == "flops":
        return _FLOPS.get(unit.lower())
    raise ValueError(f"unknown quantity kind {kind!r}")


def parse_quantity(value: object, *, kind: str, default_unit: str) -> float:
    """Return `value` in base units of `kind`. A bare number is in `default_unit`.

    `parse_quantity("400 Gb/s", kind="bandwidth", default_unit="GB/s") == 50e9`.
    """
    if isinstance(value, bool):
        raise UnitError(f"expected a number or a string with a unit, got {value!r}")
    if isinstance(value, int | float):
        scale = _scale(kind, default_unit)
        assert scale is not None, default_unit
        return float(value) * scale
    if not isinstance(value, str):
        raise UnitError(f"expected a number or a string with a unit, got {value!r}")
    match = _QUANTITY.match(value)
    if not match:
        raise UnitError(f"cannot read {value!r} as a quantity; write e.g. '450 GB/s', '80 GiB', '6 us'")
    number, unit = float(match.group(1)), match.group(2) or default_unit
    if kind == "bytes" and _BITS_SIZE.fullmatch(unit):
        raise UnitError(f"unit {unit!r} in {value!r} is bits (a lowercase b, as link speeds are quoted); expected "
                        f"a size in bytes: {unit[0]}B or {unit[0]}iB, e.g. '80 GB' or '80 GiB'")
    scale = _scale(kind, unit)
    if scale is None:
        raise UnitError(f"unknown unit {unit!r} in {value!r}; expected {KINDS[kind]}")
    return number * scale


def ceil_div(a, b):
    """Ceiling of a / b for positive b (blocks, padded shards, layers per stage); ints, floats or numpy arrays."""
    return -(-a // b)


def minimum(a, b):
    """Elementwise min that works for floats and numpy arrays alike (no numpy import)."""
    return (a + b - abs(a - b)) / 2


def maximum(a, b):
    """Elementwise max that works for floats and numpy arrays alike (no numpy import)."""
    return (a + b + abs(a - b)) / 2


def bytes_to_gib(n_bytes: float) -> float:
    return n_bytes / GiB








def s_to_ms(seconds: float) -> float:
    return seconds / MS


def format_duration(seconds: float, *, sep: str = " ") -> str:
    """A length of time as people read it: seconds below 2 minutes, minutes below 2 hours, then hours."""
    if seconds < 2 * MINUTE_S:
        return f"{seconds:,.1f}{sep}s"
    if seconds < 2 * HOUR_S:
        return f"{seconds / MINUTE_S:,.1f}{sep}min"
    return f"{seconds / HOUR_S:,.1f}{sep}h"


def s_to_us(seconds: float) -> float:
    return seconds / US




def ms_to_s(ms: float) -> float:
    return ms * MS


def flops_to_tflops(flops: float) -> float:
    return flops / TERA




def format_bytes(n_bytes: float) -> str:
    """Binary units for memory: '16.43 GiB', '320.0 KiB'."""
    for unit, scale in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if abs(n_bytes) >= scale:
            return f"{n_bytes / scale:.2f} {unit}"
    return f"{n_bytes:.0f} B"


def format_count(n: float) -> str:
    """Parameter and token counts: '70.55B', '5.1M'."""
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{suffix}"
    return f"{n:.0f}"


def format_seconds(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= MS:
        return f"{seconds / MS:.2f} ms"
    return f"{seconds / US:.1f} us"


def format_bandwidth(bytes_per_s: float) -> str:
    return f"{bytes_per_s / GB:.1f} GB/s"

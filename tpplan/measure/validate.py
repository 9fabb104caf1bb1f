"""Shape checks of saved measurement JSON (`tpplan measure --from`): every result and item carries the fields the
comparison and the calibration fit read, of the right type and range, before any arithmetic runs on them. A file
edited by hand, truncated or written by another tool fails here in one line that names the file, the JSON path of
the bad value and what was expected, instead of a KeyError deep in the fit or a negative time fed into it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tpplan.errors import MeasurementError
from tpplan.measure.predict import COLLECTIVE_KINDS
from tpplan.models.dtypes import MEASURE_DTYPE_BYTES

WORKLOADS = ("collectives", "tp_layer", "kernel_table")
"""What the kernels write in `workload` (kernels/collectives.py, tp_layer.py, kernel_table.py)."""
MODES = ("decode", "prefill")
_COUNTS = {
    **{k: ("tp", "bytes") for k in COLLECTIVE_KINDS},
    "matmul": ("tp", "tokens", "m", "n", "k", "flops", "bytes"),
    "layer": ("tp", "tokens", "batch", "context"),
    "memory": ("tp", "measured_bytes"),
    "kernel_matmul": ("m", "n", "k"),
    "kernel_attention": ("heads", "kv_heads", "head_dim", "batch", "length"),
}
"""Integer fields each item kind must carry (the kernels' own output); all >= 0, `tp` >= 1."""
_WITH_MODE = ("matmul", "layer", "kernel_attention")
_FIX = "pass the JSON tpplan measure wrote (--save-raw, --format json or a kernel's --out), unedited"


def check_results(results: list[dict[str, Any]], path: Path) -> None:
    """Raise MeasurementError on the first result or item that the comparison could not read. An item of an older
    file without `measured_s` takes its `p25_s`, the statistic those versions fitted (tpplan.measure.calibrate
    .measured_s)."""
    for i, r in enumerate(results):
        where = f"{path}: results[{i}]"
        if r.get("workload") not in WORKLOADS:
            _fail(f"{where}.workload", f"is {r.get('workload')!r}, not one of {', '.join(WORKLOADS)}")
        env = r.get("environment")
        if not isinstance(env, dict) or not isinstance(env.get("backend"), str):
            _fail(f"{where}.environment", "is missing or has no 'backend' (the run's gloo / nccl and devices)")
        items = r.get("items")
        if not isinstance(items, list):
            _fail(f"{where}.items", f"is {type(items).__name__}, not a list of measured items")
        for j, it in enumerate(items):
            _check_item(it, f"{where}.items[{j}]")


def _check_item(it: Any, where: str) -> None:
    if not isinstance(it, dict):
        _fail(where, f"is {type(it).__name__}, not an object")
    kind = it.get("kind")
    if kind not in _COUNTS:
        _fail(f"{where}.kind", f"is {kind!r}, not one of {', '.join(_COUNTS)}")
    for key in _COUNTS[kind]:
        v = it.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < (1 if key == "tp" else 0):
            least = ">= 1" if key == "tp" else ">= 0"
            _fail(f"{where}.{key}", f"is {v!r}; each {kind} item needs a whole number {least}")
    if kind in _WITH_MODE and it.get("mode") not in MODES:
        _fail(f"{where}.mode", f"is {it.get('mode')!r}, not decode or prefill")
    if "dtype" in it and it["dtype"] not in MEASURE_DTYPE_BYTES:
        _fail(f"{where}.dtype", f"is {it['dtype']!r}, not one of {', '.join(MEASURE_DTYPE_BYTES)}")
    if kind != "memory" and "measured_s" not in it and "p25_s" in it:
        it["measured_s"] = it["p25_s"]  # files written before measured_s (2026-11): their fit statistic was p25
    if kind != "memory":
        for key in ("measured_s", *(k for k in _OTHER_TIMES if k in it)):  # measured_s is required, the rest checked
            t = it.get(key)                                                  # where present
            if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t <= 0:
                _fail(f"{where}.{key}", f"is {t!r}; a measured time is a finite number of seconds > 0")


_OTHER_TIMES = ("best_s", "median_s", "p25_s")
"""The other per-call statistics a kernel item carries beside measured_s (the report shows them)."""


def _fail(where: str, problem: str) -> None:
    raise MeasurementError(f"{where} {problem}; {_FIX}")

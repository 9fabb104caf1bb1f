"""Render a Measurement: predicted vs measured per item, the error before and after calibration."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from tpplan.report.output import OutputFormat, emit_csv, emit_json, stdout_console
from tpplan.units import format_bytes, format_seconds

ITEM_KEYS = ("kind", "name", "mode", "tp", "tokens", "bytes", "predicted_s", "measured_s", "predicted_bytes",
             "measured_bytes", "error_pct", "error_pct_after", "held_out", "p25_s", "median_s", "p90_s",
             "busbw_bytes_per_s", "source")


@contextlib.contextmanager
def measure_progress():
    """Yields say(message): a live rich status line on a terminal, plain stderr lines otherwise."""
    from tpplan.report.output import note, stderr_console

    if not sys.stderr.isatty():
        yield lambda msg: note(f"measure: {msg}")
        return
    with stderr_console().status("tpplan measure: starting") as status:
        yield lambda msg: status.update(f"tpplan measure: {msg}")


def measurement_json(m) -> dict[str, Any]:
    return {"environment": m.environment, "items": m.items, "summary": m.summary, "checks": m.checks,
            "notes": m.notes}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1f}%"


def _label(it: dict) -> str:
    if it["kind"] in ("allreduce", "allgather", "reducescatter"):
        return f"{it['kind']} tp={it['tp']} {format_bytes(it['bytes'])}" + (" (in layer)" if it.get("source") else "")
    if it["kind"] == "matmul":
        return f"matmul {it['name']} {it['mode']} tp={it['tp']} tokens={it['tokens']}"
    if it["kind"] == "layer":
        return f"layer {it['mode']} tp={it['tp']} tokens={it['tokens']}"
    return f"memory tp={it['tp']} ({it.get('allocator', '')})"


def render_measurement(m, fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        return emit_json(measurement_json(m))
    if fmt is OutputFormat.csv:
        return emit_csv([{k: it.get(k) for k in ITEM_KEYS} for it in m.items])
    from rich.table import Table

    con = stdout_console()
    env = m.environment
    t = Table(title=f"tpplan measure: {env.get('backend')} x{env.get('world_size')} on "
                    f"{', '.join(env.get('device_names') or [])}; torch {env.get('torch')}")
    for col in ("item", "predicted", "measured (p25)", "error", "after calibration", "held out"):
        t.add_column(col, justify="left" if col == "item" else "right")
    for it in m.items:
        mem = it["kind"] == "memory"
        fmt_v = format_bytes if mem else format_seconds
        pred = it.get("predicted_bytes" if mem else "predicted_s")
        meas = it.get("measured_bytes" if mem else "measured_s")
        t.add_row(_label(it), "-" if pred is None else fmt_v(pred), "-" if meas is None else fmt_v(meas),
                  _pct(it.get("error_pct")), _pct(it.get("error_pct_after")), "yes" if it.get("held_out") else "")
    con.print(t)
    s = m.summary
    for kind, k in s["by_kind"].items():
        con.print(f"{kind}: median |error| {_pct(k['median_abs_error_pct_before'])} before calibration "
                  f"({k['items']} items); {_pct(k['median_abs_error_pct_after'])} after, on {k['held_out']} held-out "
                  f"items", markup=False)
    con.print(f"All timed items: median |error| {_pct(s['median_abs_error_pct_before'])} before; "
              f"{_pct(s['median_abs_error_pct_after'])} after calibration on {s['held_out_items']} held-out items.",
              markup=False)
    for c in m.checks:
        con.print(f"check {c['mode']} tokens={c['tokens']}: sharded vs unsharded max |diff| "
                  f"{c['max_abs_error']:.2e} -> {'ok' if c['passed'] else 'FAILED'}", markup=False)
    for n in m.notes:
        con.print(f"note: {n}", markup=False)
    if s.get("calibrated_profile"):
        con.print(f"wrote calibrated profile {s['calibrated_profile']}", markup=False)

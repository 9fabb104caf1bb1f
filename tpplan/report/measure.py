"""Render a Measurement: predicted vs measured per item, the error before and after calibration."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from typing import Any

from tpplan.report.output import OutputFormat, emit_csv, emit_json, note, stdout_console
from tpplan.units import format_bytes, format_seconds

ITEM_KEYS = ("kind", "name", "mode", "tp", "tokens", "bytes", "predicted_s", "measured_s", "predicted_bytes",
             "measured_bytes", "error_pct", "error_pct_after", "held_out", "p25_s", "median_s", "p90_s",
             "busbw_bytes_per_s", "source", "timing", "emulated", "compute_only")


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
    """DESIGN.md §6: environment, items, summary; plus checks, notes, and the kernels' raw results (which
    `tpplan measure --from` reads back)."""
    return {"environment": m.environment, "items": [it.to_json() for it in m.items],
            "summary": dataclasses.asdict(m.summary), "checks": list(m.checks), "notes": list(m.notes),
            "results": list(m.results)}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1f}%"


def _abs_pct(x: float | None) -> str:
    """A median |error|: no sign."""
    return "-" if x is None else f"{x:.1f}%"


def _label(it) -> str:
    p = it.params
    if it.kind in ("allreduce", "allgather", "reducescatter"):
        return f"{it.kind} tp={p['tp']} {format_bytes(p['bytes'])}" + (" (in layer)" if p.get("source") else "")
    shard = " (emulated shard)" if p.get("emulated") else ""
    if it.kind == "matmul":
        return f"matmul {p['name']} {p['mode']} tp={p['tp']} tokens={p['tokens']}{shard}"
    if it.kind == "layer":
        return f"layer {p['mode']} tp={p['tp']} tokens={p['tokens']}{shard}"
    return f"memory tp={p['tp']} ({p.get('allocator', '')}){shard}"


COLUMNS = ("item", "predicted", "measured", "error", "after calibration", "held out", "timing")


def _title(m) -> str:
    env = m.environment
    return (f"tpplan measure: {env.get('backend')} x{env.get('world_size')} on "
            f"{', '.join(env.get('device_names') or [])}; torch {env.get('torch')}")


def _cells(it) -> list[str]:
    fmt_v = format_bytes if it.unit == "bytes" else format_seconds
    return [_label(it), "-" if it.predicted is None else fmt_v(it.predicted),
            "-" if it.measured is None else fmt_v(it.measured), _pct(it.error_pct), _pct(it.error_pct_after),
            "yes" if it.held_out else "", it.params.get("timing", "")]


def _table(m):
    from rich.table import Table

    t = Table(title=_title(m))
    for col in COLUMNS:
        t.add_column(col, justify="left" if col in ("item", "timing") else "right")
    for it in m.items:
        t.add_row(*_cells(it))
    return t


def render_measurement(m, fmt: OutputFormat) -> None:
    """The report on stdout in `fmt`; the calibrated profile's path, a diagnostic, on stderr whatever the format."""
    if fmt is OutputFormat.json:
        emit_json(measurement_json(m))
    elif fmt is OutputFormat.csv:
        emit_csv([{k: it.to_json().get(k) for k in ITEM_KEYS} for it in m.items])
    elif fmt is OutputFormat.markdown:
        from tpplan.report.text import markdown_table, write_lines

        write_lines([f"**{_title(m)}**", "", *markdown_table(COLUMNS, [_cells(it) for it in m.items]), "",
                     *(f"- {line}" for line in _summary_lines(m))])
    else:
        con = stdout_console()
        con.print(_table(m))
        for line in _summary_lines(m):
            con.print(line, markup=False)
    if m.summary.calibrated_profile:
        note(f"wrote calibrated profile {m.summary.calibrated_profile}")


def _summary_lines(m) -> list[str]:
    """The lines under the table: errors by kind and overall, the kernel table, the checks, notes."""
    out = []
    s = m.summary
    for kind, k in s.by_kind.items():
        out.append(f"{kind}: median |error| {_abs_pct(k.median_abs_error_pct_before)} before calibration "
                   f"({k.items} items); on its {k.held_out} held-out items "
                   f"{_abs_pct(k.median_abs_error_pct_before_held_out)} before, "
                   f"{_abs_pct(k.median_abs_error_pct_after)} after")
    out.append(f"All timed items: median |error| {_abs_pct(s.median_abs_error_pct_before)} before calibration; on "
               f"the {s.held_out_items} held-out items (the fit never saw them) "
               f"{_abs_pct(s.median_abs_error_pct_before_held_out)} before, {_abs_pct(s.median_abs_error_pct_after)} "
               f"after ({s.sign_convention}).")
    if s.kernel_table_held_out_error_pct is not None:
        out.append(f"kernel table: median |error| {s.kernel_table_held_out_error_pct:.1f}% interpolating M values "
                   f"left out of it")
    for c in m.checks:
        out.append(f"check {c['mode']} tokens={c['tokens']}: sharded vs unsharded max |diff| "
                   f"{c['max_abs_error']:.2e} -> {'ok' if c['passed'] else 'FAILED'}")
    for n in m.notes:
        out.append(f"note: {n}")
    return out

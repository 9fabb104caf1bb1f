"""Output helpers shared by every command: JSON and CSV to stdout, rich tables, stderr diagnostics.

No arithmetic beyond unit formatting lives here or in the report_* modules.
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
from collections.abc import Iterable, Mapping
from enum import Enum, StrEnum
from typing import Any


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


def _default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | set | frozenset):
        return list(obj)
    if isinstance(obj, Enum):
        return obj.value
    if hasattr(obj, "as_posix"):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=_default, sort_keys=False)


def emit_json(obj: Any) -> None:
    sys.stdout.write(to_json(obj) + "\n")


Shape = dict[str, "Shape | None"]
"""The columns of nested rows: key -> None for a value, or the shape of the mapping it holds in some row."""


def _as_mapping(v: Any) -> Any:
    return _default(v) if dataclasses.is_dataclass(v) and not isinstance(v, type) else v


def _merge_shape(shape: Shape, row: Mapping[str, Any]) -> None:
    for k, v in row.items():
        v = _as_mapping(v)
        if isinstance(v, Mapping):
            sub = shape.get(k)
            shape[k] = sub = sub if sub is not None else {}  # a key None in earlier rows keeps its place
            _merge_shape(sub, v)
        else:
            shape.setdefault(k, None)


def _flat_cells(shape: Shape, row: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """One CSV row: a nested mapping becomes columns `key_subkey` (blank where a row has none), a list or tuple a
    JSON array, anything else itself."""
    out: dict[str, Any] = {}
    for k, sub in shape.items():
        v = _as_mapping(row.get(k)) if row is not None else None
        if sub is not None:
            out |= _flat_cells(sub, v if isinstance(v, Mapping) else None, f"{prefix}{k}_")
        else:
            out[prefix + k] = json.dumps(list(v), default=_default) if isinstance(v, list | tuple) else v
    return out


def emit_csv(rows: Iterable[Mapping[str, Any]]) -> None:
    """Rows as CSV with one column per value: nested objects are flattened (`decode_step_compute_s`), lists are
    JSON arrays; the columns are every row's, in order of first appearance."""
    import csv  # only -f csv needs it; the table path stays free of it (cold-start budget, issue 13)

    rows = list(rows)
    if not rows:
        return
    shape: Shape = {}
    for r in rows:
        _merge_shape(shape, r)
    flat = [_flat_cells(shape, r) for r in rows]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(flat[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    sys.stdout.write(buf.getvalue())


def emit_rows(rows: list[Mapping[str, Any]], fmt: OutputFormat) -> bool:
    """Write `rows` as JSON or CSV when that is the format; False means the caller renders a table."""
    if fmt is OutputFormat.json:
        emit_json(rows)
    elif fmt is OutputFormat.csv:
        emit_csv(rows)
    elif fmt is OutputFormat.markdown:
        from tpplan.report.text import markdown_table, write_lines

        headers = list(rows[0]) if rows else []
        write_lines(markdown_table(headers, [[_cell(r.get(h)) for h in headers] for r in rows]))
    else:
        return False
    return True


def _cell(v: Any) -> str:
    if isinstance(v, list | tuple):
        return ", ".join(map(str, v))
    return "" if v is None else str(v)


class _AsciiStdout:
    """sys.stdout for a terminal that encodes ASCII only: text transliterated as write_lines does (-> for an arrow,
    ? for anything else), and an `encoding` that makes rich draw its tables with ASCII boxes."""

    encoding = "ascii"

    def write(self, text: str) -> int:
        from tpplan.report.text import to_ascii

        return sys.stdout.write(to_ascii(text))

    def flush(self) -> None:
        sys.stdout.flush()

    def isatty(self) -> bool:
        return sys.stdout.isatty()


def stdout_console():
    """Rich console on stdout at the terminal's width (80 columns for pipes and CI logs unless COLUMNS is set),
    writing ASCII where stdout cannot encode more."""
    from rich.console import Console

    from tpplan.report.text import stdout_is_ascii, terminal_width

    return Console(soft_wrap=True, highlight=False, width=terminal_width(),
                   **({"file": _AsciiStdout()} if stdout_is_ascii() else {}))


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True, highlight=False)


def note(message: str) -> None:
    """A diagnostic line on stderr (never on stdout, which scripts parse)."""
    stderr_console().print(message, markup=False)

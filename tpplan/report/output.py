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


def emit_csv(rows: Iterable[Mapping[str, Any]]) -> None:
    import csv  # only -f csv needs it; the table path stays free of it (cold-start budget, issue 13)

    rows = list(rows)
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (";".join(map(str, v)) if isinstance(v, list | tuple) else v) for k, v in r.items()})
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


def stdout_console():
    """Rich console on stdout at the terminal's width (80 columns for pipes and CI logs unless COLUMNS is set)."""
    from rich.console import Console

    from tpplan.report.text import terminal_width

    return Console(soft_wrap=True, highlight=False, width=terminal_width())


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True, highlight=False)


def note(message: str) -> None:
    """A diagnostic line on stderr (never on stdout, which scripts parse)."""
    stderr_console().print(message, markup=False)

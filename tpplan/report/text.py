"""Plain-text layout for terminals: width, ASCII fallback, wrapping that never splits a number, and tables that
drop their least important columns until they fit. No rich: a plain writer renders in well under a millisecond.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

_ASCII = str.maketrans({"★": "*", "→": "->", "×": "x", "≤": "<=", "≥": ">=", "–": "-", "—": "-", "µ": "u",
                        "…": "...", "·": "."})


def terminal_width() -> int:
    """COLUMNS, else the terminal's width, else 80 (pipes and CI logs get the same compact form)."""
    if os.environ.get("COLUMNS", "").isdigit():
        return max(40, int(os.environ["COLUMNS"]))
    return max(40, shutil.get_terminal_size((80, 24)).columns)


def stdout_is_ascii() -> bool:
    """True when stdout cannot encode the few non-ASCII marks tpplan prints."""
    try:
        "★→×".encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return True
    return False


def write_lines(lines: Sequence[str]) -> None:
    """Lines to stdout, transliterated to ASCII when the terminal cannot show more."""
    text = "\n".join(lines) + "\n"
    if stdout_is_ascii():
        text = text.translate(_ASCII).encode("ascii", "replace").decode("ascii")
    sys.stdout.write(text)


def wrap(text: str, width: int, *, indent: str = "", first: str | None = None) -> list[str]:
    """Wrap at spaces only: a number, a flag or a path is never split across lines; a no-break space (U+00A0)
    keeps a number with its unit and prints as a space."""
    lines = textwrap.wrap(text, width=width, initial_indent=indent if first is None else first,
                          subsequent_indent=indent, break_long_words=False, break_on_hyphens=False) or [""]
    return [ln.replace("\u00a0", " ") for ln in lines]


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    header: str
    priority: int
    """Lower is kept longer: columns are dropped highest priority first until the table fits."""
    align: str = ">"


def fit_columns(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int | None) -> list[int]:
    """Indices of the columns kept so that every line is at most `width` (None keeps all)."""
    widths = [max([len(c.header)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    keep = list(range(len(columns)))
    while width is not None and len(keep) > 1 and sum(widths[i] for i in keep) + len(keep) - 1 > width:
        keep.remove(max(keep, key=lambda i: columns[i].priority))
    return keep


def table_lines(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int | None,
                notes: Sequence[Sequence[str]] = ()) -> list[str]:
    """A header, a rule and one line per row; `notes[i]` lines (already wrapped) follow row i."""
    keep = fit_columns(columns, rows, width)
    widths = {i: max([len(columns[i].header)] + [len(r[i]) for r in rows]) for i in keep}

    def line(cells: Sequence[str]) -> str:
        parts = [cells[i].rjust(widths[i]) if columns[i].align == ">" else cells[i].ljust(widths[i]) for i in keep]
        return " ".join(parts).rstrip()

    out = [line([c.header for c in columns]), " ".join("-" * widths[i] for i in keep)]
    for k, r in enumerate(rows):
        out.append(line(r))
        out.extend(notes[k] if k < len(notes) else [])
    return out


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A GitHub-flavoured Markdown table (pipes in cells escaped)."""
    def cell(s: str) -> str:
        return s.replace("|", "\\|")

    return (["| " + " | ".join(map(cell, headers)) + " |", "|" + "|".join("---" for _ in headers) + "|"]
            + ["| " + " | ".join(map(cell, r)) + " |" for r in rows])

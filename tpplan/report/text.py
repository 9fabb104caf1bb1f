"""Plain-text layout for terminals: width, ASCII fallback, wrapping that never splits a number, and tables that
drop their least important columns until they fit. No rich: a plain writer renders in well under a millisecond.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Sequence

from tpplan.records import record

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


def to_ascii(text: str) -> str:
    """`text` with tpplan's marks transliterated (★ -> *, → -> ->, ...) and anything else non-ASCII as '?'."""
    return text.translate(_ASCII).encode("ascii", "replace").decode("ascii")


def write_lines(lines: Sequence[str]) -> None:
    """Lines to stdout, transliterated to ASCII when the terminal cannot show more."""
    text = "\n".join(lines) + "\n"
    if stdout_is_ascii():
        text = to_ascii(text)
    sys.stdout.write(text)


def wrap(text: str, width: int, *, indent: str = "", first: str | None = None) -> list[str]:
    """Wrap at spaces only: a number, a flag or a path is never split across lines; a no-break space (U+00A0)
    keeps a number with its unit and prints as a space."""
    lines = textwrap.wrap(text, width=width, initial_indent=indent if first is None else first,
                          subsequent_indent=indent, break_long_words=False, break_on_hyphens=False) or [""]
    return [ln.replace("\u00a0", " ") for ln in lines]


@record
class Column:
    header: str
    priority: int
    """Lower is kept longer: columns are dropped highest priority first until the table fits."""
    align: str = ">"
    wrap: bool = False
    """Cells may wrap at spaces onto more lines so the table fits, never inside a word (a name stays whole): the
    column narrows down to its header or its longest word. Other columns are never narrowed, only dropped."""


def _natural_widths(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> list[int]:
    return [max([len(c.header)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]


def _narrowest(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> list[int]:
    """Widths the columns may shrink to: a wrapping column's header or longest word, any other's natural width."""
    return [max([len(c.header)] + [len(w) for r in rows for w in r[i].split(" ")]) if c.wrap else natural
            for (i, c), natural in zip(enumerate(columns), _natural_widths(columns, rows), strict=True)]


def fit_columns(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int | None) -> list[int]:
    """Indices of the columns kept so that every line is at most `width` (None keeps all), with wrapping columns
    counted at their narrowest."""
    widths = _narrowest(columns, rows)
    keep = list(range(len(columns)))
    while width is not None and len(keep) > 1 and sum(widths[i] for i in keep) + len(keep) - 1 > width:
        keep.remove(max(keep, key=lambda i: columns[i].priority))
    return keep


def _kept_widths(columns: Sequence[Column], rows: Sequence[Sequence[str]], keep: list[int],
                 width: int | None) -> dict[int, int]:
    """Natural widths of the kept columns; over `width`, wrapping columns give up the excess a character at a time,
    the widest first (the least important among equals), down to their narrowest."""
    natural, narrowest = _natural_widths(columns, rows), _narrowest(columns, rows)
    widths = {i: natural[i] for i in keep}
    excess = sum(widths.values()) + len(keep) - 1 - (width if width is not None else sum(natural) + len(natural))
    while excess > 0:
        can = [i for i in keep if columns[i].wrap and widths[i] > narrowest[i]]
        if not can:
            break
        widths[max(can, key=lambda i: (widths[i], columns[i].priority))] -= 1
        excess -= 1
    return widths


def table_lines(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int | None,
                notes: Sequence[Sequence[str]] = ()) -> list[str]:
    """A header, a rule and one line per row (more where a wrapping column's cell wraps); `notes[i]` lines
    (already wrapped) follow row i."""
    keep = fit_columns(columns, rows, width)
    widths = _kept_widths(columns, rows, keep, width)

    def line(cells: Sequence[str]) -> str:
        parts = [cells[i].rjust(widths[i]) if columns[i].align == ">" else cells[i].ljust(widths[i]) for i in keep]
        return " ".join(parts).rstrip()

    def row_lines(cells: Sequence[str]) -> list[str]:
        split = {i: wrap(cells[i], widths[i]) if columns[i].wrap and len(cells[i]) > widths[i]
                 else [cells[i].replace("\u00a0", " ")] for i in keep}
        height = max(len(v) for v in split.values())
        return [line([split[i][k] if i in split and k < len(split[i]) else "" for i in range(len(cells))])
                for k in range(height)]

    out = [line([c.header for c in columns]), " ".join("-" * widths[i] for i in keep)]
    for k, r in enumerate(rows):
        out.extend(row_lines(r))
        out.extend(notes[k] if k < len(notes) else [])
    return out


def dropped_columns(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int | None) -> list[str]:
    """Headers of the columns table_lines leaves out at `width`, in table order."""
    keep = set(fit_columns(columns, rows, width))
    return [c.header for i, c in enumerate(columns) if i not in keep]


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A GitHub-flavoured Markdown table (pipes in cells escaped)."""
    def cell(s: str) -> str:
        return s.replace("|", "\\|")

    return (["| " + " | ".join(map(cell, headers)) + " |", "|" + "|".join("---" for _ in headers) + "|"]
            + ["| " + " | ".join(map(cell, r)) + " |" for r in rows])


def left_out_lines(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int | None) -> list[str]:
    """The line naming the columns table_lines leaves out at `width` (none: no line)."""
    hidden = dropped_columns(columns, rows, width)
    return wrap(f"({', '.join(hidden)} left out at {width} columns; widen the terminal, set COLUMNS, or use -f json)",
                width) if hidden else []


def list_table_lines(title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> list[str]:
    """A listing at the terminal's width: the title, the table, and a line naming any column left out."""
    width = terminal_width()
    return [title, *table_lines(columns, rows, width), *left_out_lines(columns, rows, width)]


def blocked_table_lines(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int | None) -> list[str]:
    """A table whose first column labels the rows and whose other columns are all kept: where they do not fit
    `width`, they continue in further blocks under the first, each repeating the labels (a blank line between)."""
    natural = _natural_widths(columns, rows)
    if width is None or sum(natural) + len(natural) - 1 <= width:
        return table_lines(columns, rows, None)
    out: list[str] = []
    block: list[int] = []
    for i in range(1, len(columns)):
        if block and natural[0] + sum(natural[j] + 1 for j in [*block, i]) > width:
            out += ([""] if out else []) + table_lines([columns[0], *(columns[j] for j in block)],
                                                       [[r[0], *(r[j] for j in block)] for r in rows], None)
            block = []
        block.append(i)
    return out + ([""] if out else []) + table_lines([columns[0], *(columns[j] for j in block)],
                                                     [[r[0], *(r[j] for j in block)] for r in rows], None)

"""Write or print a sweep's DataFrame; a progress bar on stderr for long sweeps."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from tpplan.errors import TpplanError
from tpplan.files import write_atomic
from tpplan.report.output import OutputFormat, note


@contextlib.contextmanager
def sweep_progress():
    """Yields progress(done, total); draws a rich bar on stderr only when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True, console=None) as bar:
        task = bar.add_task("sweep", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _no_parquet_engine(path: Path) -> TpplanError:
    return TpplanError(f"writing {path.name} needs a Parquet engine: pip install 'tpplan[parquet]' (or write .csv)")


def check_parquet_engine(path: Path) -> None:
    """Before any work: a .parquet output needs pyarrow or fastparquet (the engines pandas' to_parquet tries)."""
    import importlib.util

    if path.suffix == ".parquet" and not any(importlib.util.find_spec(m) for m in ("pyarrow", "fastparquet")):
        raise _no_parquet_engine(path)


def _writer(df, path: Path):
    if path.suffix == ".parquet":
        def write(tmp: Path) -> None:
            try:
                df.to_parquet(tmp, index=False)
            except ImportError as exc:
                raise _no_parquet_engine(path) from exc
        return write
    if path.suffix == ".csv":
        return lambda tmp: df.to_csv(tmp, index=False)
    raise TpplanError(f"--out {path}: unknown extension {path.suffix!r}; use .csv or .parquet")


def _whole_bytes(df):
    """Byte columns as whole numbers (DESIGN.md: bytes are int), null where a refused layout has none; pandas keeps
    them as floats because of those NaNs."""
    for col in [c for c in df.columns if str(c).endswith("_bytes_per_gpu")]:
        df[col] = df[col].round().astype("Int64")
    return df


def render_sweep(df, stats, *, out: Path | None, force: bool, fmt: OutputFormat) -> None:
    df = _whole_bytes(df)
    rate = stats.rows / stats.evaluate_s if stats.evaluate_s > 0 else float("inf")
    note(f"sweep: {stats.rows:,} candidate evaluations in {stats.total_s:.2f} s "
         f"({rate:,.0f} evaluations/s in the vectorised cost model)")
    if out is not None:
        write_atomic(out, _writer(df, out), force=force)
        note(f"wrote {out}")
    elif fmt is OutputFormat.json:
        sys.stdout.write(df.to_json(orient="records", indent=1) + "\n")
    elif fmt in (OutputFormat.table, OutputFormat.markdown):
        _table(df, fmt)
    else:
        sys.stdout.write(df.to_csv(index=False))


def _table(df, fmt: OutputFormat) -> None:
    """The sweep as a terminal table (the least important columns left out to fit, and named under it) or a
    Markdown table."""
    from tpplan.report.text import Column, left_out_lines, markdown_table, table_lines, terminal_width, write_lines

    headers = [str(c) for c in df.columns]
    rows = [[_cell(v) for v in r] for r in df.itertuples(index=False)]
    if fmt is OutputFormat.markdown:
        return write_lines(markdown_table(headers, rows))
    cols = [Column(header=h, priority=_KEY_COLUMNS.index(h) if h in _KEY_COLUMNS else len(_KEY_COLUMNS) + i,
                   align="<" if df[h].dtype == object else ">") for i, h in enumerate(headers)]
    width = terminal_width()
    return write_lines(table_lines(cols, rows, width) + left_out_lines(cols, rows, width))


_KEY_COLUMNS = ("model", "tp", "pp", "ep", "dp_attention", "replicas", "batch", "batch_run", "feasible",
                "output_tokens_per_s",
                "tpot_s", "gpus", "output_tokens_per_s_per_gpu", "ttft_s", "hardware", "nodes", "dtype")
"""Columns kept longest when the terminal is narrow (the rest are dropped, widest last)."""


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)

"""Render a Comparison: one column per layout, one row per figure, then the differences in words."""

from __future__ import annotations

from tpplan.planner.compare import Comparison, layout_of
from tpplan.planner.result import candidate_dict, candidate_row
from tpplan.report.output import OutputFormat, emit_csv, emit_json
from tpplan.report.text import Column, blocked_table_lines, markdown_table, terminal_width, wrap, write_lines
from tpplan.units import bytes_to_gib, s_to_ms

# (label, Candidate field, to display units, format, higher is better)
_ROWS = (("tok/s", "output_tokens_per_s", float, "{:,.0f}", True),
         ("tok/s per GPU", "output_tokens_per_s_per_gpu", float, "{:,.0f}", True),
         ("job s", "job_s", float, "{:,.1f}", False),  # --num-requests only (None otherwise: the row is left out)
         ("TPOT ms", "tpot_s", s_to_ms, "{:.1f}", False), ("TTFT ms", "ttft_s", s_to_ms, "{:.1f}", False),
         # at the batch each layout runs, prefill chunks mixed in (what --max-tpot-ms / --max-ttft-ms check)
         ("TPOT under load ms", "tpot_under_load_s", s_to_ms, "{:.1f}", False),
         ("TTFT under load ms", "ttft_under_load_s", s_to_ms, "{:,.0f}", False),
         ("seqs per replica", "batch", int, "{}", True),
         ("weights GiB/GPU", "weight_bytes_per_gpu", bytes_to_gib, "{:.1f}", False),
         ("KV GiB/GPU", "kv_cache_bytes_per_gpu", bytes_to_gib, "{:.1f}", True),
         ("comm share %", "comm_share", lambda x: 100 * x, "{:.0f}", False),
         ("$/M tok", "cost_per_million_output_tokens", float, "{:.2f}", False))
# (label, Candidate field): the MoE parts of a layout, shown when any layout compared uses them
_MOE_ROWS = (("EP", "ep"), ("DP-attention", "dp_attention"))


def _name(c) -> str:
    """TP x PP x replicas, with the MoE parts when used (EP, DP-attention ranks, training's ETP)."""
    moe = (f"/EP{c.ep}" if c.ep > 1 else "") + (f"/DP{c.dp_attention}" if c.dp_attention > 1 else "") + (
        f"/ETP{c.etp}" if c.etp is not None and c.etp != c.tp else "")
    return f"TP{c.tp}xPP{c.pp}x{c.replicas}{moe}"


def best_compared(cmp: Comparison):
    """The best feasible layout of those compared, by the plan's objective (None: none of them runs)."""
    from tpplan.planner.plan import rank_key

    ok = [c for c in cmp.layouts if c.feasible]
    return min(ok, key=lambda c: rank_key(c, cmp.plan.workload.objective)) if ok else None


def _value(c, field: str, conv, fmt: str) -> str:
    """A figure of a layout in display units; "-" where the layout has none: a layout that does not run shows only
    its memory, and only when it was sized (a layout the engine's rules refuse is never sized: no weights, so "-"
    rather than 0.0, as in recommend's table, tpplan.report.plan)."""
    v = getattr(c, field)
    sized_memory = field in ("weight_bytes_per_gpu", "kv_cache_bytes_per_gpu") and c.weight_bytes_per_gpu > 0
    if v is None or (not c.feasible and not sized_memory):
        return "-"
    return fmt.format(conv(v))


def _moe_rows(cmp: Comparison) -> list[list[str]]:
    """EP size and DP-attention ranks of each layout, when any layout compared uses either (else no rows)."""
    return [[label] + [str(getattr(c, f)) for c in cmp.layouts] for label, f in _MOE_ROWS
            if any(getattr(c, f) > 1 for c in cmp.layouts)]


def _moe_change(c, base) -> str:
    """'EP 8 vs 1, DP-attention 8 vs 1; ' where the MoE parts of two layouts differ ('' where they do not)."""
    parts = [f"{label} {getattr(c, f)} vs {getattr(base, f)}" for label, f in _MOE_ROWS
             if getattr(c, f) != getattr(base, f)]
    return ", ".join(parts) + "; " if parts else ""


def differences(cmp: Comparison) -> list[str]:
    """How each other layout differs from the first: its EP / DP-attention when they differ, then figure by
    figure, in percent."""
    base, out = cmp.layouts[0], []
    for c in cmp.layouts[1:]:
        head = f"{_name(c)} vs {_name(base)}: {_moe_change(c, base)}"
        if not (c.feasible and base.feasible):  # say which of the two does not run, and why
            why = [f"{_name(x)} does not run: {'; '.join(x.reasons) or 'no reason given'}"
                   for x in (c, base) if not x.feasible]
            out.append(head + "; ".join(why))
            continue
        parts = []
        for label, field, _, _, higher in _ROWS:
            a, b = getattr(base, field), getattr(c, field)
            if a and b is not None and abs(b - a) / a >= 0.01:
                pct = (b - a) / a * 100
                better = (pct > 0) == higher
                parts.append(f"{label} {pct:+.0f}% ({'better' if better else 'worse'})")
        out.append(head + (", ".join(parts) or "the same within 1%"))
    return out


def render_comparison(cmp: Comparison, fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        best = best_compared(cmp)
        return emit_json({"inputs": cmp.plan.inputs(), "layouts": [candidate_dict(c) for c in cmp.layouts],
                          "differences": differences(cmp),
                          "best_of_these": candidate_dict(best) if best else None,
                          "recommended": candidate_dict(cmp.plan.recommended) if cmp.plan.recommended else None})
    if fmt is OutputFormat.csv:
        return emit_csv([{"model": cmp.plan.model.name, "hardware": cmp.plan.profile.name, **candidate_row(c)}
                         for c in cmp.layouts])
    figures = [[label] + [_value(c, f, conv, fmtx) for c in cmp.layouts] for label, f, conv, fmtx, _ in _ROWS
               if any(getattr(c, f) is not None for c in cmp.layouts)]
    rows = _moe_rows(cmp) + figures
    rows.append(["feasible"] + ["yes" if c.feasible else "no" for c in cmp.layouts])
    headers = [""] + [_name(c) for c in cmp.layouts]
    best, overall = best_compared(cmp), cmp.plan.recommended
    tail = ["", "Differences:"] + [ln for d in differences(cmp) for ln in wrap(d, terminal_width(), indent="    ",
                                                                              first="  - ")]
    if best is not None:
        line = f"Best of these for objective '{cmp.plan.workload.objective}': {_name(best)}"
        if overall is not None and _name(overall) != _name(best):
            from tpplan.planner.explain import label

            line += (f"; over every layout tpplan plans: {label(overall)} ({_name(overall)}; as a layout to compare: "
                     f"{layout_of(overall).text()})")
        tail += wrap(line, terminal_width(), indent="  ")
    if fmt is OutputFormat.markdown:
        return write_lines(markdown_table(headers, rows) + tail)
    cols = [Column(header=h, priority=i, align="<" if i == 0 else ">") for i, h in enumerate(headers)]
    return write_lines(blocked_table_lines(cols, rows, terminal_width()) + tail)  # every layout, in blocks if need be

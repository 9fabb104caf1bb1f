"""Render a Plan: the answer first, then a compact table that fits the terminal, then why, what would help and
what was assumed; JSON (Plan.to_dict), CSV, Markdown. Words and unit formatting only, no arithmetic.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tpplan.planner.candidates import too_slow_only
from tpplan.planner.result import Plan, candidate_row
from tpplan.report.output import OutputFormat, emit_csv, emit_json, note
from tpplan.report.text import Column, markdown_table, table_lines, terminal_width, wrap, write_lines
from tpplan.units import bytes_to_gib, format_duration, s_to_ms

if TYPE_CHECKING:
    from tpplan.planner.candidates import Candidate

_CONTEXT_KEYS = ("gpus", "engine", "dtype", "objective", "hardware", "gpu_memory_utilization", "efficiency_defaults")
"""Assumptions the context line (or, for efficiency_defaults, the efficiency line: which constants come from the
defaults file) already states; the compact view leaves them out (--wide shows all)."""
_NUMBER = re.compile(r"\d[\d,.]*")


def render_plan(plan: Plan, fmt: OutputFormat, *, wide: bool = False, serve_command: str | None = None) -> None:
    """stdout gets exactly one document per format; with CSV the serve command goes to stderr."""
    if fmt is OutputFormat.json:
        d = plan.to_dict()
        if serve_command is not None:
            d["serve_command"] = serve_command
        return emit_json(d)
    if fmt is OutputFormat.csv:
        emit_csv([{"model": plan.model.name, "hardware": plan.profile.name, **candidate_row(c),
                   "recommended": c is plan.recommended, "chosen": _is_chosen(plan, c)} for c in _rows(plan)])
        if serve_command is not None:
            note(serve_command)
        return None
    lines = markdown_lines(plan) if fmt is OutputFormat.markdown else text_lines(
        plan, width=None if wide else terminal_width(), wide=wide)
    if serve_command is not None:
        lines += ["", "```sh", serve_command, "```"] if fmt is OutputFormat.markdown else ["", serve_command]
    write_lines(lines)
    return None


def _is_chosen(plan: Plan, c: Candidate) -> bool:
    """Whether `c` is the row of the layout fixed with --tp (the recommended one's row when they are the same)."""
    k = plan.chosen
    return k is not None and (c is k or (c.tp, c.pp, c.replicas, c.ep, c.dp_attention, c.etp) ==
                              (k.tp, k.pp, k.replicas, k.ep, k.dp_attention, k.etp))


def _rows(plan: Plan) -> list[Candidate]:
    """The candidates, with your --tp layout in its own row: in place of the candidate of the same layout (so the
    row carries its mark even when the planner evaluated it again, as training does), else first."""
    chosen = plan.chosen
    if chosen is None:
        return list(plan.candidates)
    key = (chosen.tp, chosen.pp, chosen.replicas, chosen.ep, chosen.dp_attention, chosen.etp)
    same = [c for c in plan.candidates if (c.tp, c.pp, c.replicas, c.ep, c.dp_attention, c.etp) == key]
    if any(c is plan.recommended for c in same):  # your layout is the recommended one: its row keeps the ★
        return list(plan.candidates)
    rows = [chosen if any(c is s for s in same) else c for c in plan.candidates]
    return rows if same else [chosen, *rows]


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = s_to_ms(seconds)
    return f"{ms:.1f}" if ms < 10 else f"{ms:,.0f}"


def _gib(n_bytes: int | None) -> str:
    return "-" if n_bytes is None else f"{bytes_to_gib(n_bytes):.1f}"


def _layout(c: Candidate) -> str:
    from tpplan.planner.explain import label

    return label(c)


def _under_load(loaded: float | None, alone: float | None) -> str:
    """" (N under load)": a latency at the batch the plan runs, prefill chunks mixed in, where it differs from the
    figure beside it (the decode step for TPOT, one prompt alone for TTFT) by more than 5%."""
    if loaded is None or not alone or loaded <= 1.05 * alone:
        return ""
    return f" ({_ms(loaded)}\u00a0under load)"


def _speed_words(plan: Plan, c: Candidate) -> str:
    serve = plan.workload.mode == "serve"
    nb = "\u00a0"  # no-break space: a number stays on the line of its unit (wrap() turns it back into a space)
    parts = [f"{c.output_tokens_per_s:,.0f}{nb}tok/s ({c.output_tokens_per_s_per_gpu:,.0f}/GPU)"]
    if serve:
        parts += [f"TPOT {_ms(c.tpot_s)}{nb}ms{_under_load(c.tpot_under_load_s, c.tpot_s)}",
                  f"TTFT {_ms(c.ttft_s)}{nb}ms{_under_load(c.ttft_under_load_s, c.ttft_s)}",
                  f"{c.batch}{nb}seq{'s' * (c.batch != 1)}"]
        if c.job_s is not None:
            n = plan.workload.num_requests
            parts.append(f"{n:,}{nb}request{'s' if n != 1 else ''} in {format_duration(c.job_s, sep=nb)}")
    else:
        parts.append(f"step {c.step_time_s or 0:.2f}{nb}s")
    if c.cost_per_million_output_tokens is not None:
        parts.append(f"${c.cost_per_million_output_tokens:,.2f}/M tok")
    return ", ".join(parts)


def headline(plan: Plan) -> str:
    """The answer in one line: layout, the engine flags it means, throughput, latency, concurrency."""
    from tpplan.planner.explain import nothing_runs

    c, w = plan.recommended, plan.workload
    if c is None:
        first = next((s for s in plan.suggestions if s.would_give), None)
        fix = (f"; {first.flag} would give {first.would_give['layout']} at "
               f"{first.would_give['output_tokens_per_s']:,.0f} tok/s" if first else "; see what would help below")
        return f"Nothing fits: no layout of {plan.model.name} {nothing_runs(plan)}{fix}"
    flags = " ".join(_flags(plan, c))
    unused = f"; {plan.unused_gpus} of {w.gpus} GPUs unused" if plan.unused_gpus else ""
    return f"{_layout(c)} ({flags}): {_speed_words(plan, c)}{unused}"


def _flags(plan: Plan, c: Candidate) -> list[str]:
    """The engine's flags for a layout: Megatron-LM's for a training plan, the serving engine's otherwise."""
    if plan.workload.mode == "train":
        from tpplan.planner.train_layouts import TrainLayout, megatron_flags

        return megatron_flags(TrainLayout(tp=c.tp, pp=c.pp, replicas=c.replicas, ep=c.ep, etp=c.etp or 0,
                                          moe=plan.model.is_moe), plan.workload.dtype,
                              sequence_parallel=plan.workload.sequence_parallel, micro_batch=plan.workload.batch or 1,
                              distributed_optimizer=plan.workload.distributed_optimizer,
                              global_batch_size=plan.workload.global_batch)
    from tpplan.planner.layouts import layout_flags

    return layout_flags(plan.workload.engine, tp=c.tp, pp=c.pp, replicas=c.replicas, ep=c.ep,
                        dp_attention=c.dp_attention, moe_model=plan.model.is_moe)


def _context(plan: Plan) -> str:
    w, p = plan.workload, plan.profile
    if w.mode == "train":
        return (f"{plan.model.name} on {w.gpus} x {p.gpu.name} ({p.name}), Megatron-Core training, {w.dtype}, "
                f"sequences of {w.input_len} tokens, micro-batch {w.batch or 1}, objective {w.objective}")
    return (f"{plan.model.name} on {w.gpus} x {p.gpu.name} ({p.name}), {w.engine}, {w.dtype} weights, "
            f"{w.kv_cache_dtype} KV, max-model-len {w.max_model_len}, in {w.input_len} / out {w.output_len}, "
            f"gpu-memory-utilization {w.gpu_memory_utilization:.2f}, objective {w.objective}")


def _columns(plan: Plan, *, wide: bool = False) -> list[Column]:
    serve = plan.workload.mode == "serve"
    cols = [Column(header="", priority=0, align="<"), Column(header="TP", priority=0),
            Column(header="PP", priority=0), Column(header="rep", priority=0), Column(header="tok/s", priority=1),
            Column(header="tok/s/GPU", priority=2), Column(header="TPOT ms" if serve else "step s", priority=3)]
    if serve:
        cols += [Column(header="TTFT ms", priority=4), Column(header="seqs", priority=5),
                 Column(header="wt GiB", priority=7), Column(header="KV GiB", priority=6)]
    else:  # training: no prompt latency, no KV cache; memory is model state and activations
        cols += [Column(header="state GiB", priority=5), Column(header="act GiB", priority=6)]
    cols.append(Column(header="comm", priority=8))
    if _has_moe_layouts(plan):  # dense plans keep their table unchanged
        second = "DPa" if serve else "ETP"
        cols[4:4] = [Column(header="EP", priority=0), Column(header=second, priority=0)]
    if plan.profile.price_per_gpu_hour:
        cols.append(Column(header="$/M tok", priority=2))
    if wide and serve:  # the JSON's decode_step / prefill split (DESIGN.md §3), milliseconds
        cols += [Column(header=h, priority=9) for h in _SPLIT_HEADERS]
    return cols


_SPLIT_HEADERS = ("dec cmp", "dec comm", "dec ovh", "pre cmp", "pre comm")
"""--wide: a decode step's compute / communication / overhead and one prompt's prefill compute / communication, ms."""


def _split_cells(c: Candidate) -> list[str]:
    d, p = c.decode_step, c.prefill
    if d is None or p is None:
        return ["-"] * len(_SPLIT_HEADERS)
    return [_ms(x) for x in (d.compute_s, d.communication_s, d.overhead_s, p.compute_s, p.communication_s)]


def _cells(plan: Plan, c: Candidate, *, wide: bool = False) -> list[str]:
    ok, serve = c.feasible, plan.workload.mode == "serve"
    mark = "★" if c is plan.recommended else ("→" if c is plan.chosen else ("" if ok else "x"))
    step = _ms(c.tpot_s) if serve else (f"{c.step_time_s:.2f}" if c.step_time_s is not None else "-")
    speed = [f"{c.output_tokens_per_s:,.0f}", f"{c.output_tokens_per_s_per_gpu:,.0f}", step]
    if serve:
        speed = ([*speed, _ms(c.ttft_s), str(c.batch)] if ok else
                 ["-", "-", step, _ms(c.ttft_s), str(c.batch)] if too_slow_only(c) else ["-"] * 5)
        # a layout the engine's rules refuse is never sized: no weights, so "-" rather than 0.0
        sized = c.weight_bytes_per_gpu > 0
        memory = [f"{bytes_to_gib(c.weight_bytes_per_gpu):.1f}" if sized else "-",
                  f"{bytes_to_gib(c.kv_cache_bytes_per_gpu):.1f}" if sized else "-"]
    else:
        speed = speed if ok else ["-"] * 3
        memory = [_gib(c.model_state_bytes_per_gpu), _gib(c.activation_bytes_per_gpu)]
    cells = [mark, str(c.tp), str(c.pp), str(c.replicas), *speed, *memory,
             f"{100 * c.comm_share:.0f}%" if ok else "-"]
    if _has_moe_layouts(plan):
        cells[4:4] = [str(c.ep), str(c.dp_attention) if serve else str(c.etp or c.tp)]
    if plan.profile.price_per_gpu_hour:
        cells.append("-" if c.cost_per_million_output_tokens is None else f"{c.cost_per_million_output_tokens:.2f}")
    if wide and serve:
        cells += _split_cells(c)
    return cells


def _has_moe_layouts(plan: Plan) -> bool:
    return any(c.ep > 1 or c.dp_attention > 1 for c in plan.candidates)


def _legend(plan: Plan, *, wide: bool = False) -> str:
    chosen = "→ your --tp layout, " if plan.chosen is not None else ""
    second = ("DPa attention data-parallel ranks of TP GPUs each" if plan.workload.mode == "serve" else
              "ETP GPUs each expert is split over")
    moe = f"EP expert-parallel size, {second}; " if _has_moe_layouts(plan) else ""
    memory = ("seqs per replica; wt/KV GiB per GPU" if plan.workload.mode == "serve" else
              "state GiB = weights + gradients + optimizer per GPU; act GiB = activations per GPU")
    why = "why below" if wide else "why below, once per reason"
    return (f"★ recommended, {chosen}x rejected ({why}); rep replicas; {moe}{memory}; "
            f"comm = collectives' share of a step; " + (
                "dec/pre cmp/comm/ovh = a decode step's and one prompt's prefill compute / collectives / overhead, ms"
                if wide and plan.workload.mode == "serve" else "--wide for all"))


def text_lines(plan: Plan, *, width: int | None, wide: bool = False) -> list[str]:
    """The terminal view. With width None (--wide) nothing is wrapped or dropped."""
    wrap_w = width or 10_000
    rows = _rows(plan)
    notes = _row_notes(plan, rows, wrap_w, every=wide)
    lines = wrap(headline(plan), wrap_w, indent="  ", first="") + wrap(_context(plan), wrap_w, indent="  ") + [""]
    lines += table_lines(_columns(plan, wide=wide), [_cells(plan, c, wide=wide) for c in rows], width, notes)
    lines += wrap(_legend(plan, wide=wide), wrap_w) + [""]
    explanation = plan.explanation if wide or plan.recommended is None else _short_explanation(plan)
    if len(explanation) == 1:
        lines += wrap("Why: " + explanation[0], wrap_w, indent="  ")
    else:
        lines += ["Why:"] + [ln for e in explanation for ln in wrap(e, wrap_w, indent="    ", first="  - ")]
    notes = _plan_notes(plan)
    if notes:
        lines += ["Notes:"] + [ln for n in notes for ln in wrap(n, wrap_w, indent="    ", first="  - ")]
    if plan.suggestions:
        lines += ["What would help:"] + [ln for s in plan.suggestions
                                         for ln in wrap(_suggestion(s), wrap_w, indent="    ", first="  - ")]
    # a dtype line that says more than the context line (format, scales, weight-only on this GPU) stays
    shown = {k: v for k, v in plan.assumptions.items() if wide or k not in _CONTEXT_KEYS or (k == "dtype" and ";" in v)}
    lines += ["Assumptions:"] + [ln for k, v in shown.items() for ln in wrap(f"{k}: {v}", wrap_w, indent="    ",
                                                                             first="  - ")]
    return lines


def _row_notes(plan: Plan, rows: list[Candidate], wrap_w: int, *, every: bool) -> list[list[str]]:
    """The wrapped reasons under each rejected row. Unless `every` (--wide), a reason already given under an earlier
    row -- the same words, numbers aside ("weights N GiB + runtime reserve N GiB per GPU exceed ...") -- is not
    repeated: the row's own numbers are in its cells, and an MoE plan's thirty layouts stay readable. Your --tp
    layout's reasons, and those of a row only the latency limits reject (its under-load figures have no column),
    are always shown."""
    seen: set[str] = set()
    out = []
    for c in rows:
        lines = []
        # a row that runs but too slowly: its reasons carry its TPOT / TTFT under load, which no compact column shows
        for r in c.reasons:
            key = _NUMBER.sub("#", r)
            if every or key not in seen or c is plan.chosen or too_slow_only(c):
                lines += wrap(r, wrap_w, indent="    ", first="  - ")
            seen.add(key)
        out.append(lines)
    return out


def _plan_notes(plan: Plan) -> list[str]:
    """What the planner did to the recommended layout and to yours (a capped batch, a raised DeepEP buffer, ...)."""
    out: list[str] = []
    for c, who in ((plan.recommended, ""), (plan.chosen, "your layout: ")):
        if c is not None and (who == "" or c is not plan.recommended):
            out += [who + n for n in c.notes if who + n not in out]
    return out


def _short_explanation(plan: Plan) -> list[str]:
    """The runner-up and the fixed layout: the rest is in the table."""
    keep = [e for e in plan.explanation if e.startswith("Runner-up") or " beats TP" in e
            or "best expert-parallel" in e or "TP-only" in e]
    if plan.chosen is not None and plan.chosen is not plan.recommended:
        keep.append(f"Your layout {_layout(plan.chosen)}: " + (_speed_words(plan, plan.chosen) if plan.chosen.feasible
                                                               else "rejected: " + "; ".join(plan.chosen.reasons)))
    return keep


def _suggestion(s) -> str:
    text = f"{s.flag}: {s.text}" if s.flag else s.text
    g = s.would_give
    if g:
        text += (f" -> {g['layout']}, {g['output_tokens_per_s']:,.0f} tok/s"
                 + (f", TPOT {_ms(g['tpot_s'])} ms" if g.get("tpot_s") else ""))
    return text


def markdown_lines(plan: Plan) -> list[str]:
    """For tickets and pull requests: the answer in bold, the full table, bullets."""
    cols = _columns(plan)
    lines = [f"**{headline(plan)}**", "", _context(plan), ""]
    lines += markdown_table([c.header or " " for c in cols], [_cells(plan, c) for c in _rows(plan)])
    rejected = [f"- {_layout(c)}: " + "; ".join(c.reasons) for c in _rows(plan) if c.reasons]
    lines += ["", *rejected, "", "**Why**", ""] + [f"- {e}" for e in plan.explanation]
    if _plan_notes(plan):
        lines += ["", "**Notes**", ""] + [f"- {n}" for n in _plan_notes(plan)]
    if plan.suggestions:
        lines += ["", "**What would help**", ""] + [f"- {_suggestion(s)}" for s in plan.suggestions]
    return lines + ["", "**Assumptions**", ""] + [f"- {k}: {v}" for k, v in plan.assumptions.items()]

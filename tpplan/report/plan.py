"""Render a Plan: a table (infeasible rows dimmed with their reason) and its explanation; JSON; CSV."""

from __future__ import annotations

import dataclasses
from typing import Any

from tpplan.planner.result import Plan
from tpplan.report.output import OutputFormat, emit_csv, emit_json, stdout_console
from tpplan.units import format_bytes, format_seconds

CANDIDATE_KEYS = ("tp", "pp", "replicas", "gpus_used", "feasible", "reasons", "weight_bytes_per_gpu",
                  "kv_cache_bytes_per_gpu", "kv_cache_tokens", "max_concurrent_sequences", "allreduce_bytes_per_layer",
                  "ttft_s", "tpot_s", "output_tokens_per_s", "output_tokens_per_s_per_gpu")


def candidate_json(c) -> dict[str, Any]:
    d = dataclasses.asdict(c)
    return {**{k: d[k] for k in CANDIDATE_KEYS}, **{k: v for k, v in d.items() if k not in CANDIDATE_KEYS}}


def plan_json(plan: Plan) -> dict[str, Any]:
    w = plan.workload
    return {"model": plan.model.name, "hf_id": plan.model.hf_id, "hardware": plan.profile.name,
            "gpus": w.gpus, "objective": w.objective, "workload": w.mode,
            "recommended": candidate_json(plan.recommended) if plan.recommended else None,
            "candidates": [candidate_json(c) for c in plan.candidates], "explanation": plan.explanation,
            "suggestions": plan.suggestions, "assumptions": plan.assumptions}


def render_plan(plan: Plan, fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        return emit_json(plan_json(plan))
    if fmt is OutputFormat.csv:
        return emit_csv([{"model": plan.model.name, "hardware": plan.profile.name, **candidate_json(c),
                          "recommended": c is plan.recommended} for c in plan.candidates])
    _render_table(plan)


def _fmt_s(x: float | None) -> str:
    return "-" if x is None else format_seconds(x)


def _render_table(plan: Plan) -> None:
    from rich.table import Table

    con, w = stdout_console(), plan.workload
    title = (f"{plan.model.name} on {w.gpus} x {plan.profile.gpu.name} ({plan.profile.name}), {w.engine}, "
             f"{w.dtype} weights, {w.kv_cache_dtype} KV, max-model-len {w.max_model_len}, objective {w.objective}")
    t = Table(title=title)
    step = "TPOT" if w.mode == "serve" else "step"
    for col in ("", "TP", "PP", "repl", "weights/GPU", "KV/GPU", "seqs", "batch", "TTFT", step, "comm",
                "tok/s", "tok/s/GPU", "why not"):
        t.add_column(col, justify="left" if col in ("", "why not") else "right", overflow="fold")
    for c in plan.candidates:
        mark = "★" if c is plan.recommended else ""
        ok = c.feasible
        speed = [_fmt_s(c.ttft_s), _fmt_s(c.tpot_s if w.mode == "serve" else c.step_time_s),
                 f"{100 * c.comm_share:.0f}%", f"{c.output_tokens_per_s:,.0f}", f"{c.output_tokens_per_s_per_gpu:,.0f}"]
        t.add_row(mark, str(c.tp), str(c.pp), str(c.replicas), format_bytes(c.weight_bytes_per_gpu),
                  format_bytes(c.kv_cache_bytes_per_gpu), str(c.max_concurrent_sequences), str(c.batch) if ok else "-",
                  *(speed if ok else ["-"] * len(speed)), "; ".join(c.reasons) if not ok else "",
                  style=None if ok else "dim")
    con.print(t)
    for line in plan.explanation:
        con.print(line, markup=False)
    if plan.suggestions:
        con.print("What would help:", markup=False)
        for s in plan.suggestions:
            con.print(f"  - {s}", markup=False)
    con.print("Assumptions: " + "; ".join(f"{k}: {v}" for k, v in plan.assumptions.items()), markup=False,
              style="dim")

"""Render `tpplan models list` and `tpplan models show`."""

from __future__ import annotations

from typing import Any

from tpplan.models.summary import (
    ModelSummary,
    attention_summary,
    chunked_attention_layers,
    layers_summary,
    moe_layers,
)
from tpplan.report.output import OutputFormat, emit_csv, emit_json, emit_rows, stdout_console
from tpplan.report.text import Column, list_table_lines, write_lines
from tpplan.units import format_bytes, format_count


def models_list_rows(entries) -> list[dict[str, Any]]:
    from tpplan.models.params import active_params, total_params

    rows = []
    for e in entries:
        s = e.spec
        rows.append({"name": s.name, "hf_id": s.hf_id, "aliases": list(s.aliases), "total_params": total_params(s),
                     "active_params": active_params(s), "num_hidden_layers": s.num_hidden_layers,
                     "num_attention_heads": s.num_attention_heads, "num_key_value_heads": s.num_key_value_heads,
                     "max_position_embeddings": s.max_position_embeddings, "model_type": s.model_type})
    return rows


_LIST_COLUMNS = (Column(header="name", priority=0, align="<"), Column(header="params", priority=2),
                 Column(header="active", priority=3), Column(header="layers", priority=5),
                 Column(header="heads / kv", priority=4), Column(header="context", priority=6),
                 Column(header="aliases", priority=1, align="<", wrap=True))
"""Names and aliases are what users type: never cut (the name column is kept whole, aliases wrap between
names); the numbers give way first when the terminal is narrow."""


def render_models_list(rows: list[dict[str, Any]], fmt: OutputFormat) -> None:
    if emit_rows(rows, fmt):
        return
    cells = [[r["name"], format_count(r["total_params"]), format_count(r["active_params"]),
              str(r["num_hidden_layers"]), f"{r['num_attention_heads']} / {r['num_key_value_heads']}",
              f"{r['max_position_embeddings']:,}", ", ".join(r["aliases"])] for r in rows]
    write_lines(list_table_lines("Built-in models", _LIST_COLUMNS, cells))


def _degree_row(r) -> dict[str, int]:
    return {"tp": r.tp, "weight_bytes_per_gpu": r.weight_bytes_per_gpu, "kv_heads_per_gpu": r.kv_heads_per_gpu,
            "kv_cache_bytes_per_token_per_gpu": r.kv_cache_bytes_per_token_per_gpu}


def format_json(m: ModelSummary) -> dict[str, Any]:
    f = m.weight_format
    return {"name": f.name, "method": f.method, "description": f.description, "weight_bits": f.weight_bits,
            "compute": f.compute, "weight_only": f.weight_only, "keep_16bit": list(f.keep_16bit), "source": f.source,
            "from_checkpoint": f is m.spec.quantization}


def summary_json(m: ModelSummary) -> dict[str, Any]:
    s = m.spec
    return {
        "name": s.name, "hf_id": s.hf_id, "resolved_from": m.resolved_from, "model_type": s.model_type,
        "total_params": m.total_params, "active_params": m.active_params,
        "active_params_excluding_embedding": m.active_params_excluding_embedding,
        "params_by_component": m.params_by_component, "engine": m.engine, "dtype": m.dtype,
        "kv_cache_dtype": m.kv_cache_dtype, "weight_bytes_total": m.weight_bytes_total,
        "kv_cache_bytes_per_token": m.kv_cache_bytes_per_token, "context_len": m.context_len,
        "kv_cache_bytes_per_sequence": m.kv_cache_bytes_per_sequence, "valid_tp_degrees": m.valid_tp_degrees,
        "linear_state_bytes_per_sequence": m.linear_state_bytes_per_sequence,
        "invalid_tp_reasons": {str(k): v for k, v in m.invalid_tp_reasons.items()},
        "per_degree": [_degree_row(r) for r in m.degrees],
        "weight_bytes_by_component_per_gpu": {"tp": m.tp, **m.weight_bytes_by_component},
        "weight_format": format_json(m),
        "weight_bytes_by_group": [{"group": g, "params": n, "bytes_per_param": b, "bytes": t}
                                  for g, n, b, t in m.weight_bytes_by_group],
        "attention": attention_summary(s), "rope_scaling": s.rope_scaling or None,
        "vision_params": s.vision_params, "vision_weight_bytes": m.vision_weight_bytes,
        "num_nextn_predict_layers": s.num_nextn_predict_layers, "mtp_params": m.mtp_params,
        "cross_attention_layers": list(s.cross_attention_layers),
        "moe_layers": list(moe_layers(s)), "num_moe_layers": s.num_moe_layers, "num_dense_layers": s.num_dense_layers,
        "attention_chunk_size": s.attention_chunk_size,
        "chunked_attention_layers": list(chunked_attention_layers(s)),
        "num_chunked_attention_layers": len(chunked_attention_layers(s)),
        "architecture": {"hidden_size": s.hidden_size, "num_hidden_layers": s.num_hidden_layers,
                         "num_attention_heads": s.num_attention_heads, "num_key_value_heads": s.num_key_value_heads,
                         "head_dim": s.head_dim, "intermediate_size": s.intermediate_size, "vocab_size": s.vocab_size,
                         "max_position_embeddings": s.max_position_embeddings, "num_experts": s.num_experts,
                         "num_experts_per_tok": s.num_experts_per_tok, "kv_lora_rank": s.kv_lora_rank,
                         "sliding_window": s.sliding_window, "tie_word_embeddings": s.tie_word_embeddings},
        "notes": [*s.notes, *m.notes], "source": s.source,
    }


def render_model_show(m: ModelSummary, fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        return emit_json(summary_json(m))
    rows = [_degree_row(r) for r in m.degrees]
    if fmt is OutputFormat.csv:
        return emit_csv([{"name": m.spec.name, **r} for r in rows])
    con = stdout_console()
    _print_summary_lines(m, con)
    _print_tables(m, con)
    for t, reason in m.invalid_tp_reasons.items():
        con.print(f"  tp={t}: {reason}", markup=False, style="dim")
    for n in (*m.spec.notes, *m.notes):
        con.print(f"note: {n}", markup=False)


def _plain_origin(s, name: str) -> str:
    """Where a plain 16-bit format comes from: the checkpoint's own dtype, a float32 checkpoint served in 16 bits,
    or a config that names no dtype."""
    if s.checkpoint_dtype == "fp32" and name != "fp32":
        return f"float32 checkpoint, served in {name} as vLLM's --dtype auto does"
    if s.checkpoint_dtype:
        return f"{s.checkpoint_dtype} checkpoint"
    return "16-bit checkpoint"


def _print_summary_lines(m: ModelSummary, con) -> None:
    """The model's name, size, weight format, KV cache and layer kinds, one line each."""
    s = m.spec
    alias = f"  ({m.resolved_from} → {s.name})" if m.resolved_from else ""
    con.print(f"[bold]{s.name}[/bold]{alias}  {s.hf_id}")
    con.print(f"{format_count(m.total_params)} parameters ({m.total_params:,}); active per token "
              f"{format_count(m.active_params)}; weights {format_bytes(m.weight_bytes_total)} at {m.dtype}")
    fmt = m.weight_format
    origin = "the checkpoint's quantization_config" if fmt is s.quantization else _plain_origin(s, fmt.name) \
        if not fmt.quantized and s.quantization is None else "--dtype"
    con.print(f"Weight format {fmt.name} ({origin}){': ' + fmt.description if fmt.description else ''}",
              markup=False)
    con.print(f"KV cache {m.kv_cache_bytes_per_token:,} B/token ({format_bytes(m.kv_cache_bytes_per_token)}) at "
              f"{m.kv_cache_dtype}; {attention_summary(s)}", markup=False)
    if line := layers_summary(s):
        con.print(f"Layers: {line}", markup=False)
    if s.vision_params:
        con.print(f"Vision tower: {s.vision_params:,} parameters, {format_bytes(m.vision_weight_bytes)} at 16 bits, "
                  f"not planned (the language model is)", markup=False)
    if m.mtp_params:
        con.print(f"MTP layers: {s.num_nextn_predict_layers} ({m.mtp_params:,} parameters) in the checkpoint for "
                  f"speculative decoding; not loaded by a plain serve, not counted or planned", markup=False)
    window = f", sliding-window layers capped at {s.sliding_window} tokens" if s.sliding_window else ""
    seq = format_bytes(m.kv_cache_bytes_per_sequence)
    con.print(f"KV cache of one {m.context_len:,}-token sequence: {seq}{window}")
    if m.linear_state_bytes_per_sequence:
        con.print(f"Linear-attention state: {format_bytes(m.linear_state_bytes_per_sequence)} per running sequence "
                  f"({m.linear_state_bytes_per_sequence:,} B, whatever its length; split over TP)", markup=False)


def _print_tables(m: ModelSummary, con) -> None:
    """Parameters and weight bytes by component and by group, and the valid TP degrees."""
    from rich.table import Table

    fmt = m.weight_format
    comp = Table(title=f"Parameters and per-GPU weight bytes by component (tp={m.tp})")
    comp.add_column("component")
    comp.add_column("parameters", justify="right")
    comp.add_column(f"bytes/GPU at tp={m.tp}", justify="right")
    for name, n in m.params_by_component.items():
        comp.add_row(name, f"{n:,}", format_bytes(m.weight_bytes_by_component.get(name, 0)))
    con.print(comp)
    groups = Table(title=f"Bytes per parameter group ({fmt.name}, whole model)")
    for col in ("group", "parameters", "bytes/param", "bytes"):
        groups.add_column(col, justify="left" if col == "group" else "right")
    for g, n, b, t in m.weight_bytes_by_group:
        groups.add_row(g, f"{n:,}", f"{b:.4f}", format_bytes(t))
    con.print(groups)
    deg = Table(title=f"Valid TP degrees for {m.engine}: {', '.join(map(str, m.valid_tp_degrees))}")
    for col in ("tp", "weights/GPU", "KV heads/GPU", "KV bytes/token/GPU"):
        deg.add_column(col, justify="right")
    for r in m.degrees:
        deg.add_row(str(r.tp), format_bytes(r.weight_bytes_per_gpu), str(r.kv_heads_per_gpu),
                    f"{r.kv_cache_bytes_per_token_per_gpu:,}")
    con.print(deg)

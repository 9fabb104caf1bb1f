"""JSON Schemas of the documents `tpplan recommend|compare|sweep|measure -f json` and `tpplan models show|list -f json`
write (`tpplan schema COMMAND`; `models` is models show's, `models-list` models list's: tpplan.report.model_schemas).

The recommend schema is generated from the dataclasses that produce the JSON (Candidate, Suggestion), so a new
field appears in both at once, its docstring as its description; compare's reuses its Candidate (each layout is a
candidate of recommend's); the sweep and measure schemas list the columns / keys their renderers write. Objects are
open (keys are only ever added, shared/DESIGN.md §6): `additionalProperties` appears only on maps, to type their
values.
"""

from __future__ import annotations

from typing import Any

from tpplan.report.model_schemas import DRAFT, field_docstrings, models_list_schema, models_show_schema

_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_NUM_OR_NULL = {"type": ["number", "null"]}


def _dataclass_schema(cls: type) -> dict[str, Any]:
    """pydantic's schema of a dataclass, each field's docstring as its `description`."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(cls).json_schema()
    for name, doc in field_docstrings(cls).items():
        schema["properties"][name]["description"] = doc
    return schema


def _key(kind: str | list[str], description: str) -> dict[str, Any]:
    return {"type": kind, "description": description}


_INT, _NUM, _STR = ["integer", "null"], ["number", "null"], ["string", "null"]
INPUTS_SCHEMA: dict[str, Any] = {
    "type": "object", "description": "every input the figures depend on, defaults included, in base units",
    "properties": {
        "model": _key("string", "the model as given (catalogue name, alias, Hub id or config path)"),
        "model_name": _key("string", "the model it resolved to"),
        "hf_id": _key(_STR, "its Hugging Face id ('' for a config.json read from a path)"),
        "hardware": _key("string", "hardware profile name"), "gpu": _key("string", "GPU name of the profile"),
        "nodes": _key("integer", "nodes of the profile (--nodes)"), "gpus": _key("integer", "GPUs planned on"),
        "engine": _key("string", "vllm, sglang, trtllm or megatron"),
        "workload": _key("string", "serve or train"), "objective": _key("string", "what ranks the layouts"),
        "dtype": _key("string", "weight format planned (the checkpoint's own under --dtype auto)"),
        "kv_cache_dtype": _key("string", "KV-cache dtype"),
        "input_len": _key("integer", "tokens per prompt"), "output_len": _key("integer", "tokens generated"),
        "max_model_len": _key("integer", "longest sequence planned (tokens)"),
        "gpu_memory_utilization": _key("number", "engine memory fraction"),
        "batch": _key(_INT, "--batch, or null: the largest the layout allows"),
        "num_requests": _key(_INT, "--num-requests (an offline job), or null: steady state"),
        "max_num_seqs": _key(_INT, "scheduler's running-sequence limit override, or null: the engine's default"),
        "max_num_batched_tokens": _key(_INT, "scheduler's token-budget override, or null: the engine's default"),
        "moe_imbalance": _key("number", "busiest EP rank's routed tokens / the mean"),
        "all2all_backend": _key("string", "MoE token-movement backend (auto: the engine's default)"),
        "deepep_mode": _key(_STR, "SGLang --deepep-mode, or null"),
        "max_tpot_s": _key(_NUM, "TPOT limit, seconds, or null"),
        "max_ttft_s": _key(_NUM, "TTFT limit, seconds, or null"),
        "sequence_parallel": _key("boolean", "sequence parallelism on"),
        "allow_cross_domain_tp": _key("boolean", "TP groups may cross NVLink domains"),
        "distributed_optimizer": _key("boolean", "training: Megatron's distributed optimizer"),
        "global_batch_size": _key(["integer", "null"], "training: sequences per optimizer step (null: 4 x PP x DP "
                                                       "micro-batches of --batch, following the layout)"),
        "price_per_gpu_hour": _key(_NUM, "$ per GPU-hour, or null"),
    },
}
INPUTS_SCHEMA["required"] = list(INPUTS_SCHEMA["properties"])
WOULD_GIVE_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "null"}, {
        "type": "object", "description": "the best layout with the suggested change applied",
        "required": ["layout", "tp", "pp", "replicas", "gpus_used", "ep", "dp_attention", "output_tokens_per_s",
                     "tpot_s", "ttft_s"],
        "properties": {"layout": _key("string", "the layout as the table labels it"), "tp": _key("integer", "TP"),
                       "pp": _key("integer", "PP"), "replicas": _key("integer", "replicas"),
                       "gpus_used": _key("integer", "GPUs it uses"), "ep": _key("integer", "EP (1 when unused)"),
                       "dp_attention": _key("integer", "attention DP ranks (1 when unused)"),
                       "output_tokens_per_s": _key("number", "output tok/s, all replicas"),
                       "tpot_s": _key(_NUM, "TPOT, seconds"), "ttft_s": _key(_NUM, "TTFT of one prompt, seconds")}}]}


def _suggestion_schema(cls: type) -> dict[str, Any]:
    schema = _dataclass_schema(cls)
    schema["properties"]["would_give"] = WOULD_GIVE_SCHEMA | {
        "description": schema["properties"]["would_give"].get("description", "")}
    return schema


def recommend_schema() -> dict[str, Any]:
    from tpplan.planner.candidates import Candidate
    from tpplan.planner.result import CANDIDATE_KEYS, SCHEMA_VERSION, Suggestion

    cand = _dataclass_schema(Candidate)
    cand["required"] = list(CANDIDATE_KEYS)
    nested = cand.pop("$defs", {})  # e.g. StepTime: hoisted so "#/$defs/StepTime" resolves from the root
    nullable_cand = {"anyOf": [{"$ref": "#/$defs/Candidate"}, {"type": "null"}]}
    return {
        "$schema": DRAFT, "title": f"tpplan recommend -f json (schema_version {SCHEMA_VERSION})", "type": "object",
        "required": ["schema_version", "inputs", "recommended", "candidates", "explanation", "suggestions",
                     "assumptions"],
        "properties": {
            "schema_version": {"const": SCHEMA_VERSION}, "model": {"type": "string"},
            "hf_id": {"type": ["string", "null"]}, "hardware": {"type": "string"}, "gpus": {"type": "integer"},
            "objective": {"enum": ["throughput", "latency", "gpus", "cost"]}, "workload": {"enum": ["serve", "train"]},
            "inputs": INPUTS_SCHEMA,
            "recommended": nullable_cand, "chosen": nullable_cand, "unused_gpus": {"type": "integer", "minimum": 0},
            "candidates": {"type": "array", "items": {"$ref": "#/$defs/Candidate"}},
            "explanation": {"type": "array", "items": {"type": "string"}},
            "suggestions": {"type": "array", "items": {"$ref": "#/$defs/Suggestion"}},
            "assumptions": _STR_MAP,
            "serve_command": {"type": "string", "description": "with --emit: the engine command(s)"},
        },
        "$defs": {"Candidate": cand, "Suggestion": _suggestion_schema(Suggestion), **nested},
    }


def compare_schema() -> dict[str, Any]:
    """tpplan.report.compare.render_comparison's JSON: the inputs, one candidate per layout in the order given, the
    differences in words, the best of them and recommend's best over every layout."""
    rec = recommend_schema()
    cand = {"$ref": "#/$defs/Candidate"}
    return {
        "$schema": DRAFT, "title": "tpplan compare -f json", "type": "object",
        "required": ["inputs", "layouts", "differences", "best_of_these", "recommended"],
        "properties": {
            "inputs": rec["properties"]["inputs"],
            "layouts": {"type": "array", "items": cand, "minItems": 2,
                        "description": "each layout, in the order given"},
            "differences": {"type": "array", "items": {"type": "string"},
                            "description": "how each other layout differs from the first"},
            "best_of_these": {"anyOf": [cand, {"type": "null"}], "description": "the best layout compared that runs, "
                              "by the objective (compare exits 1 when none runs)"},
            "recommended": {"anyOf": [cand, {"type": "null"}],
                            "description": "recommend's best over every layout it plans, for reference"},
        },
        "$defs": {k: v for k, v in rec["$defs"].items() if k != "Suggestion"},
    }


SWEEP_COLUMNS = {"model": "string", "hardware": "string", "nodes": "integer", "gpus": "integer", "dtype": "string",
                 "tp": "integer", "pp": "integer", "ep": "integer", "dp_attention": "integer", "replicas": "integer",
                 "gpus_used": "integer", "batch": "integer", "batch_run": "integer", "input_len": "integer",
                 "output_len": "integer",
                 "feasible": "boolean",
                 "reason": ["string", "null"], "weight_bytes_per_gpu": ["integer", "null"],
                 "kv_cache_bytes_per_gpu": ["integer", "null"],
                 "max_concurrent_sequences": "integer", "ttft_s": ["number", "null"],
                 "ttft_under_load_s": ["number", "null"], "tpot_s": ["number", "null"],
                 "tpot_under_load_s": ["number", "null"],
                 "comm_share": ["number", "null"], "output_tokens_per_s": ["number", "null"],
                 "output_tokens_per_s_per_gpu": ["number", "null"]}


def sweep_schema() -> dict[str, Any]:
    row = {"type": "object", "required": ["model", "hardware", "tp", "pp", "batch", "feasible"],
           "properties": {k: {"type": t} for k, t in SWEEP_COLUMNS.items()}}
    return {"$schema": DRAFT, "title": "tpplan sweep -f json: one object per evaluated row", "type": "array",
            "items": row}


MEASURE_ITEM_TYPES: dict[str, str | list[str]] = {
    **dict.fromkeys(("kind", "name", "mode", "source", "timing", "dtype", "what", "allocator", "error_note"), "string"),
    **dict.fromkeys(("emulated", "compute_only", "correct"), "boolean"),
    "held_out": ["boolean", "null"],
    **dict.fromkeys(("tp", "tokens", "bytes", "batch", "context", "iters", "windows", "layers_timed",
                     "calls_per_window", "copies", "m", "n", "k", "flops"), "integer"),
    **dict.fromkeys(("predicted_s", "measured_s", "predicted_after_calibration_s", "predicted_bytes", "measured_bytes",
                     "predicted_after_calibration_bytes", "error_pct", "error_pct_after", "best_s", "p25_s",
                     "median_s", "p90_s", "algbw_bytes_per_s", "busbw_bytes_per_s"), ["number", "null"]),
}
"""The JSON type of each item key `tpplan measure -f json` writes (tpplan.measure.compare.MeasuredItem.to_json: the
kernel's own keys, then the predictions): `timing` says how a time was taken ("eager+back_to_back+perf_counter"),
`emulated` / `compute_only` mark rank 0's shard timed alone. Keys not listed are allowed (a kernel may add some)."""


def measure_schema() -> dict[str, Any]:
    item = {"type": "object", "required": ["kind", "held_out", "error_pct", "error_pct_after"],
            "properties": {k: {"type": t} for k, t in MEASURE_ITEM_TYPES.items()}}
    by_kind = {"type": "object", "additionalProperties": {
        "type": "object", "required": ["items", "held_out"],
        "properties": {"items": {"type": "integer"}, "held_out": {"type": "integer"},
                       "median_abs_error_pct_before": _NUM_OR_NULL,
                       "median_abs_error_pct_before_held_out": _NUM_OR_NULL,
                       "median_abs_error_pct_after": _NUM_OR_NULL}}}
    summary = {"type": "object", "required": ["median_abs_error_pct_before", "median_abs_error_pct_after",
                                              "held_out_items", "sign_convention"],
               "properties": {"median_abs_error_pct_before": _NUM_OR_NULL,
                              "median_abs_error_pct_before_held_out": _NUM_OR_NULL,
                              "median_abs_error_pct_after": _NUM_OR_NULL, "by_kind": by_kind,
                              "held_out_items": {"type": "integer", "minimum": 0},
                              "layer_overhead_s": {"type": "object", "additionalProperties": {"type": "number"}},
                              "kernel_fixed_time_s": {"type": "number"},
                              "kernel_table_held_out_error_pct": _NUM_OR_NULL,
                              "calibrated_profile": {"type": ["string", "null"]},
                              "sign_convention": {"type": "string"}}}
    check = {"type": "object", "required": ["mode", "tokens", "max_abs_error", "passed"],
             "properties": {"mode": {"type": "string"}, "tokens": {"type": "integer"},
                            "max_abs_error": {"type": "number"}, "passed": {"type": "boolean"}}}
    return {"$schema": DRAFT, "title": "tpplan measure -f json", "type": "object",
            "required": ["environment", "items", "summary"],
            "properties": {"environment": {"type": "object"}, "items": {"type": "array", "items": item},
                           "summary": summary, "checks": {"type": "array", "items": check},
                           "notes": {"type": "array", "items": {"type": "string"}},
                           "results": {"type": "array", "items": {"type": "object"},
                                       "description": "the kernels' raw JSON (what --save-raw writes; --from reads "
                                                      "it back)"}}}


SCHEMAS = {"recommend": recommend_schema, "compare": compare_schema, "sweep": sweep_schema, "measure": measure_schema,
           "models": models_show_schema, "models-list": models_list_schema}
"""`tpplan schema NAME`: a command's name, `models` for `models show` (one model's document) and `models-list` for
`models list`."""


def _type_words(node: dict[str, Any]) -> str:
    """A schema node's type in a few words: its type(s), const, enum or referenced definition."""
    if "$ref" in node:
        return node["$ref"].rsplit("/", 1)[-1]
    if "const" in node:
        return f"const {node['const']!r}"
    if "enum" in node:
        return "one of " + ", ".join(map(str, node["enum"]))
    if "anyOf" in node:
        return " | ".join(_type_words(n) for n in node["anyOf"])
    kind = node.get("type", "any")
    return " | ".join(kind) if isinstance(kind, list) else kind


def _deref(node: dict[str, Any], root: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The node itself, or the definition it (or its one non-null anyOf branch) refers to, with that name."""
    branches = [n for n in node.get("anyOf", ()) if n.get("type") != "null"]
    ref = node.get("$ref") or (branches[0].get("$ref") if len(branches) == 1 else None)
    if ref is None:
        return node, None
    name = ref.rsplit("/", 1)[-1]
    return root.get("$defs", {}).get(name, {}), name


def schema_rows(root: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per key of a JSON Schema, nested keys dotted (`items[]` for an array's elements, `*` for any key of a
    map): key, type, required, description. Each definition is expanded once per path (no recursion loops)."""
    rows: list[dict[str, Any]] = []

    def walk(node: dict[str, Any], prefix: str, seen: frozenset[str]) -> None:
        node, name = _deref(node, root)
        if name in seen:
            return
        seen = seen | {name} if name else seen
        required = set(node.get("required", ()))
        for key, sub in node.get("properties", {}).items():
            path = f"{prefix}{key}"
            rows.append({"key": path, "type": _type_words(sub), "required": key in required,
                         "description": " ".join(str(sub.get("description", "")).split())})
            walk(sub, path + ".", seen)
            items = _deref(sub, root)[0].get("items")
            if isinstance(items, dict):
                walk(items, path + "[].", seen)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            walk(extra, prefix + "*.", seen)
        if prefix == "" and isinstance(node.get("items"), dict):  # a top-level array (sweep's rows)
            walk(node["items"], "[].", seen)

    walk(root, "", frozenset())
    return rows


def render_schema(schema: dict[str, Any], fmt: Any) -> None:
    """json (the default): the schema itself; csv / markdown: schema_rows; table: the same rows at the terminal's
    width, titled by the schema's title."""
    from tpplan.report.output import OutputFormat, emit_json, emit_rows
    from tpplan.report.text import Column, list_table_lines, write_lines

    if fmt is OutputFormat.json:
        return emit_json(schema)
    rows = schema_rows(schema)
    if emit_rows(rows, fmt):
        return None
    columns = (Column(header="key", priority=0, align="<"), Column(header="type", priority=1, align="<", wrap=True),
               Column(header="required", priority=2, align="<"),
               Column(header="description", priority=3, align="<", wrap=True))
    cells = [[r["key"], r["type"], "yes" if r["required"] else "", r["description"]] for r in rows]
    write_lines(list_table_lines(schema.get("title") or "JSON Schema", columns, cells))
    return None

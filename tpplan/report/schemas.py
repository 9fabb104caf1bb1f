"""JSON Schemas of the documents `tpplan recommend|compare|sweep|measure -f json` and `tpplan models show|list -f json`
write (`tpplan schema COMMAND`; `models` is models show's, `models-list` models list's).

The recommend schema is generated from the dataclasses that produce the JSON (Candidate, Suggestion), so a new
field appears in both at once, its docstring as its description; compare's reuses its Candidate (each layout is a
candidate of recommend's); the sweep, measure and models schemas list the columns / keys their renderers write, the
models' described by the docstrings of the fields and functions behind each key. Objects are open (keys are only
ever added, shared/DESIGN.md §6): `additionalProperties` appears only on maps, to type their values.
"""

from __future__ import annotations

from typing import Any, get_args

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_NUM_OR_NULL = {"type": ["number", "null"]}


def _dataclass_schema(cls: type) -> dict[str, Any]:
    """pydantic's schema of a dataclass, each field's docstring as its `description`."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(cls).json_schema()
    for name, doc in _field_docstrings(cls).items():
        schema["properties"][name]["description"] = doc
    return schema


def _field_docstrings(cls: type) -> dict[str, str]:
    """The string literal under each annotated field of a class body, whitespace collapsed: what pydantic's
    `use_attribute_docstrings` reads, which TypeAdapter refuses to configure for a dataclass (and the planner's
    dataclasses carry no pydantic config)."""
    import ast
    import inspect
    import textwrap

    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    return {field.target.id: " ".join(doc.value.value.split()) for field, doc in zip(body, body[1:], strict=False)
            if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name)
            and isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str)}


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
            "inputs": {"type": "object", "description": "every input the figures depend on, defaults included"},
            "recommended": nullable_cand, "chosen": nullable_cand, "unused_gpus": {"type": "integer", "minimum": 0},
            "candidates": {"type": "array", "items": {"$ref": "#/$defs/Candidate"}},
            "explanation": {"type": "array", "items": {"type": "string"}},
            "suggestions": {"type": "array", "items": {"$ref": "#/$defs/Suggestion"}},
            "assumptions": _STR_MAP,
            "serve_command": {"type": "string", "description": "with --emit: the engine command(s)"},
        },
        "$defs": {"Candidate": cand, "Suggestion": _dataclass_schema(Suggestion), **nested},
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


SWEEP_COLUMNS = {"model": "string", "hardware": "string", "gpus": "integer", "dtype": "string", "tp": "integer",
                 "pp": "integer", "ep": "integer", "dp_attention": "integer", "replicas": "integer",
                 "gpus_used": "integer", "batch": "integer", "input_len": "integer", "output_len": "integer",
                 "feasible": "boolean",
                 "reason": ["string", "null"], "weight_bytes_per_gpu": ["integer", "null"],
                 "kv_cache_bytes_per_gpu": ["integer", "null"],
                 "max_concurrent_sequences": "integer", "ttft_s": ["number", "null"],
                 "ttft_under_load_s": ["number", "null"], "tpot_s": ["number", "null"],
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
                       "median_abs_error_pct_before": _NUM_OR_NULL, "median_abs_error_pct_after": _NUM_OR_NULL}}}
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


def _doc(obj: Any) -> str:
    """The first paragraph of obj's docstring, whitespace collapsed ('' when it has none)."""
    import inspect

    return " ".join((inspect.getdoc(obj) or "").split("\n\n")[0].split())


def _key(kind: str | list[str] | dict[str, Any], description: str) -> dict[str, Any]:
    """A property: a JSON type (or a whole schema node) and its description."""
    node = dict(kind) if isinstance(kind, dict) else {"type": kind}
    return {**node, "description": description}


_INT = {"type": "integer", "minimum": 0}
_INTS = {"type": "array", "items": _INT}
_INT_MAP = {"type": "object", "additionalProperties": _INT}
_DEGREE = {"type": "integer", "minimum": 1}


def _object(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An object whose every listed key is always written (so required), further keys allowed."""
    return {"type": "object", "required": list(properties), "properties": properties, **extra}


def _weight_format_schema() -> dict[str, Any]:
    """tpplan.report.models.format_json: the weight format the figures use, WeightFormat's docstrings."""
    from tpplan.models.formats import WeightFormat

    doc = _field_docstrings(WeightFormat)
    return _object({
        "name": _key("string", doc["name"]), "method": _key("string", doc["method"]),
        "description": _key("string", "The format in words ('' for a plain 16-bit one)."),
        "weight_bits": _key("number", doc["weight_bits"]), "compute": _key("string", doc["compute"]),
        "weight_only": _key("boolean", _doc(WeightFormat.weight_only)),
        "keep_16bit": _key({"type": "array", "items": {"type": "string"}}, doc["keep_16bit"]),
        "source": _key("string", doc["source"]),
        "from_checkpoint": _key("boolean", "True when the format is the checkpoint's quantization_config, False "
                                "for a 16-bit checkpoint or a --dtype override."),
    })


def _architecture_schema() -> dict[str, Any]:
    """The config.json fields summary_json copies under `architecture`, ModelSpec's docstrings."""
    from tpplan.models.spec import ModelSpec

    doc = _field_docstrings(ModelSpec)
    words = {"hidden_size": "Model width (config.json hidden_size).", "num_hidden_layers": "Decoder layers.",
             "num_attention_heads": "Query heads per layer.", "vocab_size": "Vocabulary rows of the embedding "
             "and lm_head.", "max_position_embeddings": "The model's context length.",
             "num_experts_per_tok": "Routed experts each token uses (top-k; 0 for a dense model).",
             "sliding_window": "Window of the sliding-window attention layers in tokens; null without one.",
             "tie_word_embeddings": "The lm_head shares the input embedding's weights.", **doc}
    kinds = {"sliding_window": {"type": ["integer", "null"], "minimum": 1}, "tie_word_embeddings": "boolean"}
    keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
            "intermediate_size", "vocab_size", "max_position_embeddings", "num_experts", "num_experts_per_tok",
            "kv_lora_rank", "sliding_window", "tie_word_embeddings")
    return _key(_object({k: _key(kinds.get(k, _INT), words[k]) for k in keys}),
                "The config.json fields the figures rest on, in Hugging Face spelling.")


def _per_degree_schema() -> dict[str, Any]:
    """tpplan.report.models._degree_row: one TP degree's per-GPU figures."""
    from tpplan.models import engines, weights

    return _object({"tp": _key(_DEGREE, "The TP degree."),
                    "weight_bytes_per_gpu": _key(_INT, _doc(weights.weight_bytes_per_gpu) + " At this tp, pp 1."),
                    "kv_heads_per_gpu": _key(_INT, _doc(engines.kv_heads_per_gpu)),
                    "kv_cache_bytes_per_token_per_gpu": _key(_INT, "KV cache bytes per token on one GPU at this tp, "
                                                                   "at kv_cache_dtype.")})


def _layer_mix_properties() -> dict[str, Any]:
    """The attention kinds, extra towers and layer indices summary_json writes (ModelSpec's and the summary's
    docstrings)."""
    from tpplan.models import summary
    from tpplan.models.spec import ModelSpec
    from tpplan.models.summary import ModelSummary

    spec, summ = _field_docstrings(ModelSpec), _field_docstrings(ModelSummary)
    return {
        "attention": _key("string", _doc(summary.attention_summary)),
        "rope_scaling": _key(["string", "null"], spec["rope_scaling"].split(";")[0] + "; null when none."),
        "vision_params": _key(_INT, spec["vision_params"]),
        "vision_weight_bytes": _key(_INT, summ["vision_weight_bytes"]),
        "num_nextn_predict_layers": _key(_INT, spec["num_nextn_predict_layers"]),
        "mtp_params": _key(_INT, summ["mtp_params"]),
        "cross_attention_layers": _key(_INTS, spec["cross_attention_layers"]),
        "moe_layers": _key(_INTS, _doc(summary.moe_layers)),
        "num_moe_layers": _key(_INT, "MoE layers (0 for a dense model)."),
        "num_dense_layers": _key(_INT, "Layers with a dense MLP: num_hidden_layers - num_moe_layers."),
        "attention_chunk_size": _key({"type": ["integer", "null"], "minimum": 1}, spec["attention_chunk_size"]),
        "chunked_attention_layers": _key(_INTS, _doc(summary.chunked_attention_layers)),
        "num_chunked_attention_layers": _key(_INT, "len(chunked_attention_layers); the others attend to the whole "
                                                   "context."),
    }


def _sizes_properties() -> dict[str, Any]:
    """Parameter counts, weight bytes and KV bytes summary_json writes, described by the functions that count them."""
    from tpplan.models import engines, kv, params, weights
    from tpplan.models.summary import ModelSummary

    summ = _field_docstrings(ModelSummary)
    group = _object({"group": _key("string", "Parameter group ('attention.q_proj', 'experts.down_proj', ...)."),
                     "params": _key(_INT, "Its parameters in the whole model."),
                     "bytes_per_param": _key("number", "Bytes one of its parameters takes in weight_format."),
                     "bytes": _key(_INT, "Its weight bytes in weight_format (per-layer formats summed exactly).")})
    return {
        "total_params": _key(_INT, _doc(params.total_params)), "active_params": _key(_INT, _doc(params.active_params)),
        "active_params_excluding_embedding": _key(_INT, _doc(params.active_params_excluding_embedding)),
        "params_by_component": _key(_INT_MAP, "Parameters per component (attention, mlp, experts, router, norm, "
                                              "embedding, lm_head, ...), whole model."),
        "weight_bytes_total": _key(_INT, _doc(weights.weight_bytes_total)),
        "kv_cache_bytes_per_token": _key(_INT, _doc(kv.kv_cache_bytes_per_token) + " Whole model, at kv_cache_dtype."),
        "context_len": _key(_INT, "Tokens of the sequence kv_cache_bytes_per_sequence counts (--context-len, else "
                                  "max_position_embeddings)."),
        "kv_cache_bytes_per_sequence": _key(_INT, summ["kv_cache_bytes_per_sequence"]),
        "valid_tp_degrees": _key({"type": "array", "items": _DEGREE},
                                 f"Degrees 1..{engines.MAX_TP_DEGREE} the engine accepts for this model."),
        "linear_state_bytes_per_sequence": _key(_INT, summ["linear_state_bytes_per_sequence"]),
        "invalid_tp_reasons": _key({"type": "object", "propertyNames": {"pattern": "^[0-9]+$"},
                                    "additionalProperties": {"type": "string"}},
                                   summ["invalid_tp_reasons"] + " Keyed by the degree, as a string."),
        "per_degree": _key({"type": "array", "items": _per_degree_schema()},
                           "One row per valid degree up to 64, or only the --tp one."),
        "weight_bytes_by_component_per_gpu": _key(
            _object({"tp": _key(_DEGREE, "The degree the bytes are at.")},
                    additionalProperties=_INT),
            _doc(weights.weight_bytes_by_component) + " " + summ["weight_bytes_by_component"]),
        "weight_format": _key(_weight_format_schema(), "How the checkpoint (or --dtype) stores the weights."),
        "weight_bytes_by_group": _key({"type": "array", "items": group}, summ["weight_bytes_by_group"]),
    }


def models_show_schema() -> dict[str, Any]:
    """tpplan.report.models.summary_json: one model's counts, bytes per degree, KV cache and layer mix."""
    from tpplan.models import engines
    from tpplan.models.spec import ModelSpec

    spec = _field_docstrings(ModelSpec)
    props = {
        "name": _key("string", spec["name"]),
        "hf_id": _key("string", "Hugging Face repository id ('' for a config.json read from a path)."),
        "resolved_from": _key(["string", "null"], "The alias typed, when one was resolved to `name`; else null."),
        "model_type": _key("string", spec["model_type"]),
        "engine": _key({"enum": list(get_args(engines.Engine))}, "Whose TP rules the degrees follow (--engine)."),
        "dtype": _key("string", "The weight format's name (--dtype, or the checkpoint's own: weight_format.name)."),
        "kv_cache_dtype": _key("string", "The KV cache dtype the KV figures use (--kv-cache-dtype)."),
        **_sizes_properties(), **_layer_mix_properties(), "architecture": _architecture_schema(),
        "notes": _key({"type": "array", "items": {"type": "string"}}, spec["notes"] + " Then the summary's own "
                      "(a --dtype override)."),
        "source": _key("string", "Where a catalogue entry's configuration comes from; '' for a config.json."),
    }
    return {"$schema": DRAFT, "title": "tpplan models show -f json", **_object(props)}


def models_list_schema() -> dict[str, Any]:
    """tpplan.report.models.models_list_rows: one object per catalogue entry."""
    from tpplan.models import params
    from tpplan.models.spec import ModelSpec

    spec = _field_docstrings(ModelSpec)
    row = _object({
        "name": _key("string", spec["name"]), "hf_id": _key("string", "Hugging Face repository id."),
        "aliases": _key({"type": "array", "items": {"type": "string"}}, "Short names `models show` and --model "
                        "accept."),
        "total_params": _key(_INT, _doc(params.total_params)), "active_params": _key(_INT, _doc(params.active_params)),
        "num_hidden_layers": _key(_INT, "Decoder layers."), "num_attention_heads": _key(_INT, "Query heads per layer."),
        "num_key_value_heads": _key(_INT, spec["num_key_value_heads"]),
        "max_position_embeddings": _key(_INT, "The model's context length."),
        "model_type": _key("string", spec["model_type"]),
    })
    return {"$schema": DRAFT, "title": "tpplan models list -f json: one object per built-in model", "type": "array",
            "items": row}


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

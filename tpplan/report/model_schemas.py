"""JSON Schemas of `tpplan models show -f json` (`tpplan schema models`) and `models list -f json` (`tpplan schema
models-list`): the keys tpplan.report.models writes, each described by the docstring of the field or function behind
it (`field_docstrings`, `_doc`). Objects are open (keys are only ever added, shared/DESIGN.md §6); the other
commands' schemas are in tpplan.report.schemas."""

from __future__ import annotations

from typing import Any, get_args

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def field_docstrings(cls: type) -> dict[str, str]:
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

    doc = field_docstrings(WeightFormat)
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

    doc = field_docstrings(ModelSpec)
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

    spec, summ = field_docstrings(ModelSpec), field_docstrings(ModelSummary)
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

    summ = field_docstrings(ModelSummary)
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

    spec = field_docstrings(ModelSpec)
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

    spec = field_docstrings(ModelSpec)
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

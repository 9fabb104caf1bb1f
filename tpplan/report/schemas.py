"""JSON Schemas of the documents `tpplan recommend|compare|sweep|measure -f json` write (`tpplan schema COMMAND`).

The recommend schema is generated from the dataclasses that produce the JSON (Candidate, Suggestion), so a new
field appears in both at once, its docstring as its description; compare's reuses its Candidate (each layout is a
candidate of recommend's); the sweep and measure schemas list the columns / keys their renderers write.
"""

from __future__ import annotations

from typing import Any

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
                 "reason": ["string", "null"], "weight_bytes_per_gpu": ["number", "null"],
                 "kv_cache_bytes_per_gpu": ["number", "null"],
                 "max_concurrent_sequences": "integer", "ttft_s": ["number", "null"],
                 "ttft_under_load_s": ["number", "null"], "tpot_s": ["number", "null"],
                 "comm_share": ["number", "null"], "output_tokens_per_s": ["number", "null"],
                 "output_tokens_per_s_per_gpu": ["number", "null"]}


def sweep_schema() -> dict[str, Any]:
    row = {"type": "object", "required": ["model", "hardware", "tp", "pp", "batch", "feasible"],
           "properties": {k: {"type": t} for k, t in SWEEP_COLUMNS.items()}}
    return {"$schema": DRAFT, "title": "tpplan sweep -f json: one object per evaluated row", "type": "array",
            "items": row}


def measure_schema() -> dict[str, Any]:
    from tpplan.report.measure import ITEM_KEYS

    item = {"type": "object", "required": ["kind"], "properties": {
        k: ({"type": "string"} if k in ("kind", "name", "mode", "source") else
            {"type": ["boolean", "null"]} if k == "held_out" else _NUM_OR_NULL) for k in ITEM_KEYS}}
    summary = {"type": "object", "properties": {"median_abs_error_pct_before": _NUM_OR_NULL,
                                                "median_abs_error_pct_after": _NUM_OR_NULL,
                                                "calibrated_profile": {"type": ["string", "null"]}}}
    return {"$schema": DRAFT, "title": "tpplan measure -f json", "type": "object",
            "required": ["environment", "items", "summary"],
            "properties": {"environment": {"type": "object"}, "items": {"type": "array", "items": item},
                           "summary": summary, "checks": {"type": "array"},
                           "notes": {"type": "array", "items": {"type": "string"}}}}


SCHEMAS = {"recommend": recommend_schema, "compare": compare_schema, "sweep": sweep_schema, "measure": measure_schema}

"""Read a Hugging Face config.json (a dict) into a ModelSpec.

Field spellings differ between families (Falcon: n_head / num_kv_heads; DeepSeek: n_routed_experts;
Mixtral and gpt-oss: num_local_experts). A missing required field, or a model_type whose shapes cannot be
derived, is a ModelSpecError naming the file and the field, never a KeyError or a guess.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tpplan.errors import ModelSpecError
from tpplan.files import load_json
from tpplan.models.hf_defaults import SIZED_VISION_TYPES, apply_defaults, rope_context, vision_params
from tpplan.models.hf_families import (
    FAMILY_RULES,
    SAME_ARCHITECTURE,
    SUPPORTED,
    TEXT_MODEL_TYPES,
    check_model_type,
    family_fields,
)
from tpplan.models.hf_hybrid import qwen3_next_moe, qwen_moe_layers
from tpplan.models.hf_reader import MAX_LAYERS, ConfigReader
from tpplan.models.quant_config import parse_quantization_config
from tpplan.models.spec import ModelSpec
from tpplan.models.weights import resolve_layer_formats

_SLIDING_PATTERN = {"gemma2": 2, "gemma3": 6, "cohere2": 4, "gpt_oss": 2}
"""Families that interleave sliding-window and global layers: layer i is global when (i + 1) % n == 0, with n the
config's `sliding_window_pattern`, else this default (transformers: Gemma2DecoderLayer slides on even layers;
Gemma3TextConfig and Cohere2Config derive layer_types from sliding_window_pattern, defaults 6 and 4; GptOssConfig
without layer_types slides on even layers: "sliding_attention" if (i + 1) % 2 else "full_attention")."""


def _layer_types(r: ConfigReader, layers: int, model_type: str, window: int | None) -> tuple[str, ...]:
    types = r.get("layer_types")
    if types is not None:
        if not isinstance(types, list) or len(types) != layers:
            raise ModelSpecError(f"{r.origin}: field 'layer_types' must list one entry per layer ({layers})")
        bad = [t for t in types if t not in ("full_attention", "sliding_attention")]
        if bad:
            raise ModelSpecError(f"{r.origin}: field 'layer_types' has unknown kind {bad[0]!r}; expected "
                                 f"'full_attention' or 'sliding_attention'")
        return tuple(types)
    if window and model_type in _SLIDING_PATTERN:
        n = r.int("sliding_window_pattern", default=_SLIDING_PATTERN[model_type], positive=True, maximum=MAX_LAYERS)
        return tuple("sliding_attention" if (i + 1) % n else "full_attention" for i in range(layers))
    return ()


def _window(r: ConfigReader, model_type: str) -> int | None:
    if model_type in ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "qwen2_vl") and not r.get("use_sliding_window"):
        return None  # Qwen configs carry a window that is off unless use_sliding_window is true.
    if r.get("use_sliding_window") is not None and not r.get("use_sliding_window"):
        # any family: vLLM drops the window when use_sliding_window is false (config.get_hf_config_sliding_window:
        # "if hasattr(config, 'use_sliding_window') and not config.use_sliding_window: return None"), and so do
        # the transformers classes that carry the flag (Qwen2.5-VL: sliding_window 32768 with the flag false)
        return None
    if model_type == "phi3":
        return None  # the window (2047) is not modelled; full attention over the context is conservative.
    if model_type == "qwen3_next":
        return None  # Qwen3NextAttention has no sliding window (its transformers class deletes it).
    return r.int("sliding_window", required=False) or None


_EXPERTS = ("num_local_experts", "n_routed_experts", "num_experts")
_TOP_K = ("num_experts_per_tok", "experts_per_token", "num_experts_per_token")
_ALWAYS_MOE = {"mixtral": "MixtralSparseMoeBlock", "gpt_oss": "GptOssMLP", "deepseek_v2": "DeepseekV2MoE",
               "deepseek_v3": "DeepseekV3MoE", "glm4_moe": "Glm4MoeMoE", "minimax_m2": "MiniMaxM2SparseMoeBlock"}
"""Families whose transformers decoder layers (past first_k_dense_replace) build their MoE block unconditionally,
so 0 experts is a broken config, not a dense model. Qwen2-MoE / Qwen3-MoE build a dense MLP when num_experts is 0
(`config.num_experts > 0 and ...` in Qwen2MoeDecoderLayer), and so does tpplan; Llama 4 with 0 experts is read as
every layer dense (its tests)."""


def _present(r: ConfigReader, names: tuple[str, ...]) -> str:
    return next((n for n in names if r.get(n) is not None), names[0])


def _moe_fields(r: ConfigReader, model_type: str, intermediate: int) -> dict[str, Any]:
    experts = r.int(*_EXPERTS, required=False)
    if experts == 1 and model_type not in FAMILY_RULES:  # an unlisted type's one "expert" is its dense MLP
        return {}
    if not experts:
        if r.get(*_EXPERTS) is not None and model_type in _ALWAYS_MOE:
            raise ModelSpecError(f"{r.origin}: field '{_present(r, _EXPERTS)}' must be positive for model_type "
                                 f"{model_type!r} (every MoE layer is a {_ALWAYS_MOE[model_type]} that routes each "
                                 f"token to its experts), got 0")
        return {}
    top_k = r.int(*_TOP_K, positive=True)
    if top_k > experts:
        raise ModelSpecError(f"{r.origin}: field '{_present(r, _TOP_K)}' ({top_k}) exceeds "
                             f"{_present(r, _EXPERTS)} ({experts}): each token is routed to top-k of the experts; "
                             f"expected 1 to {experts}")
    return {"num_experts": experts, "num_experts_per_tok": top_k,
            "moe_intermediate_size": r.int("moe_intermediate_size", default=intermediate),
            "n_shared_experts": r.int("n_shared_experts", required=False),
            "first_k_dense_replace": r.int("first_k_dense_replace", required=False),
            "router_bias": model_type == "gpt_oss", "expert_bias": model_type == "gpt_oss",
            # Glm4MoeTopkRouter always holds e_score_correction_bias (GLM configs name no topk_method); MiniMax-M2's
            # MiniMaxM2SparseMoeBlock holds one too (use_routing_bias).
            "router_score_bias": r.get("topk_method") == "noaux_tc" or model_type == "glm4_moe"
            or (model_type == "minimax_m2" and bool(r.get("use_routing_bias", default=True))),
            "num_nextn_predict_layers": r.int("num_nextn_predict_layers", required=False, maximum=MAX_LAYERS)}


def _layer_index(r: ConfigReader, name: str, *, default: int, pick) -> int:
    """An ERNIE layer index that may be given per modality as a list (the text trunk takes `pick` of them, min of the
    starts and max of the ends, as transformers' Ernie4_5_Moe classes do)."""
    value = r.get(name)
    if value == -1:  # transformers' Ernie4_5_MoeConfig default for the end: the last layer
        return default
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return pick(value)
    return r.int(name, default=default) if value is not None else default


def ernie_moe_fields(r: ConfigReader, layers: int, intermediate: int) -> dict[str, Any]:
    """ERNIE 4.5 MoE (transformers models/ernie4_5_moe; vLLM model_executor/models/ernie45_moe.py
    Ernie4_5_MoeDecoderLayer): layer i is an MoE layer when use_moe (default: moe_num_experts > 0), (i + 1) %
    moe_layer_interval == 0 and moe_layer_start_index <= i <= moe_layer_end_index (defaults as transformers'
    Ernie4_5_MoeConfig, through which vLLM reads the config: start 1, end -1 = the last layer); the others run a
    dense MLP of intermediate_size. An MoE layer holds moe_num_experts gated experts of
    moe_intermediate_size routed top moe_k, a bias-free fp32 router Linear(hidden, experts) with an
    e_score_correction_bias (moe_use_aux_free), and moe_num_shared_experts shared experts as one ungated MLP of
    moe_intermediate_size x that count."""
    experts = r.int("moe_num_experts", required=False)
    if not experts or not r.get("use_moe", default=True):
        return {}
    top_k = r.int("moe_k", positive=True)
    if top_k > experts:
        raise ModelSpecError(f"{r.origin}: field 'moe_k' ({top_k}) exceeds moe_num_experts ({experts}): each token "
                             f"is routed to top-k of the experts; expected 1 to {experts}")
    start = _layer_index(r, "moe_layer_start_index", default=1, pick=min)
    end = _layer_index(r, "moe_layer_end_index", default=layers - 1, pick=max)
    interval = r.int("moe_layer_interval", default=1, positive=True)
    moe = tuple(i for i in range(layers) if (i + 1) % interval == 0 and start <= i <= end)
    if not moe:
        return {}
    return {"num_experts": experts, "num_experts_per_tok": top_k,
            "moe_intermediate_size": r.int("moe_intermediate_size", default=intermediate, positive=True),
            "n_shared_experts": r.int("moe_num_shared_experts", default=0), "moe_layers": moe,
            "router_score_bias": bool(r.get("moe_use_aux_free", default=False))}


def _mla_fields(r: ConfigReader) -> dict[str, Any]:
    if not r.get("kv_lora_rank"):
        return {}
    return {"q_lora_rank": r.int("q_lora_rank", required=False), "kv_lora_rank": r.int("kv_lora_rank"),
            "qk_nope_head_dim": r.int("qk_nope_head_dim"), "qk_rope_head_dim": r.int("qk_rope_head_dim"),
            "v_head_dim": r.int("v_head_dim")}


def _layer_list(r: ConfigReader, name: str, layers: int) -> list[int] | None:
    value = r.int_list(name)
    if name == "no_rope_layers" and value and len(value) < layers:  # [] means the default pattern (transformers)
        raise ModelSpecError(f"{r.origin}: field 'no_rope_layers' must have one entry per layer ({layers}), got "
                             f"{len(value)}")
    return value


def _llama4_fields(r: ConfigReader, layers: int, moe_fields: dict[str, Any]) -> dict[str, Any]:
    """Llama 4 text model (transformers models/llama4: Llama4TextConfig.__post_init__, Llama4TextDecoderLayer).

    MoE layers: `moe_layers`, else range(step - 1, layers, step) with interleave_moe_layer_step (default 1; Scout
    1 = every layer, Maverick 2 = layers 1, 3, ..., 47); the other layers run Llama4TextMLP of intermediate_size_mlp.
    An explicit empty `moe_layers` (only None takes the default) makes every layer dense: `moe_fields` (the
    experts read by _moe_fields) are then dropped, as they are without experts; the attention kinds stay.
    An MoE layer (Llama4TextMoe) holds num_local_experts experts of width `intermediate_size`, a bias-free router
    Linear(hidden, experts) and one always-active shared_expert of the same width.
    Attention kinds: `layer_types`, else no_rope_layers (1 = RoPE layer = 'chunked_attention', 0 = NoPE layer =
    'full_attention'; default int((i + 1) % no_rope_layer_interval != 0): every 4th layer global). A null
    attention_chunk_size leaves every layer full attention. The q/k L2 norm (use_qk_norm) has no parameters."""
    step = r.int("interleave_moe_layer_step", default=1, positive=True)
    moe = _layer_list(r, "moe_layers", layers)
    moe = moe if moe is not None else list(range(step - 1, layers, step))
    chunk = r.int("attention_chunk_size", required=False) or None
    kinds = r.get("layer_types")
    if kinds is None:
        no_rope = _layer_list(r, "no_rope_layers", layers)
        interval = r.int("no_rope_layer_interval", default=4, positive=True)
        rope = no_rope[:layers] if no_rope else [int((i + 1) % interval != 0) for i in range(layers)]
        kinds = ["chunked_attention" if x else "full_attention" for x in rope]
    if not isinstance(kinds, list) or len(kinds) != layers or any(
            k not in ("chunked_attention", "full_attention") for k in kinds):
        raise ModelSpecError(f"{r.origin}: field 'layer_types' must list 'chunked_attention' or 'full_attention' "
                             f"once per layer ({layers})")
    if chunk is None:
        kinds = ["full_attention"] * layers
    attention = {"attention_chunk_size": chunk, "layer_types": tuple(kinds) if chunk else ()}
    if not moe_fields or not moe:
        return attention
    return {**moe_fields, "moe_layers": tuple(moe), "n_shared_experts": 1,
            "moe_intermediate_size": r.int("intermediate_size", positive=True), "router_bias": False, **attention}


def _unwrap(cfg: Any, origin: str) -> tuple[dict[str, Any], str, str]:
    """(decoder config, its family, the outer model_type): vision-language wrappers (llava, mllama, gemma3) keep the
    decoder in text_config, whose model_type may name a text-only class (TEXT_MODEL_TYPES) or another name for a
    family's architecture (SAME_ARCHITECTURE: kimi_k2 is read as deepseek_v3)."""
    if not isinstance(cfg, dict):
        raise ModelSpecError(f"{origin}: expected a JSON object, got {type(cfg).__name__}")
    outer_type = cfg.get("model_type")
    if isinstance(cfg.get("text_config"), dict):
        cfg = {**cfg, **cfg["text_config"]}
    model_type = cfg.get("model_type")
    if not isinstance(model_type, str):
        raise ModelSpecError(f"{origin}: required field 'model_type' is missing; supported model types: "
                             f"{', '.join(SUPPORTED)}")
    model_type = SAME_ARCHITECTURE.get(model_type, TEXT_MODEL_TYPES.get(model_type, model_type))
    return cfg, model_type, outer_type if isinstance(outer_type, str) else model_type


def _same_architecture_notes(cfg: dict[str, Any]) -> list[str]:
    declared = cfg.get("model_type")
    if declared not in SAME_ARCHITECTURE:
        return []
    return [f"model_type {declared!r} runs {SAME_ARCHITECTURE[declared]}'s architecture (architectures "
            f"{cfg.get('architectures')}); read as {SAME_ARCHITECTURE[declared]!r}"]


def _attention_shape(r: ConfigReader) -> dict[str, int]:
    """hidden, layers, heads, KV heads (1 for multi_query, else MHA) and head_dim (hidden / heads when absent)."""
    hidden = r.int("hidden_size", "n_embd", "d_model", positive=True)
    layers = r.int("num_hidden_layers", "n_layer", "num_layers", positive=True, maximum=MAX_LAYERS)
    heads = r.int("num_attention_heads", "n_head", positive=True)
    kv = r.int("num_key_value_heads", "num_kv_heads", "n_head_kv", default=1 if r.get("multi_query") else heads)
    if heads == 0 or kv == 0 or heads % kv:
        raise ModelSpecError(f"{r.origin}: num_attention_heads ({heads}) must be a positive multiple of "
                             f"num_key_value_heads ({kv})")
    head_dim = r.int("head_dim", required=False)
    if not head_dim:
        if hidden % heads:
            raise ModelSpecError(f"{r.origin}: field 'head_dim' is missing and hidden_size ({hidden}) is not "
                                 f"divisible by num_attention_heads ({heads}); add head_dim")
        head_dim = hidden // heads
    return {"hidden": hidden, "layers": layers, "heads": heads, "kv": kv, "head_dim": head_dim}


def _mlp(r: ConfigReader, model_type: str, hidden: int, layers: int) -> tuple[int, dict[str, Any], list[str]]:
    """(dense MLP width, MoE fields, notes). Falcon, GPT-J and GPTBigCode default to 4 x hidden; Llama 4's
    intermediate_size is the expert width and its dense layers use intermediate_size_mlp."""
    intermediate = r.int("intermediate_size", "ffn_hidden_size", "n_inner",
                         default=4 * hidden if model_type in ("falcon", "gptj", "gpt_bigcode") else None)
    if model_type == "ernie4_5_moe":
        return intermediate, ernie_moe_fields(r, layers, intermediate), []
    moe = _moe_fields(r, model_type, intermediate)
    if model_type in ("qwen2_moe", "qwen3_next"):  # both build Qwen2MoeSparseMoeBlock: a gated shared expert
        return intermediate, qwen3_next_moe(r, layers, moe), []
    if model_type == "qwen3_moe":  # Qwen3MoeSparseMoeBlock has no shared expert; the same layer rule
        return intermediate, qwen_moe_layers(r, layers, moe), []
    if model_type != "llama4":
        return intermediate, moe, []
    moe = _llama4_fields(r, layers, moe)
    return r.int("intermediate_size_mlp", positive=True), moe, [_llama4_note(moe)]


def _check_dense_width(r: ConfigReader, intermediate: int | None, moe: dict[str, Any], layers: int) -> None:
    """A model with a dense MLP layer needs a positive MLP width (a 0 would plan a model without MLPs)."""
    if not moe:
        dense = layers
    elif moe.get("moe_layers"):
        dense = layers - len(moe["moe_layers"])
    else:
        dense = moe.get("first_k_dense_replace") or 0
    if dense and (intermediate is None or intermediate <= 0):
        name = _present(r, ("intermediate_size", "ffn_hidden_size", "n_inner", "intermediate_size_mlp"))
        raise ModelSpecError(f"{r.origin}: field '{name}' must be positive (the width of the {dense} dense MLP "
                             f"layer{'s' * (dense != 1)}), got {r.get(name)!r}")


def spec_from_hf_config(cfg: dict[str, Any], *, origin: str = "config.json", name: str | None = None,
                        extra: dict[str, Any] | None = None) -> ModelSpec:
    """Build a ModelSpec from a config.json dict. `origin` names the file in errors."""
    cfg, model_type, outer_type = _unwrap(cfg, origin)
    cfg, default_notes = apply_defaults(cfg, model_type)
    default_notes = [*_same_architecture_notes(cfg), *default_notes]
    r = ConfigReader(cfg, origin)
    check_model_type(r, model_type)
    shape = _attention_shape(r)
    family, notes = family_fields(r, model_type)
    intermediate, moe, mlp_notes = _mlp(r, model_type, shape["hidden"], shape["layers"])
    _check_dense_width(r, intermediate, moe, shape["layers"])
    max_positions = r.int("max_position_embeddings", "n_positions", "seq_length", "max_seq_len", positive=True)
    context, rope, rope_notes = rope_context(cfg, max_positions, origin, model_type)
    try:
        vision = vision_params(cfg, outer_type, shape["hidden"])
    except ModelSpecError as exc:
        raise ModelSpecError(f"{origin}: {exc}") from exc
    if isinstance(cfg.get("vision_config"), dict) and outer_type not in SIZED_VISION_TYPES:
        notes = (*notes, f"vision_config of model_type {outer_type!r} is not sized by tpplan: its vision tower is "
                         f"neither counted in the parameters nor planned (the language model is)")
    try:
        return _build(r, model_type=model_type, name=name, origin=origin, shape=shape, intermediate=intermediate,
                      window=_window(r, model_type), context=context, fields={**family, **moe, **_mla_fields(r)},
                      notes=(*default_notes, *rope_notes, *notes, *mlp_notes),
                      extra={"rope_scaling": rope, "vision_params": vision,
                             "remote_code": cfg.get("model_type") in SAME_ARCHITECTURE, **(extra or {})})
    except ValueError as exc:  # ModelSpec's own checks: one line naming the field, never a traceback
        raise ModelSpecError(f"{origin}: {exc}") from exc


def _llama4_note(moe: dict[str, Any]) -> str:
    chunked = sum(k == "chunked_attention" for k in moe.get("layer_types", ()))
    if not chunked:
        return "Llama 4: every layer is full attention (attention_chunk_size is null)"
    return (f"Llama 4: {chunked} layers use chunked local attention ({moe['attention_chunk_size']:,}-token chunks): "
            f"their attention reads at most one chunk, but their KV cache is counted over the whole context (vLLM "
            f"disables its hybrid KV cache manager for chunked attention by default)")


_CHECKPOINT_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
"""config.json torch_dtype -> the name of the plain format (ModelSpec.checkpoint_dtype)."""


def _build(r: ConfigReader, *, model_type: str, name: str | None, origin: str, shape: dict[str, int],
           intermediate: int, window: int | None, context: int, fields: dict[str, Any], notes: tuple[str, ...],
           extra: dict[str, Any]) -> ModelSpec:
    layers = shape["layers"]
    return resolve_layer_formats(ModelSpec(
        name=name or _hub_id(r.get("_name_or_path")) or _name_from_path(origin) or model_type,
        model_type=model_type, hidden_size=shape["hidden"], num_hidden_layers=layers,
        num_attention_heads=shape["heads"], num_key_value_heads=shape["kv"], head_dim=shape["head_dim"],
        intermediate_size=intermediate, vocab_size=r.int("vocab_size", "padded_vocab_size", positive=True),
        max_position_embeddings=context,
        tie_word_embeddings=bool(r.get("tie_word_embeddings", default=True)),
        checkpoint_dtype=_CHECKPOINT_DTYPES.get(str(r.get("torch_dtype", "dtype")), ""),
        sliding_window=window,
        layer_types=fields["layer_types"] if "layer_types" in fields else _layer_types(r, layers, model_type, window),
        quantization=(parse_quantization_config(r.cfg["quantization_config"], origin=origin)
                      if r.cfg.get("quantization_config") is not None else None),
        **{k: v for k, v in fields.items() if k != "layer_types"}, notes=notes, **extra))


def _hub_id(value: object) -> str:
    """`_name_or_path` when it is a Hub id; '' when it is a local path (starcoder2-15b ships
    '/aot/checkpoints/15b/config.json'), so the file's own name is shown instead."""
    text = str(value or "")
    return "" if text.startswith(("/", ".", "~")) or "\\" in text else text


def _name_from_path(origin: str) -> str:
    """'configs/phi-2.json' -> 'phi-2'; '.../Llama-3.1-8B/config.json' -> 'Llama-3.1-8B'."""
    p = Path(origin)
    return p.parent.name if p.name == "config.json" else p.stem


def load_config_file(path: Path) -> ModelSpec:
    """Load `path` (a config.json, or a directory holding one)."""
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise ModelSpecError(f"{path}: no config.json found; pass a Hugging Face config.json or a directory "
                             f"holding one")
    try:
        cfg = load_json(file.read_text(encoding="utf-8"), origin=str(file), error=ModelSpecError)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelSpecError(f"{file}: not valid JSON ({exc}); download the model's config.json again") from exc
    return spec_from_hf_config(cfg, origin=str(file))

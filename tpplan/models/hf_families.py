"""Per-family rules: what a Hugging Face model_type fixes about its layers (biases, norms, MLP kind, parallel
attention), as the family's transformers modeling file builds them. One small function per family, looked up in
FAMILY_RULES; a model_type that is not there is read as a Llama-style decoder only when its MLP is a gated SiLU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tpplan.errors import ModelSpecError
from tpplan.models.hf_hybrid import qwen3_next_fields
from tpplan.models.hf_reader import ConfigReader

Fields = tuple[dict[str, Any], list[str]]
"""ModelSpec fields that follow from the family, and notes on anything assumed."""

GATED_FAMILIES = {"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma",
                  "gemma2", "gemma3", "phi3", "deepseek_v2", "deepseek_v3", "gpt_oss", "granite", "olmo2", "qwen2_vl",
                  "mllama", "llama4", "cohere", "cohere2", "internlm2", "glm4_moe", "ernie4_5", "ernie4_5_moe",
                  "olmoe", "phimoe", "granitemoe"}
NON_GATED_FAMILIES = {"falcon", "gpt_bigcode", "gpt_neox", "gptj", "phi", "starcoder2"}
TEXT_MODEL_TYPES = {"mllama_text_model": "mllama", "llama4_text": "llama4", "gemma3_text": "gemma3"}
"""model_type of a text_config (or of a text-only checkpoint) -> the family whose defaults and shapes it takes."""
SAME_ARCHITECTURE = {"kimi_k2": "deepseek_v3"}
"""model_type -> the family whose architecture class the checkpoint runs, read as that family (a note says so).
Kimi K2 (moonshotai/Kimi-K2-Instruct config.json: architectures ["DeepseekV3ForCausalLM"], auto_map
configuration_deepseek.DeepseekV3Config) is DeepSeek-V3's MLA + MoE decoder with other sizes; Moonshot sets
model_type "kimi_k2" only so that engines can tell it apart, and says a framework without it may serve the model with
model_type changed to "deepseek_v3" (Kimi-K2 docs/deploy_guidance.md)."""
OWN_RULE_FAMILIES = {"minimax_m2", "qwen3_next"}
"""Gated MoE families read by their own rule only (never as a Llama-style decoder)."""
SUPPORTED = sorted(GATED_FAMILIES | NON_GATED_FAMILIES | OWN_RULE_FAMILIES | set(SAME_ARCHITECTURE)
                   | {"llava", "mistral3"})
"""Model types tpplan reads: the families, types read as one of them, and vision-language wrappers whose text_config
names one of them."""
_GATED_ACTS = {"silu", "swish", "swiglu"}
_GATED_EXTRAS: dict[str, dict[str, Any]] = {
    # gpt-oss (modeling_gpt_oss.py): biased q/k/v/o, one learned sink logit per head.
    "gpt_oss": {"o_proj_bias": True, "attention_sinks": True, "attention_bias": True},
    # Gemma2DecoderLayer: input, post_attention, pre_feedforward and post_feedforward RMSNorms.
    "gemma2": {"norms_per_layer": 4},
    # Gemma3DecoderLayer: Gemma 2's four norms plus q_norm / k_norm (Gemma3RMSNorm of head_dim).
    "gemma3": {"norms_per_layer": 4, "qk_norm": True},
    # Qwen3Attention: q_norm / k_norm (RMSNorm of head_dim).
    "qwen3": {"qk_norm": True},
    "qwen3_moe": {"qk_norm": True},
    # Olmo2Attention (transformers models/olmo2/modeling_olmo2.py): q_norm = RMSNorm(heads x head_dim) and k_norm =
    # RMSNorm(kv heads x head_dim) over the whole projection; vLLM's Olmo2Attention gathers q and k over the TP group
    # before them (tensor_model_parallel_all_gather in _apply_qk_norm).
    "olmo2": {"qk_norm": True, "qk_norm_per_head": True, "qk_norm_full_width": True},
    # OlmoeAttention (transformers models/olmoe/modeling_olmoe.py): q_norm = RMSNorm(hidden_size), k_norm =
    # RMSNorm(kv heads x head_dim), OLMo 2's full-width norms; the MoE block is Mixtral's (num_experts gated experts
    # of intermediate_size, a bias-free router), read by hf_config._moe_fields.
    "olmoe": {"qk_norm": True, "qk_norm_per_head": True, "qk_norm_full_width": True},
}


def _gpt_neox(r: ConfigReader, model_type: str) -> Fields:
    """GPT-NeoX (modeling_gpt_neox.py): fused qkv and dense with biases, GELU MLP with biases, 2 LayerNorms.
    Phi (modeling_phi.py): same blocks with one input LayerNorm per layer and a bias on lm_head."""
    return {"gated_mlp": False, "norm_type": "layer", "attention_bias": True, "o_proj_bias": True,
            "mlp_bias": True, "norms_per_layer": 1 if model_type == "phi" else 2,
            "lm_head_bias": model_type == "phi"}, []


def _gptj(r: ConfigReader, model_type: str) -> Fields:
    """GPT-J (modeling_gptj.py): attention and MLP in parallel from one LayerNorm (ln_1); q/k/v/out_proj without
    bias, GELU MLP fc_in / fc_out with bias, lm_head with bias, untied; rotary on rotary_dim of each head."""
    return {"gated_mlp": False, "norm_type": "layer", "parallel_attn": True, "attention_bias": False,
            "o_proj_bias": False, "mlp_bias": True, "norms_per_layer": 1, "lm_head_bias": True}, []


def _gpt_bigcode(r: ConfigReader, model_type: str) -> Fields:
    """GPTBigCode (StarCoder 1, SantaCoder; modeling_gpt_bigcode.py): fused c_attn (q plus one shared k/v head when
    multi_query) and c_proj with biases, GELU MLP c_fc / c_proj with biases, 2 LayerNorms, a learned position
    embedding wpe of n_positions rows, lm_head tied to wte."""
    return {"gated_mlp": False, "norm_type": "layer", "attention_bias": True, "o_proj_bias": True, "mlp_bias": True,
            "position_embedding_rows": r.int("max_position_embeddings", "n_positions", positive=True)}, []


def _starcoder2(r: ConfigReader, model_type: str) -> Fields:
    """Starcoder2 (modeling_starcoder2.py): q/k/v/o and c_fc/c_proj with bias=use_bias, GELU MLP, 2 LayerNorms."""
    bias = r.get("use_bias") is not False
    return {"gated_mlp": False, "norm_type": "layer", "attention_bias": bias, "o_proj_bias": bias,
            "mlp_bias": bias}, []


def _falcon(r: ConfigReader, model_type: str) -> Fields:
    """Falcon (modeling_falcon.py): parallel attention + GELU MLP; one LayerNorm (7B/40B-style) or two
    (new_decoder_architecture: ln_attn and ln_mlp); every Linear's bias follows `bias`."""
    if not r.get("new_decoder_architecture") and not r.get("parallel_attn", default=True):
        raise ModelSpecError(f"{r.origin}: Falcon configs without parallel_attn are not supported")
    bias = bool(r.get("bias", default=False))
    return {"gated_mlp": False, "norm_type": "layer", "parallel_attn": True, "attention_bias": bias,
            "o_proj_bias": bias, "mlp_bias": bias,
            "norms_per_layer": 2 if r.get("new_decoder_architecture") else 1}, []


def _mllama(r: ConfigReader, model_type: str) -> Fields:
    """Llama-3.2-Vision's text model: Llama layers, some of which are cross-attention layers; the input embedding
    has 8 rows more than the vocabulary (MllamaTextModel: nn.Embedding(config.vocab_size + 8, hidden_size))."""
    cross = r.get("cross_attention_layers")
    if not isinstance(cross, list) or any(isinstance(i, bool) or not isinstance(i, int) for i in cross):
        raise ModelSpecError(f"{r.origin}: field 'cross_attention_layers' must be a list of layer indices, got "
                             f"{cross!r}")
    total = r.int("num_hidden_layers", default=1)
    note = (f"{len(cross)} of the {total} layers are cross-attention layers: their KV cache holds the image's "
            f"tokens, not the text's; planned for text-only requests (no text KV in those layers, image KV not "
            f"counted; their matmuls still run every step)")
    return {"cross_attention_layers": tuple(cross), "embedding_extra_rows": 8,
            "attention_bias": False, "mlp_bias": False}, [note]


def _cohere(r: ConfigReader, model_type: str) -> Fields:
    """Command R / Aya (cohere, modeling_cohere.py) and Command R7B (cohere2, modeling_cohere2.py): attention and the
    gated SiLU MLP in parallel from one input_layernorm; CohereLayerNorm has a weight and no bias, so it counts as
    one hidden-size vector (norm_type 'rms'); no Linear biases unless attention_bias; tied embeddings by default.
    cohere's use_qk_norm adds q_norm / k_norm with a weight row per head (Command R+)."""
    qk = model_type == "cohere" and bool(r.get("use_qk_norm", default=False))
    return {"parallel_attn": True, "norms_per_layer": 1, "attention_bias": bool(r.get("attention_bias", default=False)),
            "mlp_bias": False, "qk_norm": qk, "qk_norm_per_head": qk}, []


def _internlm2(r: ConfigReader, model_type: str) -> Fields:
    """InternLM2 (remote code modeling_internlm2.py): fused wqkv and wo with bias=config.bias (InternLM2Config default
    True; the published checkpoints say false), gated SiLU MLP w1/w3/w2 without bias, RMSNorms, untied output."""
    bias = bool(r.get("bias", default=True))
    return {"attention_bias": bias, "o_proj_bias": bias, "mlp_bias": False}, []


def _glm4_moe(r: ConfigReader, model_type: str) -> Fields:
    """GLM-4.5 / GLM-4.5-Air / GLM-4.6 (transformers src/transformers/models/glm4_moe/modeling_glm4_moe.py).

    Glm4MoeDecoderLayer: input_layernorm and post_attention_layernorm (RMSNorm); Glm4MoeAttention with q/k/v biased
    when attention_bias (Glm4MoeConfig default False; the GLM-4.5 checkpoints say true), o_proj without bias, and
    q_norm / k_norm (Glm4MoeRMSNorm of head_dim) when use_qk_norm (default False; GLM-4.5 and 4.6 true, 4.5-Air
    false); rotary on partial_rotary_factor of each head (no parameters). Layers below first_k_dense_replace run a
    dense gated MLP of intermediate_size; the others a Glm4MoeMoE: n_routed_experts gated experts of
    moe_intermediate_size, one shared expert of n_shared_experts x moe_intermediate_size, and a Glm4MoeTopkRouter
    (weight n_routed_experts x hidden and an e_score_correction_bias of n_routed_experts, both in the checkpoint).
    num_nextn_predict_layers MTP layers follow (see ModelSpec.num_nextn_predict_layers)."""
    return {"attention_bias": bool(r.get("attention_bias", default=False)), "o_proj_bias": False, "mlp_bias": False,
            "qk_norm": bool(r.get("use_qk_norm", default=False))}, []


def _minimax_m2(r: ConfigReader, model_type: str) -> Fields:
    """MiniMax-M2 (transformers src/transformers/models/minimax_m2/modeling_minimax_m2.py; vLLM
    vllm/model_executor/models/minimax_m2.py). MiniMaxM2DecoderLayer: input_layernorm and post_attention_layernorm
    (RMSNorm); MiniMaxM2Attention: bias-free q/k/v/o and q_norm = RMSNorm(heads x head_dim), k_norm = RMSNorm(kv
    heads x head_dim) over the whole projection (qk_norm_type 'per_layer', counted as qk_norm_per_head: the same
    (heads + kv heads) x head_dim weights); RoPE on rotary_dim of each head (no parameters). Every layer is a
    MiniMaxM2SparseMoeBlock: num_local_experts gated experts of width intermediate_size, a bias-free router
    Linear(hidden, experts) with sigmoid scores, and e_score_correction_bias (one per expert, in the checkpoint);
    no shared expert. The MTP modules (use_mtp, num_mtp_modules) are a speculative draft: not counted or planned."""
    if r.get("qk_norm_type") not in (None, "per_layer"):
        raise ModelSpecError(f"{r.origin}: field 'qk_norm_type' is {r.get('qk_norm_type')!r}; tpplan reads "
                             f"MiniMax-M2's 'per_layer' q/k norms only")
    if r.get("shared_intermediate_size"):
        raise ModelSpecError(f"{r.origin}: field 'shared_intermediate_size' is {r.get('shared_intermediate_size')!r};"
                             f" MiniMax-M2 checkpoints have no shared expert (0) and tpplan reads none")
    kinds = r.get("attn_type_list")
    if isinstance(kinds, list) and any(k != 1 for k in kinds):
        raise ModelSpecError(f"{r.origin}: field 'attn_type_list' names lightning-attention layers (0); tpplan reads "
                             f"MiniMax-M2's softmax-attention layers (1) only")
    notes = []
    if r.get("use_mtp") or r.get("num_mtp_modules"):
        notes.append(f"the checkpoint's {r.get('num_mtp_modules')} MTP modules (a speculative-decoding draft) are "
                     f"neither counted nor planned")
    qk = bool(r.get("use_qk_norm", default=True))
    return {"attention_bias": False, "o_proj_bias": False, "mlp_bias": False, "qk_norm": qk,
            "qk_norm_per_head": qk, "qk_norm_full_width": qk}, notes


def _ernie4_5(r: ConfigReader, model_type: str) -> Fields:
    """ERNIE 4.5 (Baidu; transformers models/ernie4_5 and ernie4_5_moe, vLLM model_executor/models/ernie45.py and
    ernie45_moe.py): Llama-style layers whose q/k/v and MLP Linears carry a bias when `use_bias` (false in the
    published checkpoints). The MoE layers are read in tpplan.models.hf_config (`ernie_moe_fields`)."""
    bias = bool(r.get("use_bias", default=False))
    return {"attention_bias": bias, "o_proj_bias": False, "mlp_bias": bias}, []


def _phimoe(r: ConfigReader, model_type: str) -> Fields:
    """Phi-3.5-MoE (transformers models/phimoe/modeling_phimoe.py): LayerNorms with bias (input, post-attention and
    final), q/k/v/o Linears with bias=attention_bias, lm_head with bias=lm_head_bias; the MoE block is Mixtral's
    (num_local_experts gated experts w1/w3/w2 without bias, a bias-free router), read by hf_config._moe_fields."""
    bias = bool(r.get("attention_bias", default=False))
    return {"norm_type": "layer", "attention_bias": bias, "o_proj_bias": bias, "mlp_bias": False,
            "lm_head_bias": bool(r.get("lm_head_bias", default=False))}, []


def _gated(r: ConfigReader, model_type: str) -> Fields:
    """Llama-style decoders: gated MLP, RMSNorms; biases as the config's attention_bias / mlp_bias say (Qwen2's
    q/k/v carry a bias by default), plus the family's extras (_GATED_EXTRAS)."""
    fields: dict[str, Any] = {"attention_bias": bool(r.get("attention_bias", default=model_type.startswith("qwen2"))),
                              "mlp_bias": bool(r.get("mlp_bias", default=False)),
                              **_GATED_EXTRAS.get(model_type, {})}
    return fields, []


FAMILY_RULES: dict[str, Callable[[ConfigReader, str], Fields]] = {
    "gpt_neox": _gpt_neox, "phi": _gpt_neox, "gptj": _gptj, "gpt_bigcode": _gpt_bigcode, "starcoder2": _starcoder2,
    "falcon": _falcon,
    "mllama": _mllama, "cohere": _cohere, "cohere2": _cohere, "internlm2": _internlm2, "glm4_moe": _glm4_moe,
    "minimax_m2": _minimax_m2, "qwen3_next": qwen3_next_fields, "ernie4_5": _ernie4_5, "ernie4_5_moe": _ernie4_5,
    "phimoe": _phimoe,
    **{t: _gated for t in GATED_FAMILIES - {"mllama", "cohere", "cohere2", "internlm2", "glm4_moe", "ernie4_5",
                                            "ernie4_5_moe", "phimoe"}},
}


_UNREAD_STRUCTURE = (
    ("routed experts", ("expert", "moe_")),
    ("state-space or linear-attention layers", ("mamba", "ssm", "state_size", "conv_kernel", "linear_attn",
                                                "linear_conv", "attn_layer_period", "layers_block_type",
                                                "hybrid_override_pattern", "time_step")),
    ("latent (MLA) attention", ("kv_lora_rank", "q_lora_rank")),
    ("cross-attention layers", ("cross_attention",)),
)
"""Config keys (substrings, lower case) that describe layers a Llama-style reading would not see, and what they
describe: an unlisted model_type whose config sets one (to anything but 0, false, null or an empty list) is
refused rather than planned as a plain decoder (ERNIE-4.5's moe_num_experts, Jamba's attn_layer_period and
expert_layer_period, Falcon-Mamba's state_size)."""


def _unset(value: object) -> bool:
    """A structure key's value that describes nothing: null, false, 0 or 1 (one "expert" is a dense MLP), an empty
    list or mapping, or a string such as "none"."""
    if isinstance(value, bool) or value is None:
        return not value
    if isinstance(value, int | float):
        return value <= 1
    if isinstance(value, str):
        return value.strip().lower() in ("", "none", "null", "dense", "false")
    return not value


def _unread_structure(r: ConfigReader) -> tuple[str, list[str]] | None:
    """(what, the keys that say so) for the first kind of `_UNREAD_STRUCTURE` the config sets, else None."""
    for what, needles in _UNREAD_STRUCTURE:
        keys = [k for k, v in r.cfg.items() if isinstance(k, str) and any(n in k.lower() for n in needles)
                and not _unset(v)]
        if keys:
            return what, sorted(keys)
    return None


def check_model_type(r: ConfigReader, model_type: str) -> None:
    """Refuse a model_type tpplan cannot read before any other field is asked for (a config of an unknown type
    would otherwise be reported for a missing size field): an unlisted type is read only when its hidden_act says
    the MLP is a gated SiLU and its config describes no layers that a Llama-style reading would ignore
    (`_UNREAD_STRUCTURE`)."""
    if model_type in FAMILY_RULES:
        return
    unread = _unread_structure(r)
    if unread is not None:
        what, keys = unread
        shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
        raise ModelSpecError(f"{r.origin}: model_type {model_type!r} is not supported: its config describes {what} "
                             f"({shown}) that tpplan cannot plan for this type; supported model types: "
                             f"{', '.join(SUPPORTED)}")
    act = r.get("hidden_act", "hidden_activation")
    if act is None:
        raise ModelSpecError(f"{r.origin}: unsupported model_type {model_type!r}; supported model types: "
                             f"{', '.join(SUPPORTED)} (a type not listed is read as a Llama-style decoder only when "
                             f"its hidden_act is 'silu')")
    if str(act) not in _GATED_ACTS:
        raise ModelSpecError(
            f"{r.origin}: model_type {model_type!r} is not supported and its shapes cannot be derived "
            f"(hidden_act {str(act)!r} is not a gated SiLU MLP); supported model types: {', '.join(SUPPORTED)}")


def family_fields(r: ConfigReader, model_type: str) -> Fields:
    """Fields that follow from the family, plus notes on anything assumed. An unknown model_type is read as a
    Llama-style decoder when its MLP is a gated SiLU; otherwise it is one error naming the supported types."""
    rule = FAMILY_RULES.get(model_type)
    if rule is not None:
        return rule(r, model_type)
    check_model_type(r, model_type)
    fields, _ = _gated(r, model_type)
    return fields, [f"model_type {model_type!r} is not in tpplan's list; shapes derived as a Llama-style "
                    f"decoder (gated SiLU MLP, RMSNorm)"]

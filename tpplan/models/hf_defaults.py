"""What transformers does with a config.json before tpplan reads it: config-class defaults, rope_scaling context,
vision towers.

DEFAULTS: a field missing from a config.json takes the default of its model_type's transformers config class
(src/transformers/models/<type>/configuration_<type>.py, `__init__` keyword defaults); PretrainedConfig's
tie_word_embeddings default is True, and the classes below that pass False say so.
"""

from __future__ import annotations

import math
from typing import Any

from tpplan.errors import ModelSpecError

_COHERE = {"vocab_size": 256000, "hidden_size": 8192, "intermediate_size": 22528, "num_hidden_layers": 40,
           "num_attention_heads": 64, "max_position_embeddings": 8192, "tie_word_embeddings": True}
"""CohereConfig's defaults; Cohere2Config's are the same plus sliding_window 4096 (see DEFAULTS)."""

DEFAULTS: dict[str, dict[str, Any]] = {
    # FalconConfig: vocab 65024, hidden 4544, 32 layers, 71 heads, max_position_embeddings 2048, parallel_attn,
    # multi_query True, no bias (falcon-7b's defaults; falcon-40b's config.json has no max_position_embeddings).
    "falcon": {"vocab_size": 65024, "hidden_size": 4544, "num_hidden_layers": 32, "num_attention_heads": 71,
               "max_position_embeddings": 2048, "tie_word_embeddings": True},
    # LlamaConfig: vocab 32000, hidden 4096, intermediate 11008, 32 layers / heads, 2048 positions, untied.
    "llama": {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
              "num_attention_heads": 32, "max_position_embeddings": 2048, "tie_word_embeddings": False},
    # MistralConfig: intermediate 14336, 8 KV heads, 4096 * 32 positions, sliding_window 4096, untied.
    "mistral": {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 131072,
                "tie_word_embeddings": False},
    # MixtralConfig (transformers models/mixtral/configuration_mixtral.py): MistralConfig's shapes, 4096 * 32
    # positions, no sliding window, untied, 8 local experts top-2.
    "mixtral": {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 131072,
                "tie_word_embeddings": False, "num_local_experts": 8, "num_experts_per_tok": 2},
    # GptOssConfig (transformers models/gpt_oss/configuration_gpt_oss.py): gpt-oss-120b's shapes: vocab 201088, hidden
    # and expert width 2880, 36 layers, 64 heads of 64, 8 KV heads, 131072 positions, sliding_window 128, untied,
    # 128 local experts top-4 (num_local_experts 128, num_experts_per_tok 4).
    "gpt_oss": {"vocab_size": 201088, "hidden_size": 2880, "intermediate_size": 2880, "num_hidden_layers": 36,
                "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64,
                "max_position_embeddings": 131072, "sliding_window": 128, "tie_word_embeddings": False,
                "num_local_experts": 128, "num_experts_per_tok": 4},
    # Qwen2Config: vocab 151936, hidden 4096, intermediate 22016, 32 layers / heads / KV heads, 32768 positions.
    "qwen2": {"vocab_size": 151936, "hidden_size": 4096, "intermediate_size": 22016, "num_hidden_layers": 32,
              "num_attention_heads": 32, "num_key_value_heads": 32, "max_position_embeddings": 32768,
              "tie_word_embeddings": False},
    # Gemma2Config: vocab 256000, hidden 2304, intermediate 9216, 26 layers, 8 heads, 4 KV heads of 256, 8192.
    "gemma2": {"vocab_size": 256000, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
               "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "max_position_embeddings": 8192,
               "tie_word_embeddings": True},
    # GPTNeoXConfig: vocab 50432, hidden 6144, 44 layers, 64 heads, intermediate 24576, 2048 positions, untied.
    "gpt_neox": {"vocab_size": 50432, "hidden_size": 6144, "num_hidden_layers": 44, "num_attention_heads": 64,
                 "intermediate_size": 24576, "max_position_embeddings": 2048, "tie_word_embeddings": False},
    # Starcoder2Config: vocab 49152, hidden 3072, intermediate 12288, 30 layers, 24 heads, 2 KV heads, 4096
    # positions, use_bias True, tied embeddings (starcoder2-3b's config.json names no tie_word_embeddings: tied).
    "starcoder2": {"vocab_size": 49152, "hidden_size": 3072, "intermediate_size": 12288, "num_hidden_layers": 30,
                   "num_attention_heads": 24, "num_key_value_heads": 2, "max_position_embeddings": 4096,
                   "use_bias": True, "tie_word_embeddings": True},
    # MllamaTextConfig (the text_config of model_type mllama): vocab 128256, hidden 4096, intermediate 14336,
    # 40 layers, 32 heads, 8 KV heads, 131072 positions, untied, cross_attention_layers [3, 8, ..., 38].
    "mllama": {"vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 40,
               "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 131072,
               "tie_word_embeddings": False, "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38]},
    # Llama4TextConfig (transformers models/llama4/configuration_llama4.py): vocab 202048, hidden 5120, intermediate
    # (expert width) 8192, intermediate_size_mlp (dense layers) 16384, 48 layers, 40 heads, 8 KV heads, head_dim 128,
    # 4096 * 32 positions, untied, 16 local experts top-1, interleave_moe_layer_step 1, no_rope_layer_interval 4,
    # attention_chunk_size 8192, attention_bias False.
    "llama4": {"vocab_size": 202048, "hidden_size": 5120, "intermediate_size": 8192, "intermediate_size_mlp": 16384,
               "num_hidden_layers": 48, "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128,
               "max_position_embeddings": 131072, "tie_word_embeddings": False, "num_local_experts": 16,
               "num_experts_per_tok": 1, "interleave_moe_layer_step": 1, "no_rope_layer_interval": 4,
               "attention_chunk_size": 8192},
    # GPTJConfig: vocab 50400, n_embd 4096, n_layer 28, n_head 16, n_positions 2048, n_inner None (4 x n_embd),
    # rotary_dim 64, untied (tie_word_embeddings=False).
    "gptj": {"vocab_size": 50400, "hidden_size": 4096, "num_hidden_layers": 28, "num_attention_heads": 16,
             "max_position_embeddings": 2048, "tie_word_embeddings": False},
    # Gemma3TextConfig (transformers models/gemma3/configuration_gemma3.py): vocab 262208, hidden 2304, intermediate
    # 9216, 26 layers, 8 heads, 4 KV heads of 256, 131072 positions, sliding_window 4096, tied. google/gemma-3-4b-it's
    # config.json names only hidden, intermediate, layers, window and rope_scaling and takes the rest from here.
    "gemma3": {"vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
               "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "max_position_embeddings": 131072,
               "sliding_window": 4096, "tie_word_embeddings": True},
    # CohereConfig / Cohere2Config (transformers models/cohere, models/cohere2): vocab 256000, hidden 8192, intermediate
    # 22528, 40 layers, 64 heads (KV heads = heads), 8192 positions, tied; Cohere2 adds sliding_window 4096.
    "cohere": _COHERE,
    "cohere2": {**_COHERE, "sliding_window": 4096},
    # InternLM2Config (remote code configuration_internlm2.py, mirrored by MindIE's Internlm2Config): untied output.
    "internlm2": {"tie_word_embeddings": False},
    # GPTBigCodeConfig: vocab 50257, n_embd 768, n_layer 12, n_head 12, n_positions 1024, multi_query True, tied.
    "gpt_bigcode": {"vocab_size": 50257, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                    "max_position_embeddings": 1024, "multi_query": True, "tie_word_embeddings": True},
    # PhiConfig: vocab 51200, hidden 2048, intermediate 8192, 24 layers, 32 heads, 2048 positions, untied.
    "phi": {"vocab_size": 51200, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 24,
            "num_attention_heads": 32, "max_position_embeddings": 2048, "tie_word_embeddings": False},
    # Glm4MoeConfig (transformers models/glm4_moe/configuration_glm4_moe.py): untied (tie_word_embeddings=False).
    "glm4_moe": {"tie_word_embeddings": False},
    # MiniMaxM2Config (transformers models/minimax_m2/configuration_minimax_m2.py): vocab 200064, hidden 3072, expert
    # width (intermediate_size) 1536, 62 layers, 48 heads, 8 KV heads of 128, 196608 positions, untied, 256 local
    # experts top-8.
    "minimax_m2": {"vocab_size": 200064, "hidden_size": 3072, "intermediate_size": 1536, "num_hidden_layers": 62,
                   "num_attention_heads": 48, "num_key_value_heads": 8, "head_dim": 128,
                   "max_position_embeddings": 196608, "tie_word_embeddings": False, "num_local_experts": 256,
                   "num_experts_per_tok": 8},
    # Qwen3NextConfig (transformers models/qwen3_next/configuration_qwen3_next.py): vocab 151936, hidden 2048,
    # intermediate 5632, 48 layers, 16 heads, 2 KV heads of 256, 32768 positions, untied; linear attention: conv
    # kernel 4, 16 key heads and 32 value heads of 128; 512 experts top-10 of 512, shared expert 512.
    "qwen3_next": {"vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 48,
                   "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256,
                   "max_position_embeddings": 32768, "tie_word_embeddings": False, "linear_conv_kernel_dim": 4,
                   "linear_key_head_dim": 128, "linear_value_head_dim": 128, "linear_num_key_heads": 16,
                   "linear_num_value_heads": 32, "moe_intermediate_size": 512, "shared_expert_intermediate_size": 512,
                   "num_experts": 512, "num_experts_per_tok": 10},
}
_NOTED = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
          "num_key_value_heads", "head_dim", "max_position_embeddings", "cross_attention_layers", "num_local_experts",
          "num_experts_per_tok")
_SPELLINGS = {"hidden_size": ("n_embd", "d_model"), "num_hidden_layers": ("n_layer", "num_layers"),
              "num_attention_heads": ("n_head",), "num_key_value_heads": ("num_kv_heads", "n_head_kv"),
              "max_position_embeddings": ("n_positions", "seq_length", "max_seq_len"), "vocab_size": (),
              "intermediate_size": ("ffn_hidden_size", "n_inner"), "head_dim": (), "tie_word_embeddings": ()}


def apply_defaults(cfg: dict[str, Any], model_type: str) -> tuple[dict[str, Any], list[str]]:
    """cfg with the config class's defaults filled in, and a note per size field that was missing."""
    table = DEFAULTS.get(model_type, {})
    out, notes = dict(cfg), []
    for key, value in table.items():
        if any(cfg.get(k) is not None for k in (key, *_SPELLINGS.get(key, ()))) or key in cfg:
            continue
        out[key] = value
        if key in _NOTED:
            notes.append(f"{key} missing from the config: transformers' {model_type} config default {value}")
    return out, notes


def _number(rs: dict[str, Any], key: str, origin: str, *, minimum: float) -> float:
    v = rs.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < minimum:
        raise ModelSpecError(f"{origin}: field 'rope_scaling.{key}' must be a number >= {minimum}, got {v!r}")
    return float(v)


def rope_context(cfg: dict[str, Any], max_positions: int, origin: str,
                 model_type: str = "") -> tuple[int, str, list[str]]:
    """(usable context, rope type, notes). vLLM (config.py _get_and_verify_max_len) keeps max_position_embeddings
    for llama3 / longrope / su (already the extended length) and multiplies by `factor` for the others; yarn
    multiplies original_max_position_embeddings (Qwen2.5's yarn x4 over 32768 = 131072). Gemma 3 is skipped
    whatever its rope_scaling (vLLM config/model.py: "Gemma3's max_model_len (128K) is already scaled by RoPE
    scaling, so we skip applying the scaling factor again")."""
    rs = cfg.get("rope_scaling")
    if rs is None:
        return max_positions, "", []
    if model_type == "gemma3" and isinstance(rs, dict):
        kind = rs.get("rope_type", rs.get("type"))
        return max_positions, kind if isinstance(kind, str) else "", []
    if not isinstance(rs, dict):
        raise ModelSpecError(f"{origin}: field 'rope_scaling' must be an object or null, got {rs!r}")
    kind = rs.get("rope_type", rs.get("type"))
    if not isinstance(kind, str):
        raise ModelSpecError(f"{origin}: field 'rope_scaling.rope_type' must name the scaling, got {kind!r}")
    if kind in ("llama3", "longrope", "su", "default", "mrope"):
        return max_positions, kind, []
    factor = _number(rs, "factor", origin, minimum=1)
    base = max_positions
    if kind == "yarn" and rs.get("original_max_position_embeddings") is not None:
        base = int(_number(rs, "original_max_position_embeddings", origin, minimum=1))
    usable = int(base * factor)
    if usable == max_positions:
        return usable, kind, []
    return usable, kind, [f"rope_scaling {kind} x{factor:g} over {base:,} positions: usable context {usable:,} "
                          f"(vLLM's derived max_model_len)"]


def _vit_params(hidden: int, layers: int, mlp: int, *, qkv_bias: bool = True) -> int:
    """Pre-LN ViT blocks: q/k/v/o (+ biases), 2-layer MLP with biases, 2 LayerNorms (weight + bias)."""
    attn = 4 * hidden * hidden + (4 * hidden if qkv_bias else hidden)
    return layers * (attn + 2 * hidden * mlp + mlp + hidden + 4 * hidden)


def _vision_number(vc: dict[str, Any], key: str, default: float) -> float:
    """A vision_config size: a finite number >= 1 (0, negative, NaN or a string is a one-line error)."""
    value = vc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 1_000_000_000:
        raise ModelSpecError(f"field 'vision_config.{key}' must be a number from 1 to 1,000,000,000, got {value!r}")
    return value


def _vision_int(vc: dict[str, Any], key: str, default: int) -> int:
    return int(_vision_number(vc, key, default))


def _mllama_vision_params(vc: dict[str, Any], text_hidden: int) -> int:
    """MllamaVisionModel + multi_modal_projector (modeling_mllama.py), MllamaVisionConfig defaults (hidden 1280,
    32 local + 8 gated global layers, intermediate 5120, image 448, patch 14, 4 tiles, 8 aspect ratios, output 7680).

    Patch conv (no bias), class embedding, gated position embedding (patches x h, one gate, and a tile table of
    (aspect ratios + 1) x tiles x patches x h), pre/post tile embeddings ((aspect ratios + 1) x tiles x h, one gate
    each), pre/post LayerNorms, ViT layers with bias-free q/k/v/o, global layers with two gates more, and a
    Linear(vision_output_dim, text hidden) with bias."""
    h, p = _vision_int(vc, "hidden_size", 1280), _vision_int(vc, "patch_size", 14)
    tiles, mlp = _vision_int(vc, "max_num_tiles", 4), _vision_int(vc, "intermediate_size", 5120)
    ratios = vc.get("supported_aspect_ratios")
    rows = (len(ratios) if isinstance(ratios, list) and ratios else 8) + 1  # max_aspect_ratio_id + 1
    patches = (_vision_int(vc, "image_size", 448) // p) ** 2 + 1
    embeddings = (_vision_int(vc, "num_channels", 3) * p * p * h + h + patches * h + 1 + rows * tiles * patches * h
                  + 2 * (rows * tiles * h + 1) + 4 * h)
    layer = _vit_params(h, 1, mlp, qkv_bias=False) - h  # no o_proj bias either
    local, glob = _vision_int(vc, "num_hidden_layers", 32), _vision_int(vc, "num_global_layers", 8)
    projector = _vision_int(vc, "vision_output_dim", 7680) * text_hidden + text_hidden
    return embeddings + local * layer + glob * (layer + 2) + projector


def _llama4_vision_params(vc: dict[str, Any], text_hidden: int) -> int:
    """Llama4VisionModel + Llama4MultiModalProjector (transformers modeling_llama4.py), Llama4VisionConfig defaults
    (hidden 768, 34 layers, intermediate 5632, image 448, patch 14, projector_input_dim / projector_output_dim 4096,
    vision_output_dim 7680).

    Patch embedding Linear(channels x patch^2, h) without bias, class embedding (h), positional_embedding_vlm
    ((image / patch)^2 + 1 rows of h), layernorm_pre / layernorm_post, ViT layers with biased q/k/v/o and fc1/fc2,
    the pixel-shuffle adapter's bias-free fc1 Linear(intermediate_size, projector_input_dim) and
    fc2 Linear(projector_output_dim, projector_output_dim), and the bias-free Linear(vision_output_dim, text hidden)."""
    h, p = _vision_int(vc, "hidden_size", 768), _vision_int(vc, "patch_size", 14)
    mlp = _vision_int(vc, "intermediate_size", 5632)
    patches = (_vision_int(vc, "image_size", 448) // p) ** 2 + 1
    embeddings = _vision_int(vc, "num_channels", 3) * p * p * h + h + patches * h + 4 * h
    vit = _vit_params(h, _vision_int(vc, "num_hidden_layers", 34), mlp)
    out = _vision_int(vc, "projector_output_dim", 4096)
    adapter = mlp * _vision_int(vc, "projector_input_dim", 4096) + out * out
    return embeddings + vit + adapter + _vision_int(vc, "vision_output_dim", 7680) * text_hidden


def _gemma3_vision_params(vc: dict[str, Any], text_hidden: int) -> int:
    """SiglipVisionModel without its pooling head (Gemma3Config: vision_use_head false) + Gemma3MultiModalProjector
    (transformers modeling_gemma3.py / modeling_siglip.py), SiglipVisionConfig defaults (hidden 768, 12 layers,
    intermediate 3072, image 224, patch 16).

    Patch conv with bias, one position embedding per patch ((image / patch)^2, no class token), ViT layers with
    biased q/k/v/o and fc1/fc2, post_layernorm (weight + bias); projector: mm_input_projection_weight
    (vision hidden x text hidden, no bias) and mm_soft_emb_norm (Gemma3RMSNorm of the vision hidden size)."""
    h, p = _vision_int(vc, "hidden_size", 768), _vision_int(vc, "patch_size", 16)
    patches = (_vision_int(vc, "image_size", 224) // p) ** 2
    embeddings = _vision_int(vc, "num_channels", 3) * p * p * h + h + patches * h
    vit = _vit_params(h, _vision_int(vc, "num_hidden_layers", 12), _vision_int(vc, "intermediate_size", 3072))
    return embeddings + vit + 2 * h + h * text_hidden + h


def _mistral3_vision_params(cfg: dict[str, Any], vc: dict[str, Any], text_hidden: int) -> int:
    """PixtralVisionModel + Mistral3MultiModalProjector (transformers modeling_pixtral.py / modeling_mistral3.py),
    PixtralVisionConfig defaults (hidden 1024, 24 layers, intermediate 4096, patch 16).

    Bias-free patch conv, ln_pre (RMSNorm), layers of bias-free q/k/v/o and gated MLP (gate/up/down) with two
    RMSNorms; projector: RMSNorm (vision hidden), patch_merger Linear(h x spatial_merge_size^2, h) without bias,
    linear_1 Linear(h, text hidden) and linear_2 Linear(text hidden, text hidden), biased when
    multimodal_projector_bias (default false)."""
    h, p = _vision_int(vc, "hidden_size", 1024), _vision_int(vc, "patch_size", 16)
    mlp, layers = _vision_int(vc, "intermediate_size", 4096), _vision_int(vc, "num_hidden_layers", 24)
    tower = _vision_int(vc, "num_channels", 3) * p * p * h + h + layers * (4 * h * h + 3 * h * mlp + 2 * h)
    merge = _vision_int(cfg, "spatial_merge_size", 2)
    bias = text_hidden * 2 if cfg.get("multimodal_projector_bias") else 0
    return tower + h + h * merge * merge * h + h * text_hidden + text_hidden * text_hidden + bias


def _qwen2_5_vl_vision_params(vc: dict[str, Any], text_hidden: int) -> int:
    """Qwen2_5_VisionTransformerPretrainedModel (transformers modeling_qwen2_5_vl.py): Conv3d patch embed (3 x temporal
    2 x 14 x 14 x hidden, no bias); `depth` blocks of two RMSNorms, a biased qkv Linear(h, 3h) and proj Linear(h, h),
    and a biased gated MLP (gate/up Linear(h, intermediate), down Linear(intermediate, h)); merger: RMSNorm(h) +
    Linear(4h, 4h) + Linear(4h, out_hidden_size), biased. Qwen2.5-VL-7B: 1,505,280 + 32 x 19,702,200 + 44,574,464 =
    676,550,144 (its published 8,292,166,656 less the language model's 7,615,616,512)."""
    h, depth = _vision_int(vc, "hidden_size", 1280), _vision_int(vc, "depth", 32)
    inter = _vision_int(vc, "intermediate_size", 3420)
    patch = _vision_int(vc, "patch_size", 14) ** 2 * _vision_int(vc, "temporal_patch_size", 2) * 3 * h
    block = 2 * h + 3 * h * h + 3 * h + h * h + h + 2 * (h * inter + inter) + inter * h + h
    m = h * _vision_int(vc, "spatial_merge_size", 2) ** 2
    out = _vision_int(vc, "out_hidden_size", text_hidden)
    return patch + depth * block + h + m * m + m + m * out + out


SIZED_VISION_TYPES = ("qwen2_vl", "qwen2_5_vl", "llava", "mllama", "gemma3", "mistral3", "llama4")
"""Outer model_types whose vision_config `vision_params` sizes; any other is noted as not sized."""


def vision_params(cfg: dict[str, Any], model_type: str, text_hidden: int) -> int:
    """Parameters of the vision tower and projector of a vision-language config (0 when it has none).

    qwen2_vl (modeling_qwen2_vl.py): Conv3d patch embed (3 x temporal 2 x 14 x 14 x embed_dim, no bias), `depth`
    ViT blocks of embed_dim with mlp_ratio 4, merger = LayerNorm + Linear(4e, 4e) + Linear(4e, text hidden).
    llava (modeling_llava.py + CLIPVisionModel): CLIP ViT (patch conv without bias, class and position embeddings,
    pre/post LayerNorm, all layers) + 2-layer projector to the text hidden size. mllama: _mllama_vision_params;
    llama4: _llama4_vision_params; gemma3: _gemma3_vision_params; mistral3: _mistral3_vision_params."""
    vc = cfg.get("vision_config")
    if not isinstance(vc, dict):
        return 0
    try:
        if model_type == "qwen2_vl":
            e, depth = _vision_int(vc, "embed_dim", 1280), _vision_int(vc, "depth", 32)
            patch = _vision_int(vc, "patch_size", 14) ** 2 * _vision_int(vc, "temporal_patch_size", 2) * 3 * e
            m = e * _vision_int(vc, "spatial_merge_size", 2) ** 2
            out = _vision_int(vc, "hidden_size", text_hidden)
            merger = 2 * e + m * m + m + m * out + out
            return patch + _vit_params(e, depth, int(e * _vision_number(vc, "mlp_ratio", 4))) + merger
        if model_type == "qwen2_5_vl":
            return _qwen2_5_vl_vision_params(vc, text_hidden)
        if model_type == "llava":
            h, p = _vision_int(vc, "hidden_size", 1024), _vision_int(vc, "patch_size", 14)
            positions = (_vision_int(vc, "image_size", 336) // p) ** 2 + 1
            embeddings = 3 * p * p * h + h + positions * h + 2 * h  # patch conv, class, positions, pre-LN
            vit = _vit_params(h, _vision_int(vc, "num_hidden_layers", 24), _vision_int(vc, "intermediate_size", 4096))
            projector = h * text_hidden + text_hidden + text_hidden * text_hidden + text_hidden
            return embeddings + vit + 2 * h + projector
        if model_type == "mllama":
            return _mllama_vision_params(vc, text_hidden)
        if model_type == "gemma3":
            return _gemma3_vision_params(vc, text_hidden)
        if model_type == "mistral3":
            return _mistral3_vision_params(cfg, vc, text_hidden)
        if model_type == "llama4":
            return _llama4_vision_params(vc, text_hidden)
    except (TypeError, ValueError, OverflowError, ZeroDivisionError) as exc:
        raise ModelSpecError(f"field 'vision_config' has a value tpplan cannot read ({exc})") from exc
    return 0

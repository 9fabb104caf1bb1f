"""Qwen3-Next (model_type qwen3_next): Gated DeltaNet linear-attention layers interleaved with gated full-attention
layers, and a high-sparsity MoE with one gated shared expert.

Shapes follow transformers src/transformers/models/qwen3_next/modular_qwen3_next.py (Qwen3NextAttention,
Qwen3NextGatedDeltaNet, Qwen3NextDecoderLayer) and configuration_qwen3_next.py (Qwen3NextConfig: layer_types, else
"linear_attention" if (i + 1) % full_attention_interval else "full_attention", interval default 4).
"""

from __future__ import annotations

from typing import Any

from tpplan.errors import ModelSpecError
from tpplan.models.hf_reader import MAX_LAYERS, ConfigReader

Fields = tuple[dict[str, Any], list[str]]

_KINDS = ("linear_attention", "full_attention")


def _layer_kinds(r: ConfigReader, layers: int) -> tuple[str, ...]:
    kinds = r.get("layer_types")
    if kinds is None:
        interval = r.int("full_attention_interval", default=4, positive=True, maximum=MAX_LAYERS)
        return tuple("linear_attention" if (i + 1) % interval else "full_attention" for i in range(layers))
    if not isinstance(kinds, list) or len(kinds) != layers or any(k not in _KINDS for k in kinds):
        raise ModelSpecError(f"{r.origin}: field 'layer_types' must list 'linear_attention' or 'full_attention' once "
                             f"per layer ({layers})")
    return tuple(kinds)


def qwen3_next_fields(r: ConfigReader, model_type: str) -> Fields:
    """Qwen3NextAttention: q_proj Linear(hidden, 2 x heads x head_dim) (query and its output gate), k/v/o, biases as
    attention_bias (default False), q_norm / k_norm of head_dim; rotary on partial_rotary_factor of each head (no
    parameters). Qwen3NextGatedDeltaNet on the 'linear_attention' layers (tpplan.models.params
    _linear_attention_groups). Two RMSNorms per layer (zero-centred, one weight per channel)."""
    layers = r.int("num_hidden_layers", positive=True, maximum=MAX_LAYERS)
    kinds = _layer_kinds(r, layers)
    linear = {name: r.int(name, positive=True) for name in (
        "linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim",
        "linear_conv_kernel_dim")}
    full = kinds.count("full_attention")
    note = (f"{layers - full} of the {layers} layers are Gated DeltaNet linear attention: no per-token KV cache, a "
            f"constant recurrent + conv state per running sequence instead; {full} layers hold the KV cache")
    return {"attention_bias": bool(r.get("attention_bias", default=False)), "o_proj_bias": False, "mlp_bias": False,
            "qk_norm": True, "attn_output_gate": True, "layer_types": kinds, **linear}, [note]


def qwen3_next_moe(r: ConfigReader, layers: int, moe: dict[str, Any]) -> dict[str, Any]:
    """Qwen3NextSparseMoeBlock (= Qwen2MoeSparseMoeBlock): num_experts experts of moe_intermediate_size, a bias-free
    router, a shared_expert MLP of shared_expert_intermediate_size and its shared_expert_gate Linear(hidden, 1).
    A layer is MoE unless it is in mlp_only_layers or (i + 1) % decoder_sparse_step != 0 (then a dense MLP of
    intermediate_size). The shared expert is counted as shared_expert_intermediate_size / moe_intermediate_size
    experts of moe_intermediate_size (Qwen3-Next-80B-A3B: 512 / 512 = 1)."""
    if not moe:
        return moe
    width = moe["moe_intermediate_size"]
    shared = r.int("shared_expert_intermediate_size", required=False)
    if shared % width:
        raise ModelSpecError(f"{r.origin}: field 'shared_expert_intermediate_size' ({shared}) must be a multiple of "
                             f"moe_intermediate_size ({width}) for tpplan to count the shared expert")
    extra: dict[str, Any] = {"n_shared_experts": shared // width, "shared_expert_gate": bool(shared)}
    moe = qwen_moe_layers(r, layers, moe)
    return {**moe, **extra} if moe else moe


def qwen_moe_layers(r: ConfigReader, layers: int, moe: dict[str, Any]) -> dict[str, Any]:
    """Qwen2-MoE, Qwen3-MoE and Qwen3-Next decoder layers (transformers Qwen2MoeDecoderLayer / Qwen3MoeDecoderLayer):
    a layer is MoE unless it is in mlp_only_layers or (i + 1) % decoder_sparse_step != 0, then a dense MLP of
    intermediate_size; `moe` with `moe_layers` set when some layer is dense."""
    if not moe:
        return moe
    step = r.int("decoder_sparse_step", default=1, positive=True, maximum=MAX_LAYERS)
    dense = set(r.int_list("mlp_only_layers") or [])
    moe_layers = tuple(i for i in range(layers) if i not in dense and (i + 1) % step == 0)
    if not moe_layers:  # every layer dense: a dense model (Qwen2MoeDecoderLayer builds no MoE block)
        return {}
    return {**moe, "moe_layers": moe_layers} if len(moe_layers) != layers else moe

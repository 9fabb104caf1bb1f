"""Exact parameter counts of a ModelSpec, as groups that know how tensor parallelism splits them.

Conventions (shared/reference/FACTS.md §1): count what sits in GPU memory; a tied lm_head counts once;
gated MLPs have 3 matrices; active parameters of MoE models include the input embedding (DeepSeek's
convention) and `active_params_excluding_embedding` gives OpenAI's convention.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from tpplan.models.spec import ModelSpec
from tpplan.records import record

Split = Literal["column", "row", "kv", "replicated", "vocab"]
"""How TP shards a group: column/row-parallel matrices split t ways (biases of column-parallel layers
split with them; row-parallel biases are replicated); kv = split by KV heads, replicated when t > kv
heads; vocab = vocab-parallel after padding."""
Scope = Literal["layer", "dense_layer", "moe_layer", "cross_layer", "attention_layer", "linear_layer", "embedding",
                "head"]
"""Where a group lives: every layer, only dense / MoE / cross-attention layers, only the attention or only the
linear-attention layers of a hybrid model (Qwen3-Next; a model without linear layers keeps its attention in
'layer'), the first stage (embedding) or the last stage (final norm and lm_head)."""


@record
class ParamGroup:
    name: str
    component: str
    """attention | mlp | experts | router | norm | embedding | lm_head"""
    params: int
    """Parameters per occurrence (per layer for layer scopes)."""
    scope: Scope
    split: Split
    quantizable: bool
    """Linear weights take the weight dtype (fp8/int8/int4); embeddings, norms, biases, routers stay 16-bit."""
    experts: int = 0
    """> 0: the group holds this many routed experts, of which num_experts_per_tok are active."""
    in_features: int = 0
    """K of the group's matrices (the input width): per-output-channel scales cost scale_bytes / K per weight."""


def _attention_groups(s: ModelSpec) -> list[ParamGroup]:
    h = s.hidden_size
    g: list[ParamGroup] = []
    scope: Scope = "attention_layer" if s.num_linear_layers else "layer"

    def add(name: str, params: int, split: Split, quantizable: bool = True, k: int = 0) -> None:
        if params:
            g.append(ParamGroup(name=f"attention.{name}", component="attention", params=params,
                                scope=scope, split=split, quantizable=quantizable, in_features=k))

    a, k = s.num_attention_heads, s.num_key_value_heads
    if s.is_mla:
        q_width = a * s.q_head_dim
        if s.q_lora_rank:
            add("q_a_proj", h * s.q_lora_rank, "replicated", k=h)
            add("q_a_layernorm", s.q_lora_rank, "replicated", False)
            add("q_b_proj", s.q_lora_rank * q_width, "column", k=s.q_lora_rank)
        else:
            add("q_proj", h * q_width, "column", k=h)
        add("kv_a_proj_with_mqa", h * (s.kv_lora_rank + s.qk_rope_head_dim), "replicated", k=h)
        add("kv_a_layernorm", s.kv_lora_rank, "replicated", False)
        add("kv_b_proj", s.kv_lora_rank * a * (s.qk_nope_head_dim + s.v_head_dim), "column", k=s.kv_lora_rank)
        add("o_proj", a * s.v_head_dim * h, "row", k=a * s.v_head_dim)
    else:
        d = s.head_dim
        add("q_proj", h * a * d * (2 if s.attn_output_gate else 1), "column", k=h)
        add("kv_proj", 2 * h * k * d, "kv", k=h)
        if s.attention_bias:
            add("q_bias", a * d, "column", False)
            add("kv_bias", 2 * k * d, "kv", False)
        add("o_proj", a * d * h, "row", k=a * d)
        if s.qk_norm:
            add("qk_norm", (a + k) * d if s.qk_norm_per_head else 2 * d, "replicated", False)
    if s.o_proj_bias:
        add("o_bias", h, "replicated", False)
    if s.attention_sinks:
        add("sinks", a, "column", False)
    if s.cross_attention_layers:
        # MllamaCrossAttentionDecoderLayer (modeling_mllama.py): q_norm and k_norm (RMSNorm of head_dim) and the
        # scalar gates cross_attn_attn_gate and cross_attn_mlp_gate, on top of a self-attention layer's shapes.
        g.append(ParamGroup(name="cross_attention.qk_norm_gates", component="attention",
                            params=2 * s.head_dim + 2, scope="cross_layer", split="replicated", quantizable=False))
    return g


def _linear_attention_groups(s: ModelSpec) -> list[ParamGroup]:
    """One Gated DeltaNet layer (transformers models/qwen3_next/modular_qwen3_next.py, Qwen3NextGatedDeltaNet), with
    key_dim = linear_num_key_heads x linear_key_head_dim and value_dim = linear_num_value_heads x
    linear_value_head_dim: in_proj_qkvz Linear(hidden, 2 key_dim + 2 value_dim) and in_proj_ba Linear(hidden,
    2 x v heads), both without bias; conv1d depthwise over conv_dim = 2 key_dim + value_dim channels, kernel
    linear_conv_kernel_dim, no bias; dt_bias and A_log (one per v head); norm (RMSNormGated of linear_value_head_dim);
    out_proj Linear(value_dim, hidden) without bias. vLLM (model_executor/models/qwen3_next.py) splits the heads over
    TP (num_k_heads // tp_size, num_v_heads // tp_size): the projections, the conv and the per-head vectors are
    column-parallel, out_proj row-parallel, the norm replicated."""
    h, hv = s.hidden_size, s.linear_num_value_heads
    key_dim, value_dim = s.linear_num_key_heads * s.linear_key_head_dim, hv * s.linear_value_head_dim

    def group(name: str, params: int, split: Split, quantizable: bool, k: int = 0) -> ParamGroup:
        return ParamGroup(name=f"linear_attn.{name}", component="attention", params=params, scope="linear_layer",
                          split=split, quantizable=quantizable, in_features=k)

    return [group("in_proj_qkvz", h * (2 * key_dim + 2 * value_dim), "column", True, h),
            group("in_proj_ba", h * 2 * hv, "column", True, h),
            group("conv1d", (2 * key_dim + value_dim) * s.linear_conv_kernel_dim, "column", False),
            group("dt_bias_A_log", 2 * hv, "column", False),
            group("norm", s.linear_value_head_dim, "replicated", False),
            group("out_proj", value_dim * h, "row", True, value_dim)]


def _mlp_groups(s: ModelSpec, width: int, *, prefix: str, scope: Scope) -> list[ParamGroup]:
    """A dense MLP of the given width: (gate+)up column-parallel, down row-parallel."""
    h = s.hidden_size
    n_in = 2 if s.gated_mlp else 1
    g = [ParamGroup(name=f"{prefix}.gate_up_proj" if s.gated_mlp else f"{prefix}.up_proj", component="mlp",
                    params=n_in * h * width, scope=scope, split="column", quantizable=True, in_features=h),
         ParamGroup(name=f"{prefix}.down_proj", component="mlp", params=width * h, scope=scope,
                    split="row", quantizable=True, in_features=width)]
    if s.mlp_bias:
        g += [ParamGroup(name=f"{prefix}.up_bias", component="mlp", params=n_in * width, scope=scope,
                         split="column", quantizable=False),
              ParamGroup(name=f"{prefix}.down_bias", component="mlp", params=h, scope=scope,
                         split="replicated", quantizable=False)]
    return g


def _moe_groups(s: ModelSpec) -> list[ParamGroup]:
    """Routed experts are TP-sharded inside each expert (vLLM's default without expert parallelism)."""
    h, e, w = s.hidden_size, s.num_experts, s.moe_intermediate_size
    n_in = 2 if s.gated_mlp else 1
    g = [ParamGroup(name="experts.gate_up_proj", component="experts", params=e * n_in * h * w,
                    scope="moe_layer", split="column", quantizable=True, experts=e, in_features=h),
         ParamGroup(name="experts.down_proj", component="experts", params=e * w * h, scope="moe_layer",
                    split="row", quantizable=True, experts=e, in_features=w)]
    if s.expert_bias:
        g += [ParamGroup(name="experts.gate_up_bias", component="experts", params=e * n_in * w,
                         scope="moe_layer", split="column", quantizable=False, experts=e),
              ParamGroup(name="experts.down_bias", component="experts", params=e * h, scope="moe_layer",
                         split="replicated", quantizable=False, experts=e)]
    router = h * e + (e if s.router_bias else 0) + (e if s.router_score_bias else 0)
    router += h if s.shared_expert_gate else 0  # Qwen2-MoE / Qwen3-Next shared_expert_gate, Linear(hidden, 1)
    g.append(ParamGroup(name="router", component="router", params=router, scope="moe_layer",
                        split="replicated", quantizable=False, in_features=h))
    if s.n_shared_experts:
        shared = _mlp_groups(s, s.n_shared_experts * w, prefix="shared_experts", scope="moe_layer")
        g += [ParamGroup(name=x.name, component="experts", params=x.params, scope=x.scope, split=x.split,
                         quantizable=x.quantizable, in_features=x.in_features) for x in shared]
    return g


@lru_cache(maxsize=64)
def param_groups(s: ModelSpec) -> tuple[ParamGroup, ...]:
    """Every parameter of the model, once, with its TP split rule. Cached per model (frozen groups in a tuple):
    the planner asks for them several times per candidate."""
    h = s.hidden_size
    norm = h * (2 if s.norm_type == "layer" else 1)
    groups = _attention_groups(s)
    if s.num_linear_layers:
        groups += _linear_attention_groups(s)
    if s.is_moe:
        if s.num_dense_layers:
            groups += _mlp_groups(s, s.intermediate_size, prefix="mlp", scope="dense_layer")
        groups += _moe_groups(s)
    else:
        groups += _mlp_groups(s, s.intermediate_size, prefix="mlp", scope="layer")
    groups.append(ParamGroup(name="norms", component="norm", params=s.norms_per_layer * norm, scope="layer",
                             split="replicated", quantizable=False))
    groups.append(ParamGroup(name="embed_tokens", component="embedding",
                             params=(s.vocab_size + s.embedding_extra_rows) * h,
                             scope="embedding", split="vocab", quantizable=False))
    if s.position_embedding_rows:  # after embed_tokens: code that takes the first embedding group wants the vocab
        groups.append(ParamGroup(name="embed_positions", component="embedding", params=s.position_embedding_rows * h,
                                 scope="embedding", split="replicated", quantizable=False))
    groups.append(ParamGroup(name="final_norm", component="norm", params=norm, scope="head",
                             split="replicated", quantizable=False))
    if not s.tie_word_embeddings:
        groups.append(ParamGroup(name="lm_head", component="lm_head", params=s.vocab_size * h, scope="head",
                                 split="vocab", quantizable=False, in_features=h))
    if s.lm_head_bias:
        groups.append(ParamGroup(name="lm_head_bias", component="lm_head", params=s.vocab_size, scope="head",
                                 split="vocab", quantizable=False))
    return tuple(groups)


def occurrences(s: ModelSpec, scope: Scope) -> int:
    """How many times a group of this scope exists in the whole model."""
    return {"layer": s.num_hidden_layers, "dense_layer": s.num_dense_layers, "moe_layer": s.num_moe_layers,
            "cross_layer": len(s.cross_attention_layers), "attention_layer": s.num_hidden_layers - s.num_linear_layers,
            "linear_layer": s.num_linear_layers, "embedding": 1, "head": 1}[scope]


def layers_in(s: ModelSpec, scope: Scope, layers: range) -> int:
    """How many of `layers` (a pipeline stage's) hold a group of this scope: occurrences() over a stage. Asked
    once per group, stage and candidate, so it does not test the layers one by one."""
    if scope == "layer":
        return len(layers)
    if layers.step == 1 and 0 <= layers.start <= layers.stop <= s.num_hidden_layers:
        counts = _layers_before(s, scope)
        return counts[layers.stop] - counts[layers.start]
    return sum(1 for i in layers if in_layer(s, scope, i))


@lru_cache(maxsize=64)
def _layers_before(s: ModelSpec, scope: Scope) -> tuple[int, ...]:
    """Element i: how many of layers 0 .. i-1 hold a group of this scope (a prefix sum, once per model)."""
    counts = [0]
    for layer in range(s.num_hidden_layers):
        counts.append(counts[-1] + in_layer(s, scope, layer))
    return tuple(counts)


def in_layer(s: ModelSpec, scope: Scope, layer: int) -> bool:
    if scope == "layer":
        return True
    if scope == "dense_layer":
        return not s.is_moe_layer(layer)
    if scope == "moe_layer":
        return s.is_moe_layer(layer)
    if scope == "cross_layer":
        return layer in s.cross_attention_layers
    if scope == "attention_layer":
        return not s.is_linear_layer(layer)
    if scope == "linear_layer":
        return s.is_linear_layer(layer)
    return False


def total_params(s: ModelSpec) -> int:
    """Every parameter held in memory (tied embeddings once)."""
    return sum(g.params * occurrences(s, g.scope) for g in param_groups(s))


def _active(s: ModelSpec, g: ParamGroup) -> int:
    if g.experts:
        return g.params // g.experts * s.num_experts_per_tok
    return g.params


def active_params(s: ModelSpec) -> int:
    """Parameters one token touches: routed experts count top-k of E. Includes the input embedding."""
    return sum(_active(s, g) * occurrences(s, g.scope) for g in param_groups(s))


def active_params_excluding_embedding(s: ModelSpec) -> int:
    """OpenAI's convention for gpt-oss ('5.1B active'): the input embedding is a lookup, not a matmul."""
    embed = (s.vocab_size + s.embedding_extra_rows) * s.hidden_size
    return active_params(s) - (0 if s.tie_word_embeddings else embed)


def mtp_params(s: ModelSpec) -> int:
    """Parameters of the checkpoint's multi-token-prediction layers, which tpplan neither counts nor plans (a plain
    serve does not load them). Per layer, as vLLM's glm4_moe_mtp.py / deepseek_mtp.py build one: a decoder layer of
    the MoE kind (attention, MoE block, 2 norms), enorm and hnorm, eh_proj Linear(2 x hidden, hidden) without bias,
    shared_head (a norm and a vocab x hidden head) and an embed_tokens copy (vocab x hidden); the Hub's safetensors
    totals include them (GLM-4.5: model.layers.92.*)."""
    if not s.num_nextn_predict_layers:
        return 0
    h = s.hidden_size
    block = sum(g.params for g in param_groups(s) if g.scope in ("layer", "attention_layer", "moe_layer"))
    return s.num_nextn_predict_layers * (block + 3 * h + 2 * h * h + 2 * s.vocab_size * h)


def params_by_component(s: ModelSpec) -> dict[str, int]:
    out: dict[str, int] = {}
    for g in param_groups(s):
        out[g.component] = out.get(g.component, 0) + g.params * occurrences(s, g.scope)
    return out

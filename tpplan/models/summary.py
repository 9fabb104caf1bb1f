"""What `tpplan models show` reports about one model: counts, bytes per GPU per degree, KV, valid degrees."""

from __future__ import annotations

from tpplan.errors import ModelSpecError
from tpplan.models.dtypes import AUTO, override_note, weight_format
from tpplan.models.engines import (
    MAX_TP_DEGREE,
    block_quant_reasons,
    group_quant_violation,
    kv_heads_per_gpu,
    tp_violation,
    valid_tp_degrees,
)
from tpplan.models.formats import WeightFormat
from tpplan.models.kv import (
    kv_cache_bytes_per_sequence,
    kv_cache_bytes_per_token,
    linear_state_bytes_per_sequence,
    state_bytes_for,
)
from tpplan.models.params import (
    active_params,
    active_params_excluding_embedding,
    mtp_params,
    params_by_component,
    total_params,
)
from tpplan.models.spec import ModelSpec
from tpplan.models.weights import (
    weight_bytes_by_component,
    weight_bytes_by_group,
    weight_bytes_per_gpu,
    weight_bytes_total,
)
from tpplan.records import record


@record
class DegreeRow:
    tp: int
    weight_bytes_per_gpu: int
    kv_heads_per_gpu: int
    kv_cache_bytes_per_token_per_gpu: int


@record
class ModelSummary:
    spec: ModelSpec
    resolved_from: str | None
    engine: str
    dtype: str
    kv_cache_dtype: str
    total_params: int
    active_params: int
    active_params_excluding_embedding: int
    params_by_component: dict[str, int]
    weight_bytes_total: int
    kv_cache_bytes_per_token: int
    context_len: int
    kv_cache_bytes_per_sequence: int
    """One sequence of `context_len` tokens, whole model, sliding-window layers capped at their window."""
    valid_tp_degrees: list[int]
    invalid_tp_reasons: dict[int, str]
    """For the commonly tried degrees that fail: the first rule broken."""
    degrees: list[DegreeRow]
    weight_bytes_by_component: dict[str, int]
    """At the selected --tp (or 1)."""
    tp: int
    weight_format: WeightFormat
    weight_bytes_by_group: list[tuple[str, int, float, int]]
    """(group, parameters, bytes per parameter, bytes) over the whole model, in `weight_format`."""
    vision_weight_bytes: int = 0
    """Vision tower + projector bytes (vision_params x the format's 16-bit bytes: quantized vision-language
    checkpoints leave the tower unquantized); reported next to the language model, never planned."""
    mtp_params: int = 0
    """Parameters of the checkpoint's multi-token-prediction layers (num_nextn_predict_layers): in its safetensors,
    neither loaded by a plain serve nor counted in total_params (tpplan.models.params.mtp_params)."""
    linear_state_bytes_per_sequence: int = 0
    """Linear-attention (Gated DeltaNet) state one running sequence holds whatever its length, whole model, as --engine
    allocates it: the model dtype (vLLM), the recurrent part in fp32 (SGLang) (tpplan.models.kv.state_bytes_for,
    linear_state_bytes_per_sequence); 0 for models without such layers."""
    notes: tuple[str, ...] = ()


def _linear_state(spec: ModelSpec, engine: str, act_bytes: int) -> int:
    conv, recurrent = state_bytes_for(engine, act_bytes)
    return linear_state_bytes_per_sequence(spec, state_bytes=conv, recurrent_bytes=recurrent)


def attention_summary(spec: ModelSpec) -> str:
    """How the model's attention keeps its KV cache, in words (MLA is not 'KV heads')."""
    if spec.is_mla:
        return (f"{spec.num_hidden_layers} layers, {spec.num_attention_heads} query heads; MLA: the KV cache holds "
                f"one compressed latent of {spec.kv_lora_rank} + {spec.qk_rope_head_dim} RoPE dims per token per "
                f"layer, replicated on every TP rank")
    return (f"{spec.num_hidden_layers} layers, {spec.num_attention_heads} heads / {spec.num_key_value_heads} KV heads "
            f"of {spec.head_dim}")


def chunked_attention_layers(spec: ModelSpec) -> tuple[int, ...]:
    """Layers whose attention reads only their own chunk of `attention_chunk_size` tokens (Llama 4)."""
    return tuple(i for i in range(spec.num_hidden_layers) if spec.is_chunked_layer(i))


def moe_layers(spec: ModelSpec) -> tuple[int, ...]:
    """Indices of the MoE layers (empty for a dense model)."""
    return tuple(i for i in range(spec.num_hidden_layers) if spec.is_moe_layer(i))


def _layer_list(layers: tuple[int, ...]) -> str:
    """'1, 3, ..., 47' for an arithmetic run of more than four layers, else every index."""
    steps = {b - a for a, b in zip(layers, layers[1:], strict=False)}
    if len(layers) > 4 and len(steps) == 1:
        return f"{layers[0]}, {layers[1]}, ..., {layers[-1]}"
    return ", ".join(map(str, layers))


def layers_summary(spec: ModelSpec) -> str | None:
    """One line on how the layers differ (dense vs MoE, chunked vs full attention), or None when they do not."""
    parts = []
    moe = moe_layers(spec)
    if moe and len(moe) < spec.num_hidden_layers:
        parts.append(f"{spec.num_dense_layers} dense + {len(moe)} MoE layers (MoE: {_layer_list(moe)})")
    if spec.num_linear_layers:
        parts.append(f"{spec.num_linear_layers} Gated DeltaNet linear-attention layers ({spec.linear_num_key_heads} "
                     f"key / {spec.linear_num_value_heads} value heads), "
                     f"{spec.num_hidden_layers - spec.num_linear_layers} attention layers")
    chunked = chunked_attention_layers(spec)
    if chunked:
        parts.append(f"{len(chunked)} chunked-attention layers (chunk {spec.attention_chunk_size:,} tokens), "
                     f"{spec.num_hidden_layers - len(chunked)} full-attention")
    return "; ".join(parts) or None


def degree_error(spec: ModelSpec, tp: int, *, engine: str) -> str | None:
    """The full user-facing message for an invalid degree, with the degrees that work."""
    reason = tp_violation(spec, tp, engine=engine)
    if reason is None:
        return None
    works = ", ".join(str(t) for t in valid_tp_degrees(spec, engine=engine))
    return f"{spec.name}: {reason} Degrees that work with {engine}: {works}"


def summarize(spec: ModelSpec, *, engine: str = "vllm", dtype: str = AUTO, kv_cache_dtype: str = "bf16",
              tp: int | None = None, resolved_from: str | None = None, context_len: int | None = None) -> ModelSummary:
    fmt = weight_format(spec, dtype)
    dtype = fmt.name
    def quant_problem(t: int) -> str | None:  # what no expert layout fixes: EP t holds the routed experts whole
        ep = t if spec.is_moe and t <= spec.num_experts else 1  # EP beyond the experts leaves GPUs without one
        blocks = block_quant_reasons(spec, fmt, tp=t, ep=ep, dp_attention=1, engine=engine)
        return group_quant_violation(spec, fmt, tp=t, engine=engine) or (blocks[0] if blocks else None)

    valid = [t for t in valid_tp_degrees(spec, engine=engine, max_tp=MAX_TP_DEGREE) if not quant_problem(t)]
    needs_ep = [t for t in valid if t <= 64 and spec.is_moe and
                block_quant_reasons(spec, fmt, tp=t, ep=1, dp_attention=1, engine=engine)]
    if tp is not None:
        message = degree_error(spec, tp, engine=engine)
        quant = quant_problem(tp)
        if message or quant:
            raise ModelSpecError(message or f"{spec.name}: {quant}. Degrees that work with {engine} and "
                                            f"{fmt.name}: {', '.join(str(t) for t in valid if t <= 64)}")
    shown = [tp] if tp is not None else [t for t in valid if t <= 64]
    rows = [DegreeRow(tp=t, weight_bytes_per_gpu=weight_bytes_per_gpu(spec, tp=t, dtype=dtype, engine=engine),
                      kv_heads_per_gpu=kv_heads_per_gpu(spec.num_key_value_heads, tp=t, engine=engine),
                      kv_cache_bytes_per_token_per_gpu=kv_cache_bytes_per_token(spec, tp=t, kv_dtype=kv_cache_dtype,
                                                                                engine=engine))
            for t in shown]
    shown_invalid = (2, 3, 4, 5, 6, 7, 8, 16, 32, 64)  # the degrees people actually try
    invalid = {t: r for t in shown_invalid if (r := tp_violation(spec, t, engine=engine) or quant_problem(t))}
    return ModelSummary(
        spec=spec, resolved_from=resolved_from, engine=engine, dtype=dtype, kv_cache_dtype=kv_cache_dtype,
        total_params=total_params(spec), active_params=active_params(spec),
        active_params_excluding_embedding=active_params_excluding_embedding(spec),
        params_by_component=params_by_component(spec), weight_bytes_total=weight_bytes_total(spec, dtype=dtype),
        kv_cache_bytes_per_token=kv_cache_bytes_per_token(spec, kv_dtype=kv_cache_dtype),
        context_len=context_len or spec.max_position_embeddings,
        kv_cache_bytes_per_sequence=kv_cache_bytes_per_sequence(
            spec, context_len=context_len or spec.max_position_embeddings, kv_dtype=kv_cache_dtype),
        valid_tp_degrees=valid,
        invalid_tp_reasons=invalid, degrees=rows, tp=tp or 1,
        weight_bytes_by_component=weight_bytes_by_component(spec, tp=tp or 1, dtype=dtype, engine=engine),
        weight_format=fmt, weight_bytes_by_group=weight_bytes_by_group(spec, dtype=dtype),
        vision_weight_bytes=spec.vision_params * fmt.unquantized_bytes, mtp_params=mtp_params(spec),
        linear_state_bytes_per_sequence=_linear_state(spec, engine, fmt.activation_bytes),
        notes=tuple(n for n in (override_note(spec, dtype), _needs_ep_note(needs_ep, fmt, spec, engine)) if n))


def _needs_ep_note(degrees: list[int], fmt, spec: ModelSpec, engine: str) -> str | None:
    """TP degrees whose routed-expert shards are not whole blocks of a block-scaled checkpoint unless the experts are
    held whole (expert parallelism), as the engines refuse them otherwise (block_quant_reasons)."""
    if not degrees:
        return None
    return (f"TP {', '.join(map(str, degrees))}: {engine} loads the {fmt.name} experts (moe_intermediate_size "
            f"{spec.moe_intermediate_size}) only with expert parallelism (whole experts per GPU), not split over TP")

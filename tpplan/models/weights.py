"""Weight bytes per GPU at TP degree t and PP degree p, sharded the way engines shard them.

Per group (tpplan.models.params): column/row-parallel groups hold ceil(params / t); KV projections hold
params / kv_heads x kv_heads_per_gpu(t) (replicated heads when t > kv heads; Megatron-Core instead splits them
t ways, tpplan.models.engines.gathers_qkv); vocab-parallel
embedding and lm_head hold padded_vocab / t rows; norms, routers and row-parallel biases are replicated.
PP gives stage i the layers [i*L//p, (i+1)*L//p); the embedding sits on the first stage, the final norm
and lm_head on the last (a tied lm_head is a second copy there when p > 1). The per-GPU figure is the
most loaded stage: that GPU decides what fits.

MoE layouts (tpplan.cost.moe): with expert parallelism (ep > 1) a GPU holds ceil(E / ep) whole routed experts;
with attention data parallelism and ep = 1 every routed expert is split over the replica's `expert_tp` = tp x
dp_attention GPUs. Megatron-Core training combines both (--expert-model-parallel-size ep with
--expert-tensor-parallel-size expert_tp): ceil(E / ep) experts per GPU, each of their column / row-parallel
matrices split expert_tp ways (tpplan.cost.train_experts). Attention, shared experts, routers and embeddings stay
sharded over the attention `tp`.

A checkpoint whose `keep_16bit` names single layers (Meta's Llama 4 FP8: the routed experts of the last layer stay
bf16) is summed layer by layer, so totals stay exact to the byte.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache

from tpplan.models.dtypes import AUTO, weight_format
from tpplan.models.engines import gathers_qkv, kv_heads_per_gpu, padded_vocab
from tpplan.models.formats import WeightFormat
from tpplan.models.params import ParamGroup, in_layer, layers_in, occurrences, param_groups
from tpplan.models.spec import ModelSpec
from tpplan.units import ceil_div


def params_per_gpu(s: ModelSpec, g: ParamGroup, *, tp: int, engine: str = "vllm", ep: int = 1,
                   expert_tp: int = 0, dense_tp: int = 0, shared_tp: int = 0, embed_tp: int = 0) -> int:
    """Parameters of one occurrence of group `g` held by one TP rank (routed experts: see the module docstring).
    `dense_tp` / `shared_tp` / `embed_tp` (0: tp): the GPUs the dense MLP and lm_head, the shared experts and the
    embedding split over where an engine splits them unlike attention (SGLang with DP attention:
    tpplan.planner.candidates.sglang_dp_attention_splits)."""
    if dense_tp or shared_tp or embed_tp:
        if g.name.startswith("shared_experts."):
            tp = shared_tp or dense_tp or tp
        elif g.component in ("mlp", "lm_head"):
            tp = dense_tp or tp
        elif g.component == "embedding":
            tp = embed_tp or tp
    if g.experts and ep > 1:
        per_expert = g.params // g.experts
        if expert_tp > 1 and g.split in ("column", "row"):
            per_expert = ceil_div(per_expert, expert_tp)
        return ceil_div(g.experts, ep) * per_expert
    if g.experts and expert_tp and g.split in ("column", "row"):
        return ceil_div(g.params, expert_tp)
    if g.split in ("column", "row"):
        return ceil_div(g.params, tp)
    if g.split == "kv":
        if gathers_qkv(s, tp=tp, engine=engine):  # plain row shards of the fused QKV weight, nothing replicated
            return ceil_div(g.params, tp)
        per_head = g.params // s.num_key_value_heads
        return per_head * kv_heads_per_gpu(s.num_key_value_heads, tp=tp, engine=engine)
    if g.split == "vocab":
        vocab = s.vocab_size + (s.embedding_extra_rows if g.scope == "embedding" else 0)
        rows = ceil_div(padded_vocab(vocab, tp=tp, engine=engine), tp)
        return rows * (g.params // vocab)
    return g.params


def stage_layers(num_layers: int, *, pp: int) -> list[range]:
    """Layers of each pipeline stage (as even as integers allow)."""
    return [range(i * num_layers // pp, (i + 1) * num_layers // pp) for i in range(pp)]


def resolve_layer_formats(s: ModelSpec) -> ModelSpec:
    """`s` with its checkpoint format's `layer_mean_bytes` filled: for each layer group whose bytes per parameter
    differ between the layers it sits in (a keep_16bit pattern naming single layers), the mean over those layers."""
    fmt = s.quantization
    if fmt is None or not fmt.quantized or not fmt.keep_16bit:
        return s
    means: list[tuple[str, float]] = []
    for g in param_groups(s):
        per = [fmt.bytes_per_param(g, layer=i) for i in range(s.num_hidden_layers) if in_layer(s, g.scope, i)]
        if len(set(per)) > 1:
            means.append((g.name, sum(per) / len(per)))
    return replace(s, quantization=replace(fmt, layer_mean_bytes=tuple(means))) if means else s


def _occurrence_bytes_per_param(s: ModelSpec, g: ParamGroup, fmt: WeightFormat, layers: range | None = None) -> float:
    """Bytes per parameter of `g` summed over its occurrences in `layers` (default: the whole model): occurrences
    x bytes_per_param, or layer by layer when the format varies by layer."""
    if fmt.varies_by_layer(g.name):
        span = layers if layers is not None else range(s.num_hidden_layers)
        return sum(fmt.bytes_per_param(g, layer=i) for i in span if in_layer(s, g.scope, i))
    if layers is None:
        return occurrences(s, g.scope) * fmt.bytes_per_param(g)
    return layers_in(s, g.scope, layers) * fmt.bytes_per_param(g)


def _stage_totals(s: ModelSpec, *, pp: int, amount: Callable[[ParamGroup, range | None], float]) -> list[float]:
    """Sum `amount(group, stage layers)` per pipeline stage (layer groups: their occurrences in the stage's
    layers), the embedding on the first stage, the final norm and lm_head on the last (plus a second copy of a
    tied embedding when pp > 1)."""
    groups = param_groups(s)
    out: list[float] = []
    for i, layers in enumerate(stage_layers(s.num_hidden_layers, pp=pp)):
        ends = {"embedding": i == 0, "head": i == pp - 1}
        total = sum(amount(g, layers) for g in groups if ends.get(g.scope, True))
        if s.tie_word_embeddings and pp > 1 and i == pp - 1:
            total += amount(next(g for g in groups if g.scope == "embedding"), None)
        out.append(total)
    return out


def _weight_amount(s: ModelSpec, fmt: WeightFormat, **shard: int | str) -> Callable[[ParamGroup, range | None], float]:
    """Bytes one GPU holds of a group's occurrences in a stage's layers (None: one occurrence)."""
    def amount(g: ParamGroup, layers: range | None) -> float:
        per_gpu = params_per_gpu(s, g, **shard)
        if layers is None or g.scope in ("embedding", "head"):
            return per_gpu * fmt.bytes_per_param(g)
        return per_gpu * _occurrence_bytes_per_param(s, g, fmt, layers)
    return amount


def _param_amount(s: ModelSpec, *, routed_only: bool = False,
                  **shard: int | str) -> Callable[[ParamGroup, range | None], float]:
    def amount(g: ParamGroup, layers: range | None) -> float:
        if routed_only and not g.experts:
            return 0
        n = params_per_gpu(s, g, **shard)
        if layers is None or g.scope in ("embedding", "head"):
            return n
        return n * layers_in(s, g.scope, layers)
    return amount


def weight_bytes_by_stage(s: ModelSpec, *, tp: int, pp: int = 1, dtype: str = AUTO, engine: str = "vllm", ep: int = 1,
                          expert_tp: int = 0, dense_tp: int = 0, shared_tp: int = 0, embed_tp: int = 0) -> list[int]:
    """Weight bytes on one GPU of each pipeline stage (the split arguments: `params_per_gpu`)."""
    fmt = weight_format(s, dtype)
    amount = _weight_amount(s, fmt, tp=tp, engine=engine, ep=ep, expert_tp=expert_tp, dense_tp=dense_tp,
                            shared_tp=shared_tp, embed_tp=embed_tp)
    return [math.ceil(t) for t in _stage_totals(s, pp=pp, amount=amount)]


def params_by_stage(s: ModelSpec, *, tp: int, pp: int = 1, engine: str = "vllm", ep: int = 1, expert_tp: int = 0,
                    routed_only: bool = False) -> list[int]:
    """Parameters on one GPU of each pipeline stage; `routed_only`: of the routed experts alone (the parameters
    whose gradients Megatron reduces over the expert-data-parallel group)."""
    return list(_params_by_stage(s, tp=tp, pp=pp, engine=engine, ep=ep, expert_tp=expert_tp, routed_only=routed_only))


@lru_cache(maxsize=4096)
def _params_by_stage(s: ModelSpec, *, tp: int, pp: int, engine: str, ep: int, expert_tp: int,
                     routed_only: bool) -> tuple[int, ...]:
    """params_by_stage, once per model and shard (a training search asks for the same shards many times)."""
    amount = _param_amount(s, routed_only=routed_only, tp=tp, engine=engine, ep=ep, expert_tp=expert_tp)
    return tuple(int(t) for t in _stage_totals(s, pp=pp, amount=amount))


def weight_bytes_per_gpu(s: ModelSpec, *, tp: int, pp: int = 1, dtype: str = AUTO, engine: str = "vllm", ep: int = 1,
                         expert_tp: int = 0, dense_tp: int = 0, shared_tp: int = 0, embed_tp: int = 0) -> int:
    """Weight bytes on the most loaded GPU of a (tp, pp) replica (ep / expert_tp: MoE layouts; the other split
    arguments: `params_per_gpu`)."""
    return max(weight_bytes_by_stage(s, tp=tp, pp=pp, dtype=dtype, engine=engine, ep=ep, expert_tp=expert_tp,
                                     dense_tp=dense_tp, shared_tp=shared_tp, embed_tp=embed_tp))


def weight_bytes_total(s: ModelSpec, *, dtype: str = AUTO) -> int:
    """Weight bytes of the whole model, unsharded and unpadded: sum of params x bytes per param."""
    fmt = weight_format(s, dtype)
    return math.ceil(sum(g.params * _occurrence_bytes_per_param(s, g, fmt) for g in param_groups(s)))


def weight_bytes_by_component(s: ModelSpec, *, tp: int, dtype: str = AUTO,
                              engine: str = "vllm") -> dict[str, int]:
    """Per-GPU weight bytes at (tp, pp=1), split by component (attention, mlp, experts, ...)."""
    fmt = weight_format(s, dtype)
    out: dict[str, float] = {}
    for g in param_groups(s):
        per_gpu = params_per_gpu(s, g, tp=tp, engine=engine) * _occurrence_bytes_per_param(s, g, fmt)
        out[g.component] = out.get(g.component, 0.0) + per_gpu
    return {k: math.ceil(v) for k, v in out.items()}


def weight_bytes_by_group(s: ModelSpec, *, dtype: str = AUTO) -> list[tuple[str, int, float, int]]:
    """(group, parameters in the whole model, bytes per parameter, bytes) for every parameter group, unsharded."""
    fmt = weight_format(s, dtype)
    rows = []
    for g in param_groups(s):
        n = g.params * occurrences(s, g.scope)
        rows.append((g.name, n, fmt.bytes_per_param(g), math.ceil(g.params * _occurrence_bytes_per_param(s, g, fmt))))
    return rows

"""Per-GPU compute, memory-traffic and communication time of one model replica (DESIGN.md §3).

`coefficients()` reduces (model, profile, tp, pp, dtype) to a handful of per-layer numbers once; the time
functions then work on floats or numpy arrays alike (batch, context and prompt length may be arrays: that
is how `tpplan sweep` vectorises). No numpy import here.

Every matmul group is a roofline: max(FLOPs / (peak x matmul_eff), bytes / (HBM x memory_eff)).
Decode attention reads the KV cache of every active sequence; prefill attention adds the causal quadratic
term 4 x I^2/2 x heads x head_dim per sequence (QK^T and PV). Communication per layer: 2 all-reduces of
tokens x hidden x act_bytes (1 for parallel-attention blocks), or with sequence parallelism a
reduce-scatter + all-gather of the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from tpplan.cost.collectives import collective_time_s, maximum, minimum, p2p_time_s
from tpplan.hardware.profile import HardwareProfile
from tpplan.models.dtypes import compute_dtype, weight_format
from tpplan.models.kv import kv_bytes_per_token_per_layer
from tpplan.models.params import occurrences, param_groups
from tpplan.models.spec import ModelSpec
from tpplan.models.weights import params_per_gpu

FLOPS_PER_MAC = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class Coefficients:
    """Per-GPU quantities of one (model, profile, tp, pp, dtype) candidate, summed or averaged per layer."""

    tp: int
    pp: int
    num_layers: int
    num_dense_layers: int
    num_moe_layers: int
    attn_bytes: float
    """Attention projection weight bytes per GPU per layer (q/k/v/o, MLA projections, norms)."""
    attn_flops_per_token: float
    mlp_bytes: float
    """Dense-layer MLP bytes per GPU (0 for all-MoE models)."""
    mlp_flops_per_token: float
    expert_bytes: float
    """One routed expert's bytes per GPU."""
    expert_flops_per_token: float
    moe_shared_bytes: float
    """Router and shared experts per GPU per MoE layer."""
    moe_shared_flops_per_token: float
    num_experts: int
    experts_per_token: int
    head_bytes: float
    """lm_head (vocab-parallel) bytes per GPU."""
    head_flops_per_token: float
    q_heads_per_gpu: int
    attn_dim: int
    """Per-head width read by the attention kernel (head_dim; MLA: kv_lora_rank + rope dim)."""
    kv_bytes_per_token_per_layer: float
    full_layers: int
    sliding_layers: int
    window: int
    hidden_size: int
    act_bytes: int
    allreduces_per_layer: int
    peak_flops_per_s: float
    hbm_bytes_per_s: float
    step_overhead_s: float


def _bucket(component: str, is_expert: bool) -> str | None:
    """Which time bucket a parameter group belongs to (None: not touched by a forward matmul)."""
    if component == "experts":
        return "expert" if is_expert else "moe_shared"
    return {"attention": "attn", "norm": "attn", "mlp": "mlp", "router": "moe_shared", "lm_head": "head"}.get(component)


def _group_bytes_flops(spec: ModelSpec, *, tp: int, dtype: str, engine: str) -> dict[str, list[float]]:
    """Per-GPU [bytes, FLOPs per token] of one layer's buckets (one expert for 'expert'), and of the lm_head."""
    out: dict[str, list[float]] = {}
    fmt = weight_format(spec, dtype)
    for g in param_groups(spec):
        if g.scope == "embedding" or (g.scope == "head" and g.component == "norm"):
            continue
        n = params_per_gpu(spec, g, tp=tp, engine=engine) / (g.experts or 1)
        slot = out.setdefault(_bucket(g.component, bool(g.experts)), [0.0, 0.0])
        slot[0] += n * fmt.bytes_per_param(g)
        slot[1] += FLOPS_PER_MAC * n
    if spec.tie_word_embeddings:  # the tied embedding is also the lm_head matmul
        emb = next(g for g in param_groups(spec) if g.scope == "embedding")
        n = params_per_gpu(spec, emb, tp=tp, engine=engine)
        out["head"] = [n * fmt.bytes_per_param(emb), FLOPS_PER_MAC * n]
    return out


def coefficients(spec: ModelSpec, profile: HardwareProfile, *, tp: int, pp: int = 1, dtype: str = "bf16",
                 kv_cache_dtype: str = "bf16", engine: str = "vllm") -> Coefficients:
    g = _group_bytes_flops(spec, tp=tp, dtype=dtype, engine=engine)
    z = [0.0, 0.0]
    sliding = sum(1 for layer in range(spec.num_hidden_layers) if spec.attention_window(layer) is not None)
    fmt = weight_format(spec, dtype)  # the checkpoint's format (auto) or the --dtype override
    flops_per_s, bytes_per_s = effective_rates(profile, compute_dtype(fmt, profile.gpu.peak_flops_per_s)[0])
    return Coefficients(
        tp=tp, pp=pp, num_layers=spec.num_hidden_layers, num_dense_layers=occurrences(spec, "dense_layer"),
        num_moe_layers=occurrences(spec, "moe_layer"),
        attn_bytes=g.get("attn", z)[0], attn_flops_per_token=g.get("attn", z)[1],
        mlp_bytes=g.get("mlp", z)[0], mlp_flops_per_token=g.get("mlp", z)[1],
        expert_bytes=g.get("expert", z)[0], expert_flops_per_token=g.get("expert", z)[1],
        moe_shared_bytes=g.get("moe_shared", z)[0], moe_shared_flops_per_token=g.get("moe_shared", z)[1],
        num_experts=spec.num_experts, experts_per_token=spec.num_experts_per_tok,
        head_bytes=g.get("head", z)[0], head_flops_per_token=g.get("head", z)[1],
        q_heads_per_gpu=-(-spec.num_attention_heads // tp),
        attn_dim=(spec.kv_lora_rank + spec.qk_rope_head_dim) if spec.is_mla else spec.head_dim,
        kv_bytes_per_token_per_layer=kv_bytes_per_token_per_layer(spec, tp=tp, kv_dtype=kv_cache_dtype,
                                                                  engine=engine),
        full_layers=spec.num_hidden_layers - sliding, sliding_layers=sliding, window=spec.sliding_window or 0,
        hidden_size=spec.hidden_size, act_bytes=fmt.activation_bytes,
        allreduces_per_layer=1 if spec.parallel_attn else 2,
        peak_flops_per_s=flops_per_s, hbm_bytes_per_s=bytes_per_s,
        step_overhead_s=profile.efficiency.step_overhead_s)


def effective_rates(profile: HardwareProfile, dtype: str) -> tuple[float, float]:
    """(FLOP/s, bytes/s) kernels achieve: dense peak x matmul efficiency, HBM bandwidth x memory efficiency."""
    e = profile.efficiency
    return profile.gpu.peak_flops_for(dtype) * e.matmul, profile.gpu.memory_bandwidth_bytes_per_s * e.memory


def roofline_time_s(flops, n_bytes, *, flops_per_s: float, bytes_per_s: float):
    """max(FLOPs / achieved FLOP/s, bytes / achieved bytes/s): floats or numpy arrays."""
    return maximum(flops / flops_per_s, n_bytes / bytes_per_s)


def roofline_s(c: Coefficients, flops, n_bytes):
    return roofline_time_s(flops, n_bytes, flops_per_s=c.peak_flops_per_s, bytes_per_s=c.hbm_bytes_per_s)


def _mlp_time_s(c: Coefficients, tokens):
    """All layers' MLP / MoE time for `tokens` tokens in flight per layer."""
    t = 0.0
    if c.num_dense_layers:
        t = c.num_dense_layers * roofline_s(c, c.mlp_flops_per_token * tokens, c.mlp_bytes)
    if c.num_moe_layers:
        e, k = c.num_experts, c.experts_per_token
        touched = e * (1 - (1 - k / e) ** tokens)  # expected distinct experts hit by `tokens` tokens
        flops = tokens * (k * c.expert_flops_per_token + c.moe_shared_flops_per_token)
        t = t + c.num_moe_layers * roofline_s(c, flops, touched * c.expert_bytes + c.moe_shared_bytes)
    return t


def _comm_time_s(c: Coefficients, profile: HardwareProfile, tokens, *, sequence_parallel: bool):
    n_bytes = tokens * c.hidden_size * c.act_bytes
    if sequence_parallel:
        one = (collective_time_s(profile, kind="reducescatter", group_size=c.tp, n_bytes=n_bytes)
               + collective_time_s(profile, kind="allgather", group_size=c.tp, n_bytes=n_bytes))
    else:
        one = collective_time_s(profile, kind="allreduce", group_size=c.tp, n_bytes=n_bytes)
    return c.num_layers * c.allreduces_per_layer * one


def _pipeline_time_s(c: Coefficients, profile: HardwareProfile, tokens):
    if c.pp <= 1:
        return tokens * 0.0
    crosses = c.tp * c.pp > profile.gpus_per_node
    return (c.pp - 1) * p2p_time_s(profile, n_bytes=tokens * c.hidden_size * c.act_bytes, crosses_nodes=crosses)


def decode_step_s(c: Coefficients, profile: HardwareProfile, *, batch, context_len, sequence_parallel=False):
    """One decode step of `batch` sequences at `context_len` tokens of context: (total, communication) seconds.

    With PP the batch is split into pp micro-batches in flight, so each stage's matmuls see batch / pp.
    """
    b = batch / c.pp
    ctx_sliding = minimum(context_len, c.window) if c.sliding_layers else 0
    ctx_tokens = c.full_layers * context_len + c.sliding_layers * ctx_sliding  # summed over layers
    attn_core = roofline_s(c, 2 * FLOPS_PER_MAC * b * ctx_tokens * c.q_heads_per_gpu * c.attn_dim,
                           b * ctx_tokens * c.kv_bytes_per_token_per_layer)
    linear = (c.num_layers * roofline_s(c, c.attn_flops_per_token * b, c.attn_bytes) + _mlp_time_s(c, b)
              + roofline_s(c, c.head_flops_per_token * b, c.head_bytes))
    comm = _comm_time_s(c, profile, b, sequence_parallel=sequence_parallel) + _pipeline_time_s(c, profile, b)
    # A token crosses every stage, so its step time sums all layers (each stage at micro-batch batch / pp).
    return linear + attn_core + comm + c.step_overhead_s, comm


def prefill_s(c: Coefficients, profile: HardwareProfile, *, prompts, input_len, sequence_parallel=False):
    """Prefill of `prompts` prompts of `input_len` tokens: (total, communication) seconds."""
    n = prompts * input_len
    causal_full = input_len * input_len / 2
    causal_sliding = (input_len * minimum(input_len, c.window) - minimum(input_len, c.window) ** 2 / 2
                      if c.sliding_layers else 0)
    pairs = prompts * (c.full_layers * causal_full + c.sliding_layers * causal_sliding)
    attn_core = roofline_s(c, 2 * FLOPS_PER_MAC * pairs * c.q_heads_per_gpu * c.attn_dim,
                           n * c.num_layers * c.kv_bytes_per_token_per_layer)
    linear = (c.num_layers * roofline_s(c, c.attn_flops_per_token * n, c.attn_bytes) + _mlp_time_s(c, n)
              + roofline_s(c, c.head_flops_per_token * prompts, c.head_bytes))
    comm = _comm_time_s(c, profile, n, sequence_parallel=sequence_parallel) + _pipeline_time_s(c, profile, n)
    return linear + attn_core + comm + c.step_overhead_s, comm


def allreduce_bytes_per_layer(c: Coefficients, *, tokens) -> float:
    """Bytes all-reduced per layer per forward step (0 at tp 1)."""
    return 0 if c.tp == 1 else c.allreduces_per_layer * tokens * c.hidden_size * c.act_bytes

"""Per-layer terms of one candidate: `coefficients()` reduces (model, profile, tp, pp, dtype, engine, MoE layout)
to the per-GPU bytes, FLOPs per token, kernel counts and widths of each layer's buckets (attention, dense MLP, one
routed expert, router and shared experts, lm_head), once. The step-time functions (tpplan.cost.step) then price
those terms for any batch, context or prompt length, floats or numpy arrays alike.

When the profile carries a measured kernel table (`tpplan measure`), the shard matmul curves and the fitted
per-layer overhead replace the roofline for the shapes the table covers (`_measured_terms`). The curves are short
timed bursts; under continuous load their compute-bound points stretch by 1 / efficiency.sustained_clock
(`sustained_curve`), as the roofline's FLOP rates do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from tpplan.cost.kernels import (
    FLOPS_PER_MAC,
    Fusion,
    KernelRates,
    fusion_for,
    kernel_rates,
    matmul_epilogue_k,
    prefill_attention_dtype,
    prefill_attention_native,
)
from tpplan.cost.moe import MoeKernels, MoeLayout, gather_ranks, gathers_tokens, moe_kernels_for
from tpplan.hardware.profile import HardwareProfile
from tpplan.models.dtypes import compute_dtype, weight_format
from tpplan.models.engines import gathers_qkv, kv_heads_per_gpu, padded_vocab
from tpplan.models.formats import LOW_PRECISION_COMPUTE, SIXTEEN_BIT, WeightFormat, sixteen_bit_dtype
from tpplan.models.kv import (
    kv_bytes_per_token_per_layer,
    kv_layers_per_stage,
    kv_window_mix_by_stage,
    linear_state_bytes_per_layer,
    linear_state_bytes_per_sequence,
    state_bytes_for,
)
from tpplan.models.moe_backends import A2aMode, TokenMovement, ll_chunk_tokens
from tpplan.models.params import ParamGroup, occurrences, param_groups
from tpplan.models.spec import ModelSpec
from tpplan.models.weights import params_per_gpu
from tpplan.records import record
from tpplan.units import ceil_div

if TYPE_CHECKING:  # measured tables are optional: tpplan.hardware.kernel_table loads when a profile has one
    from tpplan.hardware.kernel_table import MatmulCurve


@record
class Coefficients:
    """Per-GPU quantities of one (model, profile, tp, pp, dtype, engine) candidate, summed or averaged per layer."""

    tp: int
    pp: int
    num_layers: int
    num_dense_layers: int
    num_moe_layers: int
    attn_bytes: float
    """Attention projection weight bytes per GPU per layer (q/k/v/o, MLA projections, norms)."""
    attn_flops_per_token: float
    """FLOPs per token of those matmuls, with each output element's epilogue (efficiency.matmul_epilogue_k, at the
    rates the bucket runs at); so for every *_flops_per_token below."""
    attn_launches: int
    """Matmul kernels of the attention block: fused QKV + O (MLA: 4)."""
    mlp_bytes: float
    """Dense-layer MLP bytes per GPU (0 for all-MoE models)."""
    mlp_flops_per_token: float
    expert_bytes: float
    """One routed expert's bytes per GPU."""
    expert_flops_per_token: float
    moe_shared_bytes: float
    """Router and shared experts per GPU per MoE layer."""
    moe_shared_flops_per_token: float
    moe_shared_launches: int
    num_experts: int
    experts_per_token: int
    head_bytes: float
    """lm_head (vocab-parallel) bytes per GPU."""
    head_flops_per_token: float
    vocab_per_gpu: int = 0
    """The lm_head's vocabulary slice per GPU: the engine's padded vocabulary (models.engines.padded_vocab) / tp."""
    q_heads_per_gpu: int
    attn_dim: int
    """Per-head width read by the attention kernel (head_dim; MLA: kv_lora_rank + rope dim)."""
    kv_bytes_per_token_per_layer: float
    mlp_width_per_gpu: int
    """The activation kernel's width per token per GPU, averaged over the layers (`mlp_activation_widths`): dense
    layers intermediate_size / tp, MoE layers (experts_per_token + shared experts) x moe_intermediate_size / tp."""
    dense_width_per_gpu: int = 0
    """intermediate_size / tp of the dense MLP layers (Llama 4 Maverick: 16,384 / tp; 0 without dense layers): the
    width of their gate_up / down activations."""
    routed_width_per_gpu: int = 0
    """top_k x moe_intermediate_size / tp: a token's routed-expert activations when the experts are split over tp."""
    shared_width_per_gpu: int = 0
    """n_shared_experts x moe_intermediate_size / tp: the shared experts' activations (Llama 4, DeepSeek)."""
    kv_width_per_gpu: int
    """2 x kv heads per GPU x head_dim: the width the KV-cache write kernel moves per token."""
    full_layers: int
    windowed_layers: tuple[tuple[int, int], ...]
    """(window, layers) of the layers whose cache holds at most `window` tokens of a sequence (sliding window;
    0 for mllama's cross-attention layers, which hold no text tokens)."""
    chunked_layers: tuple[tuple[int, int], ...] = ()
    """(chunk, layers) of Llama 4's chunked-attention layers: a query attends to the keys of its own chunk only."""
    kv_windows: tuple[tuple[tuple[int | None, int], ...], ...] = ()
    """Per pipeline stage, the layers that cache a sequence's tokens by the tokens their cache keeps
    (tpplan.models.kv.kv_window_mix_by_stage): what a running sequence holds where the engine frees blocks behind a
    sliding window."""
    hidden_size: int
    act_bytes: int
    allreduces_per_layer: int
    rates: KernelRates
    attn_rates: KernelRates | None = None
    """Rates of the attention projections when the checkpoint keeps them in 16 bits while the other matmuls run
    in a low-precision dtype (gpt-oss MXFP4 and ModelOpt/fbgemm FP8 `keep_16bit` self_attn); None: `rates`."""
    head_rates: KernelRates | None = None
    """Rates of the lm_head when the checkpoint keeps it in 16 bits (ModelOpt FP8 and NVFP4 exclude lm_head)."""
    fusion: Fusion
    step_overhead_s: float
    pipeline_sequence_overhead_s: float = 0.0
    """Host seconds per sequence per stage boundary of a PP round (efficiency.pipeline_sequence_overhead)."""
    moe: MoeLayout | None = None
    """Expert parallelism / attention data parallelism (tpplan.cost.moe); None: experts split over tp."""
    moe_kernels: MoeKernels | None = None
    """The engine's routing kernels around the grouped GEMMs (tpplan.cost.moe; None for dense models)."""
    attn_curves: tuple[MatmulCurve, ...] = ()
    """Measured curves of the QKV and O shard matmuls (profile kernel_table); empty: the roofline."""
    mlp_curves: tuple[MatmulCurve, ...] = ()
    """Measured curves of the dense gate_up and down shard matmuls; empty: the roofline."""
    layer_overhead_s: tuple[float, float] = (0.0, 0.0)
    """Fitted (decode, prefill) seconds per layer that the kernels above do not explain (kernel_table)."""
    linear_layers: int = 0
    """Gated DeltaNet (linear-attention) layers of the model (Qwen3-Next); their projections sit in attn_bytes /
    attn_flops_per_token, which are then averages over all layers (`_layer_share`)."""
    linear_state_bytes: float = 0.0
    """One sequence's conv + recurrent state in one linear layer per GPU (tpplan.models.kv
    .linear_state_bytes_per_layer): a decode step reads and writes it once per running sequence."""
    linear_decode_flops: float = 0.0
    """FLOPs of one decode token's delta-rule update in one linear layer per GPU (`linear_attention_flops`)."""
    linear_prefill_flops_per_token: float = 0.0
    """FLOPs per prompt token of the chunked delta rule in one linear layer per GPU (`linear_attention_flops`)."""
    state_tokens_per_sequence: int = 0
    """The per-sequence linear state of the most loaded stage in KV-token equivalents (its bytes / the stage's KV
    bytes per token, rounded up): what each running sequence holds beyond its KV tokens (tpplan.cost.batching)."""
    kv_block_tokens: int = 0
    """The KV block size the engine uses instead of its default (vLLM's hybrid models, `hybrid_kv_block_tokens`);
    0: the engine's default."""
    qkv_gather_width: int = 0
    """Elements per token of the fused QKV activation that each layer all-gathers over TP where the engine runs
    t > kv heads that way (tpplan.models.engines.gathers_qkv: Megatron-Core), (heads + 2 kv heads) x head_dim;
    0: no such collective."""
    norm_allreduces_per_layer: int = 0
    """Small all-reduces per layer of one fp32 value per token: a q / k RMSNorm over the whole projection, which TP
    splits, sums its squares across the ranks (MiniMax-M2's qk_norm_type 'per_layer': vLLM's
    MiniMaxText01RMSNormTP all-reduces the variance, vllm/model_executor/models/minimax_m2.py); 0 at tp 1."""


def _bucket(component: str, is_expert: bool) -> str | None:
    """Which time bucket a parameter group belongs to (None: not touched by a forward matmul)."""
    if component == "experts":
        return "expert" if is_expert else "moe_shared"
    return {"attention": "attn", "norm": "attn", "mlp": "mlp", "router": "moe_shared", "lm_head": "head"}.get(component)


def _layer_share(spec: ModelSpec, scope: str) -> float:
    """The fraction of the layers that hold a group of a hybrid model's 'attention_layer' / 'linear_layer' scope, so
    that the attention bucket is a per-layer average (Qwen3-Next: 12 / 48 gated attention, 36 / 48 Gated DeltaNet);
    1 for every other scope."""
    if scope not in ("attention_layer", "linear_layer"):
        return 1.0
    return occurrences(spec, scope) / spec.num_hidden_layers


def _local_k(g: ParamGroup, tp: int) -> int:
    """K of one rank's matmul of group `g`: a row-parallel group splits its input width over the TP ranks."""
    return ceil_div(g.in_features, tp) if g.split == "row" else g.in_features


def _group_bytes_flops(spec: ModelSpec, *, tp: int, dtype: str, engine: str,
                       epilogue_k: Callable[[str], float]) -> dict[str, list[float]]:
    """Per-GPU [bytes, FLOPs per token] of one layer's buckets (one expert for 'expert'), and of the lm_head. The
    FLOPs include each output element's epilogue at `epilogue_k(bucket)` K-steps (tpplan.cost.kernels.
    matmul_epilogue_k): a group of n parameters per GPU with local input width K has n / K outputs per token, worth
    2 x (n / K) x epilogue_k FLOPs on top of its 2 x n."""
    out: dict[str, list[float]] = {}
    fmt = weight_format(spec, dtype)

    def add(bucket: str, g: ParamGroup, n: float) -> None:
        slot = out.setdefault(bucket, [0.0, 0.0])
        slot[0] += n * fmt.bytes_per_param(g)
        slot[1] += FLOPS_PER_MAC * n
        if g.in_features:  # matmul groups; norms, biases and other vectors have no input width
            slot[1] += FLOPS_PER_MAC * n / _local_k(g, tp) * epilogue_k(bucket)

    for g in param_groups(spec):
        if g.scope == "embedding" or (g.scope == "head" and g.component == "norm"):
            continue
        add(_bucket(g.component, bool(g.experts)),
            g, params_per_gpu(spec, g, tp=tp, engine=engine) / (g.experts or 1) * _layer_share(spec, g.scope))
    if spec.tie_word_embeddings:  # the tied embedding is also the lm_head matmul
        emb = next(g for g in param_groups(spec) if g.scope == "embedding")
        out.pop("head", None)
        add("head", replace(emb, in_features=emb.in_features or spec.hidden_size),
            params_per_gpu(spec, emb, tp=tp, engine=engine))
    return out


def mlp_activation_widths(spec: ModelSpec) -> tuple[int, int]:
    """(dense, MoE) width of the activation kernel (SwiGLU) per token of one layer, unsharded: a dense MLP's
    intermediate_size (0 when the model has no dense MLP layers: Llama 4 Scout's config carries
    intermediate_size_mlp 16,384 but every layer is MoE), and an MoE layer's routed top_k x moe_intermediate_size
    plus its shared experts' n_shared x moe_intermediate_size (0 for dense models)."""
    if not spec.is_moe:
        return spec.intermediate_size, 0
    dense = spec.intermediate_size if occurrences(spec, "dense_layer") else 0
    return dense, (max(1, spec.num_experts_per_tok) + spec.n_shared_experts) * spec.moe_intermediate_size


def _mlp_width_per_gpu(spec: ModelSpec, tp: int) -> int:
    """Layer-averaged activation width per GPU: (dense layers x dense width + MoE layers x MoE width) / layers / tp
    (Llama 4 Maverick interleaves 16,384-wide dense layers with 8,192 + 8,192 routed + shared MoE layers)."""
    dense, moe = mlp_activation_widths(spec)
    if not spec.is_moe:
        return ceil_div(dense, tp)
    total = occurrences(spec, "dense_layer") * dense + occurrences(spec, "moe_layer") * moe
    return ceil_div(total, spec.num_hidden_layers * tp)


DELTA_RULE_CHUNK_TOKENS = 64
"""Chunk length of the chunked gated delta rule that prefill runs (fla chunk_gated_delta_rule; transformers'
torch_chunk_gated_delta_rule chunk_size=64, models/qwen3_next/modular_qwen3_next.py)."""


def linear_attention_flops(spec: ModelSpec, *, tp: int) -> tuple[float, float]:
    """(decode FLOPs per token, prefill FLOPs per token) of one Gated DeltaNet layer's recurrence on one GPU, over its
    v heads / tp heads of a k_dim x v_dim state (the projections are matmuls priced with the attention bucket).

    Decode (fused recurrent rule, per head): S^T k and S^T q, 2 x dk x dv MACs, plus the decay and the rank-1
    update of S, 2 x dk x dv elementwise FLOPs. Prefill (chunked rule, chunks of C = DELTA_RULE_CHUNK_TOKENS, per
    token and head): the intra-chunk q k^T, attn v, and the WY products on k and v, about 2 x C x (dk + dv) MACs,
    plus the inter-chunk products with the state (q S, k_cumdecay S, k^T v_new), 3 x dk x dv MACs. An
    approximation: the kernels' triangular solves and gating are left out, and the FLOPs are priced at the
    attention kernels' rates."""
    if not spec.num_linear_layers:
        return 0.0, 0.0
    heads = spec.linear_num_value_heads // tp
    dk, dv = spec.linear_key_head_dim, spec.linear_value_head_dim
    decode = heads * (FLOPS_PER_MAC * 2 * dk * dv + 2 * dk * dv)
    prefill = heads * FLOPS_PER_MAC * (2 * DELTA_RULE_CHUNK_TOKENS * (dk + dv) + 3 * dk * dv)
    return float(decode), float(prefill)


HYBRID_KV_BLOCK_ALIGNMENT_TOKENS = 16
"""vLLM's kernel block alignment for the FlashAttention backend (get_supported_kernel_block_sizes: MultipleOf(16)),
the floor of a hybrid model's attention block size (vllm/platforms/interface.py, _align_hybrid_block_size)."""


def hybrid_kv_block_tokens(state_bytes_per_layer: int, kv_bytes_per_token_per_layer: int) -> int:
    """vLLM's attention block size for a model with linear-attention layers: every KV-cache page holds either one
    layer's block of attention KV or one sequence's state of one linear layer, so the block grows until its page
    holds the state: 16 x ceil(state / (16 x KV bytes per token)), and the state is padded up to that page
    (vllm/platforms/interface.py _align_hybrid_block_size; Qwen3-Next bf16 at tp 1: 16 x ceil(1,097,728 / 32,768)
    = 544 tokens)."""
    align = HYBRID_KV_BLOCK_ALIGNMENT_TOKENS
    return align * ceil_div(state_bytes_per_layer, align * kv_bytes_per_token_per_layer)


def _linear_terms(spec: ModelSpec, *, tp: int, pp: int, act_bytes: int, kv_bytes_per_token_per_layer: int,
                  engine: str) -> dict:
    """Coefficients' linear-attention fields (none for models without such layers). With vLLM each state occupies
    one KV page (`hybrid_kv_block_tokens`): a sequence holds, per linear layer of the stage, one block's worth of
    KV tokens; other engines keep the state at its own size, SGLang's recurrent part in fp32 (`state_bytes_for`;
    its separate state pool and the running-request cap it sets are not modelled)."""
    if not spec.num_linear_layers:
        return {}
    decode, prefill = linear_attention_flops(spec, tp=tp)
    conv_bytes, recurrent_bytes = state_bytes_for(engine, act_bytes)
    per_layer = linear_state_bytes_per_layer(spec, tp=tp, state_bytes=conv_bytes, recurrent_bytes=recurrent_bytes)
    per_token = kv_layers_per_stage(spec, pp=pp) * kv_bytes_per_token_per_layer
    state = linear_state_bytes_per_sequence(spec, tp=tp, pp=pp, state_bytes=conv_bytes,
                                            recurrent_bytes=recurrent_bytes)
    block = 0
    if engine == "vllm" and kv_bytes_per_token_per_layer:
        block = hybrid_kv_block_tokens(per_layer, kv_bytes_per_token_per_layer)
        state = state // per_layer * block * kv_bytes_per_token_per_layer
    return {"linear_layers": spec.num_linear_layers, "linear_state_bytes": per_layer,
            "linear_decode_flops": decode, "linear_prefill_flops_per_token": prefill,
            "state_tokens_per_sequence": ceil_div(state, per_token) if per_token else 0, "kv_block_tokens": block}


def coefficients(spec: ModelSpec, profile: HardwareProfile, *, tp: int, pp: int = 1, dtype: str = "bf16",
                 kv_cache_dtype: str = "bf16", engine: str = "vllm", fusion: Fusion | None = None, ep: int = 1,
                 dp_attention: int = 1, moe_imbalance: float = 1.0, moe_dispatch: TokenMovement | None = None,
                 a2a_mode: A2aMode = "fabric", sustained: bool = True) -> Coefficients:
    """`fusion` overrides the engine's kernel set (the fidelity benchmark models the unfused measurement harness).
    `sustained` False: FLOP rates of a short measurement, not of continuous load (tpplan.cost.kernels.kernel_rates).
    `ep` / `dp_attention` > 1 lay an MoE model out as tpplan.cost.moe describes (tp = attention TP per DP rank);
    `moe_dispatch` forces their token movement ("gather" / "all2all"; None: the engine's default) and `a2a_mode` the
    kernels of an all-to-all (tpplan.models.moe_backends.a2a_mode; "fabric" for backends that are not DeepEP)."""
    z = [0.0, 0.0]
    chunked = [spec.is_chunked_layer(i) for i in range(spec.num_hidden_layers)]
    windows = Counter(spec.attention_window(i) for i in range(spec.num_hidden_layers) if not chunked[i])
    full = windows.pop(None, 0)
    fmt = weight_format(spec, dtype)  # the checkpoint's format (auto) or the --dtype override
    matmul_dtype = compute_dtype(fmt, profile.gpu.peak_flops_per_s)[0]  # weight-only formats compute in 16 bits
    fused = (fusion or fusion_for(engine)).fused_decode_attention
    rates = kernel_rates(profile, matmul_dtype, sustained=sustained,
                         native_attention=prefill_attention_native(fusion or fusion_for(engine),
                                                                   kv_cache_dtype=kv_cache_dtype),
                         attention_dtype=prefill_attention_dtype(fusion or fusion_for(engine), profile.efficiency,
                                                                 kv_cache_dtype=kv_cache_dtype),
                         fused_attention=fused)
    attn_rates = _sixteen_bit_rates(spec, fmt, profile, matmul_dtype, "attention", sustained=sustained, fused=fused)
    head_rates = _sixteen_bit_rates(spec, fmt, profile, matmul_dtype, "lm_head", sustained=sustained, fused=fused)
    bucket_rates = {"attn": attn_rates or rates, "head": head_rates or rates}
    g = _group_bytes_flops(spec, tp=tp, dtype=dtype, engine=engine,
                           epilogue_k=lambda bucket: bucket_rates.get(bucket, rates).matmul_epilogue_k)
    kv_per_layer = kv_bytes_per_token_per_layer(spec, tp=tp, kv_dtype=kv_cache_dtype, engine=engine)
    return Coefficients(
        tp=tp, pp=pp, num_layers=spec.num_hidden_layers, num_dense_layers=occurrences(spec, "dense_layer"),
        num_moe_layers=occurrences(spec, "moe_layer"),
        attn_bytes=g.get("attn", z)[0], attn_flops_per_token=g.get("attn", z)[1],
        attn_launches=(4 if spec.q_lora_rank else 3) if spec.is_mla else 2,
        mlp_bytes=g.get("mlp", z)[0], mlp_flops_per_token=g.get("mlp", z)[1],
        expert_bytes=g.get("expert", z)[0], expert_flops_per_token=g.get("expert", z)[1],
        moe_shared_bytes=g.get("moe_shared", z)[0], moe_shared_flops_per_token=g.get("moe_shared", z)[1],
        moe_shared_launches=1 + (2 if spec.n_shared_experts else 0),
        num_experts=spec.num_experts, experts_per_token=spec.num_experts_per_tok,
        head_bytes=g.get("head", z)[0], head_flops_per_token=g.get("head", z)[1],
        vocab_per_gpu=ceil_div(padded_vocab(spec.vocab_size, tp=tp, engine=engine), tp),
        q_heads_per_gpu=ceil_div(spec.num_attention_heads, tp),
        attn_dim=(spec.kv_lora_rank + spec.qk_rope_head_dim) if spec.is_mla else spec.head_dim,
        kv_bytes_per_token_per_layer=kv_per_layer,
        mlp_width_per_gpu=_mlp_width_per_gpu(spec, tp),
        dense_width_per_gpu=ceil_div(mlp_activation_widths(spec)[0], tp),
        routed_width_per_gpu=ceil_div(spec.moe_intermediate_size * spec.num_experts_per_tok, tp),
        shared_width_per_gpu=ceil_div(spec.moe_intermediate_size * spec.n_shared_experts, tp),
        kv_width_per_gpu=(spec.kv_lora_rank + spec.qk_rope_head_dim if spec.is_mla else
                          2 * kv_heads_per_gpu(spec.num_key_value_heads, tp=tp, engine=engine) * spec.head_dim),
        full_layers=full, windowed_layers=tuple(sorted(windows.items())),
        chunked_layers=((spec.attention_chunk_size, sum(chunked)),) if any(chunked) else (),
        kv_windows=kv_window_mix_by_stage(spec, pp=pp),
        hidden_size=spec.hidden_size, act_bytes=fmt.activation_bytes,
        allreduces_per_layer=1 if spec.parallel_attn else 2,
        norm_allreduces_per_layer=2 if spec.qk_norm_full_width and tp > 1 else 0,
        qkv_gather_width=((spec.num_attention_heads + 2 * spec.num_key_value_heads) * spec.head_dim
                          if gathers_qkv(spec, tp=tp, engine=engine) else 0),
        rates=rates, attn_rates=attn_rates, head_rates=head_rates,
        fusion=fusion or fusion_for(engine),
        step_overhead_s=profile.efficiency.step_overhead_s,
        pipeline_sequence_overhead_s=profile.efficiency.pipeline_sequence_overhead_s,
        moe=_moe_layout(spec, tp=tp, ep=ep, dp_attention=dp_attention, imbalance=moe_imbalance, dtype=dtype,
                        engine=engine, act_bytes=fmt.activation_bytes,
                        nvlink_domain_gpus=profile.nvlink_domain_size, dispatch=moe_dispatch, a2a_mode=a2a_mode,
                        experts_8bit=matmul_dtype in LOW_PRECISION_COMPUTE, epilogue_k=rates.matmul_epilogue_k),
        moe_kernels=moe_kernels_for(engine) if spec.is_moe else None,
        **_measured_terms(spec, profile, tp=tp, engine=engine, plain=fmt.name == matmul_dtype, dtype=matmul_dtype,
                          sustained=sustained),
        **_linear_terms(spec, tp=tp, pp=pp, act_bytes=fmt.activation_bytes, kv_bytes_per_token_per_layer=kv_per_layer,
                        engine=engine))


def _sixteen_bit_rates(spec: ModelSpec, fmt: WeightFormat, profile: HardwareProfile, matmul_dtype: str,
                       component: str, *, sustained: bool, fused: bool = False) -> KernelRates | None:
    """16-bit matmul rates for `component`'s matmuls when the checkpoint keeps every quantizable weight of it in
    16 bits in every layer (`keep_16bit`, e.g. gpt-oss's 'model.layers.*.self_attn' and 'lm_head', vllm
    quantization/mxfp4.py) while the model's other matmuls run at `matmul_dtype` (fp8 / fp4): those matmuls run
    the 16-bit kernels at the 16-bit peak. None when they share the model's rate."""
    if matmul_dtype in SIXTEEN_BIT or not fmt.quantized:
        return None
    groups = [g for g in param_groups(spec) if g.component == component]
    if component == "lm_head" and spec.tie_word_embeddings:  # the head is the embedding, never quantized
        groups = [g for g in param_groups(spec) if g.component == "embedding" and g.split == "vocab"]
    if not groups or any(fmt.bytes_per_param(g) != fmt.unquantized_bytes for g in groups):
        return None
    return kernel_rates(profile, sixteen_bit_dtype(profile.gpu.peak_flops_per_s), sustained=sustained,
                        fused_attention=fused)


def _moe_layout(spec: ModelSpec, *, tp: int, ep: int, dp_attention: int, imbalance: float, dtype: str, engine: str,
                act_bytes: int, nvlink_domain_gpus: int, dispatch: TokenMovement | None = None,
                epilogue_k: float, a2a_mode: A2aMode = "fabric", experts_8bit: bool = False) -> MoeLayout | None:
    """The MoE layout of an EP / DP-attention candidate (None for TP-only layouts and dense models). Whether EP +
    DP attention gathers tokens or dispatches them all-to-all is `dispatch` when the user forced a backend, else the
    engine's default; over how many GPUs a gather runs is the engine's (`gathers_tokens`, `gather_ranks` in
    tpplan.cost.moe). DeepEP dispatches FP8 where the experts compute in 8 bits or fewer (vLLM and SGLang quantize
    before the dispatch for block-FP8 experts), and SGLang's low-latency dispatch always (SGLANG_DEEPEP_BF16_DISPATCH
    defaults to False, python/sglang/srt/environ.py)."""
    if not spec.is_moe or (ep == 1 and dp_attention == 1):
        return None
    group = tp * dp_attention
    shard = group // ep  # EP = G holds whole experts, EP 1 splits each over the group, EP < G (hybrid) G / EP ways
    one = _group_bytes_flops(spec, tp=shard, dtype=dtype, engine=engine, epilogue_k=lambda bucket: epilogue_k)["expert"]
    gather = ep > 1 and gathers_tokens(engine=engine, ep=ep, experts_per_token=spec.num_experts_per_tok,
                                       nvlink_domain_gpus=nvlink_domain_gpus, forced=dispatch)
    return MoeLayout(ep=ep, dp_attention=dp_attention, group_size=group, imbalance=imbalance, busy_ranks=dp_attention,
                     gather_dispatch=gather, gather_ranks=gather_ranks(engine=engine, tp=tp, dp_attention=dp_attention),
                     num_experts=spec.num_experts, experts_per_token=spec.num_experts_per_tok,
                     local_experts=ceil_div(spec.num_experts, ep), expert_bytes=one[0], expert_flops_per_token=one[1],
                     expert_width_per_gpu=ceil_div(spec.moe_intermediate_size, shard), hidden_size=spec.hidden_size,
                     act_bytes=act_bytes, a2a_mode=a2a_mode, dispatch_fp8=experts_8bit,
                     ll_dispatch_fp8=experts_8bit or engine == "sglang", ll_tokens_per_call=ll_chunk_tokens(engine))


def shard_matmul_shapes(spec: ModelSpec, *, tp: int, engine: str = "vllm") -> dict[str, list[tuple[int, int]]]:
    """(N, K) of one rank's [M, K] x [K, N] matmuls per layer: attention (fused QKV, O) and dense MLP
    (fused gate_up, down) -- the shapes `tpplan measure` times and its kernel table is keyed by."""
    d, h = spec.head_dim, spec.hidden_size
    q_local = ceil_div(spec.num_attention_heads, tp)
    kv_local = kv_heads_per_gpu(spec.num_key_value_heads, tp=tp, engine=engine)
    f_local = ceil_div(spec.intermediate_size, tp)
    return {"attn": [((q_local + 2 * kv_local) * d, h), (h, q_local * d)],
            "mlp": [((2 if spec.gated_mlp else 1) * f_local, h), (h, f_local)]}


def _measured_terms(spec: ModelSpec, profile: HardwareProfile, *, tp: int, engine: str, plain: bool, dtype: str,
                    sustained: bool) -> dict:
    """What a measured kernel table replaces: the shard matmul curves (only for a plain format of the table's
    dtype, since a weight-only or block-scaled format runs other kernels; not for MLA projections) and the
    fitted per-layer overhead per mode. `sustained`: the curves at the clock of continuous load (sustained_curve);
    False: as measured (`tpplan measure` compares its own short bursts)."""
    table = profile.kernel_table
    if table is None:
        return {}
    from tpplan.hardware.kernel_table import matmul_curve

    out: dict = {"layer_overhead_s": (table.layer_overhead_s.get("decode", 0.0),
                                      table.layer_overhead_s.get("prefill", 0.0))}
    for bucket, shapes in shard_matmul_shapes(spec, tp=tp, engine=engine).items():
        curves = [matmul_curve(table, n=n, k=k, dtype=dtype) for n, k in shapes]
        usable = plain and all(curves) and not (bucket == "attn" and spec.is_mla)
        if usable:
            out[f"{bucket}_curves"] = tuple(sustained_curve(cv, profile, dtype=dtype) if sustained else cv
                                            for cv in curves)
    return out


def sustained_curve(curve: MatmulCurve, profile: HardwareProfile, *, dtype: str) -> MatmulCurve:
    """A measured matmul curve (short timed bursts at the boost clock) as it runs under continuous load, where the
    SM clock falls to efficiency.sustained_clock (s) of it. Only the FLOP-bound part of a kernel is paced by that
    clock; streaming weights is paced by the HBM clock. So each point of the shape's burst roofline
    t = max(FLOPs / R, bytes / B) + fixed keeps its time unless the lowered compute roof is slower:

        t_sustained(M) = max(t(M), FLOPs(M) / (s x R)),  FLOPs(M) = 2 x M x n x (k + K0),

    with K0 the profile's epilogue depth for `dtype` (tpplan.cost.kernels.matmul_epilogue_k: a measured thin-K curve
    has it in its times) and R the burst compute rate of the shape: the faster of the profile's (peak x matmul
    share of `dtype`) and the best FLOPs / t the curve itself reached. A point at that roof (compute-bound, large
    M) stretches by exactly 1 / s; a point at or below s x R (weight-streaming or launch-bound, small M) is
    unchanged; none stretches by more than 1 / s. Interpolation between the new points and the extrapolation above
    the last (proportional to M) follow. Seconds."""
    clock = profile.efficiency.sustained_clock
    if clock >= 1.0:
        return curve
    depth = curve.k + matmul_epilogue_k(profile.efficiency, dtype)
    flops = [FLOPS_PER_MAC * m * curve.n * depth for m in curve.tokens]
    roof = max(kernel_rates(profile, dtype, sustained=False).matmul_flops_per_s,
               *(f / t for f, t in zip(flops, curve.time_s, strict=True) if t > 0))
    return replace(curve, time_s=tuple(max(t, f / (clock * roof)) for f, t in zip(flops, curve.time_s, strict=True)))

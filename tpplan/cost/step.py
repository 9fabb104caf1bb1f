"""Per-GPU time of one forward step of one model replica, split into compute, communication and overhead.

`coefficients()` reduces (model, profile, tp, pp, dtype, engine) to a handful of per-layer numbers once; the
time functions then work on floats or numpy arrays alike (batch, context and prompt length may be arrays: that
is how `tpplan sweep` vectorises). No numpy import here.

Compute is the list of kernels the engine launches per layer (tpplan.cost.kernels): fused QKV and O, gate_up
and down (MoE: router and grouped GEMMs over the experts the tokens touch), the elementwise kernels the engine
does not fuse, and attention: decode reads every active sequence's KV once; prefill is causal flash attention,
4 x I^2/2 x heads x head_dim FLOPs per sequence. Each kernel is a roofline plus a fixed per-kernel time.
Communication per layer: 2 all-reduces of tokens x hidden x act_bytes (1 for parallel-attention blocks), or
with sequence parallelism a reduce-scatter + all-gather of the same bytes; plus PP hand-offs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tpplan.cost.collectives import collective_time_s, pipeline_handoffs_s
from tpplan.cost.kernels import (
    FLOPS_PER_MAC,
    Fusion,
    KernelRates,
    decode_attention_time_s,
    elementwise_time_s,
    fusion_for,
    kernel_rates,
    matmul_time_s,
    prefill_attention_time_s,
)
from tpplan.cost.moe import (
    MoeKernels,
    MoeLayout,
    layers_comm_time_s,
    moe_kernels_for,
    pairs_on_gpu,
    routed_experts_time_s,
    routing_time_s,
    split_experts_time_s,
)
from tpplan.errors import TpplanError
from tpplan.hardware.kernel_table import MatmulCurve, interpolate_s, matmul_curve
from tpplan.hardware.profile import HardwareProfile
from tpplan.models.dtypes import compute_dtype, weight_format
from tpplan.models.engines import kv_heads_per_gpu
from tpplan.models.kv import kv_bytes_per_token_per_layer
from tpplan.models.params import occurrences, param_groups
from tpplan.models.spec import ModelSpec
from tpplan.models.weights import params_per_gpu
from tpplan.units import ceil_div, maximum, minimum


@dataclass(frozen=True, slots=True, kw_only=True)
class StepTime:
    """One forward step on one GPU, seconds (floats or arrays). compute: GPU kernel time (matmuls, attention,
    elementwise); communication: collectives and PP hand-offs; overhead: scheduler and sampling per step."""

    compute_s: object
    communication_s: object
    overhead_s: object
    total_s: object


def step_time(*, compute_s, communication_s, overhead_s) -> StepTime:
    return StepTime(compute_s=compute_s, communication_s=communication_s, overhead_s=overhead_s,
                    total_s=compute_s + communication_s + overhead_s)




@dataclass(frozen=True, slots=True, kw_only=True)
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
    q_heads_per_gpu: int
    attn_dim: int
    """Per-head width read by the attention kernel (head_dim; MLA: kv_lora_rank + rope dim)."""
    kv_bytes_per_token_per_layer: float
    mlp_width_per_gpu: int
    """intermediate_size / tp (MoE: experts_per_token x moe_intermediate_size / tp): the activation kernel's width."""
    kv_width_per_gpu: int
    """2 x kv heads per GPU x head_dim: the width the KV-cache write kernel moves per token."""
    full_layers: int
    windowed_layers: tuple[tuple[int, int], ...]
    """(window, layers) of the layers whose cache holds at most `window` tokens of a sequence (sliding window;
    0 for mllama's cross-attention layers, which hold no text tokens)."""
    chunked_layers: tuple[tuple[int, int], ...] = ()
    """(chunk, layers) of Llama 4's chunked-attention layers: a query attends to the keys of its own chunk only."""
    hidden_size: int
    act_bytes: int
    allreduces_per_layer: int
    rates: KernelRates
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
                 kv_cache_dtype: str = "bf16", engine: str = "vllm", fusion: Fusion | None = None, ep: int = 1,
                 dp_attention: int = 1, moe_imbalance: float = 1.0, sustained: bool = True) -> Coefficients:
    """`fusion` overrides the engine's kernel set (the fidelity benchmark models the unfused measurement harness).
    `sustained` False: FLOP rates of a short measurement, not of continuous load (tpplan.cost.kernels.kernel_rates).
    `ep` / `dp_attention` > 1 lay an MoE model out as tpplan.cost.moe describes (tp = attention TP per DP rank)."""
    g = _group_bytes_flops(spec, tp=tp, dtype=dtype, engine=engine)
    z = [0.0, 0.0]
    chunked = [spec.is_chunked_layer(i) for i in range(spec.num_hidden_layers)]
    windows = Counter(spec.attention_window(i) for i in range(spec.num_hidden_layers) if not chunked[i])
    full = windows.pop(None, 0)
    moe_width = spec.moe_intermediate_size * max(1, spec.num_experts_per_tok)
    fmt = weight_format(spec, dtype)  # the checkpoint's format (auto) or the --dtype override
    matmul_dtype = compute_dtype(fmt, profile.gpu.peak_flops_per_s)[0]  # weight-only formats compute in 16 bits
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
        q_heads_per_gpu=ceil_div(spec.num_attention_heads, tp),
        attn_dim=(spec.kv_lora_rank + spec.qk_rope_head_dim) if spec.is_mla else spec.head_dim,
        kv_bytes_per_token_per_layer=kv_bytes_per_token_per_layer(spec, tp=tp, kv_dtype=kv_cache_dtype,
                                                                  engine=engine),
        mlp_width_per_gpu=ceil_div(spec.intermediate_size if not spec.is_moe else moe_width, tp),
        kv_width_per_gpu=(spec.kv_lora_rank + spec.qk_rope_head_dim if spec.is_mla else
                          2 * kv_heads_per_gpu(spec.num_key_value_heads, tp=tp, engine=engine) * spec.head_dim),
        full_layers=full, windowed_layers=tuple(sorted(windows.items())),
        chunked_layers=((spec.attention_chunk_size, sum(chunked)),) if any(chunked) else (),
        hidden_size=spec.hidden_size, act_bytes=fmt.activation_bytes,
        allreduces_per_layer=1 if spec.parallel_attn else 2,
        rates=kernel_rates(profile, matmul_dtype, sustained=sustained), fusion=fusion or fusion_for(engine),
        step_overhead_s=profile.efficiency.step_overhead_s,
        pipeline_sequence_overhead_s=profile.efficiency.pipeline_sequence_overhead_s,
        moe=_moe_layout(spec, tp=tp, ep=ep, dp_attention=dp_attention, imbalance=moe_imbalance, dtype=dtype,
                        engine=engine, act_bytes=fmt.activation_bytes),
        moe_kernels=moe_kernels_for(engine) if spec.is_moe else None,
        **_measured_terms(spec, profile, tp=tp, engine=engine, plain=fmt.name == matmul_dtype, dtype=matmul_dtype))


def _moe_layout(spec: ModelSpec, *, tp: int, ep: int, dp_attention: int, imbalance: float, dtype: str, engine: str,
                act_bytes: int) -> MoeLayout | None:
    """The MoE layout of an EP / DP-attention candidate (None for TP-only layouts and dense models)."""
    if not spec.is_moe or (ep == 1 and dp_attention == 1):
        return None
    group = tp * dp_attention
    shard = 1 if ep > 1 else group  # EP holds whole experts; otherwise each expert is split over the group
    one = _group_bytes_flops(spec, tp=shard, dtype=dtype, engine=engine)["expert"]
    return MoeLayout(ep=ep, dp_attention=dp_attention, group_size=group, imbalance=imbalance, busy_ranks=dp_attention,
                     num_experts=spec.num_experts, experts_per_token=spec.num_experts_per_tok,
                     local_experts=ceil_div(spec.num_experts, ep), expert_bytes=one[0], expert_flops_per_token=one[1],
                     expert_width_per_gpu=ceil_div(spec.moe_intermediate_size, shard), hidden_size=spec.hidden_size,
                     act_bytes=act_bytes)


def shard_matmul_shapes(spec: ModelSpec, *, tp: int, engine: str = "vllm") -> dict[str, list[tuple[int, int]]]:
    """(N, K) of one rank's [M, K] x [K, N] matmuls per layer: attention (fused QKV, O) and dense MLP
    (fused gate_up, down) -- the shapes `tpplan measure` times and its kernel table is keyed by."""
    d, h = spec.head_dim, spec.hidden_size
    q_local = ceil_div(spec.num_attention_heads, tp)
    kv_local = kv_heads_per_gpu(spec.num_key_value_heads, tp=tp, engine=engine)
    f_local = ceil_div(spec.intermediate_size, tp)
    return {"attn": [((q_local + 2 * kv_local) * d, h), (h, q_local * d)],
            "mlp": [((2 if spec.gated_mlp else 1) * f_local, h), (h, f_local)]}


def _measured_terms(spec: ModelSpec, profile: HardwareProfile, *, tp: int, engine: str, plain: bool,
                    dtype: str) -> dict:
    """What a measured kernel table replaces: the shard matmul curves (only for a plain format of the table's
    dtype, since a weight-only or block-scaled format runs other kernels; not for MLA projections) and the
    fitted per-layer overhead per mode."""
    table = profile.kernel_table
    if table is None:
        return {}
    out: dict = {"layer_overhead_s": (table.layer_overhead_s.get("decode", 0.0),
                                      table.layer_overhead_s.get("prefill", 0.0))}
    for bucket, shapes in shard_matmul_shapes(spec, tp=tp, engine=engine).items():
        curves = [matmul_curve(table, n=n, k=k, dtype=dtype) for n, k in shapes]
        usable = plain and all(curves) and not (bucket == "attn" and spec.is_mla)
        if usable:
            out[f"{bucket}_curves"] = tuple(curves)
    return out


def _curves_s(curves: tuple[MatmulCurve, ...], tokens):
    return sum(interpolate_s(cv.tokens, cv.time_s, tokens) for cv in curves)


def _matmuls_s(c: Coefficients, *, flops_per_token: float, weight_bytes: float, width_in_out: int, tokens,
               launches: int):
    """A bucket of matmuls on `tokens` tokens: weights once, activations in and out."""
    return matmul_time_s(c.rates, flops=flops_per_token * tokens,
                         n_bytes=weight_bytes + tokens * width_in_out * c.act_bytes, launches=launches)


def _mlp_time_s(c: Coefficients, tokens):
    """All layers' MLP / MoE matmul time for `tokens` tokens in flight per layer."""
    h2 = 2 * c.hidden_size
    t = 0.0
    if c.num_dense_layers:
        t = c.num_dense_layers * (_curves_s(c.mlp_curves, tokens) if c.mlp_curves else _matmuls_s(
            c, flops_per_token=c.mlp_flops_per_token, weight_bytes=c.mlp_bytes,
            width_in_out=h2 + 3 * c.mlp_width_per_gpu, tokens=tokens, launches=2))
    if c.num_moe_layers:
        shared = _matmuls_s(c, flops_per_token=c.moe_shared_flops_per_token, weight_bytes=c.moe_shared_bytes,
                            width_in_out=h2, tokens=tokens, launches=c.moe_shared_launches)
        t = t + c.num_moe_layers * (_routed_experts_s(c, tokens) + shared)
    return t


def _routed_experts_s(c: Coefficients, tokens):
    """One MoE layer's grouped GEMMs and routing kernels on `tokens` tokens (tpplan.cost.moe)."""
    if c.moe is not None:
        gemms, pairs = routed_experts_time_s(c.moe, c.rates, tokens), pairs_on_gpu(c.moe, tokens)
    else:
        gemms = split_experts_time_s(c.rates, tokens=tokens, num_experts=c.num_experts,
                                     experts_per_token=c.experts_per_token, expert_bytes=c.expert_bytes,
                                     expert_flops_per_token=c.expert_flops_per_token, hidden_size=c.hidden_size,
                                     width_per_gpu=c.mlp_width_per_gpu, act_bytes=c.act_bytes)
        pairs = tokens * c.experts_per_token
    if c.moe_kernels is None:
        return gemms
    return gemms + routing_time_s(c.moe_kernels, c.rates, tokens=tokens, pairs=pairs, hidden_size=c.hidden_size,
                                  act_bytes=c.act_bytes)


def _comm_time_s(c: Coefficients, profile: HardwareProfile, tokens, *, sequence_parallel: bool):
    n_bytes = tokens * c.hidden_size * c.act_bytes
    if sequence_parallel:
        one = (collective_time_s(profile, kind="reducescatter", group_size=c.tp, n_bytes=n_bytes)
               + collective_time_s(profile, kind="allgather", group_size=c.tp, n_bytes=n_bytes))
    else:
        one = collective_time_s(profile, kind="allreduce", group_size=c.tp, n_bytes=n_bytes)
    if c.moe is not None:
        return layers_comm_time_s(c.moe, profile, tokens, tp_collective_s=one,
                                  collectives_per_layer=c.allreduces_per_layer, num_layers=c.num_layers,
                                  num_moe_layers=c.num_moe_layers)
    return c.num_layers * c.allreduces_per_layer * one


def _layers_compute_s(c: Coefficients, tokens):
    """Matmuls and elementwise kernels of all decoder layers for `tokens` tokens (no attention, no lm_head)."""
    f = c.fusion
    attn = c.num_layers * (_curves_s(c.attn_curves, tokens) if c.attn_curves else _matmuls_s(
        c, flops_per_token=c.attn_flops_per_token, weight_bytes=c.attn_bytes, width_in_out=2 * c.hidden_size,
        tokens=tokens, launches=c.attn_launches))
    per_token = (f.hidden_passes * c.hidden_size + f.mlp_passes * c.mlp_width_per_gpu
                 + f.kv_passes * c.kv_width_per_gpu) * c.act_bytes
    elementwise = c.num_layers * elementwise_time_s(c.rates, n_bytes=tokens * per_token,
                                                    launches=f.elementwise_launches)
    return attn + _mlp_time_s(c, tokens) + elementwise


def _head_s(c: Coefficients, head_tokens):
    """The lm_head on the tokens that sample (one per decoding sequence, one per finished prompt)."""
    return _matmuls_s(c, flops_per_token=c.head_flops_per_token, weight_bytes=c.head_bytes,
                      width_in_out=c.hidden_size, tokens=head_tokens, launches=1)


def _decode_attention_s(c: Coefficients, seqs, context_len):
    ctx_tokens = c.full_layers * context_len  # summed over layers
    for window, layers in (*c.windowed_layers, *c.chunked_layers):  # a chunk: at most `chunk` keys (the bound)
        ctx_tokens = ctx_tokens + layers * minimum(context_len, window)
    return decode_attention_time_s(c.rates, kv_bytes=seqs * ctx_tokens * c.kv_bytes_per_token_per_layer,
                                   flops=2 * FLOPS_PER_MAC * seqs * ctx_tokens * c.q_heads_per_gpu * c.attn_dim,
                                   launches=c.num_layers * c.fusion.attention_launches)


def causal_pairs(c: Coefficients, input_len):
    """(query, key) pairs of one causal prompt of `input_len` tokens, summed over layers (a windowed layer sees
    at most `window` keys; a chunked layer causal pairs inside each whole chunk of C and the partial last one:
    (I // C) x C^2 / 2 + (I mod C)^2 / 2, about I x C / 2 for I >> C, half a sliding window's I x C)."""
    pairs = c.full_layers * input_len * input_len / 2
    for window, layers in c.windowed_layers:
        w = minimum(input_len, window)
        pairs = pairs + layers * (input_len * w - w * w / 2)
    for chunk, layers in c.chunked_layers:
        whole = input_len // chunk
        pairs = pairs + layers * (whole * chunk * chunk + (input_len - whole * chunk) ** 2) / 2
    return pairs


def _prefill_attention_s(c: Coefficients, tokens, pairs):
    return prefill_attention_time_s(c.rates, flops=2 * FLOPS_PER_MAC * pairs * c.q_heads_per_gpu * c.attn_dim,
                                    n_bytes=tokens * c.num_layers * c.kv_bytes_per_token_per_layer,
                                    launches=c.num_layers * c.fusion.attention_launches)


def _pipeline_step(c: Coefficients, profile: HardwareProfile, *, layers_s, comm_s, head_s, tokens, sequences,
                   micro_batches) -> StepTime:
    """One step of every running sequence, given the per-micro-batch kernel time of all decoder layers
    (`layers_s`), their TP collectives (`comm_s`) and the lm_head (`head_s`), each at `tokens` tokens.

    Without PP that is compute + communication + the step overhead. With PP the engine keeps `micro_batches`
    (= min(pp, batch)) micro-batches in flight (vLLM V1 batch queue of pp; TensorRT-LLM numMicroBatches = pp),
    and every stage runs every micro-batch, re-reading its weights each time. Layers are split as vLLM's
    `get_pp_indices` does (vllm/distributed/utils.py: L // pp each, the remainder on the stages before the last,
    which also runs the final norm and lm_head), so the slowest stage is max(ceil(L/pp) layers, floor(L/pp)
    layers + lm_head). A round, in which every sequence emits one token, is
        max(micro_batches x slowest stage, all stages once) + (pp - 1) hand-offs + step overhead,
    floored by micro_batches x step overhead (one scheduler pass per micro-batch on the one scheduling thread).
    With micro_batches = pp the hand-offs and the overhead are not hidden: each micro-batch's own path through
    the pp stages is the round. On top of that, host work per sequence at each of the pp - 1 stage boundaries:
    a micro-batch's sampled tokens go back rank to rank on the host (TensorRT-LLM `_executor_loop_pp`:
    isend_object / recv_object along last -> 0 -> 1 -> ... -> pp - 2) and every stage's executor updates,
    schedules and prepares the micro-batch's `sequences` before it can launch it, so the round carries
        (pp - 1) x sequences per micro-batch x efficiency.pipeline_sequence_overhead
    as overhead (no GPU runs the micro-batch meanwhile). Without PP the engine overlaps that host work with
    the previous step (TensorRT-LLM overlap scheduler, vLLM async scheduling), so pp = 1 carries none."""
    body = layers_s + comm_s
    o = c.step_overhead_s
    if c.pp == 1:
        return step_time(compute_s=layers_s + head_s, communication_s=comm_s, overhead_s=o + 0 * tokens)
    widest, last = ceil_div(c.num_layers, c.pp) / c.num_layers, (c.num_layers // c.pp) / c.num_layers
    slowest = maximum(widest * body, last * body + head_s)
    work = maximum(micro_batches * slowest, body + head_s)
    compute = work * (layers_s + head_s) / (body + head_s)
    handoffs = pipeline_handoffs_s(profile, tp=c.tp, pp=c.pp, n_bytes=tokens * c.hidden_size * c.act_bytes)
    comm = work - compute + handoffs
    host = (c.pp - 1) * sequences * c.pipeline_sequence_overhead_s
    return step_time(compute_s=compute, communication_s=comm,
                     overhead_s=maximum(o, micro_batches * o - work - handoffs) + host)


def micro_batches(c: Coefficients, batch):
    """Micro-batches in flight: pp, or fewer when fewer sequences run."""
    return minimum(batch, c.pp) if c.pp > 1 else batch * 0 + 1


def decoder_layers(c: Coefficients, profile: HardwareProfile, *, decode_seqs=None, context_len=0,
                   prefill_tokens=None, prefill_pairs=0, sequence_parallel=False, compute_only=False) -> StepTime:
    """All decoder layers of one forward pass on one GPU (no lm_head, no scheduler overhead): the matmuls and
    elementwise kernels of decode_seqs + prefill_tokens tokens, decode attention of `decode_seqs` sequences
    over `context_len` cached tokens, causal prefill attention over `prefill_pairs` (query, key) pairs, the
    fitted per-layer overhead of the modes present, and the TP collectives (none when `compute_only`: an
    emulated shard). The one function behind decode_step, prefill, mixed_step and `tpplan measure`'s layer
    predictions."""
    if decode_seqs is None and prefill_tokens is None:
        raise TpplanError("decoder_layers: pass decode_seqs, prefill_tokens or both")
    tokens = (0 if decode_seqs is None else decode_seqs) + (0 if prefill_tokens is None else prefill_tokens)
    decode_o, prefill_o = c.layer_overhead_s
    overhead = max(decode_o if decode_seqs is not None else 0.0, prefill_o if prefill_tokens is not None else 0.0)
    compute = _layers_compute_s(c, tokens) + c.num_layers * overhead
    if decode_seqs is not None:
        compute = compute + _decode_attention_s(c, decode_seqs, context_len)
    if prefill_tokens is not None:
        compute = compute + _prefill_attention_s(c, prefill_tokens, prefill_pairs)
    comm = 0 * tokens if compute_only else _comm_time_s(c, profile, tokens, sequence_parallel=sequence_parallel)
    return step_time(compute_s=compute, communication_s=comm, overhead_s=0 * tokens)


def decode_step(c: Coefficients, profile: HardwareProfile, *, batch, context_len, sequence_parallel=False) -> StepTime:
    """One decode step (TPOT) of `batch` sequences at `context_len` tokens of context; with PP, a round of
    micro-batches of batch / micro_batches sequences (see `_pipeline_step`)."""
    m = micro_batches(c, batch)
    b = batch / m
    layers = decoder_layers(c, profile, decode_seqs=b, context_len=context_len, sequence_parallel=sequence_parallel)
    return _pipeline_step(c, profile, layers_s=layers.compute_s, comm_s=layers.communication_s,
                          head_s=_head_s(c, b), tokens=b, sequences=b, micro_batches=m)


def prefill(c: Coefficients, profile: HardwareProfile, *, prompts, input_len, sequence_parallel=False) -> StepTime:
    """Prefill of `prompts` prompts of `input_len` tokens in one step (the lm_head runs on each last token);
    with PP the prompts cross the stages one after another (one micro-batch)."""
    n = prompts * input_len
    layers = decoder_layers(c, profile, prefill_tokens=n, prefill_pairs=prompts * causal_pairs(c, input_len),
                            sequence_parallel=sequence_parallel)
    return _pipeline_step(c, profile, layers_s=layers.compute_s, comm_s=layers.communication_s,
                          head_s=_head_s(c, prompts), tokens=n, sequences=prompts, micro_batches=1)


def mixed_step(c: Coefficients, profile: HardwareProfile, *, batch, context_len, prefill_tokens, input_len,
               sequence_parallel=False) -> StepTime:
    """One continuous-batching step: `batch` decode tokens plus a `prefill_tokens` chunk of prompts of
    `input_len` tokens (vLLM chunked prefill, TensorRT-LLM in-flight batching). The chunk's tokens attend to
    input_len / 2 earlier tokens on average, so its attention FLOPs are the causal pairs of prefill_tokens /
    input_len whole prompts. With PP both are split over the micro-batches in flight."""
    m = micro_batches(c, batch)
    b, p = batch / m, prefill_tokens / m
    layers = decoder_layers(c, profile, decode_seqs=b, context_len=context_len, prefill_tokens=p,
                            prefill_pairs=p / input_len * causal_pairs(c, input_len),
                            sequence_parallel=sequence_parallel)
    return _pipeline_step(c, profile, layers_s=layers.compute_s, comm_s=layers.communication_s,
                          head_s=_head_s(c, b), tokens=b + p, sequences=b + p / input_len, micro_batches=m)


def allreduce_bytes_per_layer(c: Coefficients, *, tokens) -> float:
    """Bytes all-reduced per layer per forward step (0 at tp 1)."""
    return 0 if c.tp == 1 else c.allreduces_per_layer * tokens * c.hidden_size * c.act_bytes

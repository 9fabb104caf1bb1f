"""Per-GPU time of one forward step of one model replica, split into compute, communication and overhead.

`tpplan.cost.coefficients.coefficients()` reduces (model, profile, tp, pp, dtype, engine) to a handful of
per-layer numbers once; the time functions here then work on floats or numpy arrays alike (batch, context and
prompt length may be arrays: that is how `tpplan sweep` vectorises). No numpy import here.

Compute is the list of kernels the engine launches per layer (tpplan.cost.kernels): fused QKV and O, gate_up
and down (MoE: router and grouped GEMMs over the experts the tokens touch), the elementwise kernels the engine
does not fuse, and attention: decode reads every active sequence's KV once; prefill is causal flash attention,
4 x I^2/2 x heads x head_dim FLOPs per sequence. Each kernel is a roofline plus a fixed per-kernel time.
Communication per layer: 2 all-reduces of tokens x hidden x act_bytes (1 for parallel-attention blocks), or
with sequence parallelism a reduce-scatter + all-gather of the same bytes; plus, once per step, the
vocab-parallel embedding's all-reduce and the logits gather (`edge_collectives_s`), and PP hand-offs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tpplan.cost.coefficients import Coefficients
from tpplan.cost.collectives import collective_time_s, pipeline_handoffs_s
from tpplan.cost.kernels import (
    FLOPS_PER_MAC,
    decode_attention_time_s,
    elementwise_time_s,
    matmul_time_s,
    prefill_attention_time_s,
)
from tpplan.cost.moe import (
    layers_comm_time_s,
    pairs_on_gpu,
    routed_experts_time_s,
    routing_time_s,
    routing_tokens,
    split_experts_time_s,
)
from tpplan.errors import TpplanError
from tpplan.hardware.profile import HardwareProfile
from tpplan.records import record
from tpplan.units import ceil_div, maximum, minimum

if TYPE_CHECKING:  # measured curves come only with a profile's kernel table
    from tpplan.hardware.kernel_table import MatmulCurve

NORM_STAT_BYTES = 4
"""One fp32 sum of squares per token: what a TP-split RMSNorm all-reduces (`Coefficients.norm_allreduces_per_layer`)."""


@record
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


def _curves_s(curves: tuple[MatmulCurve, ...], tokens):
    from tpplan.hardware.kernel_table import interpolate_s

    return sum(interpolate_s(cv.tokens, cv.time_s, tokens) for cv in curves)


def _matmuls_s(c: Coefficients, *, flops_per_token: float, weight_bytes: float, width_in_out: int, tokens,
               launches: int, rates=None):
    """A bucket of matmuls on `tokens` tokens: weights once, activations in and out (at `rates`, else c.rates)."""
    return matmul_time_s(rates or c.rates, flops=flops_per_token * tokens,
                         n_bytes=weight_bytes + tokens * width_in_out * c.act_bytes, launches=launches)


def _mlp_time_s(c: Coefficients, tokens):
    """All layers' MLP / MoE matmul time for `tokens` tokens in flight per layer."""
    h2 = 2 * c.hidden_size
    t = 0.0
    if c.num_dense_layers:
        t = c.num_dense_layers * (_curves_s(c.mlp_curves, tokens) if c.mlp_curves else _matmuls_s(
            c, flops_per_token=c.mlp_flops_per_token, weight_bytes=c.mlp_bytes,
            width_in_out=h2 + 3 * c.dense_width_per_gpu, tokens=tokens, launches=2))
    if c.num_moe_layers:
        shared = _matmuls_s(c, flops_per_token=c.moe_shared_flops_per_token, weight_bytes=c.moe_shared_bytes,
                            width_in_out=h2 + 3 * c.shared_width_per_gpu, tokens=tokens,
                            launches=c.moe_shared_launches)
        t = t + c.num_moe_layers * (routed_experts_s(c, tokens) + shared)
    return t


def routed_experts_s(c: Coefficients, tokens):
    """One MoE layer's grouped GEMMs and routing kernels on `tokens` tokens (tpplan.cost.moe); training swaps it for
    its expert-parallel pricing (tpplan.planner.train)."""
    if c.moe is not None:
        gemms, pairs = routed_experts_time_s(c.moe, c.rates, tokens), pairs_on_gpu(c.moe, tokens)
    else:
        gemms = split_experts_time_s(c.rates, tokens=tokens, num_experts=c.num_experts,
                                     experts_per_token=c.experts_per_token, expert_bytes=c.expert_bytes,
                                     expert_flops_per_token=c.expert_flops_per_token, hidden_size=c.hidden_size,
                                     width_per_gpu=c.routed_width_per_gpu, act_bytes=c.act_bytes)
        pairs = tokens * c.experts_per_token
    if c.moe_kernels is None:
        return gemms
    return gemms + routing_time_s(c.moe_kernels, c.rates, tokens=routing_tokens(c.moe, tokens), pairs=pairs,
                                  hidden_size=c.hidden_size, act_bytes=c.act_bytes)


def tp_collective_time_s(c: Coefficients, profile: HardwareProfile, tokens, *, sequence_parallel: bool):
    """One of a layer's TP collectives over `tokens` tokens of hidden activations: an all-reduce, or with sequence
    parallelism a reduce-scatter + all-gather."""
    n_bytes = tokens * c.hidden_size * c.act_bytes
    if sequence_parallel:
        return (collective_time_s(profile, kind="reducescatter", group_size=c.tp, n_bytes=n_bytes)
                + collective_time_s(profile, kind="allgather", group_size=c.tp, n_bytes=n_bytes))
    return collective_time_s(profile, kind="allreduce", group_size=c.tp, n_bytes=n_bytes)


def _attention_side_collectives_s(c: Coefficients, profile: HardwareProfile, tokens):
    """All layers' attention-side collectives besides the TP all-reduces: the q / k norm statistics
    (`Coefficients.norm_allreduces_per_layer`) and Megatron-Core's all-gather of the QKV activation at tp > kv heads
    (`Coefficients.qkv_gather_width`, S = tokens x width x act_bytes gathered)."""
    t = 0.0
    if c.norm_allreduces_per_layer:
        t += c.num_layers * c.norm_allreduces_per_layer * collective_time_s(
            profile, kind="allreduce", group_size=c.tp, n_bytes=tokens * NORM_STAT_BYTES)
    if c.qkv_gather_width:
        t += c.num_layers * collective_time_s(profile, kind="allgather", group_size=c.tp,
                                              n_bytes=tokens * c.qkv_gather_width * c.act_bytes)
    return t


def _comm_time_s(c: Coefficients, profile: HardwareProfile, tokens, *, sequence_parallel: bool, extend=False):
    """All layers' collectives for `tokens` tokens; `extend`: the step carries prefill tokens (an MoE all-to-all in
    SGLang's DeepEP auto mode picks its kernels by it, tpplan.cost.moe)."""
    one = tp_collective_time_s(c, profile, tokens, sequence_parallel=sequence_parallel)
    side = _attention_side_collectives_s(c, profile, tokens)
    if c.moe is not None:
        return side + layers_comm_time_s(c.moe, profile, tokens, tp_collective_s=one,
                                         collectives_per_layer=c.allreduces_per_layer, num_layers=c.num_layers,
                                         num_moe_layers=c.num_moe_layers, extend=extend)
    return side + c.num_layers * c.allreduces_per_layer * one


def embedding_collective_s(c: Coefficients, profile: HardwareProfile, *, tokens, sequence_parallel=False):
    """The vocab-parallel embedding's collective at tp > 1 when the engine shards the embedding
    (`Fusion.embedding_allreduce`): an all-reduce of tokens x hidden x act_bytes, or with sequence parallelism a
    reduce-scatter of the same bytes (Megatron reduce_scatter_to_sequence_parallel_region). It runs on the first
    pipeline stage."""
    if c.tp == 1 or not c.fusion.embedding_allreduce:
        return 0 * tokens
    return collective_time_s(profile, kind="reducescatter" if sequence_parallel else "allreduce", group_size=c.tp,
                             n_bytes=tokens * c.hidden_size * c.act_bytes)


def head_collectives_s(c: Coefficients, profile: HardwareProfile, *, head_tokens, sequence_parallel=False):
    """The collectives around the lm_head at tp > 1, on the last pipeline stage, for the `head_tokens` rows it
    computes: with sequence parallelism the final norm's output is split over the sequence, so the lm_head's input
    is all-gathered first, head_tokens x hidden x act_bytes (Megatron's output layer is a ColumnParallelLinear with
    sequence_parallel=True, which gathers its input from the sequence-parallel region); and where the engine
    samples from whole rows (`Fusion.logits_gather`), the [head_tokens, vocab / tp] slices are all-gathered,
    head_tokens x vocab_per_gpu x tp x act_bytes in all."""
    t = 0 * head_tokens
    if c.tp == 1:
        return t
    if sequence_parallel:
        t = t + collective_time_s(profile, kind="allgather", group_size=c.tp,
                                  n_bytes=head_tokens * c.hidden_size * c.act_bytes)
    if c.fusion.logits_gather:
        t = t + collective_time_s(profile, kind="allgather", group_size=c.tp,
                                  n_bytes=head_tokens * c.vocab_per_gpu * c.tp * c.act_bytes)
    return t


def edge_collectives_s(c: Coefficients, profile: HardwareProfile, *, tokens, sampled, sequence_parallel=False):
    """The step's collectives outside the decoder layers at tp > 1 (DESIGN.md §3), as the engine runs them
    (`Fusion`): `embedding_collective_s` of `tokens` plus `head_collectives_s` of the `sampled` rows. Without PP
    both add to the step; with PP the first stage carries the one and the last stage the other
    (`_pipeline_step`)."""
    return (embedding_collective_s(c, profile, tokens=tokens, sequence_parallel=sequence_parallel)
            + head_collectives_s(c, profile, head_tokens=sampled, sequence_parallel=sequence_parallel))


def _layers_compute_s(c: Coefficients, tokens):
    """Matmuls and elementwise kernels of all decoder layers for `tokens` tokens (no attention, no lm_head)."""
    return _attention_projections_s(c, tokens) + _mlp_time_s(c, tokens) + _elementwise_s(c, tokens)


def _elementwise_s(c: Coefficients, tokens):
    """All layers' norm / activation / residual / KV-write kernels the engine does not fuse (c.fusion)."""
    f = c.fusion
    per_token = (f.hidden_passes * c.hidden_size + f.mlp_passes * c.mlp_width_per_gpu
                 + f.kv_passes * c.kv_width_per_gpu) * c.act_bytes
    return c.num_layers * elementwise_time_s(c.rates, n_bytes=tokens * per_token, launches=f.elementwise_launches)


def _attention_projections_s(c: Coefficients, tokens):
    """All layers' attention projection matmuls (fused QKV and O; MLA: its 3-4) for `tokens` tokens: the measured
    curves when the profile has them, else the roofline at the attention block's own rates."""
    return c.num_layers * (_curves_s(c.attn_curves, tokens) if c.attn_curves else _matmuls_s(
        c, flops_per_token=c.attn_flops_per_token, weight_bytes=c.attn_bytes, width_in_out=2 * c.hidden_size,
        tokens=tokens, launches=c.attn_launches, rates=c.attn_rates))


def _head_s(c: Coefficients, head_tokens):
    """The lm_head on the tokens that sample (one per decoding sequence, one per finished prompt)."""
    return _matmuls_s(c, flops_per_token=c.head_flops_per_token, weight_bytes=c.head_bytes,
                      width_in_out=c.hidden_size, tokens=head_tokens, launches=1, rates=c.head_rates)


def _decode_attention_s(c: Coefficients, seqs, context_len):
    """Decode attention of all layers: the KV bytes (and state traffic) each running sequence reads at the decode
    attention rate, plus, for an engine's fused paged kernel, efficiency.decode_sequence_overhead per sequence per
    layer with a KV cache (linear-attention layers have none). The measurement harness's attention (Fusion
    .fused_decode_attention False) pays no separate per-sequence time: its attention_decode_memory was read off
    time differences between batch sizes, which already hold it."""
    ctx_tokens = c.full_layers * context_len  # summed over layers
    for window, layers in (*c.windowed_layers, *c.chunked_layers):  # a chunk: at most `chunk` keys (the bound)
        ctx_tokens = ctx_tokens + layers * minimum(context_len, window)
    return decode_attention_time_s(c.rates, kv_bytes=seqs * ctx_tokens * c.kv_bytes_per_token_per_layer
                                   + _linear_state_traffic(c, seqs),
                                   flops=2 * FLOPS_PER_MAC * seqs * ctx_tokens * c.q_heads_per_gpu * c.attn_dim
                                   + seqs * c.linear_layers * c.linear_decode_flops,
                                   launches=c.num_layers * c.fusion.attention_launches) \
        + _decode_sequence_time_s(c, seqs)


def _decode_sequence_time_s(c: Coefficients, seqs):
    """efficiency.decode_sequence_overhead x running sequences x layers with a KV cache, for fused decode kernels."""
    if not c.fusion.fused_decode_attention:
        return 0 * seqs
    return seqs * (c.num_layers - c.linear_layers) * c.rates.decode_sequence_overhead_s


def _linear_state_traffic(c: Coefficients, seqs):
    """Bytes a decode step moves through the linear-attention layers' states: each running sequence's conv +
    recurrent state read and written back once per layer (0 for models without such layers)."""
    return 2 * seqs * c.linear_layers * c.linear_state_bytes


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
    """Causal attention over `pairs` in the attention layers, plus the chunked delta rule of the linear-attention
    layers on every prompt token (tpplan.cost.coefficients.linear_attention_flops, an approximation)."""
    return prefill_attention_time_s(c.rates, flops=2 * FLOPS_PER_MAC * pairs * c.q_heads_per_gpu * c.attn_dim
                                    + tokens * c.linear_layers * c.linear_prefill_flops_per_token,
                                    n_bytes=tokens * (c.num_layers - c.linear_layers) * c.kv_bytes_per_token_per_layer,
                                    launches=c.num_layers * c.fusion.attention_launches)


def _pipeline_step(c: Coefficients, profile: HardwareProfile, *, layers_s, comm_s, head_s, tokens, sequences,
                   micro_batches, first_s=0.0, last_s=0.0) -> StepTime:
    """One step of every running sequence, given the per-micro-batch kernel time of all decoder layers
    (`layers_s`), their TP collectives (`comm_s`), the lm_head (`head_s`) and the collectives outside the layers
    on the first stage (`first_s`: the embedding's) and on the last (`last_s`: the lm_head's), at `tokens` tokens.

    Without PP that is compute + communication + the step overhead. With PP the engine keeps `micro_batches`
    (= min(pp, batch)) micro-batches in flight (vLLM V1 batch queue of pp; TensorRT-LLM numMicroBatches = pp),
    and every stage runs every micro-batch, re-reading its weights each time. Layers are split as vLLM's
    `get_pp_indices` does (vllm/distributed/utils.py: L // pp each, the remainder on the stages before the last,
    which also runs the final norm and lm_head), so the slowest stage is max(ceil(L/pp) layers + the embedding's
    collective, floor(L/pp) layers + lm_head + its collectives). A round, in which every sequence emits one token, is
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
        return step_time(compute_s=layers_s + head_s, communication_s=comm_s + first_s + last_s,
                         overhead_s=o + 0 * tokens)
    slowest, whole = _stage_split(c, body_s=body, head_s=head_s, first_s=first_s, last_s=last_s)
    work = maximum(micro_batches * slowest, whole)
    compute = work * (layers_s + head_s) / whole
    handoffs = pipeline_handoffs_s(profile, tp=c.tp, pp=c.pp, n_bytes=tokens * c.hidden_size * c.act_bytes)
    comm = work - compute + handoffs
    host = (c.pp - 1) * sequences * c.pipeline_sequence_overhead_s
    return step_time(compute_s=compute, communication_s=comm,
                     overhead_s=maximum(o, micro_batches * o - work - handoffs) + host)


def _stage_split(c: Coefficients, *, body_s, head_s, first_s, last_s):
    """(slowest stage, all stages) of one micro-batch: the decoder layers (`body_s`, with their collectives) split
    as `_pipeline_step` says, the embedding's collective on the first stage, the lm_head and its collectives on the
    last."""
    widest, last = ceil_div(c.num_layers, c.pp) / c.num_layers, (c.num_layers // c.pp) / c.num_layers
    slowest = maximum(widest * body_s + first_s, last * body_s + head_s + last_s)
    return slowest, body_s + head_s + first_s + last_s


def forward_stage_share(c: Coefficients, profile: HardwareProfile, *, prompts, input_len, sequence_parallel=False,
                        every_position=False) -> float:
    """Slowest pipeline stage / all stages of one micro-batch's forward pass (`prefill`'s work): 1 / pp when the
    stages are balanced, more when the last one carries the lm_head (a training step paces 1F1B by it)."""
    if c.pp == 1:
        return 1.0
    n = prompts * input_len
    head_tokens = n if every_position else prompts
    layers = decoder_layers(c, profile, prefill_tokens=n, prefill_pairs=prompts * causal_pairs(c, input_len),
                            sequence_parallel=sequence_parallel)
    slowest, whole = _stage_split(c, body_s=layers.compute_s + layers.communication_s, head_s=_head_s(c, head_tokens),
                                  **_edges(c, profile, tokens=n, head_tokens=head_tokens,
                                           sequence_parallel=sequence_parallel))
    return slowest / whole


def _edges(c: Coefficients, profile: HardwareProfile, *, tokens, head_tokens, sequence_parallel):
    """`_pipeline_step`'s first_s / last_s: the embedding's collective and the lm_head's."""
    return {"first_s": embedding_collective_s(c, profile, tokens=tokens, sequence_parallel=sequence_parallel),
            "last_s": head_collectives_s(c, profile, head_tokens=head_tokens, sequence_parallel=sequence_parallel)}


def micro_batches(c: Coefficients, batch):
    """Micro-batches in flight: pp, or fewer when fewer sequences run (one for a prefill-only batch, batch 0)."""
    return maximum(minimum(batch, c.pp), 1) if c.pp > 1 else batch * 0 + 1


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
    extend = False if prefill_tokens is None else prefill_tokens > 0
    comm = 0 * tokens if compute_only else _comm_time_s(c, profile, tokens, sequence_parallel=sequence_parallel,
                                                         extend=extend)
    return step_time(compute_s=compute, communication_s=comm, overhead_s=0 * tokens)


def decode_step(c: Coefficients, profile: HardwareProfile, *, batch, context_len, sequence_parallel=False) -> StepTime:
    """One decode step (TPOT) of `batch` sequences at `context_len` tokens of context; with PP, a round of
    micro-batches of batch / micro_batches sequences (see `_pipeline_step`)."""
    m = micro_batches(c, batch)
    b = batch / m
    layers = decoder_layers(c, profile, decode_seqs=b, context_len=context_len, sequence_parallel=sequence_parallel)
    return _pipeline_step(c, profile, layers_s=layers.compute_s, comm_s=layers.communication_s,
                          head_s=_head_s(c, b), tokens=b, sequences=b, micro_batches=m,
                          **_edges(c, profile, tokens=b, head_tokens=b, sequence_parallel=sequence_parallel))


def prefill(c: Coefficients, profile: HardwareProfile, *, prompts, input_len, sequence_parallel=False,
            every_position=False) -> StepTime:
    """Prefill of `prompts` prompts of `input_len` tokens in one step; the lm_head runs on each prompt's last
    token, or with `every_position` on all of them (a training forward pass: the loss needs every position's
    logits). With PP the prompts cross the stages one after another (one micro-batch)."""
    n = prompts * input_len
    head_tokens = n if every_position else prompts
    layers = decoder_layers(c, profile, prefill_tokens=n, prefill_pairs=prompts * causal_pairs(c, input_len),
                            sequence_parallel=sequence_parallel)
    return _pipeline_step(c, profile, layers_s=layers.compute_s, comm_s=layers.communication_s,
                          head_s=_head_s(c, head_tokens), tokens=n, sequences=prompts, micro_batches=1,
                          **_edges(c, profile, tokens=n, head_tokens=head_tokens, sequence_parallel=sequence_parallel))


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
                          head_s=_head_s(c, b), tokens=b + p, sequences=b + p / input_len, micro_batches=m,
                          **_edges(c, profile, tokens=b + p, head_tokens=b, sequence_parallel=sequence_parallel))


def allreduce_bytes_per_layer(c: Coefficients, *, tokens) -> float:
    """Bytes all-reduced per layer per forward step (0 at tp 1)."""
    return 0 if c.tp == 1 else c.allreduces_per_layer * tokens * c.hidden_size * c.act_bytes


def mixed_step_terms(c: Coefficients, profile: HardwareProfile, *, batch, context_len, prefill_tokens,
                     input_len) -> dict[str, object]:
    """`mixed_step` of one replica without PP split into its terms, seconds: the attention projections (QKV, O),
    MLP / MoE matmuls, elementwise kernels (with the measured per-layer overhead, if any), decode attention,
    prefill attention, lm_head, TP collectives and the step overhead, each priced on its own; they sum to
    mixed_step(...).total_s (tested), and the fidelity benchmark prints them beside what a measured throughput
    implies (benchmarks/step_breakdown.py)."""
    if c.pp != 1:
        raise TpplanError("mixed_step_terms: PP steps interleave micro-batches; use mixed_step / steady_state")
    tokens, pairs = batch + prefill_tokens, prefill_tokens / input_len * causal_pairs(c, input_len)
    projections, mlp = _attention_projections_s(c, tokens), _mlp_time_s(c, tokens)
    decode_attn = _decode_attention_s(c, batch, context_len)
    prefill_attn = _prefill_attention_s(c, prefill_tokens, pairs)
    return {"attention_projections_s": projections, "mlp_s": mlp,
            "elementwise_s": _elementwise_s(c, tokens) + c.num_layers * max(c.layer_overhead_s),
            "decode_attention_s": decode_attn, "prefill_attention_s": prefill_attn, "lm_head_s": _head_s(c, batch),
            "communication_s": _comm_time_s(c, profile, tokens, sequence_parallel=False, extend=prefill_tokens > 0)
            + edge_collectives_s(c, profile, tokens=tokens, sampled=batch),
            "overhead_s": c.step_overhead_s}

"""Evaluate one (tp, pp, replicas) candidate: memory, feasibility with reasons, latency and throughput.

One evaluation path: `serving_performance` computes concurrency, step times and throughput from a layout's
coefficients and KV capacity; `evaluate_serving` (recommend) calls it with numbers, `tpplan sweep` with numpy
arrays of batch / input / output lengths. The memory of a layout is computed once, by `layout_memory`.
"""

from __future__ import annotations

from dataclasses import replace

from tpplan.cost.batching import (
    SchedulerLimits,
    job_makespan_s,
    max_concurrency,
    prefill_tokens_per_step,
    rank_limits,
    scheduler_limits,
)
from tpplan.cost.coefficients import Coefficients, coefficients, mlp_activation_widths
from tpplan.cost.moe import a2a_kernels
from tpplan.cost.steady import prefill_room_tokens, steady_state
from tpplan.cost.step import (
    StepTime,
    allreduce_bytes_per_layer,
    decode_step,
    prefill,
    step_time,
)
from tpplan.hardware.profile import HardwareProfile
from tpplan.models.dtypes import weight_format
from tpplan.models.engines import block_quant_reasons, group_quant_violation, tp_violation, valid_tp_degrees
from tpplan.models.kv import (
    kv_cache_bytes_per_sequence,
    kv_layers_per_stage,
    linear_state_bytes_per_sequence,
    state_bytes_for,
)
from tpplan.models.spec import ModelSpec
from tpplan.models.weights import weight_bytes_per_gpu
from tpplan.planner.layouts import Layout, moe_layout_reasons, tp_group_slots, unpriced_a2a_backend
from tpplan.planner.moe_buffers import (
    LL_LIMIT_WORDS,
    deepep_buffers,
    deepep_group_reasons,
    ll_batch_limit,
    ll_notes,
    ll_reasons,
    ll_tokens_at,
    solve_ll_tokens,
)
from tpplan.planner.workload import ACTIVATION_RESERVE_LOGIT_SEQS, PREFILL_CHUNK_TOKENS_MAX, Workload
from tpplan.records import record
from tpplan.units import HOUR_S, MILLION, bytes_to_gib, ceil_div, maximum, minimum, s_to_ms

FP32_BYTES = 4
LATENCY_LIMIT_WORDS = "exceeds --max-"
"""The words every latency-limit rejection carries (`_limit_reasons`), so the explanation can tell them apart."""


@record
class Candidate:
    """One way to lay the model out on the GPUs. Base units throughout; JSON keys per DESIGN.md §6."""

    tp: int
    """Attention (and dense-layer) TP degree; with DP attention, inside each DP rank."""
    pp: int
    replicas: int
    gpus_used: int
    """tp x dp_attention x pp x replicas."""
    feasible: bool
    reasons: tuple[str, ...] = ()
    """Why the candidate is rejected (empty when feasible)."""
    notes: tuple[str, ...] = ()
    """What was capped or assumed for it (batch capped by KV memory or a latency limit)."""
    usable_bytes_per_gpu: int = 0
    weight_bytes_per_gpu: int = 0
    optimizer_state_bytes_per_gpu: int = 0
    """Training only: gradients, fp32 master weights and Adam moments."""
    model_state_bytes_per_gpu: int | None = None
    """Training: weights + gradients + optimizer state on the most loaded GPU, weight_bytes_per_gpu +
    optimizer_state_bytes_per_gpu (18 B per parameter held, tpplan.planner.train). None (JSON null) when serving:
    the GPU holds no gradients or optimizer state, and its weights are weight_bytes_per_gpu."""
    activation_bytes_per_gpu: int | None = None
    """Training: activations the first pipeline stage holds for the backward at the peak of 1F1B
    (tpplan.planner.train.activation_bytes_per_gpu, Korthikanti et al. 2022); part of runtime_reserve_bytes_per_gpu.
    None (JSON null) when serving: nothing is kept for a backward; the transient activations of a prefill chunk
    are sized inside runtime_reserve_bytes_per_gpu (activation_reserve_bytes), a different quantity."""
    runtime_reserve_bytes_per_gpu: int = 0
    """The profile's runtime reserve + activations: serving, one prefill chunk's plus DeepEP's buffers; training,
    activation_bytes_per_gpu."""
    kv_cache_bytes_per_gpu: int = 0
    kv_cache_tokens: int = 0
    max_concurrent_sequences: int = 0
    batch: int = 0
    allreduce_bytes_per_layer: float = 0.0
    communication_time_per_step_s: float = 0.0
    """All TP collectives (all-reduce, or reduce-scatter + all-gather) and PP hand-offs of one step; in training also
    the gradient all-reduce and, with expert parallelism, the all-to-all token exchange."""
    comm_share: float = 0.0
    ttft_s: float | None = None
    """One prompt of --input-len prefilled alone."""
    ttft_under_load_s: float | None = None
    """A new prompt's first token while the replica runs `batch` sequences (its prefill chunked into steps)."""
    tpot_s: float | None = None
    """One decode step at `batch` and the average context, scheduler overhead included (DESIGN.md §3)."""
    tpot_under_load_s: float | None = None
    """The time between a running sequence's tokens in the steady state the throughput is computed at: a decode step
    with the prefill chunks mixed in (= step_time_s; batch / steady-state throughput per replica, which a
    --num-requests job's throughput, tail included, is not). What an engine's benchmark reports as mean TPOT at that
    load; --max-tpot-ms is checked against it and --objective latency ranks by it."""
    step_time_s: float | None = None
    output_tokens_per_s: float = 0.0
    output_tokens_per_s_per_gpu: float = 0.0
    cost_per_million_output_tokens: float | None = None
    tier: str = ""
    decode_step: StepTime | None = None
    prefill: StepTime | None = None
    ep: int = 1
    """Expert-parallel degree of the routed experts (1: experts tensor-parallel, tpplan.cost.moe)."""
    dp_attention: int = 1
    """Attention data-parallel ranks per replica, each with its own sequences and KV cache (1: none)."""
    etp: int | None = None
    """Training an MoE model: GPUs each routed expert is split over (Megatron --expert-tensor-parallel-size; equal
    to tp when the experts are split like the other layers). None for serving and for dense models."""
    job_s: float | None = None
    """With --num-requests: seconds until the last request of the job finishes (None: a steady stream)."""
    moe_token_movement_decode: str | None = None
    """What moves an MoE layer's tokens in a decode step: "gather" (all-gather + reduce-scatter), "fabric" (an
    all-to-all priced by the fabric's protocols), "normal" / "low_latency" (DeepEP's kernels); None without DP
    attention (tpplan.cost.moe.a2a_kernels)."""
    moe_token_movement_prefill: str | None = None
    """... and in a step that carries prefill tokens (SGLang's DeepEP auto mode: normal there, low-latency in
    decode steps)."""
    deepep_ll_tokens_per_rank: int | None = None
    """Tokens per GPU DeepEP's low-latency buffer holds, as reserved in memory (vLLM: its 256-token chunk; SGLang: at
    least the largest step it dispatches in one call, SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK); None without
    those kernels (tpplan.planner.moe_buffers)."""


def moe_words(c: Candidate) -> str:
    """'EP8 + DP-attention 8' style words for an MoE layout, 'EP8 x ETP1' for a training one ('' for plain TP x PP,
    experts split over TP)."""
    if c.etp is not None:
        return "" if not folded_experts(c) else f"EP{c.ep}" + (f" x ETP{c.etp}" if c.etp != c.tp else "")
    parts = ([f"EP{c.ep}"] if c.ep > 1 else []) + ([f"DP-attention {c.dp_attention}"] if c.dp_attention > 1 else [])
    return " + ".join(parts)


def folded_experts(c: Candidate) -> bool:
    """A training layout whose routed experts Megatron lays out apart from attention (EP, or ETP != TP)."""
    return c.ep > 1 or (c.etp or c.tp) != c.tp


def too_slow_only(c: Candidate) -> bool:
    """Rejected by the latency limits alone: the layout runs, its latencies are real and are what broke a limit."""
    return not c.feasible and bool(c.reasons) and all(LATENCY_LIMIT_WORDS in r for r in c.reasons)


def label(c: Candidate) -> str:
    moe = f" ({moe_words(c)})" if moe_words(c) else ""
    return f"TP{c.tp}{moe} x PP{c.pp} x {c.replicas} replica{'s' if c.replicas > 1 else ''}"


@record
class LayoutMemory:
    """Per-GPU memory of one (tp, pp) layout (the most loaded GPU)."""

    usable_bytes_per_gpu: int
    weight_bytes_per_gpu: int
    runtime_reserve_bytes_per_gpu: int
    kv_cache_bytes_per_gpu: int
    kv_cache_tokens: int
    sequence_bytes: int
    """KV bytes of one max_model_len sequence."""
    reasons: tuple[str, ...]
    deepep_buffer_bytes_per_gpu: int = 0
    """DeepEP's buffers, part of the runtime reserve (tpplan.planner.moe_buffers.deepep_buffers)."""
    deepep_ll_tokens_per_rank: int | None = None
    """Tokens per GPU the low-latency buffer in that reserve holds; None without low-latency kernels."""


def memory_fraction_of_free(engine: str) -> bool:
    """True where the engine's memory fraction applies to the memory left free after weights and runtime buffers,
    not to the whole GPU. TensorRT-LLM: `free_gpu_memory_fraction` (--kv_cache_free_gpu_memory_fraction, default
    0.9) "will try to allocate 90% of free GPU memory for KV cache" (TensorRT-LLM docs, examples/kvcacheconfig.html;
    tensorrt_llm/bench/build/tuning.py sizes the cache as fraction x (device memory - engine size)). vLLM
    `gpu_memory_utilization` and SGLang `mem_fraction_static` are fractions of the whole GPU."""
    return engine == "trtllm"


def usable_bytes_per_gpu(profile: HardwareProfile, w: Workload) -> int:
    """What weights, runtime buffers and KV cache may share: capacity x gpu_memory_utilization, or the whole
    capacity where the fraction applies to the free memory (TensorRT-LLM, `memory_fraction_of_free`). The one place
    this is computed."""
    if memory_fraction_of_free(w.engine):
        return int(profile.gpu.memory_bytes)
    return int(profile.gpu.memory_bytes * w.gpu_memory_utilization)


def kv_budget_bytes(*, usable_bytes: int, weight_bytes: int, reserve_bytes: int, w: Workload) -> int:
    """KV-cache bytes per GPU: usable - weights - reserve (vLLM, SGLang), or gpu_memory_utilization x that free
    memory (TensorRT-LLM's kv_cache_free_gpu_memory_fraction)."""
    free = usable_bytes - weight_bytes - reserve_bytes
    return int(free * w.gpu_memory_utilization) if memory_fraction_of_free(w.engine) else free


def activation_reserve_bytes(spec: ModelSpec, c: Coefficients, w: Workload) -> int:
    """Peak activations of one prefill chunk: tokens x (4 h + 2 x widest MLP / t) x act_bytes, plus fp32 logits
    of one token per sequence (tokens = min(max_model_len, 8192)). The widest MLP is that of a layer the model has
    (`mlp_activation_widths`: no dense width for all-MoE models, shared experts counted in MoE layers)."""
    tokens = min(w.max_model_len, PREFILL_CHUNK_TOKENS_MAX)
    widest = max(mlp_activation_widths(spec))
    logits = ACTIVATION_RESERVE_LOGIT_SEQS * ceil_div(spec.vocab_size, c.tp) * FP32_BYTES
    return int(tokens * (4 * spec.hidden_size + 2 * widest // c.tp) * c.act_bytes + logits)


def _usable_words(profile: HardwareProfile, w: Workload, usable: int) -> str:
    if memory_fraction_of_free(w.engine):
        return f"{bytes_to_gib(usable):.1f} GiB of the GPU"
    return (f"{bytes_to_gib(usable):.1f} GiB usable ({w.gpu_memory_utilization:.2f} x "
            f"{bytes_to_gib(profile.gpu.memory_bytes):.1f} GiB)")


SGLANG_REPLICATED_SHARED_BACKENDS = ("deepep", "mooncake")
"""SGLang's --moe-a2a-backend values under which DeepSeek's shared experts are a full copy on every GPU
(deepseek_v2.py: `dict(tp_rank=0, tp_size=1) if get_moe_a2a_backend().is_deepep() ...`)."""


def sglang_dp_attention_splits(spec: ModelSpec, w: Workload, *, tp: int, dp_attention: int,
                               ep: int) -> dict[str, int]:
    """How SGLang splits the weights outside attention and the routed experts under --enable-dp-attention
    (--tp-size G = tp x dp, attention TP = tp): the dense MLP layers over all G GPUs (moe_dense_tp_size None, the
    default; DeepseekV2DecoderLayer), the shared experts over G too unless DeepEP / Mooncake moves the tokens (then a
    full copy per GPU), the lm_head over G (--enable-dp-lm-head off by default; LogitsProcessor gathers the DP
    ranks' hidden states), and the embedding whole on every GPU (VocabParallelEmbedding(enable_tp=not
    is_dp_attention_enabled()) in DeepSeek, Qwen and Llama 4; python/sglang/srt/models/). vLLM's and TensorRT-LLM's
    DP ranks keep all of these at attention TP (their weights are replicated per rank): no override. {} when the
    layout has no DP attention or the engine is not SGLang. Memory only: the step time keeps these layers at
    attention TP, which gives the same FLOPs per GPU (every rank's tokens over G GPUs = one rank's over tp) but
    reads G / tp times the weight bytes and leaves out the gather around each dense layer (3 of DeepSeek-V3's 61).

    Where a block- or group-quantized checkpoint's dense MLP (or shared experts) would not split into whole blocks over
    G GPUs (DeepSeek-V3 FP8 at G = 32: 18,432 / 32 = 576, not a multiple of 128), SGLang refuses to load it unless
    --moe-dense-tp-size 1 keeps those layers whole on every GPU, which is how SGLang's large EP deployments of
    DeepSeek run (LMSYS, "Deploying DeepSeek with PD Disaggregation and Large-Scale Expert Parallelism"); the plan
    then does the same (dense_tp 1, `dense_whole`), and `--emit sglang` prints the flag. The flag leaves the shared
    experts alone (whole only under DeepEP / Mooncake): a shared expert the split cuts is a rejection."""
    if w.engine != "sglang" or dp_attention <= 1:
        return {}
    group = tp * dp_attention
    replicated_shared = ep > 1 and w.all2all_backend in SGLANG_REPLICATED_SHARED_BACKENDS  # (forced on EP only)
    splits = {"dense_tp": group, "shared_tp": 1 if replicated_shared else group, "embed_tp": 1}
    fmt = weight_format(spec, w.dtype)
    # the dense MLP alone at the group split (tp 1, shared_tp 1: attention, experts and shared experts not checked)
    if block_quant_reasons(spec, fmt, tp=1, ep=1, dp_attention=1, engine="sglang", dense_tp=group, shared_tp=1) or \
            group_quant_violation(spec, fmt, tp=1, engine="sglang", dense_tp=group, shared_tp=1):
        splits.update(dense_tp=1, dense_whole=1)
    return splits


def _weight_splits(spec: ModelSpec, w: Workload, c: Coefficients) -> dict[str, int]:
    """`params_per_gpu`'s split arguments for the layout (SGLang's DP-attention splits; none otherwise)."""
    m = c.moe
    if m is None:
        return {}
    splits = sglang_dp_attention_splits(spec, w, tp=c.tp, dp_attention=m.dp_attention, ep=m.ep)
    return {k: v for k, v in splits.items() if k != "dense_whole"}


def layout_memory(spec: ModelSpec, profile: HardwareProfile, c: Coefficients, w: Workload, *,
                  ll_tokens: int | None = None) -> LayoutMemory:
    """Memory of the layout with DeepEP's buffers in the reserve, the low-latency one holding `ll_tokens` per GPU
    (None: the fewest the engine allocates, tpplan.planner.moe_buffers.ll_tokens_at before the batch is known)."""
    usable = usable_bytes_per_gpu(profile, w)
    m = c.moe
    weights = weight_bytes_per_gpu(spec, tp=c.tp, pp=c.pp, dtype=w.dtype, engine=w.engine, ep=m.ep if m else 1,
                                   expert_tp=m.group_size // m.ep if m and m.ep < m.group_size else 0,
                                   **_weight_splits(spec, w, c))
    if ll_tokens is None:
        ll_tokens = ll_tokens_at(c, w, limits=engine_limits(profile, w), batch=None)
    deepep = deepep_buffers(spec, profile, c, w, ll_tokens=ll_tokens).total_bytes
    reserve = profile.efficiency.runtime_reserve_bytes + activation_reserve_bytes(spec, c, w) + deepep
    budget = kv_budget_bytes(usable_bytes=usable, weight_bytes=weights, reserve_bytes=reserve, w=w)
    seq = kv_cache_bytes_per_sequence(spec, context_len=w.max_model_len, tp=c.tp, pp=c.pp,
                                      kv_dtype=w.kv_cache_dtype, engine=w.engine)
    conv_bytes, recurrent_bytes = state_bytes_for(w.engine, c.act_bytes)
    seq += linear_state_bytes_per_sequence(spec, tp=c.tp, pp=c.pp, state_bytes=conv_bytes,
                                           recurrent_bytes=recurrent_bytes)
    per_token = kv_layers_per_stage(spec, pp=c.pp) * c.kv_bytes_per_token_per_layer
    kv = max(0, budget)
    reasons = []
    if weights + reserve > usable:
        reasons.append(f"weights {bytes_to_gib(weights):.1f} GiB + runtime reserve {bytes_to_gib(reserve):.1f} GiB "
                       f"per GPU exceed the {_usable_words(profile, w, usable)} by "
                       f"{bytes_to_gib(weights + reserve - usable):.1f} GiB")
    elif seq > kv:
        reasons.append(f"KV cache budget {bytes_to_gib(budget):.2f} GiB per GPU cannot hold one {w.max_model_len}-"
                       f"token sequence ({bytes_to_gib(seq):.2f} GiB); short by {bytes_to_gib(seq - budget):.2f} GiB")
    return LayoutMemory(usable_bytes_per_gpu=usable, weight_bytes_per_gpu=weights,
                        runtime_reserve_bytes_per_gpu=reserve, deepep_buffer_bytes_per_gpu=deepep,
                        deepep_ll_tokens_per_rank=ll_tokens,
                        kv_cache_bytes_per_gpu=kv, kv_cache_tokens=int(kv // per_token) if per_token else 0,
                        sequence_bytes=seq, reasons=tuple(reasons))


def structural_reasons(spec: ModelSpec, profile: HardwareProfile, *, tp: int, pp: int, w: Workload) -> list[str]:
    reasons = []
    rule = tp_violation(spec, tp, engine=w.engine)
    if rule:
        works = [t for t in valid_tp_degrees(spec, engine=w.engine) if t <= max(w.gpus, 1)]
        reasons.append(f"{w.engine}: {rule} TP degrees that work with {w.engine} on {w.gpus} GPUs: "
                       f"{', '.join(map(str, works))}")
    if tp > profile.gpus_per_node and not w.allow_cross_domain_tp:
        reasons.append(f"TP {tp} spans nodes ({profile.gpus_per_node} GPUs per node; all-reduce over "
                       f"{profile.tier_for_group(tp)}): use PP across nodes, or pass --allow-cross-domain-tp to "
                       f"consider it")
    elif tp > profile.nvlink_domain_size and not w.allow_cross_domain_tp and profile.nvlink_domain_size > 1:
        reasons.append(f"TP {tp} crosses the {profile.nvlink_domain_size}-GPU NVLink domain (all-reduce over "
                       f"{profile.tier_for_group(tp)}); pass --allow-cross-domain-tp to consider it")
    if pp > spec.num_hidden_layers:
        reasons.append(f"PP {pp} exceeds the {spec.num_hidden_layers} layers")
    return reasons


def placement_reasons(profile: HardwareProfile, w: Workload, lay: Layout) -> list[str]:
    """A layout whose TP groups (pp x dp_attention x replicas of them) do not all fit inside NVLink domains of the
    profile's GPUs (`tp_group_slots`): TP5 x 3 replicas on two 8-GPU nodes needs a group split between nodes."""
    if lay.tp > max(profile.nvlink_domain_size, profile.gpus_per_node):
        return []  # a TP group across nodes: structural_reasons refuses it unless --allow-cross-domain-tp
    groups = lay.pp * lay.dp_attention * lay.replicas
    slots, domain = tp_group_slots(gpus=w.gpus, tp=lay.tp, pool_gpus=profile.total_gpus,
                                   nvlink_domain_size=profile.nvlink_domain_size,
                                   gpus_per_node=profile.gpus_per_node)
    if groups <= slots:
        return []
    link = "xGMI" if profile.intra_domain_link.kind == "xgmi" else "NVLink"
    kind = f"{link} domain" if domain == profile.nvlink_domain_size else "node"
    fewer = slots // (lay.pp * lay.dp_attention)
    instead = (f"{fewer} replica{'s' * (fewer != 1)}" if fewer else
               f"at most {slots} pipeline stage{'s' * (slots != 1)} x attention-DP ranks")
    return [f"its {groups} TP{lay.tp} group{'s' * (groups != 1)} do not fit {max(w.gpus, profile.total_gpus)} "
            f"GPUs in {domain}-GPU "
            f"{kind}s: each {kind} holds {domain // lay.tp} of them, {slots} in all, so one would span two; use a TP "
            f"degree that divides {domain}, or {instead}"]


def engine_limits(profile: HardwareProfile, w: Workload) -> SchedulerLimits:
    return scheduler_limits(w.engine, gpu_name=profile.gpu.name, gpu_memory_bytes=profile.gpu.memory_bytes,
                            max_num_seqs=w.max_num_seqs, max_num_batched_tokens=w.max_num_batched_tokens,
                            max_model_len=w.max_model_len)


@record
class Performance:
    """Serving numbers of one layout at one (batch, input, output): floats, or numpy arrays in `sweep`."""

    max_concurrent_sequences: object
    decode_step: StepTime
    """At `batch` sequences and the average decode context input + output / 2."""
    prefill: StepTime
    """One prompt of input_len tokens alone."""
    steady_step: StepTime
    """A continuous-batching step: `batch` decode tokens + the prefill chunk that keeps the batch full."""
    ttft_under_load_s: object
    output_tokens_per_s_per_replica: object


def replica_concurrency(c: Coefficients, limits: SchedulerLimits, *, kv_cache_tokens, input_len, output_len):
    """Sequences a replica runs at once: dp_attention ranks x what one rank's KV cache (`kv_cache_tokens`, one GPU's)
    and scheduler allow (tpplan.cost.batching.max_concurrency, pp micro-batches)."""
    dp = c.moe.dp_attention if c.moe is not None else 1
    if c.kv_block_tokens:  # vLLM's hybrid models page their KV in blocks that hold a linear layer's state
        limits = replace(limits, block_size_tokens=c.kv_block_tokens)
    return dp * max_concurrency(rank_limits(limits, dp), kv_cache_tokens=kv_cache_tokens, input_len=input_len,
                                output_len=output_len, micro_batches=c.pp,
                                state_tokens_per_sequence=c.state_tokens_per_sequence, stage_windows=c.kv_windows)


def prefill_alone(c: Coefficients, profile: HardwareProfile, *, input_len, token_budget: int,
                  sequence_parallel: bool = False) -> StepTime:
    """One prompt prefilled with nothing else running. A prompt longer than the step's token budget is cut into
    n = ceil(input_len / budget) chunks, one step each (vLLM chunked prefill, TensorRT-LLM's context chunking, SGLang's
    chunked_prefill_size): the weights are read and each step's fixed costs paid n times. Per part of the step:
    compute and collectives = max(the whole prompt in one step, n x a budget-sized chunk) -- the whole prompt carries
    the chunks' attention to earlier chunks, n chunks the n weight reads and per-call latencies -- and overhead =
    n x one step's. One chunk (input <= budget) is the whole prompt's step."""
    whole = prefill(c, profile, prompts=1, input_len=input_len, sequence_parallel=sequence_parallel)
    chunks = ceil_div(input_len, token_budget)
    chunk = prefill(c, profile, prompts=1, input_len=minimum(input_len, token_budget),
                    sequence_parallel=sequence_parallel)
    return step_time(compute_s=maximum(whole.compute_s, chunks * chunk.compute_s),
                     communication_s=maximum(whole.communication_s, chunks * chunk.communication_s),
                     overhead_s=chunks * chunk.overhead_s)


def serving_performance(c: Coefficients, profile: HardwareProfile, limits: SchedulerLimits, *, kv_cache_tokens: int,
                        batch, input_len, output_len, sequence_parallel: bool = False) -> Performance:
    """The one evaluation of a serving layout. Throughput is the steady state of continuous batching:
    batch / (mean time of a step carrying batch decode tokens + batch x input / output prefill tokens on average,
    admitted in whole prompts or budget-sized chunks: tpplan.cost.steady).
    With DP attention each of the dp ranks runs batch / dp sequences under its own scheduler and KV cache
    (`kv_cache_tokens` is one GPU's), and a prompt prefilled alone keeps the other ranks idle."""
    ctx = input_len + output_len / 2
    dp = c.moe.dp_attention if c.moe is not None else 1
    rank_batch = batch / dp
    concurrency = replica_concurrency(c, limits, kv_cache_tokens=kv_cache_tokens, input_len=input_len,
                                      output_len=output_len)
    chunk = prefill_tokens_per_step(batch=rank_batch, input_len=input_len, output_len=output_len)
    budget = rank_limits(limits, dp).max_num_batched_tokens
    state = steady_state(c, profile, batch=rank_batch, context_len=ctx, prefill_tokens=chunk, input_len=input_len,
                         token_budget=budget, mixes_prefill=limits.mixes_prefill, lockstep_ranks=dp,
                         sequence_parallel=sequence_parallel)
    alone = c if dp == 1 else replace(c, moe=replace(c.moe, busy_ranks=1))
    first = prefill_alone(alone, profile, input_len=input_len, token_budget=budget,
                          sequence_parallel=sequence_parallel)
    # a new prompt gets at most the step's token budget left after the decode tokens of its micro-batch, one chunk
    # per round in a step that carries it (its next chunk waits for the previous one to leave the last stage); never
    # sooner than the prompt prefilled alone
    room = budget if not limits.mixes_prefill else prefill_room_tokens(c, batch=rank_batch, token_budget=budget)
    return Performance(
        max_concurrent_sequences=concurrency,
        decode_step=decode_step(c, profile, batch=rank_batch, context_len=ctx, sequence_parallel=sequence_parallel),
        prefill=first, steady_step=state.mean,
        ttft_under_load_s=maximum(ceil_div(input_len, room) * state.with_prompt.total_s, first.total_s),
        output_tokens_per_s_per_replica=batch / state.mean.total_s)


def _limit_reasons(perf: Performance, w: Workload, batch: int) -> list[str]:
    """Latency limits checked at the batch the candidate runs."""
    out = []
    if w.max_tpot_s is not None and perf.steady_step.total_s > w.max_tpot_s:
        out.append(f"TPOT {s_to_ms(perf.steady_step.total_s):.2f} ms under load (prefill chunks mixed in) at batch "
                   f"{batch} {LATENCY_LIMIT_WORDS}tpot-ms {s_to_ms(w.max_tpot_s):.2f}")
    if w.max_ttft_s is not None and perf.ttft_under_load_s > w.max_ttft_s:
        out.append(f"TTFT {s_to_ms(perf.ttft_under_load_s):.1f} ms at batch {batch} {LATENCY_LIMIT_WORDS}ttft-ms "
                   f"{s_to_ms(w.max_ttft_s):.1f}")
    return out


def _choose_batch(run, w: Workload, concurrency: int, *, job_requests: int | None = None,
                  bound_words: str = "KV memory and scheduler limits") -> tuple[int, Performance, list[str], list[str]]:
    """(batch, performance, rejection reasons, notes). --batch is run as given (capped by KV memory) and
    rejected if it breaks a latency limit; otherwise the largest batch the KV cache, the scheduler and the
    latency limits allow. A job of `job_requests` requests per replica never runs more than that at once.
    `bound_words`: what sets `concurrency`, for the note when it caps --batch."""
    notes: list[str] = []
    by_job = job_requests is not None and job_requests < max(concurrency, 1)
    limit = job_requests if by_job else concurrency
    bound = f"the replica's share of --num-requests {w.num_requests}" if by_job else bound_words
    if w.batch:
        b = min(w.batch, limit) if limit >= 1 else w.batch
        if b < w.batch:
            notes.append(f"batch capped at {b} by {bound} (asked {w.batch})")
        perf = run(b)
        return b, perf, _limit_reasons(perf, w, b), notes
    if by_job:
        notes.append(f"batch at most {job_requests}, {bound} (memory and scheduler allow {concurrency})")
    cap = max(1, limit)
    if w.max_tpot_s is None and w.max_ttft_s is None:
        return cap, run(cap), [], notes
    lo, hi = 0, cap
    while lo < hi:  # step times grow with batch: binary search the largest batch meeting the limits
        mid = (lo + hi + 1) // 2
        if _limit_reasons(run(mid), w, mid):
            hi = mid - 1
        else:
            lo = mid
    if lo == 0:
        return 1, run(1), _limit_reasons(run(1), w, 1), notes
    if lo < cap:
        allowed = "the job's share allows" if by_job else "memory and scheduler allow"
        notes.append(f"batch capped at {lo} by the latency limits ({allowed} {cap})")
    return lo, run(lo), [], notes


@record
class PreparedLayout:
    """A layout's numbers that depend on no batch or length, computed once for `recommend` and `sweep` alike."""

    layout: Layout
    tier: str
    """The fabric the layout's widest group (tp x dp_attention GPUs) communicates over."""
    reasons: tuple[str, ...]
    """Engine rules it breaks, and what does not fit in memory (empty: it runs)."""
    coefficients: Coefficients | None
    """None when an engine rule leaves nothing to evaluate (the layout cannot be launched)."""
    memory: LayoutMemory | None

    def base_fields(self) -> dict:
        """The Candidate fields every candidate of this layout carries."""
        lay = self.layout
        return dict(tp=lay.tp, pp=lay.pp, replicas=lay.replicas, gpus_used=lay.gpus_used,
                    tier=self.tier, ep=lay.ep, dp_attention=lay.dp_attention)


def prepare_serving(spec: ModelSpec, profile: HardwareProfile, w: Workload, layout: Layout) -> PreparedLayout:
    """Engine rules, coefficients and memory of one serving layout (`w` already resolved with `for_model`)."""
    lay = layout
    tier = profile.tier_for_group(lay.tp * lay.dp_attention)
    structural = structural_reasons(spec, profile, tp=lay.tp, pp=lay.pp, w=w) + placement_reasons(profile, w, lay)
    rules = moe_layout_reasons(spec, tp=lay.tp, ep=lay.ep, dp_attention=lay.dp_attention, engine=w.engine, pp=lay.pp,
                               gpus_per_node=profile.gpus_per_node)
    fmt = weight_format(spec, w.dtype)
    splits = sglang_dp_attention_splits(spec, w, tp=lay.tp, dp_attention=lay.dp_attention, ep=lay.ep)
    dense_tp, shared_tp = splits.get("dense_tp", lay.tp), splits.get("shared_tp", splits.get("dense_tp", lay.tp))
    rules += block_quant_reasons(spec, fmt, tp=lay.tp, ep=lay.ep, dp_attention=lay.dp_attention, engine=w.engine,
                                 dense_tp=dense_tp, shared_tp=shared_tp)
    rules += [r for r in (group_quant_violation(spec, fmt, tp=lay.tp, engine=w.engine, dense_tp=dense_tp,
                                                shared_tp=shared_tp),) if r]
    if unpriced_a2a_backend(w, ep=lay.ep, dp_attention=lay.dp_attention):
        rules.append(f"sglang: --moe-a2a-backend {w.all2all_backend} on EP without DP attention is not priced by "
                     f"tpplan (only with DP attention); add --dp-attention, or leave the backend out")
    if tp_violation(spec, lay.tp, engine=w.engine) or rules:
        return PreparedLayout(layout=lay, tier=tier, reasons=(*structural, *rules), coefficients=None, memory=None)
    c = coefficients(spec, profile, tp=lay.tp, pp=lay.pp, dtype=w.dtype, kv_cache_dtype=w.kv_cache_dtype,
                     engine=w.engine, ep=lay.ep, dp_attention=lay.dp_attention, moe_imbalance=w.moe_imbalance,
                     moe_dispatch=w.moe_dispatch, a2a_mode=w.a2a_mode)
    mem = layout_memory(spec, profile, c, w)
    deepep = [*deepep_group_reasons(spec, c, w), *ll_reasons(c, w, limits=engine_limits(profile, w))]
    return PreparedLayout(layout=lay, tier=tier, reasons=(*structural, *mem.reasons, *deepep), coefficients=c,
                          memory=mem)


def _runner(c: Coefficients, profile: HardwareProfile, limits: SchedulerLimits, w: Workload, mem: LayoutMemory):
    """The layout's performance at a batch, with the KV cache of `mem`."""
    def run(b: int) -> Performance:
        return serving_performance(c, profile, limits, kv_cache_tokens=mem.kv_cache_tokens, batch=b,
                                   input_len=w.input_len, output_len=w.output_len,
                                   sequence_parallel=w.sequence_parallel)
    return run


def _size_ll_buffer(spec: ModelSpec, profile: HardwareProfile, c: Coefficients, w: Workload, limits: SchedulerLimits,
                    *, mem: LayoutMemory, batch: int) -> LayoutMemory:
    """`mem`, or the layout's memory with a low-latency buffer grown to hold the decode steps of the batch it leaves
    room for (tpplan.planner.moe_buffers.solve_ll_tokens; `batch`: the one chosen with `mem`)."""
    def batch_at(tokens: int) -> int:
        kv = layout_memory(spec, profile, c, w, ll_tokens=tokens).kv_cache_tokens
        return min(batch, replica_concurrency(c, limits, kv_cache_tokens=kv, input_len=w.input_len,
                                              output_len=w.output_len))

    tokens = solve_ll_tokens(c, w, limits=limits, batch=batch, batch_at=batch_at)
    return mem if tokens == mem.deepep_ll_tokens_per_rank else layout_memory(spec, profile, c, w, ll_tokens=tokens)


def _no_running_sequence(limits: SchedulerLimits, w: Workload, mem: LayoutMemory) -> str:
    """Why a layout whose memory fits runs no sequence: SGLang's linear-attention state pool has no slot for one
    request, or the KV tokens do not hold one request's input + output."""
    if limits.state_pool_share:
        return (f"{w.engine}'s linear-attention state pool ({limits.state_pool_share:.0%} of the "
                f"{bytes_to_gib(mem.kv_cache_bytes_per_gpu):.2f} GiB KV budget per GPU) has no slot for one running "
                f"request: no sequence can run; use fewer pipeline stages or a larger TP degree")
    return (f"the {mem.kv_cache_tokens:,} KV-cache tokens per GPU hold no running request of {w.input_len} + "
            f"{w.output_len} tokens; use fewer pipeline stages or a larger TP degree")


def evaluate_serving(spec: ModelSpec, profile: HardwareProfile, w: Workload, *, tp: int, pp: int, replicas: int,
                     ep: int = 1, dp_attention: int = 1) -> Candidate:
    """One layout; `ep` / `dp_attention` > 1 only for MoE models (tpplan.cost.moe)."""
    w = w.for_model(spec)
    prep = prepare_serving(spec, profile, w, Layout(tp=tp, pp=pp, replicas=replicas, ep=ep,
                                                    dp_attention=dp_attention))
    base = prep.base_fields()
    c, mem = prep.coefficients, prep.memory
    if c is None or mem is None:
        return Candidate(**base, feasible=False, reasons=prep.reasons)
    limits = engine_limits(profile, w)
    if limits.budget_per_dp_rank and limits.max_num_seqs is not None and limits.max_num_seqs < dp_attention:
        # SGLang: "max_running_requests (N) is less than dp_size (D)" (scheduler); each worker would get none
        return Candidate(**base, feasible=False, reasons=(
            *prep.reasons, f"--max-running-requests {limits.max_num_seqs} is below the {dp_attention} attention-DP "
            f"workers, which share it (SGLang refuses max_running_requests < dp_size); raise it to at least "
            f"{dp_attention}"))
    run = _runner(c, profile, limits, w, mem)
    concurrency = int(run(1).max_concurrent_sequences)
    job_requests = ceil_div(w.num_requests, replicas) if w.num_requests else None
    # a layout that cannot run is timed at the asked --batch ("how fast would it be if it fit"), not at what its
    # too-small KV cache would hold
    cap = max(concurrency, w.batch) if prep.reasons and w.batch else concurrency
    batch, perf, limit_reasons, notes = _choose_batch(run, w, cap, job_requests=job_requests)
    sized = _size_ll_buffer(spec, profile, c, w, limits, mem=mem, batch=batch)
    ll_limit = ll_batch_limit(c, sized.deepep_ll_tokens_per_rank)
    if sized is not mem or ll_limit is not None and batch > ll_limit:
        # the low-latency buffer grew, or its limit caps the batch: KV cache, concurrency and batch follow it
        mem, run = sized, _runner(c, profile, limits, w, sized)
        concurrency = int(run(1).max_concurrent_sequences)
        cap = concurrency if ll_limit is None else min(concurrency, ll_limit)
        words = LL_LIMIT_WORDS if cap < concurrency else "KV memory and scheduler limits"
        batch, perf, limit_reasons, notes = _choose_batch(run, w, cap, job_requests=job_requests, bound_words=words)
    notes += ll_notes(spec, c, tokens=mem.deepep_ll_tokens_per_rank, batch=batch, memory_batch=concurrency,
                      asked=w.batch)
    if concurrency < 1 and not prep.reasons:  # memory holds one max_model_len sequence, yet the scheduler runs none
        limit_reasons = (*limit_reasons, _no_running_sequence(limits, w, mem))
    reasons = (*prep.reasons, *limit_reasons)
    feasible = not reasons
    throughput = perf.output_tokens_per_s_per_replica * replicas if feasible else 0.0
    job_s = None
    if feasible and job_requests:
        job_s = job_time_s(run, requests=job_requests, batch=batch, output_len=w.output_len, dp_attention=dp_attention)
        throughput = w.num_requests * w.output_len / job_s
    return Candidate(
        **base, feasible=feasible, reasons=reasons, notes=tuple(notes),
        usable_bytes_per_gpu=mem.usable_bytes_per_gpu, weight_bytes_per_gpu=mem.weight_bytes_per_gpu,
        runtime_reserve_bytes_per_gpu=mem.runtime_reserve_bytes_per_gpu,
        kv_cache_bytes_per_gpu=mem.kv_cache_bytes_per_gpu, kv_cache_tokens=mem.kv_cache_tokens,
        max_concurrent_sequences=concurrency, batch=batch,
        allreduce_bytes_per_layer=allreduce_bytes_per_layer(c, tokens=batch),
        communication_time_per_step_s=perf.decode_step.communication_s,
        comm_share=perf.decode_step.communication_s / perf.decode_step.total_s,
        ttft_s=perf.prefill.total_s, ttft_under_load_s=perf.ttft_under_load_s, tpot_s=perf.decode_step.total_s,
        tpot_under_load_s=perf.steady_step.total_s, step_time_s=perf.steady_step.total_s,
        decode_step=perf.decode_step, prefill=perf.prefill, job_s=job_s,
        moe_token_movement_decode=a2a_kernels(c.moe, extend=False),
        moe_token_movement_prefill=a2a_kernels(c.moe, extend=True),
        deepep_ll_tokens_per_rank=mem.deepep_ll_tokens_per_rank,
        **throughput_fields(throughput, gpus_used=base["gpus_used"], profile=profile))


def job_time_s(run, *, requests: int, batch: int, output_len: int, dp_attention: int) -> float:
    """Seconds one replica takes for `requests` requests queued at t=0, `batch` at a time
    (tpplan.cost.batching.job_makespan_s): full waves at the step of `batch`, the remainder as one last wave at its
    own. Under DP attention a wave of b requests puts ceil(b / dp) on the busiest rank and the step waits for it,
    so each wave's step is that of dp x ceil(b / dp) sequences. The job ends with its busiest replica, which is
    given ceil(N / replicas) requests."""
    def step_s(b: int) -> float:
        return run(dp_attention * ceil_div(b, dp_attention)).steady_step.total_s

    tail = requests % batch
    return job_makespan_s(num_requests=requests, concurrency=batch, output_len=output_len, step_s=step_s(batch),
                          tail_step_s=step_s(tail) if tail else 0.0)


def throughput_fields(output_tokens_per_s: float, *, gpus_used: int, profile: HardwareProfile) -> dict:
    """output_tokens_per_s (all replicas), per GPU, and the price per million output tokens if the profile has one."""
    cost = None
    if profile.price_per_gpu_hour and output_tokens_per_s > 0:
        cost = profile.price_per_gpu_hour * gpus_used / HOUR_S / output_tokens_per_s * MILLION
    return {"output_tokens_per_s": output_tokens_per_s, "output_tokens_per_s_per_gpu": output_tokens_per_s / gpus_used,
            "cost_per_million_output_tokens": cost}

"""Training candidates (`--workload train`): Megatron-style memory and step time, with expert parallelism for MoE
models (layouts and Megatron's rules: tpplan.planner.train_layouts).

Memory per GPU (Megatron-LM mixed precision): without the distributed optimizer (`--use-distributed-optimizer` is
off by default) 18 bytes per parameter the GPU holds (bf16 weight 2 + fp32 gradient 4 + fp32 master weight 4 + Adam
moments 8); with it 6 + 12 / d, the master weights and moments sharded over the parameter's data-parallel group of d
GPUs (DP for the dense parameters, EDP for the routed experts'; Megatron-LM docs, "Distributed Optimizer": "6 +
12/d" bytes per parameter for bf16 parameters and fp32 gradients). Attention, dense layers and shared experts are
split over TP and PP; the routed experts of an EP layout over EP x ETP (num_experts / EP experts, each split ETP
ways), so their weights and optimizer state are no longer replicated over the data-parallel ranks.

Activations per layer per micro-batch of b sequences of s tokens (Korthikanti et al. 2022, arXiv:2205.05198,
16-bit activations, no recomputation), bytes: s b h (10 + 24/t) or with sequence parallelism s b h 34/t, of which
the MLP block is s b h (3 + 16/t) (19/t with SP), plus 5 a s^2 b / t for the attention scores. Megatron's default
attention (Transformer Engine fused / flash attention, --transformer-impl transformer_engine) keeps no score
matrix, so the planner leaves that term out (`attention_scores` False). In an MoE layer the MLP block is the MoE's:
its input and dropout mask 3 s b h (/t with SP), the shared experts' s b (2 n_in + 2) n_shared f / t and, per
(token, expert) pair on the GPU (tpplan.cost.train_experts.pairs_per_gpu: s b top_k on every GPU when TP splits the
experts, s b top_k / TP x ETP x imbalance under EP), its permuted input 2 h and its fc1 / activation outputs
(2 n_in + 2) f / ETP (f = moe_intermediate_size, n_in = 2 for gated MLPs). With 1F1B the first stage holds min(pp, m)
micro-batches of its L / pp layers (m per step, 4 pp unless --global-batch-size sets fewer), the last one
micro-batch of its layers plus the loss's fp32 logits, 4 s b V / t
(Korthikanti et al. §4.3, V the vocabulary); the larger of the two is the activation memory.

Step time: forward + backward = 3 x forward compute less one forward's GEMM epilogues, and 2 x forward
communication, T per micro-batch over all stages, for m = 4 pp micro-batches per replica. 1F1B runs at the pace of
the slowest stage, the last (its layers plus the lm_head and loss: tpplan.cost.step.forward_stage_share, r of the
whole): (m - 1) x r T + T, which is (m + pp - 1) T / pp when the stages are balanced; plus the gradient all-reduce.
The backward's data-gradient GEMMs write as many outputs per token as the forward's (the inputs of a column + row
pair) and its weight-gradient GEMMs reduce over the tokens, writing per token nothing worth counting, so the
backward is 2 x the forward's matmul FLOPs but 1 x its epilogues (efficiency.matmul_epilogue_k): 2 x forward + 1 x
forward without epilogues. In an EP layout the routed experts' kernels and the all-to-all dispatch and combine
replace the TP-split experts and the MoE layer's TP collective (tpplan.cost.train_experts), their compute counted
the same way (2 x forward + 1 x without epilogues); the backward moves the same bytes as the forward again.
Gradients are all-reduced in fp32 (Megatron sets accumulate_allreduce_grads_in_fp32 for bf16 unless
--grad-reduce-in-bf16): the dense ones over DP, the routed experts' over EDP = world / (ETP x EP x PP); with the
distributed optimizer reduce-scattered instead, and the updated bf16 parameters all-gathered over the same group.
Megatron orders ranks tp-cp-dp-pp (experts tp-ep-dp-pp), so both groups are strided over one pipeline stage's TP x
DP GPUs and are priced on the fabric those GPUs span. Throughput counts the tokens of every replica."""

from __future__ import annotations

import dataclasses

from tpplan.cost.coefficients import Coefficients, coefficients
from tpplan.cost.collectives import collective_time_s
from tpplan.cost.kernels import fusion_for
from tpplan.cost.step import forward_stage_share, prefill, routed_experts_s, tp_collective_time_s
from tpplan.cost.train_experts import (
    ExpertParallelLayout,
    RoutedExperts,
    experts_compute_time_s,
    pairs_per_gpu,
    token_exchange_time_s,
)
from tpplan.hardware.profile import HardwareProfile
from tpplan.models.engines import gathers_qkv
from tpplan.models.params import layers_in
from tpplan.models.spec import ModelSpec
from tpplan.models.weights import params_by_stage
from tpplan.planner.candidates import Candidate, structural_reasons, throughput_fields, usable_bytes_per_gpu
from tpplan.planner.train_layouts import (
    TrainLayout,
    expert_layout_problem,
    global_batch,
    global_batch_problem,
    megatron_placement_reasons,
    micro_batches_per_replica,
    pipeline_problem,
    sequence_split_problem,
)
from tpplan.planner.workload import TRAIN_MICROBATCHES_PER_STAGE, Workload
from tpplan.units import bytes_to_gib, ceil_div

WEIGHT_BYTES_PER_PARAM = 2
"""bf16 weights."""
OPTIMIZER_STATE_BYTES_PER_PARAM = 16
"""fp32 gradient 4 + fp32 master weight 4 + Adam moments 8."""
TRAIN_BYTES_PER_PARAM = WEIGHT_BYTES_PER_PARAM + OPTIMIZER_STATE_BYTES_PER_PARAM
GRAD_BYTES_PER_PARAM = 4
"""Gradients are all-reduced from Megatron's fp32 main-grad buffers: with --bf16, validate_args sets
accumulate_allreduce_grads_in_fp32 unless --grad-reduce-in-bf16 is given (megatron/training/arguments.py)."""


def _dense_layer_bytes(spec: ModelSpec, *, tp: int, tokens: int, seq_len: int, sp: bool, attention_scores: bool):
    """Korthikanti's activations of one layer, bytes: tokens h (34/t with SP, else 10 + 24/t) + 5 a s tokens / t."""
    h, a = spec.hidden_size, spec.num_attention_heads
    scores = 5 * a * seq_len / (h * tp) if attention_scores else 0
    return tokens * h * ((34 / tp if sp else 10 + 24 / tp) + scores)


def _moe_layer_bytes(spec: ModelSpec, x: ExpertParallelLayout, *, tokens: int, seq_len: int, sp: bool,
                     attention_scores: bool):
    """One MoE layer: the dense layer without its MLP block (19/t with SP, 3 + 16/t without), plus the MoE's
    input and dropout mask, shared experts and routed pairs (module docstring)."""
    h, tp = spec.hidden_size, x.tp
    mlp_block = tokens * h * (19 / tp if sp else 3 + 16 / tp)
    per_width = 2 * (2 if spec.gated_mlp else 1) + 2  # fc1 outputs (n_in x 2 B) + activation output (2 B)
    f = spec.moe_intermediate_size
    moe = (3 * tokens * h / (tp if sp else 1) + tokens * per_width * spec.n_shared_experts * f / tp
           + pairs_per_gpu(x, tokens, top_k=spec.num_experts_per_tok) * (2 * h + per_width * f / x.etp))
    return _dense_layer_bytes(spec, tp=tp, tokens=tokens, seq_len=seq_len, sp=sp,
                              attention_scores=attention_scores) - mlp_block + moe


LOGIT_BYTES = 4
"""The loss's logits, cast to fp32 for the vocab-parallel cross-entropy (Korthikanti et al. §4.3: 4 s b V / t)."""


def activation_bytes_per_gpu(spec: ModelSpec, *, tp: int, pp: int, micro_batch: int, seq_len: int, sp: bool,
                             attention_scores: bool = True, experts: ExpertParallelLayout | None = None,
                             micro_batches: int | None = None) -> int:
    """Activations at the peak of 1F1B on the fuller of the first stage (min(pp, m) micro-batches in flight of its
    ceil(L / pp) layers, m = `micro_batches` per step, None: at least pp) and the last (one micro-batch of its layers
    plus the loss's logits) (module docstring). `experts` prices the MoE layers as MoE layers (None: every layer as
    a dense one)."""
    tokens = seq_len * micro_batch
    per_layer = _dense_layer_bytes(spec, tp=tp, tokens=tokens, seq_len=seq_len, sp=sp,
                                   attention_scores=attention_scores)
    layers = ceil_div(spec.num_hidden_layers, pp)
    moe = layers_in(spec, "moe_layer", range(layers)) if experts is not None and spec.is_moe else 0
    total = per_layer * (layers - moe)
    if moe:
        total += moe * _moe_layer_bytes(spec, experts, tokens=tokens, seq_len=seq_len, sp=sp,
                                        attention_scores=attention_scores)
    logits = LOGIT_BYTES * tokens * ceil_div(spec.vocab_size, tp)
    in_flight = pp if micro_batches is None else min(pp, micro_batches)
    return int(max(total * in_flight, total + logits))


def _expert_parallel_delta(spec: ModelSpec, profile: HardwareProfile, w: Workload, c: Coefficients,
                           lay: TrainLayout, x: ExpertParallelLayout, *, tokens: int, sp: bool) -> tuple[float, float]:
    """What an EP / ETP layout changes in one micro-batch's TP-only forward, (compute, communication) seconds: each
    MoE layer's TP-split experts swapped for its routed experts under `x`, and its MLP-side TP collective (kept
    when shared experts need it) for the all-to-all token exchange."""
    ce = c if lay.expert_tp == lay.tp else coefficients(spec, profile, tp=lay.expert_tp, pp=lay.pp, dtype=w.dtype,
                                                        engine=w.engine, fusion=fusion_for("megatron"))
    experts = RoutedExperts(num_experts=spec.num_experts, top_k=spec.num_experts_per_tok,
                            expert_bytes=ce.expert_bytes, expert_flops_per_token=ce.expert_flops_per_token,
                            width_per_gpu=ceil_div(spec.moe_intermediate_size, lay.expert_tp),
                            hidden_size=spec.hidden_size, act_bytes=c.act_bytes)
    swapped = experts_compute_time_s(x, experts, c.rates, tokens, kernels=c.moe_kernels) - routed_experts_s(c, tokens)
    nothing_dropped = lay.tp == 1 or spec.n_shared_experts  # no TP collective, or shared experts still need it
    dropped = 0.0 if nothing_dropped else tp_collective_time_s(c, profile, tokens, sequence_parallel=sp)
    exchange = token_exchange_time_s(x, profile, tokens, top_k=spec.num_experts_per_tok,
                                     hidden_size=spec.hidden_size, act_bytes=c.act_bytes)
    return c.num_moe_layers * swapped, c.num_moe_layers * (exchange - dropped)


def optimizer_state_bytes(lay: TrainLayout, *, params: int, expert_params: int, distributed: bool) -> int:
    """fp32 gradients (4 B per parameter held) + fp32 master weights and Adam moments (12 B): whole on every GPU, or
    with the distributed optimizer sharded over each parameter's data-parallel group (DP dense, EDP routed experts;
    module docstring)."""
    if not distributed:
        return params * OPTIMIZER_STATE_BYTES_PER_PARAM
    sharded = OPTIMIZER_STATE_BYTES_PER_PARAM - GRAD_BYTES_PER_PARAM
    return (params * GRAD_BYTES_PER_PARAM + ceil_div((params - expert_params) * sharded, lay.replicas)
            + ceil_div(expert_params * sharded, lay.expert_dp))


def _grad_sync_s(profile: HardwareProfile, lay: TrainLayout, *, params: int, expert_params: int,
                 distributed: bool = False) -> float:
    """Gradient synchronisation of one step: dense over DP (replicas), routed experts over EDP, both strided over the
    stage's TP x DP GPUs (one group when they are the same: TP-split experts). An fp32 all-reduce; with the
    distributed optimizer an fp32 reduce-scatter and an all-gather of the updated bf16 parameters."""
    span = lay.stage_gpus

    def sync(group: int, n: int) -> float:
        if not distributed:
            return collective_time_s(profile, kind="allreduce", group_size=group, n_bytes=n * GRAD_BYTES_PER_PARAM,
                                     span_gpus=span)
        return (collective_time_s(profile, kind="reducescatter", group_size=group,
                                  n_bytes=n * GRAD_BYTES_PER_PARAM, span_gpus=span)
                + collective_time_s(profile, kind="allgather", group_size=group,
                                    n_bytes=n * WEIGHT_BYTES_PER_PARAM, span_gpus=span))

    if not lay.folded:
        return sync(lay.replicas, params)
    return sync(lay.replicas, params - expert_params) + sync(lay.expert_dp, expert_params)


def _params(spec: ModelSpec, lay: TrainLayout, engine: str) -> tuple[int, int]:
    """(parameters, routed-expert parameters) on the most loaded GPU: experts ceil(E / ep) per GPU, split ETP ways
    (ETP = TP in a TP-only layout: the experts split like every other MLP)."""
    shard = dict(tp=lay.tp, pp=lay.pp, engine=engine, ep=lay.ep, expert_tp=lay.expert_tp)
    totals = params_by_stage(spec, **shard)
    stage = totals.index(max(totals))
    routed = params_by_stage(spec, routed_only=True, **shard)[stage] if spec.is_moe else 0
    return totals[stage], routed


def _without_epilogues(profile: HardwareProfile) -> HardwareProfile:
    """`profile` with no GEMM epilogue (the FLOPs a backward pass's matmuls do twice over; module docstring)."""
    e = dataclasses.replace(profile.efficiency, matmul_epilogue_k=0.0, matmul_epilogue_k_fp8=0.0)
    return dataclasses.replace(profile, efficiency=e)


BareForward = tuple[HardwareProfile, Coefficients, float]
"""(profile without GEMM epilogues, its coefficients, the forward compute seconds of one micro-batch) of one (tp,
pp, sequence parallel): what `_step` adds to 2 x the forward for the backward (module docstring)."""


def _bare_forward(spec: ModelSpec, profile: HardwareProfile, w: Workload, lay: TrainLayout, *, sp: bool,
                  cache: dict[tuple[int, int, bool], BareForward] | None) -> BareForward:
    """The forward without GEMM epilogues, once per (tp, pp, sp) of a plan when `cache` is given (the layouts of a
    plan that share them differ only in replicas and expert layout)."""
    key = (lay.tp, lay.pp, sp)
    if cache is not None and key in cache:
        return cache[key]
    bare = _without_epilogues(profile)
    c = coefficients(spec, bare, tp=lay.tp, pp=lay.pp, dtype=w.dtype, engine=w.engine, fusion=fusion_for("megatron"))
    out = bare, c, prefill(c, bare, prompts=w.batch or 1, input_len=w.input_len, sequence_parallel=sp,
                           every_position=True).compute_s
    if cache is not None:
        cache[key] = out
    return out


def _step(spec: ModelSpec, profile: HardwareProfile, w: Workload, lay: TrainLayout, x: ExpertParallelLayout | None,
          *, sp: bool, params: int, expert_params: int,
          cache: dict[tuple[int, int, bool], BareForward] | None = None) -> tuple[float, float, Coefficients]:
    """(step seconds, of which communication, the layout's coefficients): m micro-batches (4 pp, or the user's global
    batch / (micro-batch x DP): `micro_batches_per_replica`) of forward + backward
    compute (2 x forward + 1 x forward without GEMM epilogues; module docstring) + 2 x forward communication
    through 1F1B paced by the slowest stage, plus the gradient all-reduce and the step overhead. `cache`:
    `_bare_forward`'s."""
    c = coefficients(spec, profile, tp=lay.tp, pp=lay.pp, dtype=w.dtype, engine=w.engine,
                     fusion=fusion_for("megatron"))
    mb = w.batch or 1
    fwd = prefill(c, profile, prompts=mb, input_len=w.input_len, sequence_parallel=sp, every_position=True)
    bare, c_bare, fwd_bare_s = _bare_forward(spec, profile, w, lay, sp=sp, cache=cache)
    fwd_bwd, comm = 2 * fwd.compute_s + fwd_bare_s, fwd.communication_s
    if lay.folded:
        tokens = mb * w.input_len
        d_compute, d_comm = _expert_parallel_delta(spec, profile, w, c, lay, x, tokens=tokens, sp=sp)
        d_bare, _ = _expert_parallel_delta(spec, bare, w, c_bare, lay, x, tokens=tokens, sp=sp)
        fwd_bwd, comm = fwd_bwd + 2 * d_compute + d_bare, comm + d_comm
    m = micro_batches_per_replica(lay, mb, w.global_batch) or TRAIN_MICROBATCHES_PER_STAGE * lay.pp  # refused if None
    rounds = (m - 1) * forward_stage_share(c, profile, prompts=mb, input_len=w.input_len, sequence_parallel=sp,
                                           every_position=True) + 1  # slowest-stage paces of one micro-batch's T
    grads = _grad_sync_s(profile, lay, params=params, expert_params=expert_params,
                         distributed=w.distributed_optimizer)
    return rounds * (fwd_bwd + 2 * comm) + grads + c.step_overhead_s, rounds * 2 * comm + grads, c


def evaluate_training(spec: ModelSpec, profile: HardwareProfile, w: Workload, *, tp: int, pp: int,
                      replicas: int, ep: int = 1, etp: int = 0,
                      cache: dict[tuple[int, int, bool], BareForward] | None = None) -> Candidate:
    """One Megatron layout (`etp` 0: Megatron's default, tp); its rule violations are reasons (module docstring).
    `cache`: a dict the layouts of one plan share (`_bare_forward`)."""
    w = w.for_model(spec)
    lay = TrainLayout(tp=tp, pp=pp, replicas=replicas, ep=ep, etp=etp, moe=spec.is_moe)
    mb, sp = w.batch or 1, w.sequence_parallel or lay.sequence_parallel_required
    x = ExpertParallelLayout(tp=tp, ep=ep, etp=lay.expert_tp, imbalance=w.moe_imbalance) if spec.is_moe else None
    n_params, expert_params = _params(spec, lay, w.engine)
    usable = usable_bytes_per_gpu(profile, w)
    weights = n_params * WEIGHT_BYTES_PER_PARAM
    optimizer = optimizer_state_bytes(lay, params=n_params, expert_params=expert_params,
                                      distributed=w.distributed_optimizer)
    state = weights + optimizer
    act = activation_bytes_per_gpu(spec, tp=tp, pp=pp, micro_batch=mb, seq_len=w.input_len, sp=sp,
                                   micro_batches=micro_batches_per_replica(lay, mb, w.global_batch),
                                   attention_scores=False, experts=x)
    reserve = profile.efficiency.runtime_reserve_bytes + act
    reasons = structural_reasons(spec, profile, tp=tp, pp=pp, w=w) + megatron_placement_reasons(
        tp=tp, groups=pp * replicas, nvlink_domain_size=profile.nvlink_domain_size, gpus_per_node=profile.gpus_per_node)
    problems = [expert_layout_problem(spec, lay, dtype=w.dtype) if spec.is_moe else None,
                pipeline_problem(spec, pp), sequence_split_problem(w.input_len, tp, sp),
                global_batch_problem(lay, mb, w.global_batch)]
    reasons += [p for p in problems if p]
    need = state + reserve
    if need > usable:
        reasons.append(f"weights+gradients+optimizer {bytes_to_gib(state):.1f} GiB + activations "
                       f"{bytes_to_gib(act):.1f} GiB per GPU exceed the {bytes_to_gib(usable):.1f} "
                       f"GiB usable by {bytes_to_gib(need - usable):.1f} GiB")
    step, comm, c = _step(spec, profile, w, lay, x, sp=sp, params=n_params, expert_params=expert_params,
                          cache=cache)
    tokens = global_batch(lay, mb, w.global_batch) * w.input_len
    notes = (("sequence parallelism on: Megatron trains MoE layers with TP > 1 only with it",) if
             lay.sequence_parallel_required and not w.sequence_parallel else ())
    if gathers_qkv(spec, tp=tp, engine=w.engine):
        notes += (f"TP {tp} > {spec.num_key_value_heads} KV heads: needs Megatron-Core 0.16 or later (0.15 refuses "
                  f"it) and all-gathers the QKV activation in every layer (counted)",)
    return Candidate(
        tp=tp, pp=pp, replicas=replicas, gpus_used=lay.world, tier=profile.tier_for_group(tp), feasible=not reasons,
        reasons=tuple(reasons), notes=notes, batch=mb, usable_bytes_per_gpu=usable, weight_bytes_per_gpu=weights,
        optimizer_state_bytes_per_gpu=optimizer, model_state_bytes_per_gpu=state, activation_bytes_per_gpu=act,
        runtime_reserve_bytes_per_gpu=reserve, step_time_s=step,
        communication_time_per_step_s=comm, comm_share=comm / step, ep=ep,
        etp=lay.expert_tp if spec.is_moe else None,
        allreduce_bytes_per_layer=2 * c.allreduces_per_layer * mb * w.input_len * c.hidden_size * c.act_bytes
        if tp > 1 else 0,
        **throughput_fields(tokens / step if not reasons else 0.0, gpus_used=lay.world, profile=profile))

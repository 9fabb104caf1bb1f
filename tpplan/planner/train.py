"""Training candidates (`--workload train`): Megatron-style memory and step time.

Memory per GPU (Megatron-LM mixed precision without the distributed optimizer): 18 bytes per parameter
(bf16 weight 2 + fp32 gradient 4 + fp32 master weight 4 + Adam moments 8; Megatron-LM docs,
"distributed optimizer"). Activations per layer per micro-batch (Korthikanti et al. 2022, arXiv:2205.05198,
16-bit activations, no recomputation): s b h (10 + 24/t + 5 a s / (h t)) bytes, or with sequence
parallelism s b h (34/t + 5 a s / (h t)); with 1F1B the first stage holds pp micro-batches of its L/pp layers.
The 5 a s / (h t) term is the attention scores (softmax, dropout mask and output); Megatron's default attention
(--transformer-impl transformer_engine: Transformer Engine's fused / flash attention) keeps none, so the planner
leaves it out (`attention_scores` False).
Step time: forward + backward = 3 x forward compute and 2 x forward communication (4 collectives per layer),
over m = 4 pp micro-batches per replica with a (pp-1) bubble, plus the data-parallel gradient all-reduce across
replicas, in fp32, priced on the fabric its ranks span: Megatron orders ranks tp-cp-dp-pp, so a DP group is strided
over one pipeline stage's tp x replicas GPUs. Throughput counts the tokens of every replica.
"""

from __future__ import annotations

from tpplan.cost.coefficients import coefficients
from tpplan.cost.collectives import collective_time_s
from tpplan.cost.kernels import fusion_for
from tpplan.cost.step import prefill
from tpplan.hardware.profile import HardwareProfile
from tpplan.models.spec import ModelSpec
from tpplan.models.weights import params_on_most_loaded_gpu
from tpplan.planner.candidates import Candidate, structural_reasons, throughput_fields, usable_bytes_per_gpu
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


def activation_bytes_per_gpu(spec: ModelSpec, *, tp: int, pp: int, micro_batch: int, seq_len: int, sp: bool,
                             attention_scores: bool = True) -> int:
    """Activations the first pipeline stage holds at the peak of 1F1B (module docstring), bytes."""
    s, b, h, a = seq_len, micro_batch, spec.hidden_size, spec.num_attention_heads
    scores = 5 * a * s / (h * tp) if attention_scores else 0
    per_layer = s * b * h * ((34 / tp if sp else 10 + 24 / tp) + scores)
    layers = ceil_div(spec.num_hidden_layers, pp)
    return int(per_layer * layers * pp)


def evaluate_training(spec: ModelSpec, profile: HardwareProfile, w: Workload, *, tp: int, pp: int,
                      replicas: int) -> Candidate:
    w = w.for_model(spec)
    mb = w.batch or 1
    n_params = params_on_most_loaded_gpu(spec, tp=tp, pp=pp, engine=w.engine)
    usable = usable_bytes_per_gpu(profile, w)
    weights, optimizer = n_params * WEIGHT_BYTES_PER_PARAM, n_params * OPTIMIZER_STATE_BYTES_PER_PARAM
    act = activation_bytes_per_gpu(spec, tp=tp, pp=pp, micro_batch=mb, seq_len=w.input_len, sp=w.sequence_parallel,
                                   attention_scores=False)
    reserve = profile.efficiency.runtime_reserve_bytes + act
    reasons = structural_reasons(spec, profile, tp=tp, pp=pp, w=w)
    need = weights + optimizer + reserve
    if need > usable:
        reasons.append(f"weights+gradients+optimizer {bytes_to_gib(weights + optimizer):.1f} GiB + activations "
                       f"{bytes_to_gib(act):.1f} GiB per GPU exceed the {bytes_to_gib(usable):.1f} "
                       f"GiB usable by {bytes_to_gib(need - usable):.1f} GiB")
    c = coefficients(spec, profile, tp=tp, pp=pp, dtype=w.dtype, engine=w.engine, fusion=fusion_for("megatron"))
    fwd = prefill(c, profile, prompts=mb, input_len=w.input_len, sequence_parallel=w.sequence_parallel)
    micro = 3 * fwd.compute_s + 2 * fwd.communication_s
    m = TRAIN_MICROBATCHES_PER_STAGE * pp
    grads = collective_time_s(profile, kind="allreduce", group_size=replicas, n_bytes=n_params * GRAD_BYTES_PER_PARAM,
                              span_gpus=tp * replicas)
    step = (m + pp - 1) * micro / pp + grads + c.step_overhead_s
    comm = 2 * fwd.communication_s * m / pp + grads
    tokens = m * mb * w.input_len
    gpus_used = tp * pp * replicas
    return Candidate(
        tp=tp, pp=pp, replicas=replicas, gpus_used=gpus_used, tier=profile.tier_for_group(tp), feasible=not reasons,
        reasons=tuple(reasons), batch=mb, usable_bytes_per_gpu=usable, weight_bytes_per_gpu=weights,
        optimizer_state_bytes_per_gpu=optimizer, runtime_reserve_bytes_per_gpu=reserve, step_time_s=step,
        communication_time_per_step_s=comm, comm_share=comm / step,
        allreduce_bytes_per_layer=2 * c.allreduces_per_layer * mb * w.input_len * c.hidden_size * c.act_bytes
        if tp > 1 else 0,
        **throughput_fields(replicas * tokens / step if not reasons else 0.0, gpus_used=gpus_used, profile=profile))

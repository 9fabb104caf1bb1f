"""Evaluate one (tp, pp, replicas) candidate: memory, feasibility with reasons, latency and throughput."""

from __future__ import annotations

from dataclasses import dataclass, field

from tpplan.cost.step import Coefficients, allreduce_bytes_per_layer, coefficients, decode_step_s, prefill_s
from tpplan.hardware.profile import HardwareProfile
from tpplan.models.engines import tp_violation
from tpplan.models.kv import kv_cache_bytes_per_sequence
from tpplan.models.spec import ModelSpec
from tpplan.models.weights import weight_bytes_per_gpu
from tpplan.planner.workload import MAX_NUM_SEQS_DEFAULT, PREFILL_CHUNK_TOKENS_MAX, Workload
from tpplan.units import HOUR_S, MILLION, bytes_to_gib, s_to_ms


@dataclass(slots=True, kw_only=True)
class Candidate:
    """One way to lay the model out on the GPUs. Base units throughout; JSON keys per DESIGN.md §6."""

    tp: int
    pp: int
    replicas: int
    gpus_used: int
    feasible: bool = True
    reasons: list[str] = field(default_factory=list)
    usable_bytes_per_gpu: int = 0
    weight_bytes_per_gpu: int = 0
    runtime_reserve_bytes_per_gpu: int = 0
    kv_cache_bytes_per_gpu: int = 0
    kv_cache_tokens: int = 0
    max_concurrent_sequences: int = 0
    batch: int = 0
    allreduce_bytes_per_layer: float = 0.0
    allreduce_time_per_step_s: float = 0.0
    comm_share: float = 0.0
    ttft_s: float | None = None
    tpot_s: float | None = None
    step_time_s: float | None = None
    output_tokens_per_s: float = 0.0
    output_tokens_per_s_per_gpu: float = 0.0
    cost_per_million_output_tokens: float | None = None
    tier: str = ""

    def reject(self, reason: str) -> None:
        self.feasible = False
        self.reasons.append(reason)


def activation_reserve_bytes(spec: ModelSpec, c: Coefficients, w: Workload) -> int:
    """Peak activations of one prefill chunk: tokens x (4 h + 2 x widest MLP / t) x act_bytes, plus fp32 logits
    of one token per sequence (tokens = min(max_model_len, 8192))."""
    tokens = min(w.max_model_len, PREFILL_CHUNK_TOKENS_MAX)
    widest = max(spec.intermediate_size, spec.moe_intermediate_size * max(1, spec.num_experts_per_tok))
    logits = MAX_NUM_SEQS_DEFAULT * -(-spec.vocab_size // c.tp) * 4
    return int(tokens * (4 * spec.hidden_size + 2 * widest // c.tp) * c.act_bytes + logits)


def fill_memory(cand: Candidate, spec: ModelSpec, profile: HardwareProfile, c: Coefficients, w: Workload) -> int:
    """Fill memory fields; returns bytes of one max_model_len sequence on the most loaded GPU."""
    cand.usable_bytes_per_gpu = int(profile.gpu.memory_bytes * w.gpu_memory_utilization)
    cand.weight_bytes_per_gpu = weight_bytes_per_gpu(spec, tp=cand.tp, pp=cand.pp, dtype=w.dtype, engine=w.engine)
    cand.runtime_reserve_bytes_per_gpu = profile.efficiency.runtime_reserve_bytes + activation_reserve_bytes(spec, c, w)
    budget = cand.usable_bytes_per_gpu - cand.weight_bytes_per_gpu - cand.runtime_reserve_bytes_per_gpu
    cand.kv_cache_bytes_per_gpu = max(0, budget)
    seq = kv_cache_bytes_per_sequence(spec, context_len=w.max_model_len, tp=cand.tp, pp=cand.pp,
                                      kv_dtype=w.kv_cache_dtype, engine=w.engine)
    per_token = -(-spec.num_hidden_layers // cand.pp) * c.kv_bytes_per_token_per_layer
    cand.kv_cache_tokens = int(cand.kv_cache_bytes_per_gpu // per_token) if per_token else 0
    cand.max_concurrent_sequences = int(cand.kv_cache_bytes_per_gpu // seq) if seq else 0
    fixed = cand.weight_bytes_per_gpu + cand.runtime_reserve_bytes_per_gpu
    if fixed > cand.usable_bytes_per_gpu:
        cand.reject(f"weights {bytes_to_gib(cand.weight_bytes_per_gpu):.1f} GiB + runtime reserve "
                    f"{bytes_to_gib(cand.runtime_reserve_bytes_per_gpu):.1f} GiB per GPU exceed the "
                    f"{bytes_to_gib(cand.usable_bytes_per_gpu):.1f} GiB usable ({w.gpu_memory_utilization:.2f} x "
                    f"{bytes_to_gib(profile.gpu.memory_bytes):.1f} GiB) by "
                    f"{bytes_to_gib(fixed - cand.usable_bytes_per_gpu):.1f} GiB")
    elif cand.max_concurrent_sequences < 1:
        cand.reject(f"KV cache budget {bytes_to_gib(budget):.2f} GiB per GPU cannot hold one {w.max_model_len}-token "
                    f"sequence ({bytes_to_gib(seq):.2f} GiB); short by {bytes_to_gib(seq - budget):.2f} GiB")
    return seq


def structural_reasons(spec: ModelSpec, profile: HardwareProfile, *, tp: int, pp: int, w: Workload) -> list[str]:
    reasons = []
    rule = tp_violation(spec, tp, engine=w.engine)
    if rule:
        reasons.append(f"{w.engine}: {rule}")
    if tp > profile.nvlink_domain_size and not w.allow_cross_domain_tp and profile.nvlink_domain_size > 1:
        reasons.append(f"TP {tp} crosses the {profile.nvlink_domain_size}-GPU NVLink domain (all-reduce over "
                       f"{profile.tier_for_group(tp)}); pass --allow-cross-domain-tp to consider it")
    if tp > profile.gpus_per_node and not w.allow_cross_domain_tp:
        reasons.append(f"TP {tp} spans nodes ({profile.gpus_per_node} GPUs per node); use PP across nodes")
    if pp > spec.num_hidden_layers:
        reasons.append(f"PP {pp} exceeds the {spec.num_hidden_layers} layers")
    return reasons


def new_candidate(spec: ModelSpec, profile: HardwareProfile, w: Workload, *, tp: int, pp: int,
                  replicas: int) -> Candidate:
    """A candidate with its structural rejections (engine rules, NVLink domain, nodes, layers) applied."""
    cand = Candidate(tp=tp, pp=pp, replicas=replicas, gpus_used=tp * pp * replicas, tier=profile.tier_for_group(tp))
    for r in structural_reasons(spec, profile, tp=tp, pp=pp, w=w):
        cand.reject(r)
    return cand


def _best_batch(cand: Candidate, c: Coefficients, profile: HardwareProfile, w: Workload, ctx: int) -> int:
    """Largest batch <= the KV limit (and --batch / 256) whose TPOT meets --max-tpot-ms."""
    cap = min(cand.max_concurrent_sequences, w.batch or MAX_NUM_SEQS_DEFAULT)
    if w.batch and w.batch > cand.max_concurrent_sequences:
        cand.reasons.append(f"batch capped at {cand.max_concurrent_sequences} by KV memory (asked {w.batch})")
    if w.max_tpot_s is None or w.batch:
        return cap
    lo, hi = 0, cap
    while lo < hi:  # TPOT grows with batch: binary search the largest batch meeting the limit
        mid = (lo + hi + 1) // 2
        if decode_step_s(c, profile, batch=mid, context_len=ctx, sequence_parallel=w.sequence_parallel)[0] \
                <= w.max_tpot_s:
            lo = mid
        else:
            hi = mid - 1
    return lo


def evaluate_serving(spec: ModelSpec, profile: HardwareProfile, w: Workload, *, tp: int, pp: int,
                     replicas: int) -> Candidate:
    cand = new_candidate(spec, profile, w, tp=tp, pp=pp, replicas=replicas)
    c = coefficients(spec, profile, tp=tp, pp=pp, dtype=w.dtype, kv_cache_dtype=w.kv_cache_dtype, engine=w.engine)
    fill_memory(cand, spec, profile, c, w)
    ctx = w.input_len + w.output_len // 2
    cand.ttft_s = prefill_s(c, profile, prompts=1, input_len=w.input_len, sequence_parallel=w.sequence_parallel)[0]
    tpot1 = decode_step_s(c, profile, batch=1, context_len=ctx, sequence_parallel=w.sequence_parallel)[0]
    if w.max_ttft_s is not None and cand.ttft_s > w.max_ttft_s:
        cand.reject(f"TTFT {s_to_ms(cand.ttft_s):.1f} ms exceeds --max-ttft-ms {s_to_ms(w.max_ttft_s):.1f}")
    if w.max_tpot_s is not None and tpot1 > w.max_tpot_s:
        cand.reject(f"TPOT {s_to_ms(tpot1):.2f} ms at batch 1 exceeds --max-tpot-ms {s_to_ms(w.max_tpot_s):.2f}")
    cand.batch = _best_batch(cand, c, profile, w, ctx) if cand.feasible else max(1, w.batch or 1)
    b = max(1, cand.batch)
    cand.tpot_s, comm = decode_step_s(c, profile, batch=b, context_len=ctx, sequence_parallel=w.sequence_parallel)
    cand.allreduce_time_per_step_s, cand.comm_share = comm, comm / cand.tpot_s
    cand.allreduce_bytes_per_layer = allreduce_bytes_per_layer(c, tokens=b)
    prefill_batch = prefill_s(c, profile, prompts=b, input_len=w.input_len, sequence_parallel=w.sequence_parallel)[0]
    per_replica = b * w.output_len / (w.output_len * cand.tpot_s + prefill_batch) if cand.feasible else 0.0
    fill_throughput(cand, per_replica, profile)
    return cand


def fill_throughput(cand: Candidate, per_replica_tokens_per_s: float, profile: HardwareProfile) -> None:
    cand.output_tokens_per_s = per_replica_tokens_per_s * cand.replicas
    cand.output_tokens_per_s_per_gpu = cand.output_tokens_per_s / cand.gpus_used
    if profile.price_per_gpu_hour and cand.output_tokens_per_s > 0:
        dollars_per_s = profile.price_per_gpu_hour * cand.gpus_used / HOUR_S
        cand.cost_per_million_output_tokens = dollars_per_s / cand.output_tokens_per_s * MILLION

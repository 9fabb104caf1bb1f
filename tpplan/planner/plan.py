"""Enumerate (tp, pp, replicas) candidates, evaluate each, rank them for the objective: the Plan.

`recommend()` is the Python API behind `tpplan recommend`; it returns the same Plan the CLI renders.
"Nothing fits" is an answer (a Plan with no recommendation, every candidate carrying its reasons).
"""

from __future__ import annotations

import dataclasses
from typing import get_args

from tpplan.errors import TpplanError
from tpplan.hardware.profile import HardwareProfile
from tpplan.models.dtypes import normalize_dtype, resolve_dtype, weights_assumption
from tpplan.models.engines import rules_for, valid_tp_degrees
from tpplan.models.spec import ModelSpec
from tpplan.planner.candidates import Candidate, evaluate_serving
from tpplan.planner.explain import explain, suggestions
from tpplan.planner.result import Plan
from tpplan.planner.train import evaluate_training
from tpplan.planner.workload import DEFAULT_MAX_MODEL_LEN, WORKLOAD_DEFAULTS, Mode, Objective, Workload
from tpplan.units import US, bytes_to_gib, s_to_ms

D = WORKLOAD_DEFAULTS


def _powers_of_two(limit: int) -> list[int]:
    out, x = [], 1
    while x <= limit:
        out.append(x)
        x *= 2
    return out


def candidate_shapes(spec: ModelSpec, w: Workload) -> list[tuple[int, int]]:
    """(tp, pp) pairs to consider: powers of two and every engine-valid degree, tp x pp <= GPUs."""
    tps = sorted(set(_powers_of_two(w.gpus)) | {t for t in valid_tp_degrees(spec, engine=w.engine) if t <= w.gpus})
    shapes = []
    for tp in tps:
        for pp in _powers_of_two(w.gpus // tp):
            if pp <= spec.num_hidden_layers:
                shapes.append((tp, pp))
    return shapes


def _rank_key(c: Candidate, objective: str):
    if objective == "latency":
        return (c.tpot_s, c.ttft_s, -c.output_tokens_per_s_per_gpu)
    if objective == "gpus":
        return (c.tp * c.pp, -c.output_tokens_per_s_per_gpu)
    return (-c.output_tokens_per_s_per_gpu, -c.output_tokens_per_s, c.tpot_s or c.step_time_s)


def build_plan(spec: ModelSpec, profile: HardwareProfile, w: Workload, assumptions: dict[str, str]) -> Plan:
    evaluate = evaluate_training if w.mode == "train" else evaluate_serving
    cands = [evaluate(spec, profile, w, tp=tp, pp=pp, replicas=w.gpus // (tp * pp))
             for tp, pp in candidate_shapes(spec, w)]
    feasible = sorted((c for c in cands if c.feasible), key=lambda c: _rank_key(c, w.objective))
    best = feasible[0] if feasible else None
    cands.sort(key=lambda c: (not c.feasible, _rank_key(c, w.objective) if c.feasible else (c.tp, c.pp)))
    plan = Plan(model=spec, profile=profile, workload=w, candidates=cands, recommended=best, assumptions=assumptions)
    plan.explanation = explain(plan)
    plan.suggestions = [] if best else suggestions(plan)
    return plan


def _resolve_gpus(profile: HardwareProfile, gpus: int | None, nodes: int | None) -> tuple[HardwareProfile, int]:
    if nodes is not None:
        if nodes > 1 and profile.network is None:
            raise TpplanError(f"--nodes {nodes}: profile {profile.name!r} has no network section; use a multi-node "
                              f"profile (e.g. dgx-h100-2node) or add network: to yours")
        profile = dataclasses.replace(profile, nodes=nodes)
    gpus = gpus or profile.total_gpus
    if gpus > profile.total_gpus:
        multi = " or pass --nodes" if profile.network else "; use a multi-node profile such as dgx-h100-2node"
        raise TpplanError(f"--gpus {gpus} exceeds profile {profile.name!r} ({profile.gpus_per_node} GPUs per node x "
                          f"{profile.nodes} node(s) = {profile.total_gpus}){multi}")
    return profile, gpus


def recommend(model: str | ModelSpec, *, gpus: int | None = None, hardware: str | HardwareProfile | None = None,
              nodes: int | None = None, engine: str = D.engine, dtype: str = D.dtype,
              kv_cache_dtype: str = D.kv_cache_dtype, max_model_len: int | None = None, input_len: int = D.input_len,
              output_len: int = D.output_len, batch: int | None = None,
              gpu_memory_utilization: float = D.gpu_memory_utilization, workload: str = D.mode,
              objective: str = D.objective, max_tpot_ms: float | None = None, max_ttft_ms: float | None = None,
              max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None,
              sequence_parallel: bool = False, allow_cross_domain_tp: bool = False) -> Plan:
    """Plan `model` on `hardware` with `gpus` GPUs. Returns a Plan (recommended may be None: nothing fits).

    max_num_seqs / max_num_batched_tokens override the engine's scheduler limits (vLLM's names; TensorRT-LLM
    max_batch_size / max_num_tokens, SGLang max_running_requests / chunked_prefill_size)."""
    from tpplan.hardware.loader import resolve_profile
    from tpplan.models.resolve import resolve_model
    from tpplan.units import ms_to_s

    assumptions: dict[str, str] = {}
    if isinstance(model, ModelSpec):
        spec = model
    else:
        resolved = resolve_model(model)
        spec = resolved.spec
        if resolved.via_alias:
            assumptions["model"] = f"{model} resolves to {spec.name} ({spec.hf_id})"
    if isinstance(hardware, HardwareProfile):
        profile, assumed = hardware, False
    else:
        profile, assumed = resolve_profile(hardware)
    if assumed:
        assumptions["hardware"] = f"no --hardware given: {profile.name} ({profile.description})"
    profile, gpus_n = _resolve_gpus(profile, gpus, nodes)
    rules_for(engine)
    _check_workload(workload, objective, input_len, output_len)
    if max_model_len is None:
        max_model_len = min(spec.max_position_embeddings, DEFAULT_MAX_MODEL_LEN)
        assumptions["max_model_len"] = f"{max_model_len} (min of the model's {spec.max_position_embeddings} and 8192)"
    elif max_model_len > spec.max_position_embeddings:
        raise TpplanError(f"--max-model-len {max_model_len} exceeds {spec.name}'s max_position_embeddings "
                          f"({spec.max_position_embeddings}); use at most {spec.max_position_embeddings}")
    if objective == "latency" and batch is None and workload == "serve":
        batch = 1
        assumptions["batch"] = "1 (objective latency)"
    w = Workload(gpus=gpus_n, engine=engine, dtype=resolve_dtype(spec, dtype),
                 kv_cache_dtype=normalize_dtype(kv_cache_dtype, kind="kv"), max_model_len=max_model_len,
                 input_len=input_len, output_len=output_len, batch=batch,
                 gpu_memory_utilization=gpu_memory_utilization, mode=workload, objective=objective,
                 max_tpot_s=ms_to_s(max_tpot_ms) if max_tpot_ms else None,
                 max_ttft_s=ms_to_s(max_ttft_ms) if max_ttft_ms else None, max_num_seqs=max_num_seqs,
                 max_num_batched_tokens=max_num_batched_tokens, sequence_parallel=sequence_parallel,
                 allow_cross_domain_tp=allow_cross_domain_tp)
    assumptions.setdefault("dtype", weights_assumption(spec, w.dtype, w.kv_cache_dtype, profile.gpu.peak_flops_per_s))
    _record_defaults(assumptions, w, profile)
    return build_plan(spec, profile, w, assumptions)


def _check_workload(workload: str, objective: str, input_len: int, output_len: int) -> None:
    if workload not in get_args(Mode):
        raise TpplanError(f"--workload {workload!r} is not known; choose {' or '.join(get_args(Mode))}")
    if objective not in get_args(Objective):
        raise TpplanError(f"--objective {objective!r} is not known; choose {', '.join(get_args(Objective))}")
    if input_len < 1 or output_len < 1:
        raise TpplanError("--input-len and --output-len must be at least 1")


def _record_defaults(a: dict[str, str], w: Workload, p: HardwareProfile) -> None:
    from tpplan.planner.candidates import engine_limits

    limits = engine_limits(p, w)
    a.setdefault("gpus", f"{w.gpus} of {p.total_gpus} in {p.name}")
    a.setdefault("engine", w.engine)
    a.setdefault("dtype", f"weights {w.dtype}, KV cache {w.kv_cache_dtype}")
    a.setdefault("gpu_memory_utilization", f"{w.gpu_memory_utilization:.2f}")
    a.setdefault("workload", f"{w.mode}: input {w.input_len} tokens, output {w.output_len} tokens; context for "
                             f"decode = input + output/2; TTFT = one prompt prefilled alone (no queueing), "
                             f"ttft_under_load_s = a new prompt while the batch runs; throughput = continuous "
                             f"batching steady state: batch / (step of batch decode tokens + batch x input/output "
                             f"prefill tokens)")
    a.setdefault("scheduler", f"{w.engine}: max sequences {limits.max_num_seqs or 'KV-bound'}, "
                              f"{limits.max_num_batched_tokens} tokens per step, KV blocks of "
                              f"{limits.block_size_tokens} tokens"
                              + (", input + output reserved per request" if limits.reserve_full_sequence else ""))
    a.setdefault("batch", f"{w.batch}" if w.batch else
                 "largest that the paged KV cache (tokens requests hold), the scheduler limits and the latency "
                 "limits allow")
    a.setdefault("objective", w.objective)
    e = p.efficiency
    a.setdefault("efficiency", f"matmul {e.matmul:.2f}, memory {e.memory:.2f}, runtime reserve "
                               f"{bytes_to_gib(e.runtime_reserve_bytes):.1f} GiB + activations, step overhead "
                               f"{s_to_ms(e.step_overhead_s):.2f} ms, {e.kernel_overhead_s / US:.1f} us per kernel "
                               f"(from {p.origin})")

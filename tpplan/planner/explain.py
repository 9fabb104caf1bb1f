"""Words for a Plan: why the recommendation won, why every other candidate lost, what would help."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tpplan.units import bytes_to_gib, ceil_div, s_to_ms

if TYPE_CHECKING:
    from tpplan.planner.candidates import Candidate
    from tpplan.planner.result import Plan


def label(c: Candidate) -> str:
    return f"TP{c.tp} x PP{c.pp} x {c.replicas} replica{'s' if c.replicas > 1 else ''}"


def _speed(c: Candidate) -> str:
    step = f"TPOT {s_to_ms(c.tpot_s):.2f} ms" if c.tpot_s is not None else f"step {c.step_time_s:.2f} s"
    return (f"{c.output_tokens_per_s_per_gpu:,.0f} tok/s/GPU ({c.output_tokens_per_s:,.0f} total), {step} at batch "
            f"{c.batch}, {100 * c.comm_share:.0f}% of each step in collectives")


def _versus(best: Candidate, other: Candidate, objective: str) -> str:
    if objective == "latency":
        gap = (other.tpot_s - best.tpot_s) / best.tpot_s * 100
        return (f"{label(other)}: TPOT {s_to_ms(other.tpot_s):.2f} ms, {gap:.0f}% slower per token "
                f"(collectives {100 * other.comm_share:.0f}% of the step vs {100 * best.comm_share:.0f}%)")
    if objective == "gpus":
        return f"{label(other)}: needs {other.tp * other.pp} GPUs per replica vs {best.tp * best.pp}"
    gap = (1 - other.output_tokens_per_s_per_gpu / best.output_tokens_per_s_per_gpu) * 100
    why = []
    if other.comm_share > best.comm_share + 0.02:
        why.append(f"collectives take {100 * other.comm_share:.0f}% of its step vs {100 * best.comm_share:.0f}%")
    elif 0.005 < other.comm_share < best.comm_share - 0.02:
        why.append(f"its collectives take only {100 * other.comm_share:.0f}% of the step (vs "
                   f"{100 * best.comm_share:.0f}%), but that does not make up for the rest")
    if other.batch < best.batch:
        why.append(f"KV memory allows batch {other.batch} per replica vs {best.batch}")
    if other.pp > best.pp:
        why.append(f"{other.pp} pipeline stages split each batch into micro-batches")
    if not why:
        why.append(f"TPOT {s_to_ms(other.tpot_s or 0):.2f} ms vs {s_to_ms(best.tpot_s or 0):.2f} ms")
    return f"{label(other)}: {gap:.0f}% fewer tok/s per GPU; " + "; ".join(why)


def explain(plan: Plan) -> list[str]:
    best, objective = plan.recommended, plan.workload.objective
    if best is None:
        return [f"No layout of {plan.model.name} fits {plan.workload.gpus} x {plan.profile.gpu.name}."] + [
            f"{label(c)}: rejected: {'; '.join(c.reasons)}." for c in plan.candidates]
    lines = [f"Recommended {label(best)} ({best.gpus_used} GPUs) for objective '{objective}': {_speed(best)}."]
    if best.ttft_s is not None:
        kv_gib = bytes_to_gib(best.kv_cache_bytes_per_gpu)
        lines[0] += (f" TTFT {s_to_ms(best.ttft_s):.1f} ms; KV cache {kv_gib:.1f} GiB/GPU = "
                     f"{best.kv_cache_tokens:,} tokens, {best.max_concurrent_sequences} sequences of "
                     f"{plan.workload.max_model_len} per replica.")
    others = [c for c in plan.candidates if c is not best]
    feasible = [c for c in others if c.feasible]
    if feasible:
        lines.append("Runner-up " + _versus(best, feasible[0], objective) + ".")
    for c in feasible[1:]:
        lines.append(_versus(best, c, objective) + ".")
    for c in others:
        if not c.feasible:
            lines.append(f"{label(c)}: rejected: {'; '.join(c.reasons)}.")
    return lines


def suggestions(plan: Plan) -> list[str]:
    """What would make something fit, most effective first."""
    from tpplan.models.params import total_params
    from tpplan.models.weights import weight_bytes_total
    from tpplan.planner.candidates import usable_bytes_per_gpu
    from tpplan.planner.train import TRAIN_BYTES_PER_PARAM

    w, out = plan.workload, []
    usable = usable_bytes_per_gpu(plan.profile, w) - plan.profile.efficiency.runtime_reserve_bytes
    if usable > 0:
        state = (total_params(plan.model) * TRAIN_BYTES_PER_PARAM if w.mode == "train"
                 else weight_bytes_total(plan.model, dtype=w.dtype))
        needed = ceil_div(int(state), int(usable))
        if needed > w.gpus:
            out.append(f"more GPUs: the {w.dtype} {'training state' if w.mode == 'train' else 'weights'} alone need "
                       f"at least {needed} x {plan.profile.gpu.name} (--gpus, --nodes, a multi-node profile)")
    if w.mode == "train":
        out.append(f"a distributed optimizer / ZeRO (not modelled: tpplan counts {TRAIN_BYTES_PER_PARAM} bytes per "
                   f"parameter per GPU)")
        out.append("a shorter sequence (--input-len) or micro-batch (--batch) for less activation memory")
        return out
    if w.dtype in ("bf16", "fp16", "fp32"):
        out.append("fp8 weights (--dtype fp8) halve weight memory on GPUs with FP8 support")
    if w.kv_cache_dtype != "fp8":
        out.append("fp8 KV cache (--kv-cache-dtype fp8) halves KV bytes per token")
    if w.max_model_len > 2048:
        out.append(f"a shorter --max-model-len (now {w.max_model_len}) needs less KV per sequence")
    out.append("a profile with more memory per GPU (e.g. --hardware hgx-h200, 141 GB; mi300x, 192 GB)")
    if w.max_tpot_s or w.max_ttft_s:
        out.append("looser latency limits (--max-tpot-ms / --max-ttft-ms)")
    return out

"""Words for a Plan: why the recommendation won, why every other candidate lost, what would help."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tpplan.models.dtypes import KV_DTYPE_BYTES
from tpplan.planner.candidates import folded_experts, label, moe_words, too_slow_only
from tpplan.units import bytes_to_gib, ceil_div, s_to_ms

if TYPE_CHECKING:
    from tpplan.planner.candidates import Candidate
    from tpplan.planner.result import Plan, Suggestion


def _state_gib(c: Candidate) -> float:
    """A training candidate's weights + gradients + optimizer state per GPU, GiB."""
    assert c.model_state_bytes_per_gpu is not None, "training candidates carry their model state"
    return bytes_to_gib(c.model_state_bytes_per_gpu)


def _train_moe_versus(best: Candidate, plan: Plan) -> tuple[str, Candidate | None] | None:
    """Training an MoE model: the recommendation against the best layout of the other kind (routed experts
    expert-parallel vs split over TP like the other layers), in numbers; with the layout it names."""
    others = [c for c in plan.candidates if c.feasible and folded_experts(c) != folded_experts(best)]
    if folded_experts(best) and not others:
        rival = _plain_rival(best, plan) or next((c for c in plan.candidates if not folded_experts(c)), None)
        return None if rival is None else (f"{moe_words(best)} fits where no TP-only layout does (experts split "
                                           f"over TP, copied on every data-parallel rank): {label(rival)} is "
                                           f"rejected: {'; '.join(rival.reasons)}", rival)
    if not others:
        return None
    alt = others[0]
    ep, tp_only = (best, alt) if folded_experts(best) else (alt, best)
    numbers = (f"weights + optimizer state {_state_gib(ep):.1f} vs {_state_gib(tp_only):.1f} GiB per GPU, step "
               f"{ep.step_time_s:.3f} vs {tp_only.step_time_s:.3f} s, collectives {100 * ep.comm_share:.0f}% vs "
               f"{100 * tp_only.comm_share:.0f}%")
    gain = ep.output_tokens_per_s_per_gpu / tp_only.output_tokens_per_s_per_gpu - 1
    if folded_experts(best):
        return (f"{label(best)} beats the best TP-only layout, {label(alt)}: {numbers}; {100 * gain:+.0f}% tok/s per "
                f"GPU", alt)
    return (f"{label(alt)}, the best expert-parallel layout, gives {alt.output_tokens_per_s_per_gpu:,.0f} tok/s per "
            f"GPU vs {best.output_tokens_per_s_per_gpu:,.0f}: {numbers}", alt)


def _stages(c: Candidate) -> str:
    return f" x PP{c.pp}" if c.pp > 1 else ""


def _plain_rival(best: Candidate, plan: Plan) -> Candidate | None:
    """Plain TP over the GPUs of one of best's pipeline stages with the same stages, else over all its GPUs."""
    stage = best.tp * best.dp_attention
    keys = [(stage, best.pp, 1, 1), (stage * best.pp, 1, 1, 1)]
    found = {(c.tp, c.pp, c.ep, c.dp_attention): c for c in plan.candidates}
    return next((found[k] for k in keys if k in found and found[k].feasible), None) or next(
        (found[k] for k in keys if k in found), None)


def _moe_gains(best: Candidate, rival: Candidate, plan: Plan) -> list[str]:
    why = []
    if best.dp_attention > 1 and plan.model.is_mla:
        why.append("the latent KV is not replicated on every GPU")
    elif best.dp_attention > 1 and plan.model.num_key_value_heads < rival.tp * rival.dp_attention:
        # TP over more GPUs than KV heads replicates the KV heads; DP ranks hold only their own sequences' KV
        why.append("each rank caches only its own sequences (TP would replicate the KV heads)")
    elif best.dp_attention > 1 and best.max_concurrent_sequences > rival.max_concurrent_sequences:
        why.append("each of its DP ranks runs its own scheduler's sequences")
    if best.max_concurrent_sequences > rival.max_concurrent_sequences:
        why.append(f"{best.max_concurrent_sequences / max(1, rival.max_concurrent_sequences):.1f}x the "
                   f"sequences ({best.max_concurrent_sequences} vs {rival.max_concurrent_sequences})")
    if best.ep > 1:
        why.append(f"whole experts per GPU ({-(-plan.model.num_experts // best.ep)} of {plan.model.num_experts})")
    if not why and best.comm_share < rival.comm_share:
        why.append(f"collectives take {100 * best.comm_share:.0f}% of its step vs {100 * rival.comm_share:.0f}%")
    if not why and best.tpot_under_load_s is not None and rival.tpot_under_load_s is not None:
        why.append(f"a step of {best.batch} sequences takes {s_to_ms(best.tpot_under_load_s):.1f} ms vs "
                   f"{s_to_ms(rival.tpot_under_load_s):.1f} ms for {rival.batch}")
    return why


def deepep_words(c: Candidate) -> str:
    """' with DeepEP low-latency kernels in decode steps and normal in prefill' style words for a layout whose tokens
    move with DeepEP's kernels (tpplan.cost.deepep); '' otherwise."""
    decode, prefill = c.moe_token_movement_decode, c.moe_token_movement_prefill
    if decode not in ("normal", "low_latency"):
        return ""
    if decode == prefill:
        return f" with DeepEP {decode.replace('_', '-')} kernels"
    return f" with DeepEP {decode.replace('_', '-')} kernels in decode steps and {prefill} in prefill"


def _moe_versus(best: Candidate, plan: Plan) -> tuple[str, Candidate | None] | None:
    """Why an EP / DP-attention layout beat plain TP over the same GPUs (and pipeline stages), or lost to it; with
    the layout it names."""
    if moe_words(best):
        rival = _plain_rival(best, plan)
        if rival is None:
            return None
        head = f"{moe_words(best)}{_stages(best)}{deepep_words(best)} beats TP{rival.tp}{_stages(rival)}"
        if not rival.feasible:
            return f"{head}, which is rejected: {'; '.join(rival.reasons)}", rival
        gain = best.output_tokens_per_s_per_gpu / rival.output_tokens_per_s_per_gpu - 1 if \
            rival.output_tokens_per_s_per_gpu else 0.0
        return f"{head}: " + ", ".join(_moe_gains(best, rival, plan)) + f"; {100 * gain:+.0f}% tok/s per GPU", rival
    alt = next((c for c in plan.candidates if c.feasible and moe_words(c)), None)
    if alt is None:
        return None
    return (f"{label(alt)}, the best expert-parallel / attention-data-parallel layout, gives "
            f"{alt.output_tokens_per_s_per_gpu:,.0f} tok/s per GPU vs {best.output_tokens_per_s_per_gpu:,.0f} "
            f"(collectives {100 * alt.comm_share:.0f}% of its step, batch {alt.batch})", alt)


def _speed(c: Candidate) -> str:
    step = f"TPOT {s_to_ms(c.tpot_s):.2f} ms" if c.tpot_s is not None else f"step {c.step_time_s:.2f} s"
    return (f"{c.output_tokens_per_s_per_gpu:,.0f} tok/s/GPU ({c.output_tokens_per_s:,.0f} total), {step} at batch "
            f"{c.batch}, {100 * c.comm_share:.0f}% of each step in collectives")


def _smaller_batch(other: Candidate, best: Candidate) -> str:
    """Why `other` runs fewer sequences: the KV cache and the scheduler (its batch is all they allow), or a cap they
    do not set (a latency limit, a --num-requests job's share, --batch), which its notes name."""
    if other.batch >= other.max_concurrent_sequences:
        return f"KV memory and the scheduler allow batch {other.batch} per replica vs {best.batch}"
    cause = other.notes[0] if other.notes else "capped below what memory allows"
    return f"it runs batch {other.batch} per replica vs {best.batch}: {cause}"


def _versus(best: Candidate, other: Candidate, objective: str) -> str:
    if objective == "latency":
        gap = (other.tpot_under_load_s - best.tpot_under_load_s) / best.tpot_under_load_s * 100
        return (f"{label(other)}: TPOT under load {s_to_ms(other.tpot_under_load_s):.2f} ms, {gap:.0f}% slower per "
                f"token "
                f"(collectives {100 * other.comm_share:.0f}% of the step vs {100 * best.comm_share:.0f}%)")
    if objective == "gpus":
        mine, theirs = best.gpus_used // best.replicas, other.gpus_used // other.replicas
        if theirs != mine:
            return f"{label(other)}: needs {theirs} GPUs per replica vs {mine}"
        return _versus(best, other, "throughput").replace(": ", f": the same {mine} GPUs per replica, ", 1)
    gap = (1 - other.output_tokens_per_s_per_gpu / best.output_tokens_per_s_per_gpu) * 100
    if gap < 0.5 and other.gpus_used < best.gpus_used:  # as fast per GPU or faster, on fewer of the GPUs given
        total = (1 - other.output_tokens_per_s / best.output_tokens_per_s) * 100
        return (f"{label(other)}: uses {other.gpus_used} of the {best.gpus_used} GPUs, so {total:.0f}% fewer tok/s "
                f"in all ({other.output_tokens_per_s:,.0f} vs {best.output_tokens_per_s:,.0f}; "
                f"{other.output_tokens_per_s_per_gpu:,.0f} vs {best.output_tokens_per_s_per_gpu:,.0f} per GPU)")
    why = []
    if other.comm_share > best.comm_share + 0.02:
        why.append(f"collectives take {100 * other.comm_share:.0f}% of its step vs {100 * best.comm_share:.0f}%")
    elif 0.005 < other.comm_share < best.comm_share - 0.02:
        why.append(f"its collectives take only {100 * other.comm_share:.0f}% of the step (vs "
                   f"{100 * best.comm_share:.0f}%), but that does not make up for the rest")
    if other.batch < best.batch:
        why.append(_smaller_batch(other, best))
    if other.pp > best.pp:
        why.append(f"{other.pp} pipeline stages split each batch into micro-batches")
    if not why and best.tpot_s is None:  # training
        why.append(f"step {other.step_time_s:.2f} s vs {best.step_time_s:.2f} s")
    elif not why:
        why.append(f"TPOT {s_to_ms(other.tpot_s or 0):.2f} ms vs {s_to_ms(best.tpot_s or 0):.2f} ms")
    return f"{label(other)}: {gap:.0f}% fewer tok/s per GPU; " + "; ".join(why)


def nothing_runs(plan: Plan) -> str:
    """Why no layout was recommended, in one clause: "fits N x GPU", or, when some layout fits but only the latency
    limits reject it, "meets the latency limits on N x GPU"."""
    from tpplan.planner.candidates import LATENCY_LIMIT_WORDS

    where = f"{plan.workload.gpus} x {plan.profile.gpu.name}"
    limited = any(c.reasons and all(LATENCY_LIMIT_WORDS in r for r in c.reasons) for c in plan.candidates)
    return f"meets the latency limits on {where}" if limited else f"fits {where}"


def nothing_fits_line(plan: Plan) -> str:
    """recommend's error line when no layout runs (after the plan is printed): what failed and the first suggestion
    that, re-planned, runs."""
    fix = next((s for s in plan.suggestions if s.flag and s.would_give), None)
    then = (f"; e.g. {fix.flag} runs {fix.would_give['layout']}" if fix else
            "; see the rejected layouts' reasons" + (" and the suggestions" if plan.suggestions else ""))
    return f"no layout of {plan.model.name} {nothing_runs(plan)}{then}"


def _held_words(plan: Plan) -> str:
    """What one running sequence holds of the paged KV cache (tpplan.cost.batching.tokens_held_per_sequence)."""
    from tpplan.cost.batching import tokens_held_per_sequence, window_tokens_held
    from tpplan.models.kv import kv_window_mix
    from tpplan.planner.candidates import engine_limits

    w = plan.workload
    limits = engine_limits(plan.profile, w)
    held = tokens_held_per_sequence(limits, input_len=w.input_len, output_len=w.output_len)
    how = "input + output, reserved on admission" if limits.reserve_full_sequence else "input + output/2 on average"
    state = "; and its linear-attention state, as the scheduler assumption says" if plan.model.num_linear_layers else ""
    windows = [(window, n) for window, n in kv_window_mix(plan.model) if window is not None]
    if limits.frees_window_blocks and windows:
        full = sum(n for window, n in kv_window_mix(plan.model) if window is None)
        parts = [f"{held:,.0f} tokens in each of its {full} full-attention layers"] * bool(full) + [
            f"{window_tokens_held(limits, window=window, input_len=w.input_len, output_len=w.output_len):,.0f} in "
            f"each of its {n} sliding-window layers of {window:,} tokens" for window, n in windows]
        return (f"each holds {' and '.join(parts)}: {how}, in blocks of {limits.block_size_tokens}, {w.engine} "
                f"freeing the blocks behind the window{state}")
    return f"each holds {held:,.0f} tokens: {how}, in blocks of {limits.block_size_tokens}{state}"


def explain(plan: Plan) -> list[str]:
    best, objective = plan.recommended, plan.workload.objective
    if best is None:
        return [f"No layout of {plan.model.name} {nothing_runs(plan)}."] + [
            f"{label(c)}: rejected: {'; '.join(c.reasons)}." for c in plan.candidates]
    gpus = f"{best.gpus_used} GPU{'s' if best.gpus_used != 1 else ''}"
    lines = [f"Recommended {label(best)} ({gpus}) for objective '{objective}': {_speed(best)}."]
    if best.ttft_s is not None:
        kv_gib = bytes_to_gib(best.kv_cache_bytes_per_gpu)
        lines[0] += (f" TTFT {s_to_ms(best.ttft_s):.1f} ms; KV cache {kv_gib:.1f} GiB/GPU = "
                     f"{best.kv_cache_tokens:,} tokens per GPU, up to {best.max_concurrent_sequences} running "
                     f"sequences per replica ({_held_words(plan)}; --max-model-len {plan.workload.max_model_len}).")
    others = [c for c in plan.candidates if c is not best]
    feasible = [c for c in others if c.feasible]
    train = plan.workload.mode == "train"
    moe = (_train_moe_versus(best, plan) if train else _moe_versus(best, plan)) if plan.model.is_moe else None
    named = moe[1] if moe else None
    if moe:
        lines.append(moe[0] + (", and it is the runner-up" if feasible and named is feasible[0] else "") + ".")
    if feasible:  # a runner-up the MoE line already named keeps its comparison but not a second headline
        lines.append(("" if named is feasible[0] else "Runner-up ") + _versus(best, feasible[0], objective) + ".")
    for c in feasible[1:]:
        lines.append(_versus(best, c, objective) + ".")
    for c in others:
        if not c.feasible:
            lines.append(f"{label(c)}: rejected: {'; '.join(c.reasons)}.")
    return lines


def _fewest_gpus_that_hold(plan: Plan, state_bytes: int, usable_bytes: int) -> int:
    """Smallest engine-valid TP degree (or TP x PP beyond one node) whose share of `state_bytes` fits."""
    from tpplan.models.engines import valid_tp_degrees

    needed = ceil_div(state_bytes, usable_bytes)
    in_node = [t for t in valid_tp_degrees(plan.model, engine=plan.workload.engine)
               if needed <= t <= plan.profile.gpus_per_node]
    if in_node:
        return in_node[0]
    per_node = plan.profile.gpus_per_node
    return ceil_div(needed, per_node) * per_node


def suggestions(plan: Plan) -> list[Suggestion]:
    """What would make something fit, most effective first; each names the flag that does it."""
    from tpplan.models.params import total_params
    from tpplan.models.weights import weight_bytes_total
    from tpplan.planner.candidates import usable_bytes_per_gpu
    from tpplan.planner.result import Suggestion
    from tpplan.planner.train import TRAIN_BYTES_PER_PARAM

    w, out, gpu = plan.workload, [], plan.profile.gpu
    usable = usable_bytes_per_gpu(plan.profile, w) - plan.profile.efficiency.runtime_reserve_bytes
    if usable > 0:
        # 18 B per parameter over N GPUs bounds every layout, distributed optimizer or not: a GPU holds 6 P / (TP x PP)
        # + 12 P / N >= 18 P / N
        state = (total_params(plan.model) * TRAIN_BYTES_PER_PARAM if w.mode == "train"
                 else weight_bytes_total(plan.model, dtype=w.dtype))
        gpus = _fewest_gpus_that_hold(plan, int(state), usable)
        what = "training state" if w.mode == "train" else "weights"
        text = (f"more GPUs: the {w.dtype} {what} ({bytes_to_gib(state):.0f} GiB) need at least {gpus} x "
                f"{gpu.name} (you have {w.gpus})")
        too_slow = any(too_slow_only(c) for c in plan.candidates)  # then more GPUs is not what memory asks for
        if gpus <= w.gpus and plan.recommended is None and not too_slow:  # the state fits, activations / KV do not:
            gpus = w.gpus + 1  # the re-plan (tpplan.planner.plan) searches upwards from one more GPU
            extra = "activations" if w.mode == "train" else "KV cache and runtime reserve"
            text = (f"more GPUs: the {w.dtype} {what} ({bytes_to_gib(state):.0f} GiB) fit {w.gpus} x {gpu.name}, "
                    f"but not beside the {extra}")
        if gpus > w.gpus:
            if gpus > plan.profile.total_gpus and plan.profile.network is None:
                # --gpus alone would exceed the profile and --nodes needs a network: no flag runs as written
                out.append(Suggestion(text=text + f"; {plan.profile.name!r} has {plan.profile.total_gpus} and no "
                                                  f"network section: use a multi-node profile of that GPU, or add "
                                                  f"nodes: and network: to a copy of it"))
            else:
                out.append(Suggestion(text=text + "; a multi-node profile or --nodes gives more",
                                      flag=f"--gpus {gpus}"))
    if w.mode == "train":
        if not w.distributed_optimizer:
            out.append(Suggestion(text=f"Megatron's distributed optimizer shards the fp32 master weights and Adam "
                                       f"moments over the data-parallel ranks: 6 + 12 / DP bytes per parameter "
                                       f"instead of {TRAIN_BYTES_PER_PARAM}", flag="--use-distributed-optimizer"))
        else:
            out.append(Suggestion(text="sharding the bf16 weights and gradients too (FSDP / ZeRO-3, not modelled)"))
        out.append(Suggestion(text="a shorter sequence or micro-batch for less activation memory",
                              flag=f"--input-len {max(1, w.input_len // 2)}"))
        return out
    if w.dtype in ("bf16", "fp16", "fp32"):
        out.append(Suggestion(text="fp8 weights halve weight memory on GPUs with FP8 support", flag="--dtype fp8"))
    if KV_DTYPE_BYTES[w.kv_cache_dtype] > 1:
        out.append(Suggestion(text="an fp8 KV cache halves KV bytes per token", flag="--kv-cache-dtype fp8"))
    shorter = max(w.input_len + w.output_len, 2048)
    if w.max_model_len > shorter:
        out.append(Suggestion(text=f"a shorter max-model-len (now {w.max_model_len}) needs less KV per sequence",
                              flag=f"--max-model-len {shorter}"))
    out.append(Suggestion(text="a GPU with more memory (hgx-h200: 140 GiB; mi300x: 192 GiB)",
                          flag="--hardware hgx-h200"))
    if w.max_tpot_s or w.max_ttft_s:
        out.append(Suggestion(text="looser latency limits (--max-tpot-ms / --max-ttft-ms)"))
    return out

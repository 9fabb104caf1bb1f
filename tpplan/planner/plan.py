"""Enumerate (tp, pp, replicas) candidates, evaluate each, rank them for the objective: the Plan.

`recommend()` is the Python API behind `tpplan recommend`; it returns the same Plan the CLI renders.
"Nothing fits" is an answer (a Plan with no recommendation, every candidate carrying its reasons).
"""

from __future__ import annotations

import dataclasses
import math
from typing import get_args

from tpplan.cost.batching import SchedulerLimits
from tpplan.errors import LayoutError, TpplanError
from tpplan.hardware.profile import HardwareProfile
from tpplan.models.dtypes import normalize_dtype, resolve_dtype, weights_assumption
from tpplan.models.engines import check_kv_cache_dtype, check_serving_engine, rules_for, tp_violation
from tpplan.models.moe_backends import OPTION_NAMES, check_deepep_mode, token_movement
from tpplan.models.spec import ModelSpec
from tpplan.planner.candidates import Candidate, engine_limits, evaluate_serving
from tpplan.planner.checks import (
    check_backend_on_gpu,
    check_batch_value,
    check_moe_imbalance_value,
    check_moe_options,
    check_serving_dtypes,
)
from tpplan.planner.explain import explain, label, suggestions
from tpplan.planner.layouts import (
    HYBRID_EP_ENGINES,
    fitting_replicas,
    hybrid_ep,
    moe_layouts,
    serving_layouts,
    unpriced_a2a_backend,
)
from tpplan.planner.result import Plan
from tpplan.planner.workload import (
    WORKLOAD_DEFAULTS,
    Mode,
    Objective,
    Workload,
    max_model_len_for,
)
from tpplan.units import US, bytes_to_gib, ms_to_s, s_to_ms

D = WORKLOAD_DEFAULTS


def rank_key(c: Candidate, objective: str):
    """Sort key, best first. Throughput is ranked on the GPUs the user has (total tok/s: idle GPUs earn nothing);
    cost on the GPUs a layout uses (idle ones can be given back), i.e. tok/s per used GPU = least $ per token."""
    if objective == "latency":  # the latencies at the plan's batch, prefill chunks mixed in (what --max-*-ms check)
        return (c.tpot_under_load_s, c.ttft_under_load_s, -c.output_tokens_per_s_per_gpu)
    if objective == "gpus":
        return (c.gpus_used // c.replicas, -c.output_tokens_per_s_per_gpu)
    if objective == "cost":
        return (-c.output_tokens_per_s_per_gpu, -c.output_tokens_per_s, c.tpot_s or c.step_time_s)
    return (-c.output_tokens_per_s, -c.output_tokens_per_s_per_gpu, c.tpot_s or c.step_time_s)


def build_plan(spec: ModelSpec, profile: HardwareProfile, w: Workload, assumptions: dict[str, str]) -> Plan:
    if w.mode == "train":
        from tpplan.planner.train import evaluate_training  # training plans only
        from tpplan.planner.train_layouts import training_layouts

        shared: dict = {}  # the forward without GEMM epilogues, once per (tp, pp, sp)
        cands = [evaluate_training(spec, profile, w, tp=lay.tp, pp=lay.pp, replicas=lay.replicas, ep=lay.ep,
                                   etp=lay.etp, cache=shared) for lay in training_layouts(spec, w)]
    else:  # the same layouts `tpplan sweep` evaluates
        cands = [evaluate_serving(spec, profile, w, tp=lay.tp, pp=lay.pp, replicas=lay.replicas, ep=lay.ep,
                                  dp_attention=lay.dp_attention)
                 for lay in serving_layouts(spec, w, nvlink_domain_size=profile.nvlink_domain_size,
                                            gpus_per_node=profile.gpus_per_node, pool_gpus=profile.total_gpus)]
    feasible = sorted((c for c in cands if c.feasible), key=lambda c: rank_key(c, w.objective))
    best = feasible[0] if feasible else None
    cands.sort(key=lambda c: (not c.feasible, rank_key(c, w.objective) if c.feasible else
                              (c.tp, c.pp, c.dp_attention, c.ep, -(c.etp or 0))))
    plan = Plan(model=spec, profile=profile, workload=w, candidates=cands, recommended=best, assumptions=assumptions)
    plan.explanation = explain(plan)
    plan.suggestions = [] if best else suggestions(plan)
    return plan


def profile_with_nodes(profile: HardwareProfile, nodes: int | None) -> HardwareProfile:
    """The profile spanning `nodes` nodes (--nodes; None: as the profile states). More than one node needs the
    profile's network section, which prices the links between them."""
    if nodes is None:
        return profile
    if nodes > 1 and profile.network is None:
        raise TpplanError(f"--nodes {nodes}: profile {profile.name!r} has no network section; use a multi-node "
                          f"profile (e.g. dgx-h100-2node) or add network: to yours")
    return dataclasses.replace(profile, nodes=nodes)


def _resolve_gpus(profile: HardwareProfile, gpus: int | None, nodes: int | None) -> tuple[HardwareProfile, int]:
    profile = profile_with_nodes(profile, nodes)
    if gpus is not None and gpus < 1:
        raise TpplanError(f"--gpus {gpus} must be at least 1; leave it out for all the GPUs of {profile.name!r}")
    gpus = gpus or profile.total_gpus
    if gpus > profile.total_gpus:
        nodes_needed = -(-gpus // profile.gpus_per_node)
        multi = (f"; pass --nodes {nodes_needed}" if profile.network else
                 "; this profile has no network section: add one, or use a profile that has one (e.g. dgx-h100)")
        raise TpplanError(f"--gpus {gpus} exceeds profile {profile.name!r} ({profile.gpus_per_node} GPUs per node x "
                          f"{profile.nodes} node(s) = {profile.total_gpus}){multi}")
    return profile, gpus


def profile_for(hardware: str) -> HardwareProfile:
    """A --hardware value as a profile: `auto` builds one from the local GPUs (tpplan.hardware.detect), anything else
    is a name or path (tpplan.hardware.loader.resolve_profile). recommend, compare, sweep and `profiles show` alike."""
    if hardware.lower() == "auto":
        from tpplan.hardware.detect import detect_profile

        return detect_profile()
    from tpplan.hardware.loader import resolve_profile

    return resolve_profile(hardware)[0]


def whole_argument(name: str, value: object) -> int | None:
    """An API argument that takes a whole number: an int (numpy's integers too, as a sweep driven from pandas passes
    them; returned as int), or None; a bool, float or string is one TpplanError naming it (the CLI's parser checks
    its flags the same way)."""
    import numbers

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TpplanError(f"{name}={value!r}: expected a whole number (int)")
    return int(value)


def real_argument(name: str, value: object) -> float | None:
    """An API argument that takes a number (ranges and finiteness are _check_inputs' and the planner's)."""
    import numbers

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TpplanError(f"{name}={value!r}: expected a number")
    return float(value)


def text_argument(name: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise TpplanError(f"{name}={value!r}: expected a string")


def recommend(model: str | ModelSpec, *, gpus: int | None = None, hardware: str | HardwareProfile | None = None,
              nodes: int | None = None, engine: str = D.engine, dtype: str = D.dtype,
              kv_cache_dtype: str = D.kv_cache_dtype, max_model_len: int | None = None, input_len: int = D.input_len,
              output_len: int = D.output_len, batch: int | None = None, num_requests: int | None = None,
              gpu_memory_utilization: float = D.gpu_memory_utilization, workload: str = D.mode,
              objective: str = D.objective, max_tpot_ms: float | None = None, max_ttft_ms: float | None = None,
              max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None,
              sequence_parallel: bool = False, allow_cross_domain_tp: bool = False,
              distributed_optimizer: bool = False, global_batch_size: int | None = None,
              price_per_gpu_hour: float | None = None, tp: int | None = None, pp: int | None = None,
              replicas: int | None = None, ep: int = 1, dp_attention: int = 1, etp: int | None = None,
              moe_imbalance: float = D.moe_imbalance, all2all_backend: str = D.all2all_backend,
              deepep_mode: str | None = None, replan_suggestions: bool = True) -> Plan:
    """Plan `model` (catalogue name, alias, HF id or config.json path, or a ModelSpec) on `hardware` (built-in
    profile name, YAML path, HardwareProfile; default dgx-h100) with `gpus` GPUs (default: all of the profile's).

    Serving (`workload="serve"`) ranks (tp, pp, replicas) layouts by `objective`: "throughput" (total output
    tok/s on the GPUs given), "latency" (TPOT under load, at batch 1 unless `batch`), "gpus" (fewest per replica)
    or "cost" ($ per output token: tok/s per used GPU; `price_per_gpu_hour` fills the $/M column). `tp` (with
    optional `pp`, `replicas`, and for MoE models `ep`, `dp_attention`) also evaluates that fixed layout as
    `Plan.chosen`.
    Training (`workload="train"`) plans Megatron-Core layouts (tpplan.planner.train): `replicas` is the data-parallel
    size, `ep` Megatron's --expert-model-parallel-size and `etp` its --expert-tensor-parallel-size (None: tp);
    `distributed_optimizer` is Megatron's --use-distributed-optimizer (optimizer state sharded over DP);
    `moe_imbalance` is the busiest EP rank's routed tokens over the mean (tpplan.cost.moe); `all2all_backend` the
    engine's MoE token-movement backend (vLLM --all2all-backend, SGLang --moe-a2a-backend; "auto": the engine's
    default; tpplan.models.moe_backends) and `deepep_mode` SGLang's --deepep-mode for its deepep backend (auto, normal,
    low_latency; None: SGLang's default, auto). Lengths are tokens;
    `max_tpot_ms` and `max_ttft_ms` are milliseconds. Returns a Plan whose `recommended` is None when nothing fits
    (its candidates carry the reasons, its suggestions the flags that would help). `max_num_seqs` /
    `max_num_batched_tokens` override the engine's scheduler limits (vLLM's names; TensorRT-LLM max_batch_size /
    max_num_tokens, SGLang max_running_requests / chunked_prefill_size). `num_requests` plans an offline job of
    that many requests queued at once: no replica runs more than its share, and throughput is over the whole job
    (waves of the batch, the last one under-filled; `Candidate.job_s`). Raises TpplanError on invalid input.
    """
    import os

    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if not isinstance(model, str | ModelSpec):
        raise TpplanError(f"model={model!r}: expected a catalogue name, Hugging Face id or config.json path, or a "
                          f"ModelSpec")
    (gpus, nodes, max_model_len, input_len, output_len, batch, num_requests, max_num_seqs, max_num_batched_tokens, tp,
     pp, replicas, ep, dp_attention, etp) = (whole_argument(n, v) for n, v in (
        ("gpus", gpus), ("nodes", nodes), ("max_model_len", max_model_len), ("input_len", input_len),
        ("output_len", output_len), ("batch", batch), ("num_requests", num_requests), ("max_num_seqs", max_num_seqs),
        ("max_num_batched_tokens", max_num_batched_tokens), ("tp", tp), ("pp", pp), ("replicas", replicas),
        ("ep", ep), ("dp_attention", dp_attention), ("etp", etp)))
    gpu_memory_utilization, max_tpot_ms, max_ttft_ms, price_per_gpu_hour, moe_imbalance = (
        real_argument(n, v) for n, v in (("gpu_memory_utilization", gpu_memory_utilization),
                                         ("max_tpot_ms", max_tpot_ms), ("max_ttft_ms", max_ttft_ms),
                                         ("price_per_gpu_hour", price_per_gpu_hour), ("moe_imbalance", moe_imbalance)))
    for n, v in (("engine", engine), ("dtype", dtype), ("kv_cache_dtype", kv_cache_dtype), ("workload", workload),
                 ("objective", objective), ("all2all_backend", all2all_backend), ("deepep_mode", deepep_mode)):
        text_argument(n, v)
    _check_inputs(workload=workload, objective=objective, input_len=input_len, output_len=output_len,
                  gpu_memory_utilization=gpu_memory_utilization, max_tpot_ms=max_tpot_ms, max_ttft_ms=max_ttft_ms,
                  price_per_gpu_hour=price_per_gpu_hour, batch=batch, moe_imbalance=moe_imbalance,
                  num_requests=num_requests)
    if workload == "train":
        engine, dtype = _training_engine_and_dtype(dtype, all2all_backend=all2all_backend, deepep_mode=deepep_mode)
        _refuse_serving_options({"--kv-cache-dtype": kv_cache_dtype != D.kv_cache_dtype,
                                 "--max-tpot-ms": max_tpot_ms is not None, "--max-ttft-ms": max_ttft_ms is not None,
                                 "--max-num-seqs": max_num_seqs is not None,
                                 "--max-num-batched-tokens": max_num_batched_tokens is not None,
                                 "--max-model-len": max_model_len is not None,
                                 "--output-len": output_len != D.output_len,
                                 "--objective latency": objective == "latency"})
    rules_for(engine)
    if workload == "serve":
        check_serving_engine(engine)
        if distributed_optimizer:
            raise TpplanError("--use-distributed-optimizer applies to --workload train (Megatron's distributed "
                              "optimizer); serving holds no optimizer state; leave it out")
        if global_batch_size is not None:
            raise TpplanError("--global-batch-size applies to --workload train (sequences per optimizer step); "
                              "serving has no optimizer step: leave it out, or use --batch for concurrent sequences")
    token_movement(engine, all2all_backend)  # an unknown or other-engine value fails before any work
    check_deepep_mode(engine, all2all_backend, deepep_mode)
    w_dtype, w_kv = normalize_dtype(dtype), normalize_dtype(kv_cache_dtype, kind="kv")
    check_kv_cache_dtype(engine, w_kv)
    assumptions: dict[str, str] = {}
    query = model if isinstance(model, str) else model.name
    spec, profile = _model_and_profile(model, hardware, price_per_gpu_hour=price_per_gpu_hour,
                                       assumptions=assumptions)
    profile, gpus_n = _resolve_gpus(profile, gpus, nodes)
    check_moe_options(spec, moe_imbalance=moe_imbalance, all2all_backend=all2all_backend, gpus=gpus_n)
    if workload == "train" and dtype == "fp8" and "fp8" not in profile.gpu.peak_flops_per_s:
        raise TpplanError(f"--dtype fp8 with --workload train: Transformer Engine's FP8 GEMMs need FP8 tensor cores "
                          f"(Ada, Hopper, Blackwell), which {profile.gpu.name} ({profile.name}) lacks; leave --dtype "
                          f"out for bf16")
    # a serving notion: training states its sequence length and batches instead (train_layouts.batch_assumptions)
    if workload == "serve":
        max_model_len = max_model_len_for(spec, max_model_len, input_len + output_len, assumptions)
    else:  # a training sequence is --input-len tokens; nothing is generated
        max_model_len = max_model_len_for(spec, None, input_len, {}, what="--input-len")
    if objective == "latency" and batch is None and workload == "serve":
        batch = 1
        assumptions["batch"] = "1 (objective latency)"
    w = Workload(gpus=gpus_n, engine=engine, dtype=resolve_dtype(spec, w_dtype), kv_cache_dtype=w_kv,
                 max_model_len=max_model_len,
                 input_len=input_len, output_len=output_len, batch=batch, num_requests=num_requests,
                 gpu_memory_utilization=gpu_memory_utilization, mode=workload, objective=objective,
                 max_tpot_s=ms_to_s(max_tpot_ms) if max_tpot_ms else None,
                 max_ttft_s=ms_to_s(max_ttft_ms) if max_ttft_ms else None, max_num_seqs=max_num_seqs,
                 max_num_batched_tokens=max_num_batched_tokens, sequence_parallel=sequence_parallel,
                 allow_cross_domain_tp=allow_cross_domain_tp, distributed_optimizer=distributed_optimizer,
                 global_batch=global_batch_size, moe_imbalance=moe_imbalance,
                 all2all_backend=all2all_backend, deepep_mode=deepep_mode)
    if w.mode == "serve":
        check_serving_dtypes(profile, engine=engine, dtype=w.dtype, kv_cache_dtype=w.kv_cache_dtype)
        check_backend_on_gpu(profile, engine=engine, backend=all2all_backend)
        _check_token_budget(engine_limits(profile, w), w)
    kv_dtype = w.kv_cache_dtype if w.mode == "serve" else None  # training keeps no KV cache
    ckpt_kv = spec.quantization.kv_cache_dtype if spec.quantization is not None else None
    if kv_dtype is not None and ckpt_kv == "fp8" and kv_dtype != "fp8":
        assumptions["kv_cache"] = (
            f"the checkpoint ships an FP8 KV cache (quantization_config kv_cache_quant_algo FP8 or an 8-bit float "
            f"kv_cache_scheme), which vLLM's --kv-cache-dtype auto uses in recent releases (vllm-project/vllm#29980) "
            f"and TensorRT-LLM applies; this plan keeps a {kv_dtype} KV cache; --kv-cache-dtype fp8 plans the FP8 one")
    assumptions.setdefault("dtype", weights_assumption(spec, w.dtype, kv_dtype, profile.gpu.peak_flops_per_s))
    if w.mode == "train":
        from tpplan.planner.train_layouts import training_assumptions

        assumptions.update(training_assumptions(spec, w))
    _record_defaults(assumptions, w, profile, spec)
    if moe_layouts(spec, w):
        assumptions.setdefault("moe", f"expert parallelism (EP) and attention data parallelism (DP-attn) layouts "
                                      f"considered; EP load imbalance {w.moe_imbalance:.2f} (busiest rank's routed "
                                      f"tokens / mean; --moe-imbalance)" + _backend_assumption(w))
    plan = build_plan(spec, profile, w, assumptions)
    plan.model_query = query
    if tp is not None:
        plan.chosen = _evaluate_chosen(spec, profile, w, tp=tp, pp=pp or 1, replicas=replicas, ep=ep,
                                       dp_attention=dp_attention, etp=etp)
    if replan_suggestions and plan.suggestions:
        base = dict(model=spec, gpus=gpus_n, hardware=profile, engine=engine, dtype=w_dtype, kv_cache_dtype=w_kv,
                    max_model_len=max_model_len if workload == "serve" else None, input_len=input_len,
                    output_len=output_len, batch=batch,
                    num_requests=num_requests, gpu_memory_utilization=gpu_memory_utilization, workload=workload,
                    objective=objective,
                    max_tpot_ms=max_tpot_ms, max_ttft_ms=max_ttft_ms, sequence_parallel=sequence_parallel,
                    allow_cross_domain_tp=allow_cross_domain_tp, distributed_optimizer=distributed_optimizer,
                    global_batch_size=global_batch_size, max_num_seqs=max_num_seqs,
                    max_num_batched_tokens=max_num_batched_tokens, moe_imbalance=moe_imbalance,
                    all2all_backend=all2all_backend, deepep_mode=deepep_mode)
        _replan_suggestions(plan, base, profile)
    return plan


def _backend_assumption(w: Workload) -> str:
    """The MoE token movement a forced backend sets, for the assumptions ('' at the engine's default, which the
    'moe' line has always left implicit)."""
    if w.moe_dispatch is None:
        return ""
    how = ("all-gather + reduce-scatter" if w.moe_dispatch == "gather" else
           "all-to-all dispatch and combine for EP + DP-attention layouts (DP-attention without EP still gathers; "
           "EP inside one TP group keeps its all-reduce)" + _KERNEL_WORDS[
               w.a2a_mode])
    return f"; token movement {OPTION_NAMES[w.engine]} {w.all2all_backend}: {how}"


_KERNEL_WORDS = {
    "fabric": ", priced with the fabric's NCCL protocols",
    "normal": ", DeepEP normal (high-throughput) kernels in every step",
    "low_latency": ", DeepEP low-latency kernels in every step",
    "auto": ", DeepEP auto mode: normal kernels in steps with prefill, low-latency kernels in decode steps",
}
"""How the assumptions name the kernels of a forced all-to-all (tpplan.models.moe_backends.A2aMode)."""


def _model_and_profile(model: str | ModelSpec, hardware: str | HardwareProfile | None, *,
                       price_per_gpu_hour: float | None,
                       assumptions: dict[str, str]) -> tuple[ModelSpec, HardwareProfile]:
    """The ModelSpec and HardwareProfile `recommend` was given or names; records an alias resolved and a profile
    assumed in `assumptions`."""
    from tpplan.hardware.loader import resolve_profile
    from tpplan.models.resolve import resolve_model

    if isinstance(model, ModelSpec):
        spec = model
    else:
        resolved = resolve_model(model)
        spec = resolved.spec
        if resolved.via_alias:
            assumptions["model"] = f"{model} resolves to {spec.name} ({spec.hf_id})"
    if spec.notes:  # fields a config.json left out (transformers' defaults), and how the model is read
        assumptions["model_config"] = "; ".join(spec.notes)
    if isinstance(hardware, HardwareProfile):
        profile, assumed = hardware, False
    else:
        profile, assumed = resolve_profile(hardware)
    if assumed:
        assumptions["hardware"] = f"no --hardware given: {profile.name} ({profile.description})"
    if price_per_gpu_hour is not None:
        profile = dataclasses.replace(profile, price_per_gpu_hour=price_per_gpu_hour)
    return spec, profile


def _replan_suggestions(plan: Plan, base: dict, profile: HardwareProfile) -> None:
    """What each suggestion would give: the plan re-run with its flag (`base`: recommend's own arguments)."""
    for s in plan.suggestions:
        if s.flag and s.flag.startswith("--gpus "):
            _fewest_gpus_that_fit(s, base, profile)
        else:
            s.would_give = _replan(s.flag, base, profile)
    # a flag that was re-planned and still leaves nothing that runs does not help: it is not suggested
    plan.suggestions = [s for s in plan.suggestions if s.would_give is not None or not _replannable(s.flag)]


def _replannable(flag: str | None) -> bool:
    """Whether `_replan` re-runs the plan with `flag` (else its suggestion stays as words)."""
    return bool(flag) and (flag in _BOOLEAN_FLAGS or flag.split()[0] in _FLAG_KWARGS)


def _fewest_gpus_that_fit(s, base: dict, profile: HardwareProfile) -> None:
    """Turn 'at least N GPUs' (weights alone) into the fewest GPUs for which a layout really fits (KV, reserve)."""
    start, per_node = int(s.flag.split()[1]), profile.gpus_per_node
    nodes_max = profile.nodes if profile.network is None else max(profile.nodes, 64)
    counts = sorted(set(range(start, per_node + 1)) |  # any count: PP takes what TP's divisibility rules refuse
                    {k * per_node for k in range(1, nodes_max + 1) if k * per_node >= start})
    for n in counts:
        got = _replan(f"--gpus {n}", base, profile)
        if got is not None:
            nodes = f" --nodes {-(-n // per_node)}" if n > profile.total_gpus else ""
            s.flag, s.would_give = f"--gpus {n}{nodes}", got
            s.text = f"more GPUs: {n} x {profile.gpu.name} fit ({got['layout']}); you have {base['gpus']}"
            return


_FLAG_KWARGS = {"--dtype": ("dtype", str), "--kv-cache-dtype": ("kv_cache_dtype", str),
                "--max-model-len": ("max_model_len", int), "--gpus": ("gpus", int), "--hardware": ("hardware", str),
                "--input-len": ("input_len", int)}


_BOOLEAN_FLAGS = {"--use-distributed-optimizer": "distributed_optimizer"}


def _replan(flag: str | None, base: dict, profile: HardwareProfile) -> dict | None:
    """Re-plan with one suggested flag applied; the best layout it gives, or None (not a flag, or still no fit)."""
    if flag in _BOOLEAN_FLAGS:
        kwargs, key = {**base, _BOOLEAN_FLAGS[flag]: True}, ""
    elif not flag or flag.split()[0] not in _FLAG_KWARGS:
        return None
    else:
        option, value = flag.split(maxsplit=1)
        key, cast = _FLAG_KWARGS[option]
        kwargs = {**base, key: cast(value)}
    if key == "gpus" and kwargs["gpus"] > profile.total_gpus:
        if profile.network is None:
            return None
        kwargs["nodes"] = -(-kwargs["gpus"] // profile.gpus_per_node)
    if key == "hardware":  # the same number of GPUs of the other kind
        kwargs["gpus"] = None if base["gpus"] is None else base["gpus"]
    try:
        best = recommend(**kwargs, replan_suggestions=False).recommended
    except TpplanError:
        return None
    if best is None:
        return None
    return {"layout": label(best), "tp": best.tp, "pp": best.pp, "replicas": best.replicas,
            "gpus_used": best.gpus_used, "ep": best.ep, "dp_attention": best.dp_attention,
            "output_tokens_per_s": best.output_tokens_per_s, "tpot_s": best.tpot_s, "ttft_s": best.ttft_s}


def _evaluate_chosen(spec: ModelSpec, profile: HardwareProfile, w: Workload, *, tp: int, pp: int,
                     replicas: int | None, ep: int = 1, dp_attention: int = 1, etp: int | None = None) -> Candidate:
    """The layout the user fixed (--tp/--pp/--replicas/--ep/--dp-attention, training also --etp), evaluated with
    the same function as every candidate. A combination the engine refuses is one LayoutError line."""
    if min(tp, pp, ep, dp_attention, etp or 1) < 1 or (replicas is not None and replicas < 1):
        raise LayoutError("--tp, --pp, --replicas, --ep, --etp and --dp-attention must be at least 1")
    if w.mode == "train":
        return _chosen_training(spec, profile, w, tp=tp, pp=pp, replicas=replicas, ep=ep, etp=etp,
                                dp_attention=dp_attention)
    if etp is not None:
        raise LayoutError(f"--etp {etp} applies to --workload train (Megatron's --expert-tensor-parallel-size); "
                          f"serving engines split the routed experts over --tp x --dp-attention GPUs, or hold them "
                          f"whole with --ep; leave --etp out")
    if (ep > 1 or dp_attention > 1) and not spec.is_moe:
        raise LayoutError(f"--ep / --dp-attention apply to serving MoE models; {spec.name} has no routed experts; "
                          f"leave them out")
    if ep not in (1, tp * dp_attention) and not hybrid_ep(w.engine, tp=tp, ep=ep, dp_attention=dp_attention):
        raise LayoutError(_ep_mismatch(tp=tp, ep=ep, dp_attention=dp_attention, engine=w.engine,
                                       tp_ok=lambda t: tp_violation(spec, t, engine=w.engine) is None))
    if unpriced_a2a_backend(w, ep=ep, dp_attention=dp_attention):
        raise LayoutError(
            f"--moe-a2a-backend {w.all2all_backend} with --tp {tp} --ep {ep} and no --dp-attention: SGLang runs it "
            f"(each layer's tokens reduce-scattered over the TP group, moved by {w.all2all_backend}, gathered back "
            f"for attention), but tpplan prices an all-to-all backend only with DP attention, and would print a "
            f"command without yours; use --tp 1 --dp-attention {ep} --ep {ep}, or leave --moe-a2a-backend out")
    if replicas is None:  # as many as whole TP groups fit the NVLink domains, as the candidate table plans
        replicas = fitting_replicas(gpus=w.gpus, tp=tp, groups_per_replica=dp_attention * pp,
                                    nvlink_domain_size=profile.nvlink_domain_size, gpus_per_node=profile.gpus_per_node,
                                    pool_gpus=profile.total_gpus)
    replicas = _fixed_replicas(w, group=tp * dp_attention * pp, replicas=replicas,
                               words=f"--tp {tp} x --dp-attention {dp_attention} x --pp {pp}")
    return evaluate_serving(spec, profile, w, tp=tp, pp=pp, replicas=replicas, ep=ep, dp_attention=dp_attention)


def needs_tp_message(*, ep: int, dp_attention: int, workload: str) -> str:
    """Layout options given without --tp: the rule, and for a serving --ep the --tp (or DP-attention) that makes EP
    span the replica's TP x DP-attention GPUs, as the engines run it (_ep_mismatch)."""
    line = "--pp, --replicas, --ep, --etp and --dp-attention fix a layout together with --tp; add --tp N"
    if workload != "serve" or ep == 1 or ep % dp_attention:
        return line
    if dp_attention > 1:
        return line + f": --tp {ep // dp_attention} for TP{ep // dp_attention} x EP{ep} x DP-attention {dp_attention}"
    return line + f": --tp {ep} for TP{ep} x EP{ep}, or --tp 1 --dp-attention {ep} for TP1 x EP{ep} x DP-attention {ep}"


def _ep_mismatch(*, tp: int, ep: int, dp_attention: int, engine: str = "vllm", tp_ok=lambda t: True) -> str:
    """The layout asked for, the engines' rule (vLLM --enable-expert-parallel, SGLang --ep-size, TensorRT-LLM
    --ep_size: the experts over all TP x DP-attention GPUs of a replica; tpplan.planner.layouts) and the flags that
    give a layout they run: DP-attention ranks (else a TP degree the heads allow, `tp_ok`) that make up EP, EP over
    the GPUs given, or no EP."""
    group, dp = tp * dp_attention, dp_attention
    layout = f"TP{tp} x EP{ep}" + (f" x DP-attention {dp}" if dp > 1 else " without DP-attention")
    if ep % tp == 0 and ep // tp > 1 and (engine != "trtllm" or tp == 1):  # TensorRT-LLM: attention DP at TP 1
        fixes = [f"{'add' if dp == 1 else 'set'} --dp-attention {ep // tp} for TP{tp} x EP{ep} x DP-attention "
                 f"{ep // tp} ({ep} GPUs per replica)"]
    elif ep % dp == 0 and tp_ok(ep // dp):
        fixes = [f"set --tp {ep // dp} for TP{ep // dp} x EP{ep}" + (f" x DP-attention {dp}" if dp > 1 else "")]
    else:
        fixes = []
    if group > 1:
        fixes.append(f"--ep {group} for TP{tp} x EP{group}" + (f" x DP-attention {dp}" if dp > 1 else ""))
    fixes.append("leave --ep out" + (f" to split the experts over the {group} GPUs by TP" if group > 1 else ""))
    if engine in HYBRID_EP_ENGINES:
        rule = (f"{engine} spreads the routed experts over every GPU of a replica (EP 1 or TP x DP-attention = "
                f"{group}) or, without DP-attention, over an EP that divides TP (each expert split TP / EP ways)")
        divisors = [d for d in range(2, min(ep, tp)) if tp % d == 0]
        if dp == 1 and divisors:
            fixes.insert(0, f"--ep {divisors[-1]} for TP{tp} x EP{divisors[-1]} (a divisor of {tp})")
    else:
        rule = (f"{engine} spreads the routed experts over every GPU of a replica: EP must be 1 or TP x "
                f"DP-attention = {group} (--engine {' or '.join(HYBRID_EP_ENGINES)} also runs an EP that divides TP)")
    return (f"--ep {ep} with --tp {tp}" + (f" --dp-attention {dp}" if dp > 1 else "") + f" asks for {layout}, but "
            f"{rule}; " + "; or ".join(fixes))


def _fixed_replicas(w: Workload, *, group: int, replicas: int | None, words: str) -> int:
    """--replicas, or as many copies of a `group`-GPU replica as --gpus holds; more than --gpus is an error."""
    replicas = replicas or max(1, w.gpus // group)
    if group * replicas > w.gpus:
        raise LayoutError(f"{words} x --replicas {replicas} = {group * replicas} GPUs exceeds --gpus {w.gpus}; lower "
                          f"one of them or raise --gpus")
    return replicas


def _chosen_training(spec: ModelSpec, profile: HardwareProfile, w: Workload, *, tp: int, pp: int,
                     replicas: int | None, ep: int, etp: int | None, dp_attention: int) -> Candidate:
    """A fixed Megatron layout; --replicas is its data-parallel size. Megatron's expert-parallel rules
    (tpplan.planner.train_layouts) are checked here, so a layout Megatron would stop at is an error, not a row."""
    from tpplan.planner.train import evaluate_training  # training plans only
    from tpplan.planner.train_layouts import TrainLayout, expert_layout_problem

    if dp_attention > 1:
        raise LayoutError(f"--dp-attention {dp_attention} applies to --workload serve; in Megatron training the "
                          f"attention's data parallelism is the data-parallel size, --replicas")
    if (ep > 1 or etp is not None) and not spec.is_moe:
        raise LayoutError(f"--ep / --etp apply to MoE models; {spec.name} has no routed experts; leave them out")
    replicas = _fixed_replicas(w, group=tp * pp, replicas=replicas, words=f"--tp {tp} x --pp {pp}")
    lay = TrainLayout(tp=tp, pp=pp, replicas=replicas, ep=ep, etp=etp or 0, moe=spec.is_moe)
    problem = expert_layout_problem(spec, lay, dtype=w.for_model(spec).dtype) if spec.is_moe else None
    if problem:
        raise LayoutError(problem)
    return evaluate_training(spec, profile, w, tp=tp, pp=pp, replicas=replicas, ep=ep, etp=etp or 0)


def _check_inputs(*, workload: str, objective: str, input_len: int, output_len: int, gpu_memory_utilization: float,
                  max_tpot_ms: float | None, max_ttft_ms: float | None, price_per_gpu_hour: float | None,
                  batch: int | None, moe_imbalance: float = D.moe_imbalance,
                  num_requests: int | None = None) -> None:
    """Argument checks that need no model or profile: run before any work."""
    if workload not in get_args(Mode):
        raise TpplanError(f"--workload {workload!r} is not known; choose {' or '.join(get_args(Mode))}")
    if objective not in get_args(Objective):
        raise TpplanError(f"--objective {objective!r} is not known; choose {', '.join(get_args(Objective))}")
    if input_len < 1 or output_len < 1:
        raise TpplanError("--input-len and --output-len must be at least 1")
    if batch is not None:
        check_batch_value(batch)
    if num_requests is not None:
        _check_job(num_requests, workload=workload, objective=objective)
    if not 0 < gpu_memory_utilization <= 1:  # False for NaN too
        raise TpplanError(f"--gpu-memory-utilization {gpu_memory_utilization} must be in (0, 1]")
    check_moe_imbalance_value(moe_imbalance)
    for name, value, absent in (("--max-tpot-ms", max_tpot_ms, "no limit"), ("--max-ttft-ms", max_ttft_ms, "no limit"),
                                ("--price-per-gpu-hour", price_per_gpu_hour, "the profile's price, if it has one")):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise TpplanError(f"{name} {value} must be a finite number greater than 0; leave it out for {absent}")


TRAINING_DTYPES = ("bf16", "fp16", "fp8")
"""What Megatron trains in: --bf16, --fp16, or --bf16 with Transformer Engine's FP8 GEMMs (--fp8-format)."""
def _training_engine_and_dtype(dtype: str, *, all2all_backend: str, deepep_mode: str | None) -> tuple[str, str]:
    """(engine, dtype) of a training plan: Megatron, computing in bf16 unless a dtype is asked for (an fp8
    checkpoint such as DeepSeek-V3's trains from bf16 weights; Megatron runs FP8 GEMMs only with --fp8-format, which
    `--dtype fp8` plans). The serving engines' MoE token-movement options do not apply: refused rather than ignored.
    A library caller's engine is replaced (the CLI refuses another --engine with --workload train)."""
    from tpplan.planner.train_layouts import MEGATRON
    if all2all_backend != D.all2all_backend:
        raise TpplanError(f"--all2all-backend {all2all_backend} applies to serving engines (vLLM, SGLang); Megatron "
                          f"training moves MoE tokens with --moe-token-dispatcher-type alltoall, which tpplan plans "
                          f"by itself; leave --all2all-backend out with --workload train")
    if deepep_mode is not None:
        raise TpplanError(f"--deepep-mode {deepep_mode} applies to SGLang serving with --moe-a2a-backend deepep; "
                          f"leave it out with --workload train")
    key = normalize_dtype(dtype)
    if key == "auto":
        return MEGATRON, "bf16"
    if key not in TRAINING_DTYPES:
        raise TpplanError(f"--dtype {dtype} with --workload train: tpplan plans Megatron training in "
                          f"{', '.join(TRAINING_DTYPES)} (fp8: Transformer Engine FP8 GEMMs, --fp8-format); leave "
                          f"--dtype out for bf16")
    return MEGATRON, key


def _check_token_budget(limits: SchedulerLimits, w: Workload) -> None:
    """vLLM refuses a step token budget below its running-sequence limit: every running sequence needs a token
    per step (vllm/config/scheduler.py SchedulerConfig._verify_args: "max_num_batched_tokens (N) must be greater
    than or equal to max_num_seqs (M)")."""
    if w.engine == "vllm" and limits.max_num_seqs and limits.max_num_batched_tokens < limits.max_num_seqs:
        given = "--max-num-seqs" if w.max_num_seqs is not None else "--max-num-seqs (vLLM's default on this GPU)"
        raise TpplanError(f"--max-num-batched-tokens {limits.max_num_batched_tokens} is below {given} "
                          f"{limits.max_num_seqs}: vLLM refuses it (max_num_batched_tokens must be greater than or "
                          f"equal to max_num_seqs); raise --max-num-batched-tokens or lower --max-num-seqs")


def _matmul_words(spec: ModelSpec, w: Workload, p: HardwareProfile) -> str:
    """The matmul share of peak the plan's GEMMs run at: the 16-bit one, or the FP8 / FP4 one when the weights
    compute in it on this GPU (tpplan.cost.kernels.matmul_share), with the sustained clock when it is below 1."""
    from tpplan.cost.kernels import matmul_share
    from tpplan.models.dtypes import compute_dtype, weight_format

    dtype = compute_dtype(weight_format(spec, w.dtype), p.gpu.peak_flops_per_s)[0]
    e = p.efficiency
    words = f"matmul {matmul_share(e, dtype):.2f}" + (f" of the {dtype} peak" if dtype not in ("bf16", "fp16") else "")
    return words + (f" x {e.sustained_clock:.2f} clock" if e.sustained_clock < 1 else "")


def defaulted_in_use(spec: ModelSpec, w: Workload, p: HardwareProfile) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(kernel constants, collective tiers) the profile leaves to tpplan's defaults files (HardwareProfile.defaulted)
    that this plan uses: matmul_fp8 and matmul_epilogue_k_fp8 only when the weights compute in 8 bits, or in 4 bits
    on a profile that states no matmul_fp4; moe_expert_fixed_tokens only for an MoE model; pipeline_sequence_overhead
    only when PP is possible (more than one GPU); attention_decode_memory only where the engines have no fused share
    (it then prices their decode attention; otherwise only the measurement harness reads it); the tiers a TP group
    of 2 to --gpus GPUs crosses (HardwareProfile.tier_for_group)."""
    from tpplan.models.dtypes import compute_dtype, weight_format
    from tpplan.models.formats import LOW_PRECISION_COMPUTE

    unused = set()
    dtype = compute_dtype(weight_format(spec, w.dtype), p.gpu.peak_flops_per_s)[0]
    if dtype not in LOW_PRECISION_COMPUTE or (dtype == "fp4" and p.efficiency.matmul_fp4 is not None):
        unused |= {"matmul_fp8", "matmul_epilogue_k_fp8"}
    if not spec.is_moe:
        unused.add("moe_expert_fixed_tokens")
    if w.gpus < 2:
        unused.add("pipeline_sequence_overhead")
    if p.efficiency.attention_decode_memory_fused is not None:
        unused.add("attention_decode_memory")
    kernels = tuple(k for k in p.defaulted.get("kernels", ()) if k not in unused)
    crossed = {p.tier_for_group(g) for g in range(2, w.gpus + 1)}
    return kernels, tuple(t for t in p.defaulted.get("collectives", ()) if t in crossed)


def _defaults_words(kernels: tuple[str, ...], tiers: tuple[str, ...], p: HardwareProfile) -> dict[str, str]:
    """Assumption lines for what the plan takes from tpplan's defaults files rather than the profile: the kernel
    constants with their values and the file's source, and the collective model of the tiers it gives no
    parameters for."""
    from tpplan.hardware.loader import DEFAULTS_FILES, collective_defaults, defaults_source, kernel_defaults

    out: dict[str, str] = {}
    if kernels:
        values = ", ".join(f"{k} {kernel_defaults()[k]}" for k in kernels)
        out["efficiency_defaults"] = (f"{values}: not stated in {p.origin}, so tpplan's defaults "
                                      f"({DEFAULTS_FILES['kernels']}, source: {defaults_source('kernels')})")
    if tiers:
        fractions = " / ".join(f"{v:g}" for v in collective_defaults()["busbw_fraction_of_link"].values())
        out["collectives"] = (f"no {', '.join(tiers)} collectives in {p.origin}: the default NCCL model (ll / ll128 "
                              f"/ simple bus bandwidth = {fractions} x the link's, NCCL's base + per-hop latencies; "
                              f"{DEFAULTS_FILES['collectives']}, source: {defaults_source('collectives')})")
    return out


def _objective_words(w: Workload, p: HardwareProfile) -> str:
    """What the objective ranks by (rank_key), and for cost where its price comes from."""
    if w.objective == "latency":
        return ("latency: lowest TPOT under load (at the plan's batch, prefill chunks mixed in), then TTFT under "
                "load")
    if w.objective == "gpus":
        return "gpus: fewest GPUs per replica, then tok/s per GPU"
    if w.objective == "cost":
        price = (f"at {p.price_per_gpu_hour:g} $ per GPU-hour" if p.price_per_gpu_hour is not None else
                 "no price given (--price-per-gpu-hour, or price_per_gpu_hour in the profile), so no $ per token")
        return f"cost: most tok/s per GPU used, the least $ per token at one price per GPU-hour; {price}"
    return "throughput: most tok/s on the GPUs given (idle GPUs earn nothing)"


def _refuse_serving_options(given: dict[str, bool]) -> None:
    """Serving options a training plan would otherwise ignore: the first one given, as one error line."""
    name = next((k for k, v in given.items() if v), None)
    if name:
        raise TpplanError(f"{name} applies to --workload serve (a serving engine's KV cache, generated tokens, "
                          f"latency limits and scheduler); a Megatron training plan has none; leave it out with "
                          f"--workload train")


def _check_job(num_requests: int, *, workload: str, objective: str) -> None:
    """--num-requests plans the throughput of an offline serving job."""
    if num_requests < 1:
        raise TpplanError(f"--num-requests {num_requests} must be at least 1")
    if workload != "serve":
        raise TpplanError(f"--num-requests applies to --workload serve (an offline serving job), not --workload "
                          f"{workload}; leave it out")
    if objective == "latency":
        raise TpplanError("--num-requests plans a job's throughput and --objective latency one request at a time; "
                          "use --objective throughput (or cost) with --num-requests, or leave it out")


def _linear_state_words(spec: ModelSpec, engine: str) -> str:
    """How a hybrid model's linear-attention state is held (tpplan.cost.coefficients._linear_terms,
    tpplan.cost.batching.max_concurrency); '' for other models."""
    if not spec.num_linear_layers:
        return ""
    if engine == "vllm":
        return ("; linear-attention state: one KV block per linear layer, blocks enlarged to hold it (vLLM's hybrid "
                "cache; each candidate's size follows its TP)")
    if engine == "sglang":
        return ("; linear-attention state: fp32 recurrent state in its own pool (0.9 / 1.9 of the KV budget), "
                "running requests at most its slots / 3 (SGLang's mamba pool)")
    return "; linear-attention state: held beside the KV cache at its own size"


def _record_defaults(a: dict[str, str], w: Workload, p: HardwareProfile, spec: ModelSpec) -> None:
    from tpplan.hardware.loader import DEFAULTS_FILES

    limits = engine_limits(p, w)
    a.setdefault("gpus", f"{w.gpus} of {p.total_gpus} in {p.name}")
    a.setdefault("engine", w.engine)
    a.setdefault("dtype", f"weights {w.dtype}, KV cache {w.kv_cache_dtype}")
    a.setdefault("gpu_memory_utilization", f"{w.gpu_memory_utilization:.2f}" + (
        " of each GPU's memory is the training budget (Megatron has no such flag: the rest is headroom for the "
        "caching allocator's fragmentation and buffers tpplan does not count; --gpu-memory-utilization changes it)"
        if w.mode == "train" else ""))
    throughput = (f"throughput = a job of {w.num_requests} requests queued at once, over its whole duration "
                  f"(full waves of the batch, then the last under-filled one); TPOT, TTFT and their limits are "
                  f"those of a steady wave (a request of a later wave also waits for the waves before it)"
                  if w.num_requests else "throughput = continuous-batching steady state")
    a.setdefault("workload", f"{w.mode}: in {w.input_len} / out {w.output_len} tokens; decode context input + "
                             f"output/2; TTFT one prompt alone; {throughput}")
    if w.mode == "serve":  # training states its batches under Megatron's names (train_layouts.batch_assumptions)
        a.setdefault("scheduler", f"{w.engine}: max sequences {limits.max_num_seqs or 'KV-bound'}, "
                                  f"{limits.max_num_batched_tokens} tokens per step, KV blocks of "
                                  f"{limits.block_size_tokens} token{'s' if limits.block_size_tokens != 1 else ''}"
                                  + (", input + output reserved per request" if limits.reserve_full_sequence else "")
                                  + _linear_state_words(spec, w.engine))
        a.setdefault("batch", f"{w.batch}" if w.batch else
                     "largest the paged KV cache, scheduler and latency limits allow")
    a.setdefault("objective", _objective_words(w, p))
    if w.sequence_parallel and w.mode == "serve":
        a.setdefault("sequence_parallel", "on (--sequence-parallel): each layer's all-reduce priced as a "
                                          "reduce-scatter + all-gather, and the lm_head's input all-gathered")
    e = p.efficiency
    kernels, tiers = defaulted_in_use(spec, w, p)
    a.setdefault("efficiency", f"{_matmul_words(spec, w, p)}, memory {e.memory:.2f}, reserve "
                               f"{bytes_to_gib(e.runtime_reserve_bytes):.1f} GiB + activations, "
                               f"{s_to_ms(e.step_overhead_s):.2f} ms per step, {e.kernel_overhead_s / US:.1f} us per "
                               f"kernel (from {p.origin}"
                               + (f"; {', '.join(kernels)}: {DEFAULTS_FILES['kernels']})" if kernels else ")"))
    a.update(_defaults_words(kernels, tiers, p))

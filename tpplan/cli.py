"""The tpplan command line: typer commands that parse options, make one library call and hand the result
to a report. Heavy imports (pydantic, pandas, torch) happen inside the command that needs them so that
`tpplan --help` stays fast. No `from __future__ import annotations` here: typer would `eval` every string
annotation of the invoked command on each run (4 ms of `tpplan recommend`, measured with process_time).

Exit codes, the same for every command:
- 0: done (also `--help`, `--version`).
- 2, usage error: the command line is malformed, judged from each value alone before any work: an unknown command
  or option, a missing argument, a value that is not of its option's type, range or choices, including the values
  tpplan checks alone at parse time (a `--dtype` name, a `--deepep-mode`, an `--all2all-backend` value of no engine,
  compare's or sweep's `--engine megatron`, a compare layout such as `8+ep8`, a comma-separated list of whole
  numbers or a list with an empty item, sweep's and measure's `--out` extension, measure's `--save-raw` on the
  `--out` file).
  One line `Error: Invalid value for '--option': ...` (click's words, without its usage block); nothing on stdout.
- 1, refusal: a well-formed command line that tpplan will not plan: options that contradict each other or need
  another (`--engine vllm --workload train`, `--pp` without `--tp`, an `--all2all-backend` value of another engine),
  a model, profile, layout or file that cannot do what is asked (`+ep8` on a dense model, an unknown model name), a
  measurement that fails. One line `Error: ...` on stderr (a TpplanError), nothing on stdout; a traceback only
  with `--debug` or TPPLAN_DEBUG=1. Also exit 1: a plan in which nothing fits (the plan is printed, it is an answer)
  and `profiles validate` with a problem (one line per problem).
- 130: interrupted (Ctrl-C).
So a check on one value alone raises typer.BadParameter (a parse-time callback, or before any work); a check that
needs another option, the model, the profile or the files raises TpplanError.
"""

import contextlib
import copy
import math
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, get_args

import typer

from tpplan._version import __version__
from tpplan.errors import TpplanError
from tpplan.models.engines import EmitEngine as EmitLiteral
from tpplan.models.engines import Engine as EngineLiteral
from tpplan.planner.workload import MAX_BATCH
from tpplan.planner.workload import WORKLOAD_DEFAULTS as WD
from tpplan.planner.workload import Mode as ModeLiteral
from tpplan.planner.workload import Objective as ObjectiveLiteral
from tpplan.report.output import OutputFormat

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 200}
# rich_markup_mode=None: plain click help, which never truncates an option name at 80 columns (rich's panels did)
app = typer.Typer(name="tpplan", no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings=_CONTEXT,
                  help="Plan the tensor-parallel degree for an LLM, and prove the plan on your own GPUs.")
models_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, context_settings=_CONTEXT,
                         help="The built-in model catalogue and any HF config.json.")
profiles_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, context_settings=_CONTEXT,
                           help="Hardware profiles: list, show, validate, schema.")
app.add_typer(models_app, name="models")
app.add_typer(profiles_app, name="profiles")


def _choices(name: str, values: tuple[str, ...]) -> type[StrEnum]:
    """A typer choice type made from the library's Literal, so `--help` lists the values and they stay equal."""
    return StrEnum(name, {v: v for v in values})


Engine = _choices("Engine", get_args(EngineLiteral))
EmitEngine = _choices("EmitEngine", get_args(EmitLiteral))
Objective = _choices("Objective", get_args(ObjectiveLiteral))
Mode = _choices("Mode", get_args(ModeLiteral))


def _dtype_choice(kind: str):
    """Validate a dtype at parse time (exit 2, nothing on stdout); the choices come from tpplan.models.dtypes."""
    def check(value: str | None) -> str | None:
        from tpplan.models.dtypes import normalize_dtype

        if value is None:
            return None
        try:
            return normalize_dtype(value, kind=kind)
        except TpplanError as exc:
            raise typer.BadParameter(str(exc).split("; ", 1)[-1]) from exc
    return check


def _dtype_help(kind: str) -> str:
    from tpplan.models.dtypes import KV_DTYPE_BYTES, WEIGHT_DTYPES

    if kind == "weight":
        return (f"Weight format: {', '.join(WEIGHT_DTYPES)} (auto: the checkpoint's own, from its "
                f"quantization_config).")
    return f"KV-cache dtype: {', '.join(KV_DTYPE_BYTES)}."


def _greater_than_zero(what: str):
    """A callback for an optional number that must be > 0 when given; `what` ends the error: the unit and what
    leaving the option out means."""
    def check(value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise typer.BadParameter(f"{value:g} must be a finite number greater than 0{what}")
        return value
    return check


def _finite(value: float) -> float:
    """A callback for a float option with a range: typer's min / max let NaN and infinities through."""
    if not math.isfinite(value):
        raise typer.BadParameter(f"{value:g} is not a finite number")
    return value


_positive = _greater_than_zero(" (leave the option out for no limit)")
"""A latency limit, or none."""
_price = _greater_than_zero(", in $ per GPU-hour (leave the option out to use the profile's price, if it has one)")
"""A price per GPU-hour, or the profile's (else no cost column)."""


FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f", case_sensitive=False, help="Output format.")]
EngineOpt = Annotated[Engine, typer.Option("--engine", case_sensitive=False, help="Serving or training engine.")]
DtypeOpt = Annotated[str, typer.Option("--dtype", callback=_dtype_choice("weight"), help=_dtype_help("weight"))]
KvDtypeOpt = Annotated[str, typer.Option("--kv-cache-dtype", callback=_dtype_choice("kv"), help=_dtype_help("kv"))]


def _a2a_backend_choice(value: str) -> str:
    """--all2all-backend checked alone at parse time (exit 2): a value of no engine; whether it is --engine's is
    checked once the engine is known (`_check_a2a_backend`, exit 1). Any case (DEEPEP, Auto), as every choice;
    the engines spell them in lower case."""
    from tpplan.models.moe_backends import unknown_backend_problem

    value = value.lower()
    problem = unknown_backend_problem(value)
    if problem:
        raise typer.BadParameter(problem)
    return value


A2aBackendOpt = Annotated[str, typer.Option(
    "--all2all-backend", "--moe-a2a-backend", callback=_a2a_backend_choice,
    help="MoE token movement under EP + DP attention, in the engine's own words (vLLM --all2all-backend: "
         "allgather_reducescatter, deepep_low_latency, deepep_high_throughput, pplx, flashinfer_all2allv, ...; SGLang "
         "--moe-a2a-backend: none, deepep, mooncake, mori, ...); auto: the engine's default.")]


def _deepep_mode_choice(value: str | None) -> str | None:
    """--deepep-mode checked alone at parse time (exit 2), in any case (Normal, LOW_LATENCY), returned lower case as
    SGLang spells it; whether it applies to --engine is checked after parsing."""
    if value is None:
        return None
    from tpplan.models.moe_backends import DEEPEP_MODES

    if value.lower() not in DEEPEP_MODES:
        raise typer.BadParameter(f"{value!r} is not a DeepEP mode; choose one of: {', '.join(DEEPEP_MODES)} (any case)")
    return value.lower()  # SGLang's own values are lower case (DeepEPMode, python/sglang/srt/layers/moe/utils.py)


DeepEPModeOpt = Annotated[str | None, typer.Option(
    "--deepep-mode", callback=_deepep_mode_choice,
    help="SGLang with --moe-a2a-backend deepep: auto (normal kernels for prefill steps, low-latency for decode), "
         "normal or low_latency [default: auto].")]
CrossDomainOpt = Annotated[bool, typer.Option("--allow-cross-domain-tp",
                                             help="Consider TP groups beyond one NVLink domain.")]
MoeImbalanceOpt = Annotated[float, typer.Option("--moe-imbalance", min=1.0, callback=_finite,
                                                help="MoE expert parallelism: busiest rank's routed tokens / mean.")]
HardwareOpt = Annotated[str | None, typer.Option("--hardware", help="Built-in profile name, a profile's name: on "
                                                                    "TPPLAN_PROFILE_PATH, path.yaml, or auto.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tpplan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks (also TPPLAN_DEBUG=1).")] = False,
) -> None:
    """tpplan: tensor-parallel planning with a cost model, checked against real hardware."""


@models_app.command("list")
def models_list(fmt: FormatOpt = OutputFormat.table) -> None:
    """List the built-in models (name, params, layers, heads, context)."""
    from tpplan.models.resolve import catalogue
    from tpplan.report.models import models_list_rows, render_models_list

    render_models_list(models_list_rows(catalogue()), fmt)


@models_app.command("show")
def models_show(
    model: Annotated[str, typer.Argument(help="Catalogue name or alias, a Hub id (org/name; read from the local "
                                          "HF cache), or a path to config.json.")],
    engine: EngineOpt = Engine(WD.engine),
    dtype: DtypeOpt = WD.dtype,
    kv_cache_dtype: KvDtypeOpt = WD.kv_cache_dtype,
    tp: Annotated[int | None, typer.Option("--tp", min=1, help="Show one degree (checked against the engine).")] = None,
    context_len: Annotated[int | None, typer.Option("--context-len", min=1, help="Sequence length for the "
                                                    "per-sequence KV figure (default: the model's context).")] = None,
    download_config: Annotated[bool, typer.Option("--download-config", help="Fetch config.json from the Hugging Face "
                                                  "Hub when the id is neither known nor cached (needs "
                                                  "huggingface_hub; off by default).")] = False,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Parameters by component, bytes per GPU at each valid degree, KV bytes per token and per sequence."""
    from tpplan.models.dtypes import normalize_dtype
    from tpplan.models.engines import check_kv_cache_dtype, rules_for
    from tpplan.models.resolve import resolve_model
    from tpplan.models.summary import summarize
    from tpplan.report.models import render_model_show

    rules_for(engine.value)
    check_kv_cache_dtype(engine.value, normalize_dtype(kv_cache_dtype, kind="kv"))  # as recommend: before any work
    resolved = resolve_model(model, download=download_config)
    summary = summarize(resolved.spec, engine=engine.value, dtype=normalize_dtype(dtype),
                        kv_cache_dtype=normalize_dtype(kv_cache_dtype, kind="kv"), tp=tp,
                        resolved_from=resolved.query if resolved.via_alias else None, context_len=context_len)
    render_model_show(summary, fmt)


def _not_yet(what: str) -> None:
    raise TpplanError(f"{what} is not implemented yet in tpplan {__version__}")


@profiles_app.command("list")
def profiles_list(fmt: FormatOpt = OutputFormat.table) -> None:
    """List hardware profiles (TPPLAN_PROFILE_PATH first, then built-in)."""
    from tpplan.hardware.loader import available_profiles, try_load_ref
    from tpplan.report.profiles import list_row, render_profiles_list, warning_row

    rows = []
    for ref in available_profiles():
        profile, problems = try_load_ref(ref)
        rows.append(list_row(profile, ref.location, ref.duplicate_of) if profile
                    else warning_row(ref.name, ref.location, problems, ref.duplicate_of))
    render_profiles_list(rows, fmt)


@profiles_app.command("show")
def profiles_show(
    profile: Annotated[str, typer.Argument(help="Profile name or path to a YAML profile.")],
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Every value of a profile with its unit and provenance."""
    from tpplan.planner.plan import profile_for
    from tpplan.report.profiles import render_profile_show

    render_profile_show(profile_for(profile), fmt)


@profiles_app.command("validate")
def profiles_validate(
    files: Annotated[list[Path], typer.Argument(help="YAML profiles to check.")],
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Check profiles: exit 0 when all are valid, 1 otherwise; one line per problem on stderr (-f json: the problems
    with file, line, key, severity and message on stdout)."""
    from tpplan.hardware.loader import check_files
    from tpplan.report.profiles import render_validation

    found = check_files(files)
    render_validation([str(f) for f in files], found, fmt)
    if any(p.severity == "error" for p in found):
        raise typer.Exit(1)


@profiles_app.command("schema")
def profiles_schema(fmt: FormatOpt = OutputFormat.json) -> None:
    """Print the JSON Schema of the profile format (for editor completion); -f table|csv|markdown: one row per key."""
    from tpplan.hardware.schema import json_schema
    from tpplan.report.schemas import render_schema

    render_schema(json_schema(), fmt)


@app.command()
def recommend(
    model: Annotated[str, typer.Option("--model", "-m", help="Catalogue name/alias or config.json path.")],
    gpus: Annotated[int | None, typer.Option("--gpus", "-g", min=1, help="GPUs (default: the profile's).")] = None,
    hardware: HardwareOpt = None,
    nodes: Annotated[int | None, typer.Option("--nodes", min=1, help="Nodes of a profile with a network.")] = None,
    engine: Annotated[Engine | None, typer.Option("--engine", case_sensitive=False,
                                                  help="Serving or training engine [default: vllm, or --emit's].")]
    = None,
    dtype: DtypeOpt = WD.dtype,
    kv_cache_dtype: KvDtypeOpt = WD.kv_cache_dtype,
    max_model_len: Annotated[int | None, typer.Option("--max-model-len", min=1, help="Longest sequence [default: "
                                                      "min(context, 8192), raised to input + output].")] = None,
    gpu_memory_utilization: Annotated[float, typer.Option("--gpu-memory-utilization", min=0.05, max=1.0,
                                                          callback=_finite)] = WD.gpu_memory_utilization,
    input_len: Annotated[int, typer.Option("--input-len", min=1, help="Prompt tokens (training: sequence "
                                                                        "length).")] = WD.input_len,
    output_len: Annotated[int, typer.Option("--output-len", min=1, help="Generated tokens.")] = WD.output_len,
    batch: Annotated[int | None, typer.Option("--batch", "--micro-batch-size", min=1, max=MAX_BATCH,
                                              help="Concurrent sequences per replica (training: micro-batch size, "
                                                   "Megatron's --micro-batch-size).")]
    = None,
    num_requests: Annotated[int | None, typer.Option("--num-requests", min=1, help="An offline job of this many "
                                                     "requests queued at once: throughput over the whole job.")]
    = None,
    workload: Annotated[Mode, typer.Option("--workload", case_sensitive=False, help="serve (inference) or train "
                                                                                  "(Megatron-Core).")] = Mode("serve"),
    objective: Annotated[Objective, typer.Option("--objective", case_sensitive=False)] = Objective("throughput"),
    max_tpot_ms: Annotated[float | None, typer.Option("--max-tpot-ms", callback=_positive,
                                                            help="TPOT limit, under the plan's load (decode steps with "
                                                                 "prefill chunks mixed in).")] = None,
    max_ttft_ms: Annotated[float | None, typer.Option("--max-ttft-ms", callback=_positive,
                                                            help="TTFT limit, under the plan's load.")] = None,
    price_per_gpu_hour: Annotated[float | None, typer.Option("--price-per-gpu-hour", callback=_price,
                                                             help="$ per GPU-hour: adds a $/M output tokens column "
                                                                  "[default: the profile's, if any].")] = None,
    tp: Annotated[int | None, typer.Option("--tp", min=1, help="Evaluate this TP degree beside the best.")] = None,
    pp: Annotated[int | None, typer.Option("--pp", min=1, help="PP stages of the --tp layout [default: 1].")] = None,
    replicas: Annotated[int | None, typer.Option("--replicas", min=1, help="Replicas of the --tp layout [default: "
                                                 "as many as fit].")] = None,
    ep: Annotated[int, typer.Option("--ep", min=1, help="MoE: expert-parallel size of the --tp layout (serving: 1, or "
                                    "--tp x --dp-attention, or on SGLang / TensorRT-LLM without --dp-attention a "
                                    "divisor of --tp; training: Megatron's --expert-model-parallel-size, a divisor of "
                                    "the experts).")] = 1,
    etp: Annotated[int | None, typer.Option("--etp", "--expert-tensor-parallel-size", min=1,
                                            help="MoE training: GPUs each expert is split over in the --tp layout "
                                                 "[default: --tp, as Megatron's].")] = None,
    dp_attention: Annotated[int, typer.Option("--dp-attention", min=1, help="MoE: attention data-parallel ranks of "
                                              "the --tp layout (--tp GPUs each).")] = 1,
    moe_imbalance: MoeImbalanceOpt = WD.moe_imbalance,
    all2all_backend: A2aBackendOpt = WD.all2all_backend,
    deepep_mode: DeepEPModeOpt = None,
    max_num_seqs: Annotated[int | None, typer.Option(
        "--max-num-seqs", "--max-batch-size", "--max-running-requests", min=1,
        help="Engine's running-sequence limit (vLLM / TensorRT-LLM / SGLang spelling; default: the engine's).")] = None,
    max_num_batched_tokens: Annotated[int | None, typer.Option(
        "--max-num-batched-tokens", "--max-num-tokens", "--chunked-prefill-size", min=1,
        help="Engine's tokens per step (vLLM / TensorRT-LLM / SGLang spelling; default: the engine's).")] = None,
    sequence_parallel: Annotated[bool, typer.Option("--sequence-parallel", help="RS + AG instead of AR.")] = False,
    allow_cross_domain_tp: CrossDomainOpt = False,
    distributed_optimizer: Annotated[bool, typer.Option(
        "--use-distributed-optimizer", help="Training: Megatron's distributed optimizer (fp32 master weights and "
                                            "Adam moments sharded over the data-parallel ranks).")] = False,
    global_batch_size: Annotated[int | None, typer.Option(
        "--global-batch-size", min=1, max=MAX_BATCH * 1024,
        help="Training: sequences per optimizer step (Megatron's); each layout runs it / (micro-batch x DP) "
             "micro-batches [default: 4 x PP per replica].")] = None,
    emit: Annotated[EmitEngine | None, typer.Option("--emit", case_sensitive=False,
                                                    help="Also print the serve command for this engine.")] = None,
    wide: Annotated[bool, typer.Option("--wide", help="Every column, the full explanation, no wrapping.")] = False,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Recommend a TP degree (with PP stages and replicas) for a model on a hardware profile."""
    engine_name = _engine_for(engine, emit, workload)
    _check_a2a_backend(all2all_backend, engine_name, deepep_mode)
    from tpplan.planner.explain import nothing_fits_line
    from tpplan.planner.plan import needs_tp_message
    from tpplan.planner.plan import recommend as plan_recommend

    if (pp is not None or replicas is not None or ep > 1 or dp_attention > 1 or etp is not None) and tp is None:
        raise TpplanError(needs_tp_message(ep=ep, dp_attention=dp_attention, workload=workload.value))
    from tpplan.report.plan import render_plan

    plan = plan_recommend(model, gpus=gpus, hardware=_hardware(hardware), nodes=nodes, engine=engine_name,
                          dtype=dtype, kv_cache_dtype=kv_cache_dtype, max_model_len=max_model_len,
                          input_len=input_len, output_len=output_len, batch=batch, num_requests=num_requests,
                          gpu_memory_utilization=gpu_memory_utilization, workload=workload.value,
                          objective=objective.value, max_tpot_ms=max_tpot_ms, max_ttft_ms=max_ttft_ms,
                          sequence_parallel=sequence_parallel, allow_cross_domain_tp=allow_cross_domain_tp,
                          distributed_optimizer=distributed_optimizer, global_batch_size=global_batch_size,
                          price_per_gpu_hour=price_per_gpu_hour, tp=tp, pp=pp, replicas=replicas, ep=ep,
                          dp_attention=dp_attention, etp=etp, moe_imbalance=moe_imbalance,
                          all2all_backend=all2all_backend, deepep_mode=deepep_mode,
                          max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens)
    command = plan.serve_command(emit.value) if emit and (plan.chosen or plan.recommended) else None
    render_plan(plan, fmt, wide=wide, serve_command=command)
    if plan.recommended is None:
        raise TpplanError(nothing_fits_line(plan))


def _engine_for(engine: Engine | None, emit: EmitEngine | None, workload: Mode) -> str:
    """--engine, else --emit's engine, else vllm; --emit must name the engine planned for, and serving. Training is
    planned as Megatron-Core runs it: megatron, whatever the default; another --engine is refused (exit 1: options
    that contradict each other)."""
    if emit is not None and workload == "train":
        raise TpplanError("--emit prints a serve command; it does not apply to --workload train; leave --emit out")
    if workload == "train":
        if engine is not None and engine.value != "megatron":
            raise TpplanError(f"--engine {engine.value} with --workload train: training is planned as Megatron-Core "
                              f"runs it; leave --engine out or use --engine megatron")
        return "megatron"
    if emit is not None and engine is not None and emit.value != engine.value:
        raise TpplanError(f"--emit {emit.value} with --engine {engine.value}: the plan follows {engine.value}'s rules; "
                          f"use --emit {engine.value} or --engine {emit.value}")
    return engine.value if engine else (emit.value if emit else Engine(WD.engine).value)


def _check_a2a_backend(value: str, engine: str, deepep_mode: str | None = None) -> None:
    """--all2all-backend's values and --deepep-mode depend on --engine, so they are checked once the engine is known,
    before any work (exit 1, as the library raises: tpplan.models.moe_backends)."""
    from tpplan.models.moe_backends import check_deepep_mode, token_movement

    token_movement(engine, value)
    check_deepep_mode(engine, value, deepep_mode)


def _hardware(hardware: str | None):
    """`--hardware auto` as the profile of the local GPUs (tpplan.planner.plan.profile_for); a name, a path or None
    is passed on for recommend to resolve (and to say when it assumed the default)."""
    if hardware is not None and hardware.lower() == "auto":
        from tpplan.planner.plan import profile_for

        return profile_for(hardware)
    return hardware


def _serving_engine(ctx: typer.Context, value: str) -> str:
    """compare's and sweep's --engine checked alone at parse time (exit 2), in any case: they plan serving only, so a
    training engine is a usage error that names the command planning training."""
    from tpplan.models.engines import EMITTERS, TRAINING_ONLY_ENGINES

    key = value.lower()
    if key in TRAINING_ONLY_ENGINES:
        raise typer.BadParameter(f"{value!r} plans training and `tpplan {ctx.info_name}` plans serving only; plan "
                                 f"training with `tpplan recommend --workload train`, or choose a serving engine: "
                                 f"{', '.join(EMITTERS)}")
    if key not in EMITTERS:
        raise typer.BadParameter(f"{value!r} is not a serving engine; choose one of: {', '.join(EMITTERS)}")
    return key


ServingEngineOpt = Annotated[str, typer.Option("--engine", callback=_serving_engine, metavar="[vllm|sglang|trtllm]",
                                               help="Serving engine.")]


def _check_layouts(texts: list[str]) -> list[str]:
    """compare's layouts checked alone at parse time (tpplan.planner.compare.parse_layout): a malformed one, or fewer
    than two, is a usage error like a value of the wrong type (exit 2)."""
    from tpplan.planner.compare import parse_layout

    try:
        for text in texts:
            parse_layout(text)
    except TpplanError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if len(texts) < 2:
        raise typer.BadParameter("give at least two layouts, e.g. 8 4x1x2, or 8 8+ep8 1+dp8+ep8 for an MoE model")
    return texts


@app.command()
def compare(
    layouts: Annotated[list[str], typer.Argument(
        metavar="LAYOUT...", callback=_check_layouts,
        help="Layouts TP[xPP[xREPLICAS]][+epEP][+dpDP], e.g. 8 4x2 2x1x4; MoE models also 8+ep8 (EP8 inside TP8) and "
             "1+dp8+ep8 (attention DP8 x EP8): +ep and +dp are recommend's --ep and --dp-attention.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Catalogue name/alias or config.json path.")],
    gpus: Annotated[int | None, typer.Option("--gpus", "-g", min=1, help="GPUs (default: the profile's).")] = None,
    hardware: HardwareOpt = None,
    nodes: Annotated[int | None, typer.Option("--nodes", min=1, help="Nodes of a profile with a network.")] = None,
    engine: ServingEngineOpt = WD.engine,
    dtype: DtypeOpt = WD.dtype,
    kv_cache_dtype: KvDtypeOpt = WD.kv_cache_dtype,
    max_model_len: Annotated[int | None, typer.Option("--max-model-len", min=1)] = None,
    input_len: Annotated[int, typer.Option("--input-len", min=1)] = WD.input_len,
    output_len: Annotated[int, typer.Option("--output-len", min=1)] = WD.output_len,
    batch: Annotated[int | None, typer.Option("--batch", min=1, max=MAX_BATCH)] = None,
    num_requests: Annotated[int | None, typer.Option("--num-requests", min=1, help="An offline job of this many "
                                                     "requests queued at once: throughput and job seconds over the "
                                                     "whole job.")] = None,
    price_per_gpu_hour: Annotated[float | None, typer.Option("--price-per-gpu-hour", callback=_price)] = None,
    moe_imbalance: MoeImbalanceOpt = WD.moe_imbalance,
    all2all_backend: A2aBackendOpt = WD.all2all_backend,
    deepep_mode: DeepEPModeOpt = None,
    allow_cross_domain_tp: CrossDomainOpt = False,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Put two or more layouts side by side, with the differences (exit 1 when none of them runs: one error line,
    after the JSON / CSV document with each layout's reasons)."""
    from tpplan.planner.compare import compare as run_compare
    from tpplan.planner.compare import nothing_runs, parse_layout
    from tpplan.report.compare import render_comparison

    _check_a2a_backend(all2all_backend, engine, deepep_mode)
    cmp = run_compare(model, [parse_layout(x) for x in layouts], gpus=gpus, hardware=_hardware(hardware), nodes=nodes,
                      engine=engine, dtype=dtype, kv_cache_dtype=kv_cache_dtype, max_model_len=max_model_len,
                      input_len=input_len, output_len=output_len, batch=batch, num_requests=num_requests,
                      price_per_gpu_hour=price_per_gpu_hour, moe_imbalance=moe_imbalance,
                      all2all_backend=all2all_backend, deepep_mode=deepep_mode,
                      allow_cross_domain_tp=allow_cross_domain_tp)
    refusal = nothing_runs(cmp)
    if refusal and fmt in (OutputFormat.json, OutputFormat.csv):  # scripts still get every layout's reasons
        render_comparison(cmp, fmt)
    if refusal:
        raise TpplanError(refusal)
    render_comparison(cmp, fmt)


SchemaName = _choices("SchemaName", ("recommend", "compare", "sweep", "measure", "models", "models-list"))
"""The keys of tpplan.report.schemas.SCHEMAS (tests/test_api_schema.py checks they stay equal)."""


@app.command()
def schema(
    command: Annotated[SchemaName, typer.Argument(case_sensitive=False, help="Whose -f json output: a command, "
                                                  "`models` for `models show`, `models-list` for `models list`.")],
    fmt: FormatOpt = OutputFormat.json,
) -> None:
    """Print the JSON Schema of a command's `-f json` output (for scripts and CI checks); -f table|csv|markdown: one
    row per key."""
    from tpplan.report.schemas import SCHEMAS, render_schema

    render_schema(SCHEMAS[command.value](), fmt)


def _csv_list(value: str, *, option: str) -> list[str]:
    """`option`'s comma-separated values; none at all, or an empty item (`1,,2`, `8,`), is a usage error (exit 2)."""
    items = [x.strip() for x in value.split(",")]
    if not any(items):
        raise typer.BadParameter(f"expected comma-separated values, got {value!r}", param_hint=f"'{option}'")
    if not all(items):
        raise typer.BadParameter(f"{value!r} has an empty item; separate the values with single commas, e.g. "
                                 f"{','.join(x for x in items if x)}", param_hint=f"'{option}'")
    return list(dict.fromkeys(items))  # a value given twice is swept once


def _csv_counts(value: str, *, option: str, maximum: int = 2**31 - 1) -> list[int]:
    """`option`'s comma-separated whole numbers, each from 1 to `maximum` (GPUs, sequences, tokens; the default keeps
    them within the 64-bit arrays sweep computes in); else exit 2."""
    items = _csv_list(value, option=option)
    if not all(x.isascii() and x.isdigit() and int(x) >= 1 for x in items):
        raise typer.BadParameter(f"expected comma-separated whole numbers of at least 1, e.g. 1,8,32; got {value!r}",
                                 param_hint=f"'{option}'")
    too_big = [x for x in items if int(x) > maximum]
    if too_big:
        raise typer.BadParameter(f"{too_big[0]} exceeds {maximum:,}", param_hint=f"'{option}'")
    return list(dict.fromkeys(int(x) for x in items))  # 8 and 08 are one count


def _csv_dtypes(value: str) -> list[str]:
    """sweep's --dtype: each weight format checked alone, as recommend's --dtype is (exit 2); returned as typed."""
    from tpplan.models.dtypes import normalize_dtype

    items = _csv_list(value, option="--dtype")
    try:
        for x in items:
            normalize_dtype(x)
    except TpplanError as exc:
        raise typer.BadParameter(str(exc).removeprefix("--dtype "), param_hint="'--dtype'") from exc
    return items


@app.command()
def sweep(
    models: Annotated[str, typer.Option("--models", help="Comma-separated models.")],
    hardware: Annotated[str, typer.Option("--hardware", help="Comma-separated profiles.")] = "dgx-h100",
    gpus: Annotated[str, typer.Option("--gpus", help="Comma-separated GPU counts.")] = "8",
    nodes: Annotated[int | None, typer.Option("--nodes", min=1, help="Nodes of every profile (as in recommend; "
                                              "more than one needs the profile's network section).")] = None,
    batch: Annotated[str, typer.Option("--batch", help="Comma-separated batch sizes.")] = "1,8,32,128",
    input_len: Annotated[str, typer.Option("--input-len", help="Comma-separated prompt lengths.")] = str(WD.input_len),
    output_len: Annotated[str, typer.Option("--output-len", help="Comma-separated output lengths.")] = str(
        WD.output_len),
    dtype: Annotated[str, typer.Option("--dtype", help="Comma-separated weight formats (auto: the checkpoint's)."
                                       )] = WD.dtype,
    engine: ServingEngineOpt = WD.engine,
    kv_cache_dtype: KvDtypeOpt = WD.kv_cache_dtype,
    max_model_len: Annotated[int | None, typer.Option("--max-model-len", min=1, help="Longest sequence [default: "
                                                      "the planner's, as in recommend].")] = None,
    moe_imbalance: MoeImbalanceOpt = WD.moe_imbalance,
    all2all_backend: A2aBackendOpt = WD.all2all_backend,
    deepep_mode: DeepEPModeOpt = None,
    allow_cross_domain_tp: CrossDomainOpt = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write .csv or .parquet (atomically).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
    fmt: FormatOpt = OutputFormat.csv,
) -> None:
    """Evaluate the cartesian product of models, hardware, GPUs, batch, lengths and dtypes into one table."""
    from tpplan.planner.sweep import sweep as run_sweep
    from tpplan.report.sweep import render_sweep, sweep_progress

    lists = dict(models=_csv_list(models, option="--models"), hardware=_csv_list(hardware, option="--hardware"),
                 gpus=_csv_counts(gpus, option="--gpus"),
                 batches=_csv_counts(batch, option="--batch", maximum=MAX_BATCH),
                 input_lens=_csv_counts(input_len, option="--input-len"),
                 output_lens=_csv_counts(output_len, option="--output-len"), dtypes=_csv_dtypes(dtype))
    if out is not None and out.suffix not in (".csv", ".parquet"):
        raise typer.BadParameter(f"{out}: unknown extension {out.suffix!r}; use .csv or .parquet", param_hint="'--out'")
    if out is not None and fmt is not OutputFormat.csv:
        raise typer.BadParameter(f"-f {fmt.value} with --out {out}: --out writes the format its extension names "
                                 f"({out.suffix}) and prints nothing; drop -f, or drop --out to print {fmt.value}",
                                 param_hint="'--format'")
    _check_a2a_backend(all2all_backend, engine, deepep_mode)
    if out is not None:  # every check on --out before any work
        from tpplan.files import check_writable
        from tpplan.report.sweep import check_parquet_engine

        check_writable(out, force=force)
        check_parquet_engine(out)
    with sweep_progress() as progress:
        df, stats = run_sweep(**lists, engine=engine, kv_cache_dtype=kv_cache_dtype, max_model_len=max_model_len,
                              moe_imbalance=moe_imbalance, all2all_backend=all2all_backend,
                              deepep_mode=deepep_mode, nodes=nodes, allow_cross_domain_tp=allow_cross_domain_tp,
                              progress=progress)
    render_sweep(df, stats, out=out, force=force, fmt=fmt)


def _profile_suffix(value: Path | None) -> Path | None:
    """measure's --out checked alone at parse time (exit 2): the calibrated profile is YAML."""
    from tpplan.measure.command import profile_suffix_problem

    problem = profile_suffix_problem(value) if value is not None else None
    if problem:
        raise typer.BadParameter(problem)
    return value


def _measure_choice(name: str):
    """measure's --backend / --dtype checked alone at parse time (exit 2), against tpplan.measure.command's values."""
    def check(value: str | None) -> str | None:
        if value is None:
            return None
        from tpplan.measure.command import BACKENDS
        from tpplan.models.dtypes import MEASURE_DTYPE_BYTES

        choices = {"backend": BACKENDS, "dtype": tuple(MEASURE_DTYPE_BYTES)}[name]
        if value not in choices:
            raise typer.BadParameter(f"{value!r}: expected one of {', '.join(choices)}")
        return value
    return check


def _degree_list(param: typer.CallbackParam, value: str | None) -> str | None:
    """measure's --tp / --emulate-tp checked alone at parse time (exit 2) by tpplan.measure.command.parse_degrees."""
    if value is None:
        return None
    from tpplan.errors import MeasurementError
    from tpplan.measure.command import parse_degrees

    option = param.opts[0]
    try:
        parse_degrees(value, option)
    except MeasurementError as exc:
        raise typer.BadParameter(str(exc).removeprefix(f"{option} ")) from exc
    return value


@app.command()
def measure(
    model: Annotated[str, typer.Option("--model", "-m", help="Whose layer shapes to run.")] = "llama-8b",
    hardware: Annotated[str | None, typer.Option("--hardware", help="Profile to predict with and calibrate (default: "
                                                                    "the detected GPU's, or cpu-gloo).")] = None,
    nproc: Annotated[int | None, typer.Option("--nproc", min=1, help="Ranks (default: GPUs, or 2 on CPU).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A few sizes, decode and short prefill only.")] = False,
    dtype: Annotated[str | None, typer.Option("--dtype", callback=_measure_choice("dtype"),
                                              help="bf16, fp16 or fp32 (default bf16 on GPU, fp32 on CPU).")] = None,
    tp: Annotated[str | None, typer.Option("--tp", callback=_degree_list,
                                           help="Comma-separated degrees run as real TP groups.")] = None,
    emulate_tp: Annotated[str | None, typer.Option(
        "--emulate-tp", callback=_degree_list,
        help="Comma-separated degrees whose rank-0 shard runs on one GPU, compute only (default on a one-GPU node: "
             "1,2,4,8 where the model allows).")] = None,
    backend: Annotated[str | None, typer.Option("--backend", callback=_measure_choice("backend"),
                                                help="gloo or nccl (default nccl with GPUs, gloo without; gloo keeps "
                                                     "tensors on the CPU).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=1, callback=_finite,
                                                  help="Process-group timeout, seconds.")] = 120.0,
    threads: Annotated[int, typer.Option("--threads", min=1, help="CPU threads per rank.")] = 1,
    skip_layer: Annotated[bool, typer.Option("--skip-layer", help="Collectives only.")] = False,
    no_kernel_table: Annotated[bool, typer.Option("--no-kernel-table", help="Skip the per-kernel table.")] = False,
    from_files: Annotated[list[Path] | None, typer.Option("--from", help="Compare saved results (measure --format "
                                                                          "json, --save-raw, or kernel JSON).")] = None,
    save_raw: Annotated[Path | None, typer.Option("--save-raw", help="Also write the raw kernel JSON.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", callback=_profile_suffix,
                                             help="Write the calibrated profile (YAML).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out / --save-raw; calibrate a profile of "
                                                        "another GPU kind.")] = False,
    fail_rank: Annotated[int | None, typer.Option("--fail-rank", hidden=True)] = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Run real sharded matmuls and collectives on this node, compare with the prediction, calibrate."""
    from tpplan.measure.command import MeasureRequest, measure_command
    from tpplan.report.measure import measure_progress, render_measurement

    if out is not None and save_raw is not None and out.resolve() == save_raw.resolve():
        raise typer.BadParameter(f"{save_raw} is also --out: the raw JSON and the calibrated profile need two files; "
                                 f"choose another --save-raw (e.g. {out.with_suffix('.json')})",
                                 param_hint="'--save-raw'")
    request = MeasureRequest(model=model, hardware=hardware, nproc=nproc, quick=quick, dtype=dtype, tp=tp,
                             emulate_tp=emulate_tp, backend=backend, timeout_s=timeout, threads=threads,
                             skip_layer=skip_layer, kernel_table=not no_kernel_table,
                             from_files=tuple(from_files or ()), save_raw=save_raw, out=out, force=force,
                             fail_rank=fail_rank, argv=tuple(sys.argv))
    render_measurement(measure_command(request, progress=measure_progress), fmt)


def _click_exceptions():
    """click's exceptions module: typer 0.26-0.28 (pyproject's pin) bundle click as typer._click; click itself for a
    typer that depends on it."""
    try:
        from typer._click import exceptions
    except ImportError:  # pragma: no cover - typer outside the pin
        from click import exceptions
    return exceptions


def _print_error(message: str) -> None:
    from tpplan.report.output import stderr_console

    stderr_console().print(f"Error: {message}", markup=False)


def _app_for(args: list[str]) -> typer.Typer:
    """`app` with only the invoked command or group registered. typer turns the signature of every registered
    command into click parameters before it parses anything (13 ms of a 160 ms `tpplan recommend`, measured with
    cProfile), so a run builds only its own command. No command name (help, --version, shell completion) or an
    unknown one: the whole app, so typer's listing and "No such command" stay as they are."""
    name = next((a for a in args if not a.startswith("-")), None)  # the root takes flags only
    commands = [c for c in app.registered_commands if (c.name or c.callback.__name__.replace("_", "-")) == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app
    slim = copy.copy(app)  # same callback, settings and help; only the registrations differ
    slim.registered_commands, slim.registered_groups = commands, groups
    return slim


@contextlib.contextmanager
def _profile_warnings():
    """Each TpplanWarning (a user profile that looks wrong, tpplan.hardware.loader; a measure setting) as one
    `warning: ...` line on stderr, once per run however often it is issued; other warnings as Python shows them."""
    import warnings

    from tpplan.errors import TpplanWarning

    python_show, seen = warnings.showwarning, set()

    def show(message, category, *args, **kwargs):
        if not issubclass(category, TpplanWarning):
            return python_show(message, category, *args, **kwargs)
        if str(message) not in seen:
            from tpplan.report.output import note

            seen.add(str(message))
            note(f"warning: {message}")
        return None

    with warnings.catch_warnings():
        warnings.simplefilter("always", TpplanWarning)
        warnings.showwarning = show
        yield


def main(argv: list[str] | None = None) -> int:
    """Entry point: a TpplanError becomes one `Error: ...` line and exit 1; usage errors exit 2 (the module
    docstring states the rule)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("TPPLAN_DEBUG") == "1"
    # --debug is accepted anywhere (also after the subcommand): the root option is the only one of that name
    args = (["--debug"] if "--debug" in args else []) + [a for a in args if a != "--debug"]
    before = os.environ.get("TPPLAN_DEBUG")
    if debug:  # for code that cannot see the option (tpplan.measure.launch keeps a failed rank's stderr)
        os.environ["TPPLAN_DEBUG"] = "1"
    try:
        return _run(args, debug=debug)
    finally:  # only for this call: a later main() in the same process has the caller's setting
        if before is None:
            os.environ.pop("TPPLAN_DEBUG", None)
        else:
            os.environ["TPPLAN_DEBUG"] = before


def _run(args: list[str], *, debug: bool) -> int:
    """`main`'s body: the command, its errors as one line and its exit status."""
    click = _click_exceptions()
    try:
        with _profile_warnings():
            code = _app_for(args)(args=args, prog_name="tpplan", standalone_mode=False)
    except TpplanError as exc:
        if debug:
            raise
        _print_error(str(exc))
        return 1
    except click.UsageError as exc:  # one line, as every other error (click would print the usage first)
        if type(exc).__name__ == "NoArgsIsHelpError":  # `tpplan`, `tpplan models`: the help, as click shows it
            exc.show()
            return exc.exit_code
        _print_error(exc.format_message())  # it names the option; `-h` lists them
        return USAGE
    except click.ClickException as exc:
        _print_error(exc.format_message())
        return exc.exit_code
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except (KeyboardInterrupt, click.Abort):
        _print_error("interrupted")
        return INTERRUPTED
    if code == INTERRUPTED:  # typer turns Ctrl-C into exit 130 without a word
        _print_error("interrupted")
    return code if isinstance(code, int) else 0


INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells report it."""
USAGE = 2
"""Exit status of a malformed command line (click's)."""


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    console_main()

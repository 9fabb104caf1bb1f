"""The tpplan command line: typer commands that parse options, make one library call and hand the result
to a report. Heavy imports (pydantic, pandas, torch) happen inside the command that needs them so that
`tpplan --help` stays fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from tpplan._version import __version__
from tpplan.errors import TpplanError
from tpplan.report.output import OutputFormat

app = typer.Typer(name="tpplan", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Plan the tensor-parallel degree for an LLM, and prove the plan on your own GPUs.")
models_app = typer.Typer(no_args_is_help=True, help="The built-in model catalogue and any HF config.json.")
profiles_app = typer.Typer(no_args_is_help=True, help="Hardware profiles: list, show, validate, schema.")
app.add_typer(models_app, name="models")
app.add_typer(profiles_app, name="profiles")

FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")]
EngineOpt = Annotated[str, typer.Option("--engine", help="vllm, sglang, trtllm or megatron.")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="Weight dtype: bf16, fp16, fp32, fp8, int8, int4.")]
KvDtypeOpt = Annotated[str, typer.Option("--kv-cache-dtype", help="KV-cache dtype: bf16, fp16, fp8.")]
HardwareOpt = Annotated[str | None, typer.Option("--hardware", help="Built-in profile name or path.yaml.")]


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
    model: Annotated[str, typer.Argument(help="Catalogue name or alias, or a path to config.json.")],
    engine: EngineOpt = "vllm",
    dtype: DtypeOpt = "bf16",
    kv_cache_dtype: KvDtypeOpt = "bf16",
    tp: Annotated[int | None, typer.Option("--tp", help="Show one degree (checked against the engine).")] = None,
    context_len: Annotated[int | None, typer.Option("--context-len", min=1, help="Sequence length for the "
                                                    "per-sequence KV figure (default: the model's context).")] = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Parameters by component, bytes per GPU at each valid degree, KV bytes per token and per sequence."""
    from tpplan.models.dtypes import normalize_dtype
    from tpplan.models.engines import rules_for
    from tpplan.models.resolve import resolve_model
    from tpplan.models.summary import summarize
    from tpplan.report.models import render_model_show

    rules_for(engine)
    resolved = resolve_model(model)
    summary = summarize(resolved.spec, engine=engine, dtype=normalize_dtype(dtype),
                        kv_cache_dtype=normalize_dtype(kv_cache_dtype, kind="kv"), tp=tp,
                        resolved_from=resolved.query if resolved.via_alias else None, context_len=context_len)
    render_model_show(summary, fmt)


def _not_yet(what: str) -> None:
    raise TpplanError(f"{what} is not implemented yet in tpplan {__version__}")


@profiles_app.command("list")
def profiles_list(fmt: FormatOpt = OutputFormat.table) -> None:
    """List hardware profiles (TPPLAN_PROFILE_PATH first, then built-in)."""
    from tpplan.hardware.loader import available_profiles, load_ref
    from tpplan.report.profiles import list_row, render_profiles_list

    render_profiles_list([list_row(load_ref(r), r.location) for r in available_profiles()], fmt)


@profiles_app.command("show")
def profiles_show(
    profile: Annotated[str, typer.Argument(help="Profile name or path to a YAML profile.")],
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Every value of a profile with its unit and provenance."""
    from tpplan.hardware.loader import resolve_profile
    from tpplan.report.profiles import render_profile_show

    render_profile_show(resolve_profile(profile)[0], fmt)


@profiles_app.command("validate")
def profiles_validate(
    files: Annotated[list[Path], typer.Argument(help="YAML profiles to check.")],
) -> None:
    """Check profiles: exit 0 when all are valid, 1 otherwise, one line per problem on stderr."""
    from tpplan.hardware.loader import validate_files
    from tpplan.report.output import stderr_console

    problems = validate_files(files)
    console = stderr_console()
    for line in problems:
        console.print(line, markup=False)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"{len(files)} profile(s) valid")


@profiles_app.command("schema")
def profiles_schema() -> None:
    """Print the JSON Schema of the profile format (for editor completion)."""
    from tpplan.hardware.schema import json_schema
    from tpplan.report.output import emit_json

    emit_json(json_schema())


@app.command()
def recommend(
    model: Annotated[str, typer.Option("--model", "-m", help="Catalogue name/alias or config.json path.")],
    gpus: Annotated[int | None, typer.Option("--gpus", "-g", min=1, help="GPUs (default: the profile's).")] = None,
    hardware: HardwareOpt = None,
    nodes: Annotated[int | None, typer.Option("--nodes", min=1, help="Nodes of a multi-node profile.")] = None,
    engine: EngineOpt = "vllm",
    dtype: DtypeOpt = "bf16",
    kv_cache_dtype: KvDtypeOpt = "bf16",
    max_model_len: Annotated[int | None, typer.Option("--max-model-len", min=1, help="Longest sequence.")] = None,
    gpu_memory_utilization: Annotated[float, typer.Option("--gpu-memory-utilization", min=0.05, max=1.0)] = 0.90,
    input_len: Annotated[int, typer.Option("--input-len", min=1, help="Prompt tokens.")] = 1024,
    output_len: Annotated[int, typer.Option("--output-len", min=1, help="Generated tokens.")] = 256,
    batch: Annotated[int | None, typer.Option("--batch", min=1, help="Concurrent sequences per replica.")] = None,
    workload: Annotated[str, typer.Option("--workload", help="serve or train.")] = "serve",
    objective: Annotated[str, typer.Option("--objective", help="throughput, latency or gpus.")] = "throughput",
    max_tpot_ms: Annotated[float | None, typer.Option("--max-tpot-ms", min=0, help="TPOT limit.")] = None,
    max_ttft_ms: Annotated[float | None, typer.Option("--max-ttft-ms", min=0, help="TTFT limit.")] = None,
    sequence_parallel: Annotated[bool, typer.Option("--sequence-parallel", help="RS + AG instead of AR.")] = False,
    allow_cross_domain_tp: Annotated[bool, typer.Option("--allow-cross-domain-tp",
                                                        help="Consider TP groups beyond one NVLink domain.")] = False,
    emit: Annotated[str | None, typer.Option("--emit", help="Print the serve command: vllm, sglang, trtllm.")] = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Recommend a TP degree (with PP stages and replicas) for a model on a hardware profile."""
    from tpplan.planner.plan import recommend as plan_recommend
    from tpplan.report.plan import render_plan

    plan = plan_recommend(model, gpus=gpus, hardware=hardware, nodes=nodes, engine=engine, dtype=dtype,
                          kv_cache_dtype=kv_cache_dtype, max_model_len=max_model_len, input_len=input_len,
                          output_len=output_len, batch=batch, gpu_memory_utilization=gpu_memory_utilization,
                          workload=workload, objective=objective, max_tpot_ms=max_tpot_ms, max_ttft_ms=max_ttft_ms,
                          sequence_parallel=sequence_parallel, allow_cross_domain_tp=allow_cross_domain_tp)
    render_plan(plan, fmt)
    if emit and plan.recommended:
        from tpplan.planner.emit import serve_command

        typer.echo(serve_command(plan, emit))
    if plan.recommended is None:
        raise typer.Exit(1)


def _csv_list(value: str, cast=str) -> list:
    try:
        return [cast(x.strip()) for x in value.split(",") if x.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"expected a comma-separated list, got {value!r}") from exc


@app.command()
def sweep(
    models: Annotated[str, typer.Option("--models", help="Comma-separated models.")],
    hardware: Annotated[str, typer.Option("--hardware", help="Comma-separated profiles.")] = "dgx-h100",
    gpus: Annotated[str, typer.Option("--gpus", help="Comma-separated GPU counts.")] = "8",
    batch: Annotated[str, typer.Option("--batch", help="Comma-separated batch sizes.")] = "1,8,32,128",
    input_len: Annotated[str, typer.Option("--input-len", help="Comma-separated prompt lengths.")] = "1024",
    output_len: Annotated[str, typer.Option("--output-len", help="Comma-separated output lengths.")] = "256",
    dtype: Annotated[str, typer.Option("--dtype", help="Comma-separated weight dtypes.")] = "bf16",
    engine: EngineOpt = "vllm",
    kv_cache_dtype: KvDtypeOpt = "bf16",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write .csv or .parquet (atomically).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
    fmt: FormatOpt = OutputFormat.csv,
) -> None:
    """Evaluate the cartesian product of models, hardware, GPUs, batch, lengths and dtypes into one table."""
    from tpplan.planner.sweep import sweep as run_sweep
    from tpplan.report.sweep import render_sweep, sweep_progress

    if out is not None:
        from tpplan.files import check_writable

        check_writable(out, force=force)
    with sweep_progress() as progress:
        df, stats = run_sweep(models=_csv_list(models), hardware=_csv_list(hardware), gpus=_csv_list(gpus, int),
                              batches=_csv_list(batch, int), input_lens=_csv_list(input_len, int),
                              output_lens=_csv_list(output_len, int), dtypes=_csv_list(dtype), engine=engine,
                              kv_cache_dtype=kv_cache_dtype, progress=progress)
    render_sweep(df, stats, out=out, force=force, fmt=fmt)


@app.command()
def measure(
    model: Annotated[str, typer.Option("--model", "-m", help="Whose layer shapes to run.")] = "llama-8b",
    hardware: Annotated[str | None, typer.Option("--hardware", help="Profile to predict with and calibrate (default: "
                                                                    "the detected GPU's, or cpu-gloo).")] = None,
    nproc: Annotated[int | None, typer.Option("--nproc", help="Ranks (default: GPUs, or 2 on CPU).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A few sizes, decode and short prefill only.")] = False,
    dtype: Annotated[str | None, typer.Option("--dtype", help="bf16, fp16 or fp32 (default bf16 on GPU, "
                                                              "fp32 on CPU).")] = None,
    tp: Annotated[str | None, typer.Option("--tp", help="Comma-separated degrees run as real TP groups.")] = None,
    emulate_tp: Annotated[str | None, typer.Option(
        "--emulate-tp", help="Comma-separated degrees whose rank-0 shard runs on one GPU, compute only (default on "
                             "a one-GPU node: 1,2,4,8 where the model allows).")] = None,
    backend: Annotated[str | None, typer.Option("--backend", help="gloo or nccl (default nccl with GPUs, gloo "
                                                                  "without; gloo keeps tensors on the CPU).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="Process-group timeout, seconds.")] = 120.0,
    threads: Annotated[int, typer.Option("--threads", min=1, help="CPU threads per rank.")] = 1,
    skip_layer: Annotated[bool, typer.Option("--skip-layer", help="Collectives only.")] = False,
    no_kernel_table: Annotated[bool, typer.Option("--no-kernel-table", help="Skip the per-kernel table.")] = False,
    from_files: Annotated[list[Path] | None, typer.Option("--from", help="Compare saved results (measure --format "
                                                                          "json, --save-raw, or kernel JSON).")] = None,
    save_raw: Annotated[Path | None, typer.Option("--save-raw", help="Also write the raw kernel JSON.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the calibrated profile (YAML).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out / --save-raw; calibrate a profile of "
                                                        "another GPU kind.")] = False,
    fail_rank: Annotated[int | None, typer.Option("--fail-rank", hidden=True)] = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Run real sharded matmuls and collectives on this node, compare with the prediction, calibrate."""
    from tpplan.measure.command import MeasureRequest, measure_command
    from tpplan.report.measure import measure_progress, render_measurement

    request = MeasureRequest(model=model, hardware=hardware, nproc=nproc, quick=quick, dtype=dtype, tp=tp,
                             emulate_tp=emulate_tp, backend=backend, timeout_s=timeout, threads=threads,
                             skip_layer=skip_layer, kernel_table=not no_kernel_table,
                             from_files=tuple(from_files or ()), save_raw=save_raw, out=out, force=force,
                             fail_rank=fail_rank, argv=tuple(sys.argv))
    render_measurement(measure_command(request, progress=measure_progress), fmt)


def _print_error(message: str) -> None:
    from tpplan.report.output import stderr_console

    stderr_console().print(f"Error: {message}", markup=False)


def main(argv: list[str] | None = None) -> int:
    """Entry point: a TpplanError becomes one `Error: ...` line and exit 1; usage errors exit 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("TPPLAN_DEBUG") == "1"
    try:
        app(args=args, prog_name="tpplan")
    except TpplanError as exc:
        if debug:
            raise
        _print_error(str(exc))
        return 1
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        _print_error("interrupted")
        return 130
    return 0


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    console_main()

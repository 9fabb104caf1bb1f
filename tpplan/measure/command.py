"""Turn `tpplan measure` options into one Measurement: resolve inputs, run or load, compare, write the profile.

Rendering is the caller's (cli.py hands the result to tpplan.report.measure).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shlex
from pathlib import Path

from tpplan.errors import MeasurementError, TpplanError
from tpplan.models.dtypes import MEASURE_DTYPE_BYTES
from tpplan.records import record

BACKENDS = ("gloo", "nccl")
PROFILE_SUFFIXES = (".yaml", ".yml")
"""What --out may end in: the calibrated profile is YAML, and `--hardware` takes a path by these suffixes."""


@record
class MeasureRequest:
    """What `tpplan measure` was asked, as the CLI passes it (strings as typed; checked here)."""

    model: str = "llama-8b"
    hardware: str | None = None
    nproc: int | None = None
    quick: bool = False
    dtype: str | None = None
    tp: str | None = None
    emulate_tp: str | None = None
    backend: str | None = None
    timeout_s: float = 120.0
    threads: int = 1
    skip_layer: bool = False
    kernel_table: bool = True
    from_files: tuple[Path, ...] = ()
    save_raw: Path | None = None
    out: Path | None = None
    force: bool = False
    fail_rank: int | None = None
    argv: tuple[str, ...] = ()


def parse_degrees(text: str | None, option: str) -> tuple[int, ...] | None:
    """'2,4,8' -> (2, 4, 8); anything else is one MeasurementError naming the option and the fix."""
    if text is None:
        return None
    try:
        degrees = tuple(int(x) for x in text.split(","))
    except ValueError as exc:
        raise MeasurementError(f"{option} {text!r}: expected comma-separated whole numbers such as 2,4,8") from exc
    if any(d < 1 for d in degrees):
        raise MeasurementError(f"{option} {text!r}: degrees must be at least 1, e.g. 1,2,4,8")
    return degrees


def profile_suffix_problem(out: Path) -> str | None:
    """What is wrong with --out's name, or None: it names a YAML file (`PROFILE_SUFFIXES`), which `--hardware` later
    reads as a path."""
    if out.suffix.lower() in PROFILE_SUFFIXES:
        return None
    got = repr(out.suffix) if out.suffix else "no extension"
    return f"the calibrated profile is YAML; use a name ending in .yaml or .yml (got {got})"


def _check_request(r: MeasureRequest) -> None:
    if r.dtype is not None and r.dtype not in MEASURE_DTYPE_BYTES:
        raise MeasurementError(f"--dtype {r.dtype!r}: measure runs {', '.join(MEASURE_DTYPE_BYTES)}")
    if r.backend is not None and r.backend not in BACKENDS:
        raise MeasurementError(f"--backend {r.backend!r}: expected one of {', '.join(BACKENDS)}")
    if r.nproc is not None and r.nproc < 1:
        raise MeasurementError(f"--nproc {r.nproc}: expected at least 1")
    if r.out is not None and (problem := profile_suffix_problem(r.out)):  # the CLI refuses it at parse time already
        raise MeasurementError(f"--out {r.out}: {problem}")
    run_only = _run_options_given(r)
    if r.from_files and run_only:
        raise MeasurementError(f"--from compares saved results and runs nothing: drop {' / '.join(run_only)}, or "
                               f"drop --from")
    if r.skip_layer and r.nproc == 1 and not r.from_files:  # before any node detection (torch) is needed
        raise _nothing_to_measure("--nproc 1")
    if r.skip_layer and (r.tp or r.emulate_tp):
        option = "--tp" if r.tp else "--emulate-tp"
        raise MeasurementError(f"{option} picks the TP degrees of the layer, which --skip-layer leaves out: drop "
                               f"{option}, or drop --skip-layer")


def _nothing_to_measure(ranks: str) -> MeasurementError:
    """--skip-layer runs the collectives alone (no layer, no kernel table), which one rank cannot."""
    return MeasurementError(f"--skip-layer on {ranks} measures nothing: it runs only collectives, which need 2 or "
                            f"more ranks; drop --skip-layer, or pass --nproc 2 or more")


def _run_options_given(r: MeasureRequest) -> list[str]:
    """The options that shape a run, given away from their defaults (they mean nothing with --from)."""
    d = MeasureRequest()
    given = [("--tp", r.tp is not None), ("--emulate-tp", r.emulate_tp is not None), ("--nproc", r.nproc is not None),
             ("--quick", r.quick), ("--backend", r.backend is not None), ("--timeout", r.timeout_s != d.timeout_s),
             ("--threads", r.threads != d.threads), ("--skip-layer", r.skip_layer),
             ("--no-kernel-table", not r.kernel_table)]
    return [option for option, on in given if on]


def _profile(r: MeasureRequest, *, kind: str | None, device_name: str, gloo_ranks: int | None):
    from tpplan.hardware.loader import resolve_profile
    from tpplan.measure.devices import check_calibration_target, default_profile_for

    profile, _ = resolve_profile(r.hardware or default_profile_for(kind, device_name))
    if r.out is not None:
        check_calibration_target(measured=kind, profile_gpu=profile.gpu.name, profile_name=profile.name,
                                 force=r.force)
    if gloo_ranks and gloo_ranks > profile.gpus_per_node:
        # a CPU host runs as many ranks as asked: one "domain" of nproc ranks on loopback (fewer ranks than the
        # profile's node leave the node as it is, so the calibrated profile still plans that many)
        profile = dataclasses.replace(profile, gpus_per_node=gloo_ranks, nvlink_domain_size=gloo_ranks)
    return profile


def measure_command(r: MeasureRequest, progress=None):
    """Run (or load with --from) the measurement and return it; `progress` is a context manager factory whose
    value is called with one status line per step (the CLI passes a rich status; None = silent)."""
    from tpplan.files import check_writable, write_text_atomic
    from tpplan.measure.compare import compare
    from tpplan.measure.devices import measured_kind
    from tpplan.measure.launch import ending_on_signals
    from tpplan.measure.run import MeasureOptions, check_ranks, detect_node, plan_launches, run_workloads
    from tpplan.models.resolve import resolve_model

    _check_request(r)
    tp, emulate = parse_degrees(r.tp, "--tp"), parse_degrees(r.emulate_tp, "--emulate-tp")
    for path, option in ((r.out, "--out"), (r.save_raw, "--save-raw")):
        if path is not None:
            check_writable(path, force=r.force, option=option)
    spec = resolve_model(r.model).spec
    if r.from_files:
        results, notes = _load(r.from_files), []
        env = results[0]["environment"]
        backend, on_gpu = env.get("backend") or "gloo", env.get("backend") == "nccl"
        kind = measured_kind(backend=backend, device_names=env.get("device_names") or [], on_gpu=on_gpu)
        ranks = max((res["environment"].get("world_size") or 1 for res in results), default=1)
        profile = _profile(r, kind=kind, device_name=", ".join(env.get("device_names") or []),
                           gloo_ranks=None if on_gpu else ranks)  # the largest group that ran (a real --tp layer)
        dtype = r.dtype or _recorded_dtype(results) or ("bf16" if on_gpu else "fp32")
    else:
        node = _node(r.backend, detect_node)
        nproc = r.nproc or (node.device_count if node.on_gpu else 2)
        if r.skip_layer and nproc == 1:  # the default on a one-GPU node (an explicit --nproc 1 is refused above)
            raise _nothing_to_measure("one rank (this node's one GPU)")
        dtype = r.dtype or ("bf16" if node.on_gpu else "fp32")
        kind = measured_kind(backend=node.backend, device_names=node.device_names, on_gpu=node.on_gpu)
        profile = _profile(r, kind=kind, device_name=", ".join(node.device_names),
                           gloo_ranks=None if node.on_gpu else nproc)
        notes = check_ranks(node, nproc)
        opts = MeasureOptions(model=spec, nproc=nproc, backend=node.backend, quick=r.quick, dtype=dtype,
                              tp_degrees=tp, emulate_tp=emulate, timeout_s=r.timeout_s, threads=r.threads,
                              skip_layer=r.skip_layer, kernel_table=r.kernel_table, fail_rank=r.fail_rank)
        plan_launches(opts)  # a degree the model or --nproc refuses: one error line before any warning or rank
        for line in notes:  # said before the run too: an oversubscribed run may time out before it can report
            _warn(line)
        with (progress or _silent)() as say, ending_on_signals():
            try:
                results, skipped = run_workloads(opts, progress=say)
            except MeasurementError as exc:  # a timeout of an oversubscribed run says why it may have been slow
                if notes and "still running" in str(exc):
                    raise MeasurementError(f"{exc}; {notes[0]}") from exc
                raise
        notes += skipped
        backend = node.backend
    if r.save_raw is not None:
        write_text_atomic(r.save_raw, json.dumps(results), force=r.force, option="--save-raw")
    origin = "--dtype" if r.dtype or not r.from_files else "the dtype recorded in the --from files,"
    m = compare(results, model=spec, profile=profile, dtype=dtype, backend=backend, notes=notes, dtype_origin=origin)
    if r.out is not None:
        m = _write_profile(m, r, base=profile, write=write_text_atomic)
    return m


def _node(backend: str | None, detect):
    try:
        return detect(backend)
    except ImportError as exc:
        raise TpplanError("tpplan measure needs torch: pip install 'tpplan[measure]'") from exc


def _load(paths: tuple[Path, ...]) -> list[dict]:
    from tpplan.measure.compare import load_results

    return load_results(list(paths))


def _recorded_dtype(results: list[dict]) -> str | None:
    return next((r["dtype"] for r in results if r.get("dtype")), None) or next(
        (it["dtype"] for r in results for it in r["items"] if it.get("dtype") in MEASURE_DTYPE_BYTES), None)


def _write_profile(m, r: MeasureRequest, *, base, write):
    from tpplan.hardware.loader import load_profile_text
    from tpplan.hardware.writer import profile_to_yaml
    from tpplan.measure.compare import calibrated_profile

    command = "tpplan " + " ".join(shlex.quote(a) for a in r.argv[1:])
    text = profile_to_yaml(calibrated_profile(m, base=base, command=command), omit_defaulted=True)
    try:
        load_profile_text(text, origin=str(r.out))
    except TpplanError as exc:
        raise MeasurementError(f"the calibrated profile does not validate ({exc}); not written") from exc
    write(r.out, text, force=r.force)
    return dataclasses.replace(m, summary=dataclasses.replace(m.summary, calibrated_profile=str(r.out)))


def _warn(line: str) -> None:
    import warnings

    from tpplan.errors import MeasureWarning

    warnings.warn(line, MeasureWarning, stacklevel=2)


@contextlib.contextmanager
def _silent():
    yield lambda _line: None

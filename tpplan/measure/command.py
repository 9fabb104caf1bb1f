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


def _profile_for(node, hardware: str | None, nproc: int):
    from tpplan.hardware.loader import resolve_profile
    from tpplan.measure.run import default_profile_name

    profile, _ = resolve_profile(hardware or default_profile_name(node))
    if node.backend == "gloo" and nproc != profile.gpus_per_node:
        # a CPU host runs as many ranks as asked: one "domain" of nproc ranks on loopback
        profile = dataclasses.replace(profile, gpus_per_node=nproc, nvlink_domain_size=nproc)
    return profile


def measure_command(*, model: str, hardware: str | None, nproc: int | None, quick: bool, dtype: str | None,
                    tp: str | None, timeout: float, threads: int, skip_layer: bool, from_files: list[Path] | None,
                    save_raw: Path | None, out: Path | None, force: bool, fail_rank: int | None,
                    argv: list[str], progress=None):
    """Run (or load with --from) the measurement and return it; `progress` is a context manager factory whose
    value is called with one status line per step (the CLI passes a rich status; None = silent)."""
    from tpplan.files import check_writable, write_text_atomic
    from tpplan.hardware.writer import profile_to_yaml
    from tpplan.measure.run import (
        MeasureOptions,
        calibrated_profile,
        check_ranks,
        compare,
        detect_node,
        load_results,
        run_workloads,
    )
    from tpplan.models.resolve import resolve_model

    for path in (out, save_raw):
        if path is not None:
            check_writable(path, force=force)
    spec = resolve_model(model).spec
    try:
        node = detect_node()
    except ImportError as exc:
        raise TpplanError("tpplan measure needs torch: pip install 'tpplan[measure]'") from exc
    nproc = nproc or (node.device_count if node.backend == "nccl" else 2)
    dtype = dtype or ("bf16" if node.backend == "nccl" else "fp32")
    if dtype not in MEASURE_DTYPE_BYTES:
        raise TpplanError(f"--dtype {dtype!r}: measure runs {', '.join(MEASURE_DTYPE_BYTES)}")
    profile = _profile_for(node, hardware, nproc)
    notes = check_ranks(node, nproc) if not from_files else []
    command = "tpplan " + " ".join(shlex.quote(a) for a in argv[1:])
    if from_files:
        results = load_results(from_files)
        backend = results[0]["environment"].get("backend") or node.backend
    else:
        degrees = [int(x) for x in tp.split(",")] if tp else None
        opts = MeasureOptions(model=spec, nproc=nproc, backend=node.backend, quick=quick, dtype=dtype,
                              tp_degrees=degrees, timeout_s=timeout, threads=threads, skip_layer=skip_layer,
                              fail_rank=fail_rank)
        with (progress or _silent)() as say:
            results, skipped = run_workloads(opts, progress=say)
        notes += skipped
        backend = node.backend
    if save_raw is not None:
        write_text_atomic(save_raw, json.dumps(results), force=force)
    m = compare(results, model=spec, profile=profile, dtype=dtype, backend=backend, notes=notes)
    if out is not None:
        from tpplan.hardware.loader import load_profile_text

        text = profile_to_yaml(calibrated_profile(m, base=profile, command=command))
        try:
            load_profile_text(text, origin=str(out))
        except TpplanError as exc:
            raise MeasurementError(f"the calibrated profile does not validate ({exc}); not written") from exc
        write_text_atomic(out, text, force=force)
        m.summary["calibrated_profile"] = str(out)
    return m


@contextlib.contextmanager
def _silent():
    yield lambda _line: None

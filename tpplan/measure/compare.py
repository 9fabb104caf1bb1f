"""Join the kernels' results with predictions, calibrate on part of them, and report the error before and
after on held-out items. Sign convention: error = (predicted - measured) / measured, so a negative error means
the model predicts too fast.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import statistics
from dataclasses import field
from pathlib import Path
from typing import Any, Literal

from tpplan.errors import MeasurementError
from tpplan.files import load_json
from tpplan.hardware.kernel_table import KernelTable
from tpplan.hardware.profile import HardwareProfile
from tpplan.measure.calibrate import Fit, calibrate, measured_s
from tpplan.measure.predict import COLLECTIVE_KINDS, predict_item
from tpplan.measure.shapes import LayerShape, recorded_shape
from tpplan.measure.table import build_table, held_out_interpolation_error_pct
from tpplan.measure.validate import check_results
from tpplan.models.spec import ModelSpec
from tpplan.records import record

SIGN_CONVENTION = "error = (predicted - measured) / measured; negative means the model predicts too fast"
TABLE_KINDS = ("kernel_matmul", "kernel_attention")
"""Items that build the per-kernel table rather than being compared one by one."""


@record
class MeasuredItem:
    """One measured thing and its predictions (seconds, or bytes for memory items)."""

    kind: str
    unit: Literal["s", "bytes"]
    params: dict[str, Any]
    """What the kernel recorded: tp, bytes, tokens, mode, name, m/n/k, timing, p25_s, median_s, ..."""
    measured: float | None
    predicted: float | None
    predicted_after: float | None
    held_out: bool
    error_pct: float | None
    error_pct_after: float | None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        u = self.unit
        return {**self.params, "kind": self.kind, f"predicted_{u}": self.predicted, f"measured_{u}": self.measured,
                f"predicted_after_calibration_{u}": self.predicted_after, "held_out": self.held_out,
                "error_pct": self.error_pct, "error_pct_after": self.error_pct_after,
                **({"error_note": self.note} if self.note else {})}


@record
class KindSummary:
    items: int
    held_out: int
    median_abs_error_pct_before: float | None
    """Over all the kind's timed items."""
    median_abs_error_pct_after: float | None
    """Over its held-out items only (the fit never saw them)."""
    median_abs_error_pct_before_held_out: float | None = None
    """Over the same held-out items before calibration: what `median_abs_error_pct_after` compares with."""


@record
class MeasureSummary:
    median_abs_error_pct_before: float | None
    median_abs_error_pct_before_held_out: float | None
    median_abs_error_pct_after: float | None
    by_kind: dict[str, KindSummary]
    held_out_items: int
    layer_overhead_s: dict[str, float]
    kernel_fixed_time_s: float
    kernel_table_held_out_error_pct: float | None
    calibrated_profile: str | None = None
    sign_convention: str = SIGN_CONVENTION


@record
class Measurement:
    environment: dict[str, Any]
    items: tuple[MeasuredItem, ...]
    summary: MeasureSummary
    checks: tuple[dict[str, Any], ...] = ()
    notes: tuple[str, ...] = ()
    results: tuple[dict[str, Any], ...] = ()
    """The kernels' JSON objects as --save-raw writes them (so `--from` reads this JSON too)."""
    calibrated: HardwareProfile | None = None
    kernel_table: KernelTable | None = field(default=None)


def _error(predicted: float | None, measured: float | None) -> tuple[float | None, str]:
    if predicted is None or not measured:
        return None, ""
    if predicted == 0:
        return None, "prediction is zero by construction; no error reported"
    return 100 * (predicted - measured) / measured, ""


def _item(it: dict, profile: HardwareProfile, fit: Fit, shape: LayerShape | None, dtype: str, *,
          held_out: bool) -> MeasuredItem:
    memory = it["kind"] == "memory"
    before = predict_item(profile, it, shape=shape, dtype=dtype)
    after = predict_item(fit.profile, it, shape=shape, dtype=dtype)
    measured = it.get("measured_bytes") if memory else measured_s(it)
    err, note = _error(before, measured)
    err_after, _ = _error(after, measured)
    params = {k: v for k, v in it.items() if k not in ("measured_bytes", "measured_s")}
    if memory:  # a size, not a time: the key every item carries says so (DESIGN.md §6 items)
        params.setdefault("timing", f"not timed: bytes from {it.get('allocator') or 'the shard tensor sizes'}")
    return MeasuredItem(kind=it["kind"], unit="bytes" if memory else "s", params=params, measured=measured,
                        predicted=before, predicted_after=after, held_out=held_out, error_pct=err,
                        error_pct_after=err_after, note=note)


def _median_abs(values: list[float | None]) -> float | None:
    real = [abs(v) for v in values if v is not None]
    return statistics.median(real) if real else None


def _summary(items: tuple[MeasuredItem, ...], fit: Fit, table: KernelTable) -> MeasureSummary:
    timed = [it for it in items if it.unit == "s" and it.error_pct is not None]
    held = [it for it in timed if it.held_out]
    by_kind = {}
    for kind in sorted({it.kind for it in timed}):
        k_all = [it for it in timed if it.kind == kind]
        k_held = [it for it in k_all if it.held_out]
        by_kind[kind] = KindSummary(items=len(k_all), held_out=len(k_held),
                                    median_abs_error_pct_before=_median_abs([i.error_pct for i in k_all]),
                                    median_abs_error_pct_after=_median_abs([i.error_pct_after for i in k_held]),
                                    median_abs_error_pct_before_held_out=_median_abs([i.error_pct for i in k_held]))
    return MeasureSummary(
        median_abs_error_pct_before=_median_abs([it.error_pct for it in timed]),
        median_abs_error_pct_before_held_out=_median_abs([it.error_pct for it in held]),
        median_abs_error_pct_after=_median_abs([it.error_pct_after for it in held]), by_kind=by_kind,
        held_out_items=len(held), layer_overhead_s=dict(table.layer_overhead_s),
        kernel_fixed_time_s=table.kernel_fixed_time_s,
        kernel_table_held_out_error_pct=held_out_interpolation_error_pct(table))


def _check_tiers(profile: HardwareProfile, items: list[dict]) -> None:
    """Every measured collective's group must fall in a tier the profile describes: it is predicted and fitted
    there (a group larger than the profile's node crosses a network the profile may not have)."""
    for it in items:
        if it["kind"] in COLLECTIVE_KINDS and it["tp"] > 1:
            tier = profile.tier_for_group(it["tp"])
            if not profile.collectives.get(tier):
                raise MeasurementError(
                    f"{it['kind']} over {it['tp']} ranks crosses the {tier} tier, which profile {profile.name} "
                    f"({profile.gpus_per_node} GPU(s) per node, no {tier} collectives) does not describe; pass "
                    f"--hardware with a profile of the node that ran it")


def compare(results: list[dict], *, model: ModelSpec, profile: HardwareProfile, dtype: str, backend: str,
            notes: list[str], dtype_origin: str = "--dtype") -> Measurement:
    """Join measurements with predictions, calibrate on part of them, report errors before and after.
    `dtype_origin` names where `dtype` came from in an error (the flag, or the files given to --from)."""
    if not results:
        raise MeasurementError("compare: no results to compare; run the kernels or pass --from files")
    if dtype not in profile.gpu.peak_flops_per_s:
        raise MeasurementError(f"{dtype_origin} {dtype}: profile {profile.name} lists no {dtype} peak "
                               f"(it has {', '.join(profile.gpu.peak_flops_per_s)}); pass --dtype with one of those "
                               f"or a --hardware profile with gpu.peak_flops.{dtype}")
    raw = [dict(it) for r in results for it in r["items"]]
    compared = [it for it in raw if it["kind"] not in TABLE_KINDS]
    _check_tiers(profile, compared)
    layer_result = next((r for r in results if r["workload"] == "tp_layer"), None)
    shape = recorded_shape(layer_result["shape"], model) if layer_result else None
    notes = list(notes) + ([shape.note] if shape and shape.note else [])
    emulated = sorted({r["emulate_tp"] for r in results if r.get("workload") == "tp_layer" and r.get("emulate_tp")})
    if emulated:  # from the results, so that --from keeps it
        notes.append(f"tp {', '.join(map(str, emulated))} emulated on one rank (rank 0's shard, compute only): "
                     f"communication was not measured and is left out of those predictions")
    if backend == "gloo":
        timed = "collective numbers describe loopback between processes, not NVLink; " if any(
            it["kind"] in COLLECTIVE_KINDS for it in compared) else ""
        notes.append(f"gloo on CPU: {timed}this run checks the plumbing and calibrates the cpu-gloo profile only")
    checks = [c for r in results for c in r.get("checks", [])]
    bad_checks = [c for c in checks if not c["passed"]]
    if bad_checks:
        c = bad_checks[0]
        raise MeasurementError(f"the sharded layer differs from the unsharded reference ({c.get('mode')}, "
                               f"{c.get('tokens')} tokens: max |diff| {c.get('max_abs_error', float('nan')):.2e}, "
                               f"above the check's tolerance; {len(bad_checks)} check"
                               f"{'s' * (len(bad_checks) != 1)} failed): the all-reduce or the GPUs give wrong "
                               f"results on this node; rerun, then check it with nccl-tests")
    wrong = [it for it in compared if it.get("correct") is False]
    if wrong:
        it = wrong[0]
        raise MeasurementError(f"a {it['kind']} of {it.get('bytes', '?')} bytes over tp={it.get('tp', '?')} returned "
                               f"a wrong result ({len(wrong)} item{'s' * (len(wrong) != 1)} wrong); the collective "
                               f"library or the node's links are faulty: rerun, then check it with nccl-tests")
    fit = calibrate(profile, compared, shape=shape, dtype=dtype, table=build_table(results, source=""))
    items = tuple(_item(it, profile, fit, shape, dtype, held_out=i in fit.held_out) for i, it in enumerate(compared))
    table = fit.profile.kernel_table
    return Measurement(environment=results[0]["environment"], items=items, summary=_summary(items, fit, table),
                       checks=tuple(checks), notes=tuple(notes + fit.notes), results=tuple(results),
                       calibrated=fit.profile, kernel_table=table)


def _yaml_key(field_name: str) -> str:
    """An Efficiency field's key in a profile's efficiency section (kernel_overhead_s -> kernel_overhead)."""
    return field_name.removesuffix("_s").removesuffix("_bytes")


def calibrated_profile(m: Measurement, *, base: HardwareProfile, command: str) -> HardwareProfile:
    """The fitted profile with the kernel table (and the fitted per-kernel / per-layer terms) and provenance. Only
    what the run fitted is credited to it: the `source` of efficiency, collectives and gpu name the fitted keys,
    tiers and rates and keep the base's words for the rest; values the base took from the defaults files and the
    run did not fit stay defaulted (not written, so they are read from those files again)."""
    today = dt.date.today().isoformat()
    env = m.environment
    where = (f"tpplan measure on {today}: {env.get('backend')} x{env.get('world_size')} on "
             f"{', '.join(env.get('device_names') or []) or 'CPU'}; torch {env.get('torch')}, CUDA {env.get('cuda')}, "
             f"NCCL {env.get('nccl')}; command: {command}")
    cal = m.calibrated
    fitted_keys = [_yaml_key(f.name) for f in dataclasses.fields(cal.efficiency)
                   if getattr(cal.efficiency, f.name) != getattr(base.efficiency, f.name)]
    fitted_tiers = [t for t, protos in cal.collectives.items() if protos != base.collectives.get(t)]
    sources = dict(base.sources)
    before = f"; the rest as before: {base.sources['efficiency']}" if base.sources.get("efficiency") else ""
    if fitted_keys:
        sources["efficiency"] = f"{where}; fitted: {', '.join(fitted_keys)}{before}"
    if fitted_tiers:
        derived = [t for t in base.defaulted.get("collectives", ()) if t not in fitted_tiers]
        stated = [t for t in cal.collectives if t not in fitted_tiers and t not in derived]
        kept = (f"; {', '.join(stated)} as before: {base.sources.get('collectives', 'the base profile')}"
                if stated else "") + (f"; {', '.join(derived)} derived from the link bandwidths "
                                      f"(hardware_profiles/defaults/collectives.yaml)" if derived else "")
        sources["collectives"] = f"{where}; fitted tiers: {', '.join(fitted_tiers)}{kept}"
    raised = [name for name, old, new in (
        ("memory_bandwidth", base.gpu.memory_bandwidth_bytes_per_s, cal.gpu.memory_bandwidth_bytes_per_s),
        *((f"peak_flops.{k}", base.gpu.peak_flops_per_s.get(k), v) for k, v in cal.gpu.peak_flops_per_s.items()))
        if new != old]
    if raised:
        sources["gpu"] = (f"{base.sources.get('gpu', 'the base profile')}; {', '.join(raised)}"
                          f" raised to the rate measured by {where}")
    # attention_decode_memory_fused is always written beside attention_decode_memory (a profile stating the one
    # without the other prices the engines with the first, tpplan.hardware.loader): never left to the defaults file
    written = {*fitted_keys, "attention_decode_memory_fused"}
    defaulted = {"kernels": tuple(k for k in base.defaulted.get("kernels", ()) if k not in written),
                 "collectives": tuple(t for t in base.defaulted.get("collectives", ()) if t not in fitted_tiers)}
    table = dataclasses.replace(m.kernel_table, source=where) if m.kernel_table else None
    description = base.description if "(calibrated " in base.description else \
        f"{base.description} (calibrated {today})"
    name = base.name if base.name.endswith("-calibrated") else f"{base.name}-calibrated"
    return dataclasses.replace(cal, name=name, description=description, sources=sources, kernel_table=table,
                               defaulted={k: v for k, v in defaulted.items() if v})


def _results_in(data: Any, path: Path) -> list[dict]:
    """Kernel JSON objects from what --save-raw writes (a list) or what `measure --format json` prints."""
    if isinstance(data, dict) and "results" in data and "summary" in data:
        data = data["results"]
    objs = data if isinstance(data, list) else [data]
    for obj in objs:
        if not isinstance(obj, dict) or "workload" not in obj or "items" not in obj:
            raise MeasurementError(f"{path}: not a tpplan measurement (expected the JSON of `tpplan measure "
                                   f"--format json`, of --save-raw, or of a kernel's --out)")
    return objs


def load_results(paths: list[Path]) -> list[dict]:
    out = []
    for p in paths:
        try:
            data = load_json(p.read_text(encoding="utf-8"), origin=str(p), error=MeasurementError)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MeasurementError(f"{p}: cannot read measurement JSON ({exc}); pass files written by the "
                                   f"kernels' --out or by tpplan measure --save-raw / --format json") from exc
        results = _results_in(data, p)
        check_results(results, p)
        out += results
    if not out:
        raise MeasurementError("--from: the files hold no measurement; pass the JSON of tpplan measure")
    return out

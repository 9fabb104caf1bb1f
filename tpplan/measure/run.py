"""`tpplan measure`: detect the node, launch the workloads, compare with predictions, calibrate, write a profile."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tpplan.errors import MeasurementError
from tpplan.hardware.profile import HardwareProfile
from tpplan.measure.calibrate import calibrate
from tpplan.measure.launch import launch
from tpplan.measure.predict import predict_item
from tpplan.measure.shapes import CPU_MAX_HIDDEN, LayerShape, layer_shape, recorded_shape
from tpplan.models.dtypes import MEASURE_DTYPE_BYTES
from tpplan.models.spec import ModelSpec
from tpplan.units import MiB, bytes_to_gib

GPU_PROFILES = {"H100": "dgx-h100", "H200": "hgx-h200", "B200": "dgx-b200", "A100": "dgx-a100-80g", "L40S": "l40s-pcie",
                "L4": "l4", "A10G": "a10g", "4090": "rtx-4090", "MI300X": "mi300x"}
NCCL_MULTI_RANK = (2, 30)
"""NCCL 2.30+ runs two ranks on one GPU with NCCL_MULTI_RANK_GPU_ENABLE=1 (FACTS.md §6)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    backend: str
    device_count: int
    device_names: list[str]
    nccl_version: tuple[int, ...] | None


@dataclass(kw_only=True)
class MeasureOptions:
    model: ModelSpec
    nproc: int
    backend: str
    quick: bool = False
    dtype: str = "fp32"
    tp_degrees: list[int] | None = None
    timeout_s: float = 120.0
    threads: int = 1
    skip_layer: bool = False
    fail_rank: int | None = None


@dataclass(kw_only=True)
class Measurement:
    environment: dict
    items: list[dict]
    summary: dict
    checks: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    calibrated: HardwareProfile | None = None


def detect_node() -> Node:
    import torch

    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        return Node(backend="nccl", device_count=n, device_names=[torch.cuda.get_device_name(i) for i in range(n)],
                    nccl_version=tuple(torch.cuda.nccl.version()))
    return Node(backend="gloo", device_count=0, device_names=[], nccl_version=None)


def default_profile_name(node: Node) -> str:
    if node.backend == "gloo":
        return "cpu-gloo"
    name = node.device_names[0] if node.device_names else ""
    return next((p for key, p in GPU_PROFILES.items() if key in name), "dgx-h100")


def check_ranks(node: Node, nproc: int) -> list[str]:
    """Refuse more NCCL ranks than GPUs unless NCCL >= 2.30 and NCCL_MULTI_RANK_GPU_ENABLE=1 (then warn)."""
    if node.backend != "nccl" or nproc <= node.device_count:
        return []
    if os.environ.get("NCCL_MULTI_RANK_GPU_ENABLE") == "1" and (node.nccl_version or (0,)) >= NCCL_MULTI_RANK:
        return [f"{nproc} NCCL ranks share {node.device_count} GPU(s) (NCCL_MULTI_RANK_GPU_ENABLE=1): collective "
                f"bandwidth here describes one GPU's memory, not a link"]
    raise MeasurementError(f"--nproc {nproc} exceeds the {node.device_count} GPU(s) of this node; use at most "
                           f"{node.device_count}, or set NCCL_MULTI_RANK_GPU_ENABLE=1 with NCCL >= 2.30")


def _collective_args(o: MeasureOptions) -> list[str]:
    cpu = o.backend == "gloo"
    if o.quick:
        return ["--ops", "allreduce", "--min-bytes", "4096", "--max-bytes", str(MiB if cpu else 64 * MiB),
                "--factor", "4", "--warmup", "3", "--iters", "25", "--dtype", o.dtype, "--backend", o.backend]
    return ["--min-bytes", "4096", "--max-bytes", str(16 * MiB if cpu else 256 * MiB), "--factor", "4",
            "--warmup", "5", "--iters", "30", "--dtype", o.dtype, "--backend", o.backend]


def _token_counts(o: MeasureOptions) -> tuple[list[int], list[int]]:
    """(decode batches, prefill chunk lengths) the layer is timed at; the odd positions are held out."""
    return ([1, 4, 16], [64, 256]) if o.quick else ([1, 2, 4, 8, 16, 32, 64], [128, 512, 2048])


def _layer_args(o: MeasureOptions, shape: LayerShape) -> list[str]:
    decode, prefill = (",".join(map(str, t)) for t in _token_counts(o))
    iters = ["--warmup", "3", "--iters", "30"] if o.quick else ["--warmup", "5", "--iters", "40"]
    tol = "1e-4" if o.dtype == "fp32" else "3e-2"
    return [*shape.kernel_args(), "--decode-batch", decode, "--prefill-tokens", prefill, "--context", "256",
            "--dtype", o.dtype, "--tolerance", tol, "--backend", o.backend, *iters]


def run_workloads(o: MeasureOptions, progress: Callable[[str], None] | None = None) -> tuple[list[dict], list[str]]:
    """Launch the workloads; returns their rank-0 JSON objects and notes (skips with reasons)."""
    say = progress or (lambda _msg: None)
    fail = ["--fail-rank", str(o.fail_rank)] if o.fail_rank is not None else []
    say(f"collectives on {o.nproc} ranks ({o.backend})")
    results = [launch("collectives", _collective_args(o) + fail, nproc=o.nproc, timeout_s=o.timeout_s,
                      threads=o.threads)]
    notes: list[str] = []
    if o.skip_layer:
        return results, notes
    shape = layer_shape(o.model, max_hidden=CPU_MAX_HIDDEN if o.backend == "gloo" else None)
    degrees = o.tp_degrees or ([o.nproc] if o.quick else [t for t in (2, 4, 8, 16) if t <= o.nproc])
    for tp in degrees:
        if not shape.tp_ok(tp):
            notes.append(f"tp {tp} skipped: {o.model.name}'s heads / KV heads / intermediate do not divide by it")
            continue
        reason = _memory_problem(shape, tp, o)
        if reason:
            notes.append(f"tp {tp} skipped: {reason}")
            continue
        say(f"tp_layer at tp={tp}")
        results.append(launch("tp_layer", _layer_args(o, shape), nproc=tp, timeout_s=o.timeout_s, threads=o.threads))
    return results, notes


ACTIVATION_TENSORS = 4
"""Live [tokens, intermediate]-sized tensors at the MLP's peak (gate, up, their product, the reference's copy)."""


def _memory_problem(shape: LayerShape, tp: int, o: MeasureOptions) -> str | None:
    """Each rank holds the full layer (for the reference), its shard, and the MLP activations of the largest
    prefill chunk: tokens x intermediate x ACTIVATION_TENSORS elements."""
    elem = MEASURE_DTYPE_BYTES[o.dtype]
    tokens = max(_token_counts(o)[1])
    need = (shape.shard_weight_bytes(1, elem) + shape.shard_weight_bytes(tp, elem)
            + tokens * shape.intermediate * ACTIVATION_TENSORS * elem)
    if o.backend == "nccl":
        import torch

        free, _total = torch.cuda.mem_get_info()
        if need > free:
            return f"needs {bytes_to_gib(need):.1f} GiB per GPU, {bytes_to_gib(free):.1f} GiB free"
    return None


def compare(results: list[dict], *, model: ModelSpec, profile: HardwareProfile, dtype: str, backend: str,
            notes: list[str]) -> Measurement:
    """Join measurements with predictions, calibrate on part of them, report errors before and after."""
    items = [dict(it) for r in results for it in r["items"]]
    layer_result = next((r for r in results if r["workload"] == "tp_layer"), None)
    shape = recorded_shape(layer_result["shape"], model) if layer_result else None
    if shape and shape.note:
        notes.append(shape.note)
    if backend == "gloo":
        notes.append("gloo on CPU: collective numbers describe loopback between processes, not NVLink; this run "
                     "checks the plumbing and calibrates the cpu-gloo profile only")
    fit = calibrate(profile, items, shape=shape, dtype=dtype)
    for i, it in enumerate(items):
        _annotate(it, profile, fit, shape, dtype, held_out=i in fit.held_out)
    env = results[0]["environment"]
    checks = layer_result["checks"] if layer_result else []
    failed = [c for c in checks if not c["passed"]] + [it for it in items if it.get("correct") is False]
    if failed:
        raise MeasurementError(f"a sharded result differs from the unsharded reference or a collective returned a "
                               f"wrong value: {failed[0]}")
    summary = _summary(items, fit)
    return Measurement(environment=env, items=items, summary=summary, checks=checks, notes=notes + fit.notes,
                       calibrated=fit.profile)


def _annotate(it: dict, profile, fit, shape, dtype: str, *, held_out: bool) -> None:
    before = predict_item(profile, it, shape=shape, dtype=dtype)
    overhead = fit.layer_overhead_s.get(it.get("mode"), 0.0)
    after = predict_item(fit.profile, it, shape=shape, dtype=dtype, layer_overhead_s=overhead)
    measured = it.get("measured_bytes") if it["kind"] == "memory" else it.get("p25_s")
    unit = "bytes" if it["kind"] == "memory" else "s"
    it[f"predicted_{unit}"], it[f"measured_{unit}"] = before, measured
    it["predicted_after_calibration_" + unit] = after
    it["held_out"] = held_out
    it["error_pct"] = None if before is None or not measured else 100 * (before - measured) / measured
    it["error_pct_after"] = None if after is None or not measured else 100 * (after - measured) / measured


def _median_abs(values: list[float]) -> float | None:
    return statistics.median(abs(v) for v in values) if values else None


def _summary(items: list[dict], fit) -> dict:
    timed = [it for it in items if it["kind"] != "memory" and it["error_pct"] is not None]
    held = [it for it in timed if it["held_out"]]
    per_kind = {}
    for kind in sorted({it["kind"] for it in timed}):
        k_all = [it for it in timed if it["kind"] == kind]
        k_held = [it for it in k_all if it["held_out"]]
        per_kind[kind] = {"items": len(k_all),
                          "median_abs_error_pct_before": _median_abs([i["error_pct"] for i in k_all]),
                          "median_abs_error_pct_after": _median_abs([i["error_pct_after"] for i in k_held]),
                          "held_out": len(k_held)}
    return {"median_abs_error_pct_before": _median_abs([it["error_pct"] for it in timed]),
            "median_abs_error_pct_before_held_out": _median_abs([it["error_pct"] for it in held]),
            "median_abs_error_pct_after": _median_abs([it["error_pct_after"] for it in held]),
            "by_kind": per_kind, "layer_overhead_s": fit.layer_overhead_s, "held_out_items": len(held),
            "calibrated_profile": None}


def calibrated_profile(m: Measurement, *, base: HardwareProfile, command: str) -> HardwareProfile:
    today = dt.date.today().isoformat()
    env = m.environment
    where = (f"tpplan measure on {today}: {env.get('backend')} x{env.get('world_size')} on "
             f"{', '.join(env.get('device_names') or []) or 'CPU'}; torch {env.get('torch')}, CUDA {env.get('cuda')}, "
             f"NCCL {env.get('nccl')}; command: {command}")
    sources = {**base.sources, "collectives": where, "efficiency": where}
    desc = f"{base.description} (calibrated {today})"
    return dataclasses.replace(m.calibrated, name=f"{base.name}-calibrated", description=desc, sources=sources)


def load_results(paths: list[Path]) -> list[dict]:
    out = []
    for p in paths:
        try:
            data = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise MeasurementError(f"{p}: cannot read measurement JSON ({exc}); pass files written by the "
                                   f"kernels' --out or by tpplan measure --save-raw") from exc
        for obj in data if isinstance(data, list) else [data]:
            if not isinstance(obj, dict) or "workload" not in obj or "items" not in obj:
                raise MeasurementError(f"{p}: not a tpplan measurement (expected 'workload' and 'items' keys)")
            out.append(obj)
    return out

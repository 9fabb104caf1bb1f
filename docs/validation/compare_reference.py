"""Compare `tpplan measure` per-layer times, and a profile's compute prediction, with the H100 reference rows.

    .venv/bin/python docs/validation/compare_reference.py --measured h100-8b.json --profile h100-calibrated.yaml

reference/h100_decode_prefill.csv is a copy of shared/reference/gpu/h100_decode_prefill.csv (one H100 SXM 80GB,
torch 2.11 + CUDA 13.0, 2026-11-23; rank 0's shard of a TP-t layer, CUDA-graph replay of distinct layers; see
shared/reference/gpu/README.md). For every decode row it prints the reference per-layer time, the per-layer time
`tpplan measure` measured for the same (model, tp, batch, context) if the JSON has it (acceptance: within 10%),
and the profile's compute-only prediction (tpplan.measure.predict: the cost model's decoder_layers with the
profile's kernel table and fitted
per-kernel / per-layer terms; acceptance after calibration: within 8%). Error = (x - reference) / reference.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

from tpplan.hardware.loader import resolve_profile
from tpplan.measure.predict import predict_layer_s
from tpplan.measure.shapes import layer_shape
from tpplan.models.resolve import resolve_model
from tpplan.units import US

HERE = Path(__file__).parent


def measured_layers(path: Path | None) -> dict[tuple, float]:
    """(tp, mode, batch, context) -> seconds per layer, from `measure --format json` or `--save-raw` output."""
    if path is None:
        return {}
    data = json.loads(path.read_text())
    results = data["results"] if isinstance(data, dict) else data
    out = {}
    for r in results:
        for it in r["items"]:
            if it["kind"] == "layer" and it["mode"] == "decode":
                out[(it["tp"], it["batch"], it["context"])] = it["measured_s"]
    return out


def reference_gemm_table(profile, rows: list[dict], *, model: str):
    """The profile with the reference GEMM table (reference/h100_gemm.csv) as its kernel table, and the decode
    per-layer overhead fitted as the median residual on every other reference row (the rest are held out)."""
    import dataclasses

    from tpplan.hardware.kernel_table import KernelTable, MatmulCurve

    curves: dict[tuple, list[tuple[int, float]]] = {}
    for r in csv.DictReader((HERE / "reference" / "h100_gemm.csv").open()):
        curves.setdefault((int(r["N"]), int(r["K"]), r["dtype"]), []).append((int(r["M"]), float(r["us_per_call"])))
    matmul = tuple(MatmulCurve(n=n, k=k, dtype=d, tokens=tuple(m for m, _ in sorted(p)),
                               time_s=tuple(t * US for _, t in sorted(p))) for (n, k, d), p in curves.items())
    table = KernelTable(source="reference/h100_gemm.csv", matmul=matmul)
    with_table = dataclasses.replace(profile, kernel_table=table)
    shape = layer_shape(resolve_model(model).spec, max_hidden=None)
    residuals = [float(r["per_layer_us"]) * US - predict_layer_s(
        with_table, shape, tp=int(r["tp"]), tokens=int(r["batch"]), mode="decode", context=int(r["context"]),
        dtype="bf16", compute_only=True) for r in rows[::2]]
    overhead = statistics.median(residuals)
    return dataclasses.replace(with_table, kernel_table=dataclasses.replace(table, layer_overhead_s={
        "decode": overhead})), overhead


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--measured", type=Path, default=None, help="JSON of tpplan measure (one model)")
    p.add_argument("--model", default="llama-8b")
    p.add_argument("--profile", default="dgx-h100", help="profile to predict with (e.g. the calibrated one)")
    p.add_argument("--reference-gemm-table", action="store_true",
                   help="predict with the reference GEMM table as the kernel table; per-layer overhead fitted on "
                        "every other row, errors reported on the held-out rows only")
    args = p.parse_args()
    spec = resolve_model(args.model).spec
    profile, _ = resolve_profile(args.profile)
    rows = [r for r in csv.DictReader((HERE / "reference" / "h100_decode_prefill.csv").open())
            if r["model"] == args.model and r["mode"] == "decode"]
    if args.reference_gemm_table:
        profile, overhead = reference_gemm_table(profile, rows, model=args.model)
        print(f"fitted decode per-layer overhead {overhead / US:.1f} us on {len(rows[::2])} rows; held out below")
        rows = rows[1::2]
    shape = layer_shape(spec, max_hidden=None)
    measured = measured_layers(args.measured)
    errors: dict[str, list[float]] = {"measured": [], "predicted": []}
    print(f"{'tp':>3} {'batch':>5} {'ctx':>5} {'ref us':>8} {'meas us':>8} {'err':>7} {'pred us':>8} {'err':>7}")
    for row in rows:
        tp, batch, ctx, ref = int(row["tp"]), int(row["batch"]), int(row["context"]), float(row["per_layer_us"]) * US
        # the reference's cache holds `context` tokens and the new one; tp_layer's --context counts the same way
        pred = predict_layer_s(profile, shape, tp=tp, tokens=batch, mode="decode", context=ctx, dtype="bf16",
                               compute_only=True)
        meas = measured.get((tp, batch, ctx))
        cells = [f"{tp:>3} {batch:>5} {ctx:>5} {ref / US:8.1f}"]
        if meas is not None:
            errors["measured"].append(100 * (meas - ref) / ref)
            cells.append(f"{meas / US:8.1f} {errors['measured'][-1]:+6.1f}%")
        else:
            cells.append(f"{'-':>8} {'-':>7}")
        errors["predicted"].append(100 * (pred - ref) / ref)
        cells.append(f"{pred / US:8.1f} {errors['predicted'][-1]:+6.1f}%")
        print(" ".join(cells))
    for what, errs in errors.items():
        if errs:
            worst = max(abs(e) for e in errs)
            print(f"{what}: median |error| {statistics.median(abs(e) for e in errs):.1f}%, max {worst:.1f}%")


if __name__ == "__main__":
    main()

"""Compare `tpplan measure` per-layer times, and a profile's compute prediction, with the H100 reference rows.

    .venv/bin/python docs/validation/compare_reference.py --measured h100-8b.json --profile h100-calibrated.yaml

reference/h100_decode_prefill.csv is a copy of shared/reference/gpu/h100_decode_prefill.csv (one H100 SXM 80GB,
torch 2.11 + CUDA 13.0, 2026-11-23; rank 0's shard of a TP-t layer, CUDA-graph replay of distinct layers; see
shared/reference/gpu/README.md). For every decode row it prints the reference per-layer time, the per-layer time
`tpplan measure` measured for the same (model, tp, batch, context) if the JSON has it (acceptance: within 10%),
and the profile's compute-only prediction (tpplan.measure.predict with the profile's kernel table and fitted
per-kernel / per-layer terms; acceptance after calibration: within 8%). Error = (x - reference) / reference.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

from tpplan.hardware.loader import resolve_profile
from tpplan.measure.predict import Physics, predict_layer_s
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--measured", type=Path, default=None, help="JSON of tpplan measure (one model)")
    p.add_argument("--model", default="llama-8b")
    p.add_argument("--profile", default="dgx-h100", help="profile to predict with (e.g. the calibrated one)")
    args = p.parse_args()
    spec = resolve_model(args.model).spec
    profile, _ = resolve_profile(args.profile)
    table = profile.kernel_table
    physics = Physics(kernel_fixed_time_s=table.kernel_fixed_time_s if table else 0.0,
                      layer_overhead_s=dict(table.layer_overhead_s) if table else {})
    shape = layer_shape(spec, max_hidden=None)
    measured = measured_layers(args.measured)
    errors: dict[str, list[float]] = {"measured": [], "predicted": []}
    print(f"{'tp':>3} {'batch':>5} {'ctx':>5} {'ref us':>8} {'meas us':>8} {'err':>7} {'pred us':>8} {'err':>7}")
    for row in csv.DictReader((HERE / "reference" / "h100_decode_prefill.csv").open()):
        if row["model"] != args.model or row["mode"] != "decode":
            continue
        tp, batch, ctx, ref = int(row["tp"]), int(row["batch"]), int(row["context"]), float(row["per_layer_us"]) * US
        # the reference's cache holds `context` tokens and the new one; tp_layer's --context counts the same way
        pred = predict_layer_s(profile, shape, tp=tp, tokens=batch, mode="decode", context=ctx, dtype="bf16",
                               compute_only=True, physics=physics)
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

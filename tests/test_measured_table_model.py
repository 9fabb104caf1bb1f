"""A profile's measured `kernel_table` (written by `tpplan measure --out`) drives the cost model that `recommend`
and `sweep` run: shard matmuls interpolated in M from the user's own curves, and the fitted per-layer overhead
added per mode (issue 11 item 4, issue 15 item 1). The expected differences below follow from the table alone:
shifting every curve by a constant adds exactly layers x matmuls-per-layer x shift to a step's compute."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tpplan.cost.coefficients import coefficients, shard_matmul_shapes
from tpplan.cost.step import decode_step, mixed_step, prefill
from tpplan.hardware.kernel_table import KernelTable, MatmulCurve, interpolate_s
from tpplan.hardware.loader import load_builtin
from tpplan.hardware.writer import profile_to_yaml
from tpplan.models.resolve import resolve_model
from tpplan.planner.plan import recommend
from tpplan.planner.sweep import sweep

TOKENS = (1, 16, 256, 4096)
SHIFT_S = 3e-6


def _table(spec, *, tp: int, shift_s: float = 0.0, dtype: str = "bf16", drop: int | None = None,
           layer_overhead_s: dict | None = None) -> KernelTable:
    """Curves for the model's shard shapes: 10 us flat to M = 16, then linear to 40 / 400 us (+ shift)."""
    shapes = [s for bucket in shard_matmul_shapes(spec, tp=tp).values() for s in bucket]
    curves = tuple(MatmulCurve(n=n, k=k, dtype=dtype, tokens=TOKENS,
                               time_s=tuple(t + shift_s for t in (10e-6, 10e-6, 40e-6, 400e-6)))
                   for i, (n, k) in enumerate(shapes) if i != drop)
    return KernelTable(source="test", matmul=curves, layer_overhead_s=layer_overhead_s or {})


def _with(profile, table):
    return dataclasses.replace(profile, kernel_table=table)


def test_interpolation_is_the_same_for_floats_and_arrays():
    xs, ys = (1, 8, 64, 512), (2.0, 3.0, 11.0, 60.0)
    points = [0.25, 1, 3, 8, 8.5, 63, 64, 100, 512, 1000, 5000]
    scalar = [interpolate_s(xs, ys, x) for x in points]
    assert np.allclose(interpolate_s(xs, ys, np.array(points)), scalar, rtol=1e-12)
    assert scalar[:2] == pytest.approx([2.0, 2.0])  # flat below the first point
    assert scalar[2] == pytest.approx(2.0 + (3 - 1) / 7)  # linear between points
    assert scalar[-1] == pytest.approx(60.0 * 5000 / 512)  # proportional above the last


@pytest.mark.parametrize("tp", [1, 2, 8])
def test_shifting_every_curve_shifts_decode_compute_by_layers_x_4(tp):
    spec, base = resolve_model("llama-8b").spec, load_builtin("dgx-h100")
    # sustained=False: the curves as measured (their scaling to the sustained clock: test_sustained_curves.py)
    low = coefficients(spec, _with(base, _table(spec, tp=tp)), tp=tp, sustained=False)
    high = coefficients(spec, _with(base, _table(spec, tp=tp, shift_s=SHIFT_S)), tp=tp, sustained=False)
    for batch in (1, 7, 64, 300):
        a = decode_step(low, base, batch=batch, context_len=1000).compute_s
        b = decode_step(high, base, batch=batch, context_len=1000).compute_s
        assert b - a == pytest.approx(spec.num_hidden_layers * 4 * SHIFT_S, rel=1e-9)


def test_table_values_are_the_matmul_time_at_m():
    """Against curves of zero time, each of the 4 matmuls per layer costs what its curve reads at M = batch:
    10 us at M = 16 (flat part), 25 us at M = 136 (linear between 16 and 256), 800 us at M = 8192 (400 us at the
    last point M = 4096, proportional beyond)."""
    spec, base = resolve_model("llama-8b").spec, load_builtin("dgx-h100")
    zero = dataclasses.replace(_table(spec, tp=1), matmul=tuple(
        dataclasses.replace(cv, time_s=(0.0,) * len(TOKENS)) for cv in _table(spec, tp=1).matmul))
    c_table, c_zero = (coefficients(spec, _with(base, t), tp=1, sustained=False)  # the curves as measured
                       for t in (_table(spec, tp=1), zero))
    assert len(c_table.attn_curves) == len(c_table.mlp_curves) == 2
    for batch, per_matmul_s in ((16, 10e-6), (136, 25e-6), (8192, 800e-6)):
        a = decode_step(c_table, base, batch=batch, context_len=500).compute_s
        b = decode_step(c_zero, base, batch=batch, context_len=500).compute_s
        assert a - b == pytest.approx(spec.num_hidden_layers * 4 * per_matmul_s, rel=1e-9)


def test_a_missing_shape_or_another_format_falls_back_to_the_roofline():
    spec, base = resolve_model("llama-8b").spec, load_builtin("dgx-h100")
    partial = coefficients(spec, _with(base, _table(spec, tp=2, drop=3)), tp=2)  # no curve for `down`
    assert len(partial.attn_curves) == 2 and partial.mlp_curves == ()  # the MLP bucket keeps the roofline
    for table, dtype in ((_table(spec, tp=2), "fp8"), (_table(spec, tp=2), "int4"), (_table(spec, tp=4), "bf16")):
        c = coefficients(spec, _with(base, table), tp=2, dtype=dtype)
        ref = coefficients(spec, base, tp=2, dtype=dtype)
        assert decode_step(c, base, batch=32, context_len=800).compute_s == pytest.approx(
            decode_step(ref, base, batch=32, context_len=800).compute_s, rel=1e-12)


def test_layer_overhead_is_added_per_layer_and_mode():
    spec, base = resolve_model("llama-8b").spec, load_builtin("dgx-h100")
    over = {"decode": 7e-6, "prefill": 11e-6}
    c0 = coefficients(spec, _with(base, _table(spec, tp=2)), tp=2)
    c1 = coefficients(spec, _with(base, _table(spec, tp=2, layer_overhead_s=over)), tp=2)
    layers = spec.num_hidden_layers
    d = [decode_step(c, base, batch=40, context_len=900).compute_s for c in (c0, c1)]
    p = [prefill(c, base, prompts=1, input_len=1024).compute_s for c in (c0, c1)]
    m = [mixed_step(c, base, batch=40, context_len=900, prefill_tokens=512, input_len=1024).compute_s
         for c in (c0, c1)]
    assert d[1] - d[0] == pytest.approx(layers * 7e-6, rel=1e-9)
    assert p[1] - p[0] == pytest.approx(layers * 11e-6, rel=1e-9)
    assert m[1] - m[0] == pytest.approx(layers * 11e-6, rel=1e-9)  # a mixed step runs both: the larger


def test_recommend_and_sweep_use_a_profile_files_kernel_table(tmp_path):
    spec, base = resolve_model("llama-8b").spec, load_builtin("dgx-h100")
    tables = {"low": _table(spec, tp=2), "high": _table(spec, tp=2, shift_s=SHIFT_S)}
    paths = {}
    for key, table in tables.items():
        profile = dataclasses.replace(_with(base, table), name=f"h100-{key}")
        paths[key] = tmp_path / f"h100-{key}.yaml"
        paths[key].write_text(profile_to_yaml(profile))
    plans = {k: recommend("llama-8b", hardware=str(p), gpus=2, batch=64) for k, p in paths.items()}
    tp2 = {k: next(c for c in plan.candidates if (c.tp, c.pp) == (2, 1)) for k, plan in plans.items()}
    assert tp2["high"].decode_step.compute_s - tp2["low"].decode_step.compute_s == pytest.approx(
        spec.num_hidden_layers * 4 * SHIFT_S, rel=1e-9)
    df, _ = sweep(models=["llama-8b"], hardware=[str(paths["high"])], gpus=[2], batches=[64], input_lens=[1024],
                  output_lens=[256])
    row = df[(df.tp == 2) & (df.pp == 1)].iloc[0]
    assert row["tpot_s"] == pytest.approx(tp2["high"].tpot_s, rel=1e-9)


def test_calibration_fits_attention_efficiencies_from_the_tables_attention_curves():
    """A synthetic GPU whose decode attention streams KV at 2.4 TB/s and whose causal prefill runs at 450 TFLOP/s,
    5 us per call: the fitted efficiencies are those rates over the profile's HBM bandwidth and bf16 peak."""
    from tpplan.hardware.kernel_table import AttentionCurve
    from tpplan.measure.calibrate import fit_attention

    base = load_builtin("dgx-h100")
    fixed_s, heads, kv_heads, d, batch = 5e-6, 32, 8, 128, 4
    contexts, lengths = (256, 1152, 4096, 16384), (512, 1024, 4096)
    decode = tuple(fixed_s + 2 * batch * kv_heads * c * d * 2 / 2.4e12 for c in contexts)
    pre = tuple(fixed_s + 4 * n * n / 2 * heads * d / 450e12 for n in lengths)
    table = KernelTable(source="test", attention=(
        AttentionCurve(mode="decode", heads=heads, kv_heads=kv_heads, head_dim=d, batch=batch, dtype="bf16",
                       lengths=contexts, time_s=decode),
        AttentionCurve(mode="prefill", heads=heads, kv_heads=kv_heads, head_dim=d, batch=1, dtype="bf16",
                       lengths=lengths, time_s=pre)))
    fitted, notes = fit_attention(base, table, fixed_s=fixed_s)
    assert fitted.efficiency.attention_decode_memory == pytest.approx(
        2.4e12 / base.gpu.memory_bandwidth_bytes_per_s, rel=1e-9)
    assert fitted.efficiency.attention_prefill_matmul == pytest.approx(450e12 / base.gpu.peak_flops_for("bf16"),
                                                                       rel=1e-9)
    assert notes == []

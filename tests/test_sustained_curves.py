"""Measured kernel-table curves under continuous load (tpplan.cost.coefficients.sustained_curve).

`tpplan measure` times short bursts at the boost clock; serving holds efficiency.sustained_clock (0.80 on
dgx-h100) of it. The curves below are the dgx-h100 burst roofline of llama-8b's TP1 shard matmuls: weight-streaming
points (bytes / bandwidth + the per-kernel time, small M) and purely compute-bound points (FLOPs / burst rate,
large M). Under load the first keep their time and the second take exactly 1 / 0.80 as long.
"""

from __future__ import annotations

import dataclasses

import pytest

from tpplan.cost.coefficients import coefficients, shard_matmul_shapes, sustained_curve
from tpplan.cost.kernels import FLOPS_PER_MAC, kernel_rates
from tpplan.cost.step import decode_step, prefill
from tpplan.hardware.kernel_table import KernelTable, MatmulCurve, interpolate_s
from tpplan.hardware.loader import load_builtin
from tpplan.models.resolve import resolve_model

MEMORY_TOKENS = (1, 16)
COMPUTE_TOKENS = (4096, 8192)
ACT_BYTES = 2  # bf16 activations


def _burst_curve(profile, *, n: int, k: int) -> MatmulCurve:
    """Memory-bound points at MEMORY_TOKENS, compute-bound ones (no fixed time) at COMPUTE_TOKENS."""
    r = kernel_rates(profile, "bf16", sustained=False)
    memory = [(n * k + m * (n + k)) * ACT_BYTES / r.memory_bytes_per_s + r.kernel_overhead_s for m in MEMORY_TOKENS]
    compute = [FLOPS_PER_MAC * m * n * k / r.matmul_flops_per_s for m in COMPUTE_TOKENS]
    return MatmulCurve(n=n, k=k, dtype="bf16", tokens=MEMORY_TOKENS + COMPUTE_TOKENS, time_s=tuple(memory + compute))


def _calibrated():
    spec, base = resolve_model("llama-8b").spec, load_builtin("dgx-h100")
    shapes = [s for bucket in shard_matmul_shapes(spec, tp=1).values() for s in bucket]
    table = KernelTable(source="test", matmul=tuple(_burst_curve(base, n=n, k=k) for n, k in shapes))
    return spec, dataclasses.replace(base, kernel_table=table)


def test_dgx_h100_holds_a_lower_clock_under_load():
    assert load_builtin("dgx-h100").efficiency.sustained_clock == pytest.approx(0.80)  # the premise of this file


def test_compute_bound_points_stretch_by_the_clock_and_memory_bound_points_do_not():
    spec, profile = _calibrated()
    clock = profile.efficiency.sustained_clock
    for burst in profile.kernel_table.matmul:
        loaded = sustained_curve(burst, profile, dtype="bf16")
        assert loaded.tokens == burst.tokens
        memory = len(MEMORY_TOKENS)
        assert loaded.time_s[:memory] == burst.time_s[:memory]  # paced by HBM: unchanged
        assert loaded.time_s[memory:] == pytest.approx([t / clock for t in burst.time_s[memory:]], rel=1e-12)


def test_no_point_stretches_by_more_than_the_clock_and_a_full_clock_changes_nothing():
    spec, profile = _calibrated()
    burst = profile.kernel_table.matmul[0]
    faster = dataclasses.replace(burst, time_s=tuple(t / 2 for t in burst.time_s))  # beats the profile's roofline
    loaded = sustained_curve(faster, profile, dtype="bf16")
    clock = profile.efficiency.sustained_clock
    assert all(t <= u <= t / clock * (1 + 1e-12) for t, u in zip(faster.time_s, loaded.time_s, strict=True))
    assert loaded.time_s[-1] == pytest.approx(faster.time_s[-1] / clock, rel=1e-12)  # the curve's own roof
    full = dataclasses.replace(profile, efficiency=dataclasses.replace(profile.efficiency, sustained_clock=1.0))
    assert sustained_curve(burst, full, dtype="bf16") is burst


def test_burst_coefficients_keep_the_curves_as_measured():
    """`tpplan measure` (and the fidelity benchmark) compare against short bursts: sustained=False."""
    spec, profile = _calibrated()
    c = coefficients(spec, profile, tp=1, sustained=False)
    assert c.attn_curves + c.mlp_curves == profile.kernel_table.matmul


@pytest.mark.parametrize("input_len", COMPUTE_TOKENS)
def test_sustained_prefill_of_a_calibrated_profile_is_slower_by_the_clock_ratio(input_len):
    """Only the curves differ between the two coefficient sets: the prefill step's compute grows by
    layers x (1 / clock - 1) x the four burst matmul times at M = prompt length."""
    spec, profile = _calibrated()
    clock = profile.efficiency.sustained_clock
    loaded = coefficients(spec, profile, tp=1)
    burst = coefficients(spec, profile, tp=1, sustained=False)
    as_measured = dataclasses.replace(loaded, attn_curves=burst.attn_curves, mlp_curves=burst.mlp_curves)
    slow = prefill(loaded, profile, prompts=1, input_len=input_len).compute_s
    fast = prefill(as_measured, profile, prompts=1, input_len=input_len).compute_s
    matmuls_s = sum(interpolate_s(cv.tokens, cv.time_s, input_len) for cv in burst.attn_curves + burst.mlp_curves)
    assert slow - fast == pytest.approx(spec.num_hidden_layers * (1 / clock - 1) * matmuls_s, rel=1e-9)
    assert slow > fast


@pytest.mark.parametrize("batch", MEMORY_TOKENS)
def test_memory_bound_decode_of_a_calibrated_profile_is_unchanged(batch):
    spec, profile = _calibrated()
    loaded = coefficients(spec, profile, tp=1)
    burst = coefficients(spec, profile, tp=1, sustained=False)
    as_measured = dataclasses.replace(loaded, attn_curves=burst.attn_curves, mlp_curves=burst.mlp_curves)
    assert decode_step(loaded, profile, batch=batch, context_len=1000).compute_s == decode_step(
        as_measured, profile, batch=batch, context_len=1000).compute_s

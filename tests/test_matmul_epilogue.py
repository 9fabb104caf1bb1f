"""Each output element of a GEMM pays a fixed epilogue (efficiency.matmul_epilogue_k K-steps): thin-K shards reach a
smaller share of the matmul rate, as one H100 measured them (benchmarks/data/h100_gemm.csv)."""

from __future__ import annotations

import csv
import dataclasses
import re
import statistics
from pathlib import Path

import pytest

from tpplan.cost.coefficients import coefficients
from tpplan.cost.kernels import gemm_time_s, kernel_rates, matmul_epilogue_k
from tpplan.hardware.loader import load_builtin
from tpplan.models.params import param_groups
from tpplan.models.resolve import resolve_model
from tpplan.models.weights import params_per_gpu
from tpplan.units import US

GEMMS = Path(__file__).resolve().parents[1] / "benchmarks/data/h100_gemm.csv"


def test_a_compute_bound_gemm_reaches_k_over_k_plus_the_epilogue_of_the_large_gemm_rate():
    rates = kernel_rates(load_builtin("dgx-h100"), "bf16", sustained=False)
    k0 = rates.matmul_epilogue_k
    assert k0 == 96
    m, n = 16384, 8192
    for k in (512, 1024, 8192):
        t = gemm_time_s(rates, m_tokens=m, n=n, k=k, bytes_per_param=2, act_bytes=2) - rates.kernel_overhead_s
        achieved = 2 * m * n * k / t
        assert achieved == pytest.approx(rates.matmul_flops_per_s * k / (k + k0), rel=1e-12)


def test_fp8_gemms_pay_their_own_epilogue_and_stated_fp4_shares_none():
    h100, b200 = load_builtin("dgx-h100").efficiency, load_builtin("dgx-b200").efficiency
    assert matmul_epilogue_k(h100, "fp8") == h100.matmul_epilogue_k_fp8 == 256
    assert matmul_epilogue_k(h100, "bf16") == h100.matmul_epilogue_k == 96
    assert b200.matmul_fp4 is not None and matmul_epilogue_k(b200, "fp4") == 0.0
    assert matmul_epilogue_k(dataclasses.replace(b200, matmul_fp4=None), "fp4") == b200.matmul_epilogue_k_fp8


@pytest.mark.parametrize("dtype", ["bf16", "fp8"])
def test_thin_shards_of_the_h100_table_no_longer_drift_with_tp(dtype):
    """Compute-bound rows (M >= 1024) of every shard shape, grouped by the TP degree of the shard: the signed median
    of each degree within 5% (without the epilogue the bf16 TP16 shards were 7.6% too fast)."""
    rates = kernel_rates(load_builtin("dgx-h100"), dtype, sustained=False)
    by_tp: dict[int, list[float]] = {}
    for r in csv.DictReader(open(GEMMS)):
        if r["dtype"] != dtype or int(r["M"]) < 1024:
            continue
        pred = gemm_time_s(rates, m_tokens=int(r["M"]), n=int(r["N"]), k=int(r["K"]),
                           bytes_per_param=2 if dtype == "bf16" else 1, act_bytes=2)
        tp = int(re.search(r"tp(\d+)", r["name"]).group(1))
        by_tp.setdefault(tp, []).append(pred / (float(r["us_per_call"]) * US) - 1)
    assert sorted(by_tp) == [1, 2, 4, 8, 16]
    for tp, errors in by_tp.items():
        assert abs(statistics.median(errors)) <= 0.05, (tp, statistics.median(errors))


def test_layer_flops_carry_one_epilogue_per_output_of_each_shard_matmul():
    """Llama-3.1-8B at TP8: the MLP's gate_up (K = 4096) and down (K = 14336 / 8 = 1792, row-parallel) each add
    2 x outputs x 96 FLOPs per token to their 2 x parameters."""
    spec = resolve_model("llama-8b").spec
    profile = load_builtin("dgx-h100")
    c = coefficients(spec, profile, tp=8, dtype="bf16")
    mlp = [g for g in param_groups(spec) if g.component == "mlp"]
    expected = 0.0
    for g in mlp:
        n = params_per_gpu(spec, g, tp=8)
        k = g.in_features // 8 if g.split == "row" else g.in_features
        expected += 2 * n + 2 * (n / k) * 96
    assert {g.in_features for g in mlp} == {4096, 14336}
    assert c.mlp_flops_per_token == pytest.approx(expected, rel=1e-12)
    plain = dataclasses.replace(profile, efficiency=dataclasses.replace(profile.efficiency, matmul_epilogue_k=0))
    assert coefficients(spec, plain, tp=8, dtype="bf16").mlp_flops_per_token == pytest.approx(
        sum(2 * params_per_gpu(spec, g, tp=8) for g in mlp), rel=1e-12)


def test_a_negative_epilogue_in_a_profile_is_refused_in_one_line(refusal, edited_profile):
    path, line = edited_profile("neg", matmul_epilogue_k=-5)
    assert refusal("recommend", "-m", "llama-70b", "--hardware", str(path)) == (
        f"Error: {path}:{line}: efficiency.matmul_epilogue_k: invalid value (got -5); expected greater than or equal "
        f"to 0")


def test_a_measured_thin_k_curve_stretches_by_the_clock_under_load():
    """A kernel-table curve measured on a thin-K shard holds its epilogue in its times; its compute-bound points
    stretch by 1 / sustained_clock under load as a wide shard's do."""
    from tpplan.cost.coefficients import sustained_curve
    from tpplan.hardware.kernel_table import MatmulCurve

    profile = load_builtin("dgx-h100")
    rates = kernel_rates(profile, "bf16", sustained=False)
    tokens = (4096, 8192)
    for k in (512, 8192):
        burst = MatmulCurve(n=8192, k=k, dtype="bf16", tokens=tokens, time_s=tuple(
            gemm_time_s(rates, m_tokens=m, n=8192, k=k, bytes_per_param=2, act_bytes=2) - rates.kernel_overhead_s
            for m in tokens))
        loaded = sustained_curve(burst, profile, dtype="bf16")
        for t, u in zip(burst.time_s, loaded.time_s, strict=True):
            assert u == pytest.approx(t / profile.efficiency.sustained_clock, rel=1e-9), k


def test_a_tied_lm_head_runs_at_the_16_bit_rate_and_epilogue_under_fp8():
    """gemma-2-9b ties its lm_head to the embedding, which no fp8 checkpoint quantizes: the head runs 16-bit."""
    spec, profile = resolve_model("gemma-2-9b").spec, load_builtin("dgx-h100")
    assert spec.tie_word_embeddings
    c = coefficients(spec, profile, tp=1, dtype="fp8")
    assert c.head_rates is not None and c.head_rates.matmul_epilogue_k == 96
    assert c.rates.matmul_epilogue_k == 256
    vocab, h = spec.vocab_size, spec.hidden_size
    assert c.head_flops_per_token == pytest.approx(2 * vocab * h + 2 * vocab * 96, rel=1e-3)


def test_the_router_is_a_matmul_with_its_epilogue():
    spec = resolve_model("mixtral").spec
    router = next(g for g in param_groups(spec) if g.component == "router")
    assert router.in_features == spec.hidden_size


def test_fp4_on_a_profile_with_its_own_fp4_share_credits_no_fp8_default():
    from tpplan.planner.plan import defaulted_in_use
    from tpplan.planner.workload import Workload

    spec, b200 = resolve_model("llama-70b").spec, load_builtin("dgx-b200")
    kernels, _ = defaulted_in_use(spec, Workload(gpus=8, dtype="fp4"), b200)
    assert "matmul_epilogue_k" in kernels
    assert "matmul_fp8" not in kernels and "matmul_epilogue_k_fp8" not in kernels


def test_training_backward_pays_the_matmul_flops_twice_but_the_epilogues_once():
    """Step compute = 2 x forward + 1 x forward without epilogues (tpplan.planner.train)."""
    from tpplan.cost.kernels import fusion_for
    from tpplan.cost.step import prefill
    from tpplan.planner import train
    from tpplan.planner.workload import Workload

    spec, profile = resolve_model("llama-8b").spec, load_builtin("dgx-h100")
    w = Workload(gpus=8, mode="train", engine="megatron", input_len=4096, batch=1).for_model(spec)
    lay = train.TrainLayout(tp=8, pp=1, replicas=1, ep=1, etp=0, moe=False)
    step, comm, _ = train._step(spec, profile, w, lay, None, sp=True, params=1, expert_params=0)

    def fwd(p):
        c = coefficients(spec, p, tp=8, pp=1, dtype=w.dtype, engine=w.engine, fusion=fusion_for("megatron"))
        return prefill(c, p, prompts=1, input_len=4096, sequence_parallel=True, every_position=True)

    with_epi, bare = fwd(profile), fwd(train._without_epilogues(profile))
    assert bare.compute_s < with_epi.compute_s
    m = train.TRAIN_MICROBATCHES_PER_STAGE
    grads = train._grad_sync_s(profile, lay, params=1, expert_params=0)
    expected = m * (2 * with_epi.compute_s + bare.compute_s + 2 * with_epi.communication_s) + grads \
        + profile.efficiency.step_overhead_s
    assert step == pytest.approx(expected, rel=1e-12)


def _machine_items(*, k0: float, flops_per_s: float, dtype: str = "bf16", seed: int = 5) -> list[dict]:
    """A seeded GPU whose matmuls cost 5 us + max(bytes at 2.5 TB/s, 2 m n (k + k0) at flops_per_s), 2% noise, over
    the four shard shapes of a Llama-8B layer at TP 1 and 4 (K = 4096, 14336, 1024, 3584)."""
    import random

    rng = random.Random(seed)
    shapes = [(6144, 4096), (4096, 4096), (28672, 4096), (4096, 14336), (1536, 4096), (4096, 1024), (7168, 4096),
              (4096, 3584)]
    items = []
    for m in (1, 16, 256, 1024, 4096, 8192):
        for n, k in shapes:
            t = 5e-6 + max((n * k + m * (n + k)) * 2 / 2.5e12, 2 * m * n * (k + k0) / flops_per_s)
            items.append({"kind": "matmul", "m": m, "n": n, "k": k, "flops": 2 * m * n * k,
                          "measured_s": t * rng.uniform(0.98, 1.02)})
    return items


@pytest.mark.parametrize("seed", [1, 5, 9])
def test_calibration_fits_the_epilogue_depth_of_the_machine_it_measured(seed):
    from tpplan.measure.calibrate import fit_matmuls

    profile = load_builtin("dgx-h100")
    fitted, t0, notes = fit_matmuls(profile, _machine_items(k0=150, flops_per_s=700e12, seed=seed), "bf16")
    assert fitted.efficiency.matmul_epilogue_k == pytest.approx(150, rel=0.25)
    assert fitted.efficiency.matmul * profile.gpu.peak_flops_for("bf16") == pytest.approx(700e12, rel=0.03)
    assert t0 == pytest.approx(5e-6, rel=0.3)
    assert any("matmul epilogue fitted" in n for n in notes)
    plain, _, _ = fit_matmuls(profile, _machine_items(k0=0, flops_per_s=700e12, seed=seed), "bf16")
    assert plain.efficiency.matmul_epilogue_k < 25  # no epilogue to find: at most noise, never negative


def test_the_epilogue_fit_does_not_depend_on_the_profiles_first_guess():
    """The rows are re-sorted into memory- and compute-bound by each fit, so a poor prior share (0.3) still finds
    the machine's depth and rate."""
    import dataclasses

    from tpplan.measure.calibrate import fit_matmuls

    base = load_builtin("dgx-h100")
    poor = dataclasses.replace(base, efficiency=dataclasses.replace(base.efficiency, matmul=0.3))
    fitted, _, _ = fit_matmuls(poor, _machine_items(k0=150, flops_per_s=700e12), "bf16")
    assert fitted.efficiency.matmul_epilogue_k == pytest.approx(150, rel=0.25)
    assert fitted.efficiency.matmul * base.gpu.peak_flops_for("bf16") == pytest.approx(700e12, rel=0.03)


def test_shapes_too_close_in_k_hold_the_profiles_depth_and_say_so():
    from tpplan.measure.calibrate import fit_matmuls

    profile = load_builtin("dgx-h100")
    close = [it for it in _machine_items(k0=150, flops_per_s=700e12) if it["k"] == 4096]
    fitted, _, notes = fit_matmuls(profile, close, "bf16")
    assert fitted.efficiency.matmul_epilogue_k == profile.efficiency.matmul_epilogue_k == 96
    assert any(n.startswith("matmul epilogue held at the profile's 96 K-steps per output: the compute-bound "
                            "matmuls") for n in notes)


def test_an_fp32_run_holds_the_profiles_epilogue_depth():
    from tpplan.measure.calibrate import fit_matmuls

    profile = load_builtin("cpu-gloo")
    fitted, _, notes = fit_matmuls(profile, _machine_items(k0=150, flops_per_s=2e12), "fp32")
    assert fitted.efficiency.matmul_epilogue_k == profile.efficiency.matmul_epilogue_k
    assert not any("epilogue" in n for n in notes)


def test_a_fitted_epilogue_round_trips_through_the_written_profile():
    from tpplan.hardware.loader import load_profile_text
    from tpplan.hardware.writer import profile_to_yaml
    from tpplan.measure.calibrate import fit_matmuls

    fitted, _, _ = fit_matmuls(load_builtin("dgx-h100"), _machine_items(k0=150, flops_per_s=700e12), "bf16")
    again = load_profile_text(profile_to_yaml(fitted), origin="test")
    assert again.efficiency.matmul_epilogue_k == pytest.approx(fitted.efficiency.matmul_epilogue_k, rel=1e-5)
    assert again.efficiency.matmul_epilogue_k_fp8 == fitted.efficiency.matmul_epilogue_k_fp8 == 256


def test_an_expert_parallel_training_step_without_epilogues_is_three_forwards():
    """With no epilogue the split (2 x forward + 1 x forward without epilogues) is the plain 3 x forward, for the
    routed experts' kernels of an EP layout too."""
    import dataclasses

    from tpplan.cost.kernels import fusion_for
    from tpplan.cost.step import prefill
    from tpplan.planner import train
    from tpplan.planner.workload import Workload

    spec, base = resolve_model("mixtral").spec, load_builtin("dgx-h100")
    profile = dataclasses.replace(base, efficiency=dataclasses.replace(base.efficiency, matmul_epilogue_k=0.0,
                                                                       matmul_epilogue_k_fp8=0.0))
    w = Workload(gpus=8, mode="train", engine="megatron", input_len=4096, batch=1).for_model(spec)
    lay = train.TrainLayout(tp=2, pp=1, replicas=4, ep=4, etp=0, moe=True)
    assert lay.folded
    x = train.ExpertParallelLayout(tp=2, ep=4, etp=lay.expert_tp, imbalance=w.moe_imbalance)
    step, _, _ = train._step(spec, profile, w, lay, x, sp=True, params=1, expert_params=1)
    c = coefficients(spec, profile, tp=2, pp=1, dtype=w.dtype, engine=w.engine, fusion=fusion_for("megatron"))
    fwd = prefill(c, profile, prompts=1, input_len=4096, sequence_parallel=True, every_position=True)
    d, d_comm = train._expert_parallel_delta(spec, profile, w, c, lay, x, tokens=4096, sp=True)
    m = train.TRAIN_MICROBATCHES_PER_STAGE
    grads = train._grad_sync_s(profile, lay, params=1, expert_params=1)
    expected = m * (3 * (fwd.compute_s + d) + 2 * (fwd.communication_s + d_comm)) + grads \
        + profile.efficiency.step_overhead_s
    assert step == pytest.approx(expected, rel=1e-12)

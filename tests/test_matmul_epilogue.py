"""Each output element of a GEMM pays a fixed epilogue (efficiency.matmul_epilogue_k K-steps): thin-K shards reach a
smaller share of the matmul rate, as one H100 measured them (benchmarks/data/h100_gemm.csv)."""

from __future__ import annotations

import csv
import dataclasses
import re
import statistics
from pathlib import Path

import pytest
import yaml

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


def test_a_negative_epilogue_in_a_profile_is_refused_in_one_line(refusal, tmp_path):
    d = yaml.safe_load((Path(__file__).resolve().parents[1] / "hardware_profiles/dgx-h100.yaml").read_text())
    d["name"], d["efficiency"]["matmul_epilogue_k"] = "neg", -5
    path = tmp_path / "neg.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "matmul_epilogue_k: -5" in t)
    assert refusal("recommend", "-m", "llama-70b", "--hardware", str(path)) == (
        f"Error: {path}:{line}: efficiency.matmul_epilogue_k: invalid value (got -5); expected greater than or equal "
        f"to 0")

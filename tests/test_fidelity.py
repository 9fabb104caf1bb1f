"""The step model against independent measurements (benchmarks/data, one H100 SXM) and the JSON contract of
the time breakdown (DESIGN.md §6)."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import pytest

from tpplan.planner.plan import recommend

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_gpu_compute_within_eight_percent_of_h100_measurements():
    import fidelity

    rows = fidelity.gpu_rows()
    errors = [r["predicted"] / r["measured"] - 1 for r in rows]
    assert len(rows) == 48
    assert statistics.median(abs(e) for e in errors) <= 0.08
    for tp in (1, 2, 4, 8):
        assert abs(statistics.median(e for r, e in zip(rows, errors, strict=True) if r["tp"] == tp)) <= 0.08


def test_breakdown_present_for_every_candidate_passing_the_rules_even_infeasible(run_cli):
    d = run_cli("recommend", "--model", "llama-70b", "--gpus", "8", "--batch", "32", "-f", "json").json()
    infeasible = [c for c in d["candidates"] if not c["feasible"]]
    assert infeasible, "TP1 x 8 replicas of a 70B model cannot fit an 80 GB GPU"
    for c in d["candidates"]:
        for key in ("decode_step", "prefill"):
            part = c[key]
            assert part["total_s"] == part["compute_s"] + part["communication_s"] + part["overhead_s"]
            assert part["compute_s"] > 0
        if c["pp"] == 1:  # PP adds stage hand-offs
            assert (c["tp"] == 1) == (c["decode_step"]["communication_s"] == 0)


def test_latency_limit_is_checked_at_the_batch_the_candidate_runs():
    # issue 10: `--batch 128 --max-tpot-ms 12` used to recommend a layout with TPOT 14.81 ms
    plan = recommend("llama-70b", gpus=8, batch=128, max_tpot_ms=12)
    for c in plan.candidates:
        if c.feasible:
            assert c.batch == 128 and c.tpot_s <= 0.012
        elif c.tpot_s and c.tpot_s > 0.012 and c.batch == 128:
            assert any("exceeds --max-tpot-ms" in r for r in c.reasons)


def test_paged_kv_concurrency_does_not_depend_on_max_model_len():
    # issue 10: llama-70b fell from 4,110 to 887 tok/s at --max-model-len 131072 for the same requests
    short = recommend("llama-70b", gpus=8).recommended
    long = recommend("llama-70b", gpus=8, max_model_len=131072).recommended
    assert long.output_tokens_per_s >= 0.9 * short.output_tokens_per_s


def test_a_measured_kernel_fixed_time_reaches_the_cost_model():
    """`tpplan measure --out` writes kernel_table.kernel_fixed_time; `recommend` on that profile uses it."""
    import dataclasses

    from tpplan.cost.kernels import kernel_rates
    from tpplan.hardware.kernel_table import KernelTable
    from tpplan.hardware.loader import load_builtin

    base = load_builtin("dgx-h100")
    measured = dataclasses.replace(base, kernel_table=KernelTable(source="test", kernel_fixed_time_s=7e-6))
    assert kernel_rates(base, "bf16").kernel_overhead_s == base.efficiency.kernel_overhead_s
    assert kernel_rates(measured, "bf16").kernel_overhead_s == 7e-6


def test_fp8_matmuls_use_their_own_efficiency_and_match_the_h100_gemm_table():
    """h100_gemm.csv (one H100 SXM): fp8 GEMMs reach 1100-1400 TFLOP/s of 1979, a smaller share of peak than bf16;
    the cost model times them from efficiency.matmul_fp8, bf16 ones from efficiency.matmul."""
    import csv
    import dataclasses

    from tpplan.cost.kernels import gemm_time_s, kernel_rates
    from tpplan.hardware.loader import load_builtin
    from tpplan.units import US

    profile = load_builtin("dgx-h100")
    e = profile.efficiency
    burst = {dtype: kernel_rates(profile, dtype, sustained=False) for dtype in ("fp8", "bf16")}
    assert burst["fp8"].matmul_flops_per_s == profile.gpu.peak_flops_for("fp8") * e.matmul_fp8
    assert burst["bf16"].matmul_flops_per_s == profile.gpu.peak_flops_for("bf16") * e.matmul
    other = dataclasses.replace(profile, efficiency=dataclasses.replace(e, matmul_fp8=e.matmul_fp8 / 2))
    assert kernel_rates(other, "fp8").matmul_flops_per_s == kernel_rates(profile, "fp8").matmul_flops_per_s / 2

    rows = [r for r in csv.DictReader(open(Path(__file__).resolve().parents[1] / "benchmarks/data/h100_gemm.csv"))
            if r["dtype"] == "fp8"]
    rates = burst["fp8"]  # the table times 20 calls per replay: a short measurement, not continuous load
    errors = {int(r["M"]): [] for r in rows}
    for r in rows:
        pred = gemm_time_s(rates, m_tokens=int(r["M"]), n=int(r["N"]), k=int(r["K"]), bytes_per_param=1,
                           act_bytes=2)
        errors[int(r["M"])].append(pred / (float(r["us_per_call"]) * US) - 1)
    assert len(rows) == 252
    assert statistics.median(abs(x) for v in errors.values() for x in v) <= 0.06
    large = [x for m, v in errors.items() if m >= 512 for x in v]  # compute-bound: the efficiency decides
    assert abs(statistics.median(large)) <= 0.05


def test_nvfp4_matmuls_use_the_fp4_share_published_for_b200():
    """efficiency.matmul_fp4: NVFP4 GEMMs on B200 reach ~3000-3400 TFLOP/s of the 9000 dense FP4 peak at large M
    (vLLM PR 20646: 3025 TFLOP/s at M=8192, N=6144, K=4096 with the activation quantization; FlashInfer PR 1979:
    3370 at M=1024, N=7168, K=4608), not the fp8 share. Profiles that do not state it keep the matmul_fp8 share."""
    import dataclasses

    from tpplan.cost.kernels import gemm_time_s, kernel_rates
    from tpplan.hardware.loader import load_builtin
    from tpplan.units import TERA

    b200 = load_builtin("dgx-b200")
    rates = kernel_rates(b200, "fp4", sustained=False)
    assert rates.matmul_flops_per_s == b200.gpu.peak_flops_for("fp4") * b200.efficiency.matmul_fp4
    # vLLM PR 20646, N=6144 K=4096 with the activation quantization (the smaller FlashInfer shape, 20 us, is
    # predicted at 2655 TFLOP/s: the 4 us per-kernel time is H100's, unmeasured on B200)
    for (m, n, k), published_tflops in (((4096, 6144, 4096), 2948), ((8192, 6144, 4096), 3025),
                                        ((16384, 6144, 4096), 3039)):
        t = gemm_time_s(rates, m_tokens=m, n=n, k=k, bytes_per_param=0.5 + 1 / 16, act_bytes=2)
        assert 2 * m * n * k / t / TERA == pytest.approx(published_tflops, rel=0.05)
    rtx = load_builtin("rtx-pro-6000-server")  # SM120: no NVFP4 GEMM measurement in its profile
    assert rtx.efficiency.matmul_fp4 is None
    assert kernel_rates(rtx, "fp4").matmul_flops_per_s == rtx.gpu.peak_flops_for("fp4") * rtx.efficiency.matmul_fp8
    fp8_share = dataclasses.replace(b200, efficiency=dataclasses.replace(b200.efficiency, matmul_fp4=None))
    assert kernel_rates(fp8_share, "fp4").matmul_flops_per_s == \
        b200.gpu.peak_flops_for("fp4") * b200.efficiency.matmul_fp8


def test_continuous_load_runs_flop_bound_kernels_at_the_sustained_clock():
    """efficiency.sustained_clock: H100 SXM at its 700 W limit holds ~1575 of 1980 MHz under continuous load
    (DeepGEMM issue 120), so serving's FLOP rates are 0.80 of a short measurement's; HBM-bound rates are not scaled.
    A profile that does not state it assumes no throttling."""
    from tpplan.cost.kernels import kernel_rates
    from tpplan.hardware.loader import load_builtin

    h100 = load_builtin("dgx-h100")
    assert h100.efficiency.sustained_clock == 0.8
    serve, burst = kernel_rates(h100, "fp8"), kernel_rates(h100, "fp8", sustained=False)
    assert serve.matmul_flops_per_s == pytest.approx(burst.matmul_flops_per_s * 0.8)
    assert serve.attention_prefill_flops_per_s == pytest.approx(burst.attention_prefill_flops_per_s * 0.8)
    assert serve.memory_bytes_per_s == burst.memory_bytes_per_s
    assert serve.attention_decode_bytes_per_s == burst.attention_decode_bytes_per_s
    l40s = load_builtin("l40s-pcie")
    assert kernel_rates(l40s, "fp8") == kernel_rates(l40s, "fp8", sustained=False)


def test_trtllm_bench_settings_follow_its_tuning_rules():
    """benchmarks/fidelity.py passes the max_batch_size / max_num_tokens trtllm-bench chose for a run
    (tensorrt_llm/bench/build/tuning.py): requests whose KV fits 0.95 x (memory - parameters x bytes), capped at
    4096, rounded up (64 at least); tokens = batch x (1 + isl / osl), 2048 at least."""
    import fidelity

    from tpplan.hardware.loader import load_builtin
    from tpplan.models.resolve import resolve_model

    h200, h100 = load_builtin("hgx-h200").gpu.memory_bytes, load_builtin("dgx-h100").gpu.memory_bytes
    small = resolve_model("llama-8b").spec  # ~8,000 requests of 256 tokens fit: capped at 4096, tokens 2 x 4096
    assert fidelity.trtllm_bench_settings(small, tp=1, pp=1, isl=128, osl=128, dtype="fp8", kv_dtype="fp8",
                                          device_bytes=h200) == (4096, 8192)
    big = resolve_model("llama-70b").spec  # ~40 requests of 2176 tokens fit on one H100: the 64 / 2048 floors
    assert fidelity.trtllm_bench_settings(big, tp=1, pp=1, isl=128, osl=2048, dtype="fp8", kv_dtype="fp8",
                                          device_bytes=h100) == (64, 2048)


def test_011_rows_use_the_build_settings_their_doc_lists():
    """v0.11.0 perf-overview, "Network Configuration Files and Settings": Llama-2-70B TP8 General 16384 tokens /
    8192 sequences, 1024 sequences at 128/2048; Llama-3-70B TP4 1024 tokens / 2048 sequences."""
    import fidelity

    row = {"engine_version": "0.11.0", "model": "LLaMA v2 70B", "isl": "128", "osl": "2048", "notes": ""}
    assert fidelity._engine_settings(row, tp=8, pp=1, dtype="fp8", kv_dtype="fp8") == {
        "max_num_seqs": 1024, "max_num_batched_tokens": 16384}
    assert fidelity._engine_settings(row | {"isl": "2048"}, tp=8, pp=1, dtype="fp8", kv_dtype="fp8") == {
        "max_num_seqs": 8192, "max_num_batched_tokens": 16384}
    assert fidelity._engine_settings(row | {"model": "LLaMA v3 70B"}, tp=4, pp=1, dtype="fp8", kv_dtype="fp8") == {
        "max_num_seqs": 2048, "max_num_batched_tokens": 1024}


def test_012_rows_use_the_trtllm_bench_lookup_table_of_that_era():
    """0.12 trtllm-bench built engines from benchmark_config.yml (per model and TP; the entry keyed by isl + osl
    if present, else "general"), not from memory like later releases' tuning.py."""
    import fidelity

    row = {"notes": "trtllm-bench build/throughput", "engine_version": "0.12.0", "model": "LLaMA v2 70B",
           "hardware": "H100-SXM-80GB", "isl": "128", "osl": "2048"}
    keyed = fidelity._engine_settings(row, tp=8, pp=1, dtype="fp8", kv_dtype="fp8")  # 128 + 2048 = 2176
    assert (keyed["max_num_seqs"], keyed["max_num_batched_tokens"]) == (1024, 16384)
    general = fidelity._engine_settings(row | {"isl": "2048"}, tp=8, pp=1, dtype="fp8", kv_dtype="fp8")
    assert (general["max_num_seqs"], general["max_num_batched_tokens"]) == (8192, 16384)
    later = fidelity._engine_settings(row | {"engine_version": "0.17"}, tp=8, pp=1, dtype="fp8", kv_dtype="fp8")
    assert (later["max_num_seqs"], later["max_num_batched_tokens"]) != (1024, 16384)  # tuning.py's memory rule


def test_measured_order_across_releases_compares_the_tables_with_each_other():
    """Two releases measuring the same cell at TP2 and TP4: one pair, agreeing only if both order the layouts
    alike by throughput per GPU (total / GPUs); names of one catalogue model in two tables count as one."""
    import fidelity

    def row(model, release, tp, total):
        return {"model": model, "hardware": "H100-SXM-80GB", "precision": "FP8", "isl": "128", "osl": "128",
                "engine_version": release, "tp": tp, "pp": 1, "measured": total}

    alike = [row("LLaMA v3.1 70B", "0.17", 2, 1000), row("LLaMA v3.1 70B", "0.17", 4, 2100),
             row("Llama 3.1 70B", "0.19.0", 2, 900), row("Llama 3.1 70B", "0.19.0", 4, 1900)]
    assert fidelity.measured_order_across_releases(alike) == {"pairs": 1, "agreement_pct": 100.0}
    crossed = alike[:3] + [row("Llama 3.1 70B", "0.19.0", 4, 1700)]  # 425 per GPU < 450: TP2 ahead in 0.19
    assert fidelity.measured_order_across_releases(crossed) == {"pairs": 1, "agreement_pct": 0.0}


def test_release_agnostic_ceiling_counts_only_the_majority_of_a_split_cell():
    """One cell (TP2 vs TP4) measured by three releases, two ordering TP4 ahead per GPU and one TP2: a prediction
    that does not know the release gets at most 2 of 3 right. A second cell, in one release, tpplan misorders: it
    counts as a misorder in a cell every release orders alike."""
    import fidelity

    def row(release, tp, measured, predicted, osl="128"):
        return {"model": "Llama 3.1 70B", "hardware": "H100-SXM-80GB", "precision": "FP8", "isl": "128",
                "osl": osl, "engine_version": release, "tp": tp, "pp": 1, "layout": "TP", "measured": measured,
                "predicted": predicted}

    split = [row("0.19.0", 2, 1000, 1000), row("0.19.0", 4, 2100, 2100),
             row("0.20.0", 2, 1000, 1000), row("0.20.0", 4, 2200, 2100),
             row("1.0", 2, 1000, 1000), row("1.0", 4, 1900, 2100)]
    agreed = [row("1.0", 2, 1000, 1000, osl="2048"), row("1.0", 4, 2100, 1900, osl="2048")]
    report = fidelity.release_agnostic_ceiling(split + agreed)
    assert report == {"pairs": 4, "ceiling_pct": 75.0, "split_cells": 1, "misordered_in_agreed_cells": 1}


def test_trtllm_rows_run_a_model_wide_sliding_window_as_full_attention():
    """TensorRT-LLM keeps every token's KV unless KvCacheConfig.max_attention_window is set (the table runs do not
    set it): Mistral 7B's model-wide 4096 window is dropped for those rows, so at 32k tokens it holds and reads the
    whole context like Llama 3.1 8B; per-layer window patterns (GPT-OSS) stay."""
    import fidelity

    from tpplan.models.kv import kv_cache_bytes_per_sequence
    from tpplan.models.resolve import resolve_model

    mistral = resolve_model("mistral-7b").spec
    plain = fidelity.trtllm_model("mistral-7b")
    assert mistral.sliding_window == 4096 and plain.sliding_window is None
    assert kv_cache_bytes_per_sequence(plain, context_len=32768) == 8 * kv_cache_bytes_per_sequence(
        mistral, context_len=32768)
    assert fidelity.trtllm_model("gpt-oss-20b") == "gpt-oss-20b"
    assert fidelity.trtllm_model("llama-8b") == "llama-8b"


def test_prefill_attention_runs_at_the_hopper_native_flash_attention_share():
    """TensorRT-LLM's context attention on Hopper is fmha_v2's TMA + warp-specialized kernels and vLLM's is
    FlashAttention-3 (FA3 design, ~1.6-1.75 x FlashAttention-2 in the FA3 paper's H100 figure):
    efficiency.attention_prefill_matmul_native 0.60 of the 16-bit peak against 0.35 for FlashAttention-2-style
    kernels (the torch harness). GPUs whose profile states no native share (A100) run every engine at
    attention_prefill_matmul; the share survives a profile written back to YAML."""
    from tpplan.cost.coefficients import coefficients
    from tpplan.cost.kernels import FUSIONS
    from tpplan.hardware.loader import load_builtin, load_profile_text
    from tpplan.hardware.writer import profile_to_yaml
    from tpplan.models.resolve import resolve_model

    spec = resolve_model("llama-8b").spec
    h100 = load_builtin("dgx-h100")
    peak = h100.gpu.peak_flops_for("bf16") * h100.efficiency.sustained_clock
    trt = coefficients(spec, h100, tp=1, engine="trtllm").rates.attention_prefill_flops_per_s
    vllm = coefficients(spec, h100, tp=1, engine="vllm").rates.attention_prefill_flops_per_s
    harness = coefficients(spec, h100, tp=1, fusion=FUSIONS["torch"]).rates.attention_prefill_flops_per_s
    assert trt == pytest.approx(0.60 * peak) and vllm == pytest.approx(0.60 * peak)
    assert harness == pytest.approx(0.35 * peak)
    a100 = load_builtin("dgx-a100-80g")
    assert coefficients(spec, a100, tp=1, engine="trtllm").rates == coefficients(spec, a100, tp=1,
                                                                                   engine="vllm").rates
    again = load_profile_text(profile_to_yaml(h100), origin="roundtrip")
    assert again.efficiency.attention_prefill_matmul_native == 0.6
    from dataclasses import replace

    e = h100.efficiency
    same = replace(h100, efficiency=replace(e, attention_prefill_matmul_native=e.attention_prefill_matmul))
    kept = load_profile_text(profile_to_yaml(same), origin="roundtrip").efficiency  # a native kernel stays stated
    assert kept.attention_prefill_matmul_native == e.attention_prefill_matmul


def test_prefill_attention_runs_in_fp8_over_an_fp8_kv_cache_where_the_engine_does():
    """TensorRT-LLM runs FP8 context FMHA over an FP8 KV cache on every GPU with FP8 tensor cores (sm_89 and up);
    vLLM's FlashAttention-3 quantizes the query to FP8 on Hopper only (elsewhere its prefill dequantizes the cache);
    the rate is the same share of the FP8 peak (FA3: ~1.2 PFLOP/s FP8 on H100 = 0.60 x 1,979). A100 has no FP8
    tensor cores: 16-bit attention whatever the cache."""
    from tpplan.cost.coefficients import coefficients
    from tpplan.hardware.loader import load_builtin
    from tpplan.models.resolve import resolve_model

    spec = resolve_model("llama-8b").spec

    def rate(hw, engine, kv):
        return coefficients(spec, hw, tp=1, engine=engine, kv_cache_dtype=kv).rates.attention_prefill_flops_per_s

    h100, l40s, a100 = (load_builtin(n) for n in ("dgx-h100", "l40s-pcie", "dgx-a100-80g"))
    fp8_peak = h100.gpu.peak_flops_for("fp8") * h100.efficiency.sustained_clock
    assert rate(h100, "trtllm", "fp8") == pytest.approx(0.60 * fp8_peak)
    assert rate(h100, "vllm", "fp8") == pytest.approx(0.60 * fp8_peak)
    assert rate(h100, "trtllm", "fp8") == pytest.approx(2 * rate(h100, "trtllm", "bf16"), rel=1e-3)
    l40s_fp8 = l40s.gpu.peak_flops_for("fp8") * l40s.efficiency.sustained_clock
    assert rate(l40s, "trtllm", "fp8") == pytest.approx(l40s.efficiency.attention_prefill_matmul * l40s_fp8)
    assert rate(l40s, "vllm", "fp8") == pytest.approx(rate(l40s, "vllm", "bf16"))  # FlashInfer / FA2: 16-bit
    assert rate(a100, "trtllm", "fp8") == pytest.approx(rate(a100, "trtllm", "bf16"))


def test_published_runs_use_the_request_counts_their_docs_state():
    import fidelity

    row = {"engine_version": "0.17", "isl": "128", "osl": "2048"}
    assert fidelity.num_requests(row) == 3000
    assert fidelity.num_requests(row | {"engine_version": "0.10.0"}) == 2000  # gptManagerBenchmark, 2000 requests
    # 0.11's "Preparing a Dataset" lists the count per length (its command template's 2000 is not what ran)
    assert fidelity.num_requests(row | {"engine_version": "0.11.0"}) == 3000
    assert fidelity.num_requests(row | {"engine_version": "0.11.0", "isl": "128", "osl": "128"}) == 30000
    assert fidelity.num_requests(row | {"engine_version": "0.12.0", "isl": "500", "osl": "2000"}) is None
    assert fidelity.num_requests(row | {"engine_version": "1.0", "isl": "1000", "osl": "2000"}) == 1500


@pytest.mark.parametrize("model,engine,lengths", [
    ("llama-8b", "vllm", (2048, 128)), ("llama-70b", "trtllm", (128, 2048)), ("mixtral", "sglang", (1024, 256)),
    ("deepseek-v3", "vllm", (1000, 1000))])
def test_ttft_under_load_is_never_below_the_prompt_alone(model, engine, lengths):
    plan = recommend(model, hardware="hgx-h200", gpus=8, engine=engine, input_len=lengths[0], output_len=lengths[1])
    ran = [c for c in plan.candidates if c.feasible]
    assert ran
    for c in ran:
        assert c.ttft_under_load_s >= c.ttft_s


def test_a_ttft_limit_below_the_prompt_alone_rejects_the_layout():
    # the prompt's own prefill (57 ms for 2048 tokens of Llama-3.1-8B on one H100) cannot be beaten under load
    plan = recommend("llama-8b", gpus=1, input_len=2048, output_len=128, max_ttft_ms=30)
    assert plan.recommended is None
    assert any("exceeds --max-ttft-ms 30.0" in r for r in plan.candidates[0].reasons)
    assert plan.explanation[0] == "No layout of Llama-3.1-8B meets the latency limits on 1 x H100 SXM5 80GB."


def test_sglang_runs_prefill_batches_alone_and_vllm_mixes_them():
    from tpplan.cost.batching import scheduler_limits

    kw = dict(gpu_name="H100", gpu_memory_bytes=80 * 2**30)
    assert not scheduler_limits("sglang", **kw).mixes_prefill
    assert scheduler_limits("vllm", **kw).mixes_prefill and scheduler_limits("trtllm", **kw).mixes_prefill
    # same layout, same batch: the SGLang step pays the prompt's weight streaming on its own
    v = recommend("llama-70b", gpus=8, engine="vllm", batch=64, tp=8, input_len=2048, output_len=128).chosen
    s = recommend("llama-70b", gpus=8, engine="sglang", batch=64, tp=8, input_len=2048, output_len=128).chosen
    assert v.batch == s.batch == 64 and v.tpot_s == pytest.approx(s.tpot_s, rel=0.02)
    assert s.step_time_s > v.step_time_s

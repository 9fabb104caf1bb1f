"""The two FP8 KV-cache formats: E4M3 ("fp8"; vLLM "fp8" / "fp8_e4m3", SGLang "fp8_e4m3") and E5M2 ("fp8_e5m2"). Same
bytes; FP8 prefill attention only over E4M3: FlashAttention-3's FP8 path takes float8_e4m3fn only (vLLM
FlashAttentionBackend.get_fp8_dtype_for_flashattn, vllm/v1/attention/backends/flash_attn.py), and SGLang moves fa3 +
fp8_e5m2 to its triton backend (ServerArgs: "FlashAttention3 only supports fp8_e4m3 if using FP8; Setting attention
backend to triton."). Sources in tpplan/cost/kernels.py (FP8_ATTENTION_KV_DTYPE)."""

from __future__ import annotations

import pytest

from tpplan.cost.coefficients import coefficients
from tpplan.cost.kernels import fusion_for, prefill_attention_dtype, prefill_attention_native
from tpplan.hardware.loader import load_builtin
from tpplan.models.dtypes import normalize_dtype
from tpplan.models.kv import kv_cache_bytes_per_token
from tpplan.models.resolve import resolve_model


@pytest.mark.parametrize("name,kv", [("fp8", "fp8"), ("fp8_e4m3", "fp8"), ("e4m3", "fp8"), ("float8", "fp8"),
                                     ("fp8_e5m2", "fp8_e5m2"), ("E5M2", "fp8_e5m2")])
def test_each_spelling_keeps_its_fp8_format(name, kv):
    assert normalize_dtype(name, kind="kv") == kv


def test_both_formats_store_one_byte_per_element():
    spec = resolve_model("llama-70b").spec  # Llama-3.1-70B: 327,680 B/token in bf16
    assert kv_cache_bytes_per_token(spec, kv_dtype="fp8_e5m2") == kv_cache_bytes_per_token(spec, kv_dtype="fp8") \
        == 327_680 // 2


# (attention dtype, native kernel) of prefill on H100 (FlashAttention-3 where the engine runs it), per engine and KV
# dtype: vLLM and SGLang compute in FP8 over E4M3 only and leave FA3 for E5M2; TensorRT-LLM's FP8 context FMHA is
# planned over "fp8" only (tpplan knows no E5M2 cache of it): E5M2 in 16 bits on its own kernel.
H100_PREFILL_ATTENTION = {
    "vllm": {"bf16": ("bf16", True), "fp8": ("fp8", True), "fp8_e5m2": ("bf16", False)},
    "sglang": {"bf16": ("bf16", True), "fp8": ("fp8", True), "fp8_e5m2": ("bf16", False)},
    "trtllm": {"bf16": ("bf16", True), "fp8": ("fp8", True), "fp8_e5m2": ("bf16", True)},
}


@pytest.mark.parametrize("engine", sorted(H100_PREFILL_ATTENTION))
def test_fp8_prefill_attention_only_over_an_e4m3_cache(engine):
    h100 = load_builtin("dgx-h100")
    fusion = fusion_for(engine)
    got = {kv: (prefill_attention_dtype(fusion, h100.efficiency, kv_cache_dtype=kv),
                prefill_attention_native(fusion, kv_cache_dtype=kv)) for kv in H100_PREFILL_ATTENTION[engine]}
    assert got == H100_PREFILL_ATTENTION[engine]


def test_e5m2_prefill_attention_runs_at_the_16_bit_share_of_the_non_native_kernel():
    """vLLM on H100: E4M3 at 0.60 of the FP8 peak (FA3), bf16 at 0.60 of the 16-bit peak, E5M2 at the profile's
    attention_prefill_matmul share of the 16-bit peak (the backend the engine falls back to)."""
    spec, h100 = resolve_model("llama-8b").spec, load_builtin("dgx-h100")
    e, clock = h100.efficiency, h100.efficiency.sustained_clock

    def rate(kv: str) -> float:
        return coefficients(spec, h100, tp=1, engine="vllm", kv_cache_dtype=kv).rates.attention_prefill_flops_per_s

    assert rate("fp8") == pytest.approx(e.attention_prefill_matmul_native * h100.gpu.peak_flops_for("fp8") * clock)
    assert rate("fp8_e5m2") == pytest.approx(e.attention_prefill_matmul * h100.gpu.peak_flops_for("bf16") * clock)
    assert rate("fp8_e5m2") < rate("bf16") < rate("fp8")


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_emit_passes_the_e5m2_format_through(run_cli, engine):
    """Both engines spell it fp8_e5m2 (vLLM CacheDType, SGLang --kv-cache-dtype); E4M3 stays fp8 / fp8_e4m3."""
    out = run_cli("recommend", "--model", "llama-8b", "--gpus", "1", "--engine", engine, "--kv-cache-dtype", "e5m2",
                  "--emit", engine, "-f", "json").json()
    assert "--kv-cache-dtype fp8_e5m2" in out["serve_command"] and "fp8_e4m3" not in out["serve_command"]
    assert out["inputs"]["kv_cache_dtype"] == "fp8_e5m2"


def test_trtllm_refuses_an_e5m2_cache_in_one_line(refusal):
    line = refusal("recommend", "-m", "llama-70b", "--gpus", "8", "--engine", "trtllm", "--kv-cache-dtype", "fp8_e5m2")
    assert line == ("Error: --kv-cache-dtype fp8_e5m2: --engine trtllm has no such KV cache (its FP8 cache is E4M3); "
                    "use --kv-cache-dtype fp8, or --engine vllm / sglang for E5M2")

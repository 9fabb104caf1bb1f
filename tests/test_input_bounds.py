"""Inputs a plan cannot honour are refused in one line before any work: numbers that are not finite, a batch beyond
any engine, an imbalance no EP group reaches, options that do not apply to the model, TensorRT-LLM where it does not
run, a KV-cache dtype no engine keeps."""

from __future__ import annotations

import math

import pytest

from tpplan import recommend
from tpplan.errors import TpplanError


@pytest.mark.parametrize("option, value", [("--moe-imbalance", "nan"), ("--moe-imbalance", "inf"),
                                           ("--gpu-memory-utilization", "nan")])
def test_a_float_that_is_not_finite_is_a_usage_error(usage_error, option, value):
    err = usage_error("recommend", "--model", "mixtral", "--gpus", "8", option, value)
    assert f"Invalid value for '{option}': {value} is not a finite number" in err


@pytest.mark.parametrize("option", ["--max-tpot-ms", "--max-ttft-ms", "--price-per-gpu-hour"])
def test_a_limit_or_price_that_is_not_finite_is_a_usage_error(usage_error, option):
    err = usage_error("recommend", "--model", "llama-70b", option, "inf")
    assert f"Invalid value for '{option}': inf must be a finite number greater than 0" in err


@pytest.mark.parametrize("kwargs, words", [
    ({"max_tpot_ms": math.nan}, "--max-tpot-ms nan must be a finite number greater than 0; leave it out for no limit"),
    ({"price_per_gpu_hour": math.inf}, "--price-per-gpu-hour inf must be a finite number greater than 0; leave it out "
                                       "for the profile's price, if it has one"),
    ({"gpus": 0}, "--gpus 0 must be at least 1; leave it out for all the GPUs of 'dgx-h100'"),
    ({"batch": 10**16}, "--batch 10000000000000000 exceeds 1,000,000 sequences per replica"),
])
def test_the_library_refuses_what_the_cli_refuses(kwargs, words):
    with pytest.raises(TpplanError, match="^" + words.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        recommend("llama-70b", hardware="dgx-h100", **kwargs)


def test_an_imbalance_beyond_the_gpus_is_refused(refusal):
    assert refusal("recommend", "--model", "mixtral", "--gpus", "8", "--moe-imbalance", "100") == (
        "Error: --moe-imbalance 100 exceeds 8: on 8 GPUs no expert-parallel rank can hold more than 8x the mean of "
        "the routed tokens (all of them); give a value from 1.0 to 8")


def test_the_default_imbalance_plans_an_moe_model_on_one_gpu():
    assert recommend("qwen3-30b-a3b", hardware="dgx-h100", gpus=1).recommended is not None


def test_an_all_to_all_backend_on_a_dense_model_is_refused(refusal):
    assert refusal("recommend", "--model", "llama-70b", "--gpus", "8", "--all2all-backend", "pplx") == (
        "Error: --all2all-backend pplx applies to MoE models (how routed tokens move under expert parallelism); "
        "Llama-3.1-70B has no routed experts; leave --all2all-backend out")


def test_tensorrt_llm_is_refused_on_amd_gpus(refusal):
    assert refusal("recommend", "--model", "llama-70b", "--hardware", "mi300x", "--emit", "trtllm") == (
        "Error: --engine trtllm: TensorRT-LLM runs on NVIDIA GPUs only, and 'mi300x' has MI300X (an AMD GPU); use "
        "--engine vllm or --engine sglang (both have ROCm builds)")


def test_tensorrt_llm_fp8_is_refused_without_fp8_tensor_cores(refusal, run_cli):
    err = refusal("recommend", "--model", "llama-70b", "--hardware", "dgx-a100-80g", "--engine", "trtllm",
                  "--kv-cache-dtype", "fp8")
    assert err == ("Error: an FP8 KV cache with --engine trtllm: TensorRT-LLM computes in FP8 on Ada Lovelace and "
                   "later, and profile 'dgx-a100-80g' lists no gpu.peak_flops.fp8 for A100 SXM4 80GB (no FP8 tensor "
                   "cores); add that peak if the GPU has them, else use --kv-cache-dtype bf16, or --engine vllm or "
                   "sglang, which keep FP8 weights and caches there and compute in 16 bits")
    assert run_cli("recommend", "--model", "llama-70b", "--hardware", "dgx-a100-80g", "--engine", "vllm",
                   "--dtype", "fp8").code == 0  # vLLM runs FP8 weights weight-only on Ampere
    assert run_cli("recommend", "--model", "llama-70b", "--hardware", "l40s-pcie", "--engine", "trtllm",
                   "--dtype", "fp8").code == 0  # Ada has FP8 tensor cores


def test_an_fp32_kv_cache_needs_fp32_weights(refusal, run_cli):
    assert refusal("recommend", "--model", "llama-70b", "--gpus", "8", "--kv-cache-dtype", "fp32") == (
        "Error: --kv-cache-dtype fp32 with bf16 weights: engines keep the KV cache in the model's dtype or in FP8 "
        "(vLLM --kv-cache-dtype auto / fp8, SGLang the same, TensorRT-LLM kv_cache_config.dtype auto / fp8), so an "
        "fp32 cache needs --dtype fp32; leave --kv-cache-dtype out for a 16-bit cache")
    assert run_cli("recommend", "--model", "llama-8b", "--gpus", "8", "--dtype", "fp32",
                   "--kv-cache-dtype", "fp32").code == 0


def test_a_suggestion_beyond_one_node_names_the_nodes(run_cli):
    import json

    d = json.loads(run_cli("recommend", "--model", "llama-405b", "--gpus", "8", "-f", "json").out)
    flags = [s["flag"] for s in d["suggestions"]]
    assert "--gpus 16 --nodes 2" in flags
    # and the flag runs as written
    assert run_cli("recommend", "--model", "llama-405b", "--gpus", "16", "--nodes", "2").code == 0


def test_sweep_refuses_a_batch_beyond_any_engine(usage_error):
    err = usage_error("sweep", "--models", "llama-70b", "--batch", "10000000000000000000")
    assert "Invalid value for '--batch': 10000000000000000000 exceeds 1,000,000" in err


def test_sweep_refuses_a_length_beyond_its_arrays(usage_error):
    err = usage_error("sweep", "--models", "llama-70b", "--input-len", "99999999999")
    assert "Invalid value for '--input-len': 99999999999 exceeds 2,147,483,647" in err


@pytest.mark.parametrize("args, words", [
    (("--models", "llama-8b", "--hardware", "mi300x", "--engine", "trtllm"), "TensorRT-LLM runs on NVIDIA GPUs only"),
    (("--models", "llama-8b", "--hardware", "dgx-a100-80g", "--engine", "trtllm", "--dtype", "fp8"),
     "FP8 weights with --engine trtllm"),
    (("--models", "llama-8b", "--kv-cache-dtype", "fp32"), "--kv-cache-dtype fp32 with bf16 weights"),
    (("--models", "llama-8b", "--engine", "sglang", "--all2all-backend", "deepep"),
     "--all2all-backend deepep applies to MoE models"),
    (("--models", "qwen3-30b-a3b", "--gpus", "1,8", "--moe-imbalance", "20"), "--moe-imbalance 20 exceeds 8"),
])
def test_sweep_refuses_what_recommend_refuses(refusal, args, words):
    """A grid never plans what a single plan refuses (tpplan.planner.checks)."""
    assert words in refusal("sweep", *args, "--batch", "8")


@pytest.mark.parametrize("kwargs, words", [({"batches": [0]}, "--batch 0 must be at least 1"),
                                           ({"batches": [2**40]}, "--batch 1099511627776 exceeds 1,000,000"),
                                           ({"input_lens": [-5]}, "--input-len -5 must be at least 1"),
                                           ({"moe_imbalance": math.nan}, "--moe-imbalance nan must be a finite")])
def test_the_sweep_library_refuses_bad_grids(kwargs, words):
    from tpplan.planner.sweep import sweep

    args = dict(models=["llama-8b"], hardware=["dgx-h100"], gpus=[8], batches=[8], input_lens=[128],
                output_lens=[128]) | kwargs
    with pytest.raises(TpplanError, match=words.replace("+", r"\+")):
        sweep(**args)


def test_one_gpu_imbalance_says_to_leave_it_out(refusal):
    assert refusal("recommend", "--model", "qwen3-30b-a3b", "--gpus", "1", "--moe-imbalance", "1.5") == (
        "Error: --moe-imbalance 1.5 exceeds 1: on 1 GPU no expert-parallel rank can hold more than 1x the mean of "
        "the routed tokens (all of them); leave --moe-imbalance out (one GPU runs no expert parallelism)")


@pytest.mark.parametrize("command", [("recommend", "--model", "llama-70b"),
                                     ("compare", "--model", "llama-70b", "--gpus", "8", "8", "4x1x2")])
def test_a_batch_beyond_any_engine_is_a_usage_error_everywhere(usage_error, command):
    err = usage_error(*command, "--batch", "1000001")  # recommend names its Megatron alias too
    assert err.startswith("Error: Invalid value for '--batch'") and "1000001 is not in the range 1<=x<=1000000" in err


def test_no_suggestion_flag_that_cannot_run_as_written():
    """h100-pcie has 8 GPUs and no network section: --gpus 16 would exceed it and --nodes needs a network."""
    plan = recommend("llama-405b", hardware="h100-pcie")
    more = next(s for s in plan.suggestions if s.text.startswith("more GPUs"))
    assert more.flag is None and "no network section: use a multi-node profile of that GPU" in more.text


def test_a_dense_grid_refuses_moe_options_in_one_line(refusal):
    assert refusal("sweep", "--models", "llama-8b,llama-70b", "--moe-imbalance", "2", "--batch", "8") == (
        "Error: --moe-imbalance 2 applies to MoE models (the busiest expert-parallel rank's routed tokens / mean); "
        "none of --models has routed experts; leave --moe-imbalance out")


@pytest.mark.parametrize(("hardware", "backend", "vendor"), [("mi300x", "deepep_low_latency", "NVIDIA"),
                                                             ("hgx-h200", "mori", "AMD")])
def test_an_all2all_backend_of_the_other_vendor_is_refused(run_cli, hardware, backend, vendor):
    for command in (("recommend", "--model", "deepseek-v3"), ("sweep", "--models", "deepseek-v3")):
        r = run_cli(*command, "--hardware", hardware, "--all2all-backend", backend)
        assert r.code == 1 and r.err.startswith(f"Error: --all2all-backend {backend}: it runs on {vendor} GPUs only")


def test_sweep_values_given_twice_are_swept_once_and_digits_are_ascii(run_cli, usage_error):
    once = run_cli("sweep", "--models", "llama-8b", "--gpus", "8", "-f", "json")
    twice = run_cli("sweep", "--models", "llama-8b,llama-8b", "--gpus", "8,08", "-f", "json")
    assert once.code == twice.code == 0 and len(twice.json()) == len(once.json())
    assert "expected comma-separated whole numbers" in usage_error("sweep", "--models", "llama-8b", "--gpus", "\u0668")


def test_sweep_refuses_a_format_its_out_file_would_not_have(usage_error, tmp_path):
    err = usage_error("sweep", "--models", "llama-8b", "--out", str(tmp_path / "x.csv"), "-f", "json")
    assert f"-f json with --out {tmp_path / 'x.csv'}: --out writes the format its extension names (.csv)" in err
    assert not (tmp_path / "x.csv").exists()


def test_more_gpus_is_not_blamed_on_memory_when_the_latency_limits_reject():
    """TP8 on h100-pcie fits memory; only --max-tpot-ms 5 rejects it: no suggestion says the KV cache overflows."""
    plan = recommend("llama-70b", hardware="h100-pcie", gpus=8, max_tpot_ms=5)
    assert plan.recommended is None
    assert not any("not beside" in s.text for s in plan.suggestions)
    assert any("looser latency limits" in s.text for s in plan.suggestions)

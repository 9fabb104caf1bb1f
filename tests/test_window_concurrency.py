"""Sliding-window layers and concurrency: vLLM frees the blocks behind the window, TensorRT-LLM and SGLang do not
(tpplan.cost.batching.SchedulerLimits.frees_window_blocks has the sources)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tpplan.cli import app
from tpplan.cost.batching import max_concurrency, scheduler_limits, window_tokens_held
from tpplan.models.kv import kv_window_mix
from tpplan.models.resolve import resolve_model

runner = CliRunner()
GiB = 2**30


def _best(*args: str) -> dict:
    r = runner.invoke(app, ["recommend", *args, "-f", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)["candidates"][0]


def test_window_mix_of_catalogue_models():
    assert kv_window_mix(resolve_model("gpt-oss-120b").spec) == ((None, 18), (128, 18))
    assert kv_window_mix(resolve_model("gemma-2-27b").spec) == ((None, 23), (4096, 23))
    assert kv_window_mix(resolve_model("mistral-7b").spec) == ((4096, 32),)
    assert kv_window_mix(resolve_model("llama-70b").spec) == ((None, 80),)


def test_tokens_a_window_layer_holds():
    vllm = scheduler_limits("vllm", gpu_name="H100", gpu_memory_bytes=80 * GiB)
    # window 128 in blocks of 16: the blocks touching the last 128 tokens, (ceil(127 / 16) + 1) x 16 = 144
    assert window_tokens_held(vllm, window=128, input_len=1024, output_len=256) == 144
    # a window wider than the whole sequence: the full layer's average, input + output / 2 = 1,152
    assert window_tokens_held(vllm, window=8192, input_len=1024, output_len=256) == 1152
    # kept = 1,040 between a = 1,000 and b = 1,400: [(1040^2 - 1000^2) / 2 + 1040 x 360] / 400 = 1,038 -> 1,040
    assert window_tokens_held(vllm, window=1025, input_len=1000, output_len=400) == 1040
    trt = scheduler_limits("trtllm", gpu_name="H100", gpu_memory_bytes=80 * GiB)
    assert window_tokens_held(trt, window=128, input_len=1024, output_len=256) == 160  # reserves min(b, kept)


def test_vllm_runs_more_gpt_oss_sequences_than_full_attention_would_allow():
    args = ["-m", "gpt-oss-120b", "--hardware", "dgx-h100", "--tp", "1", "--gpus", "1"]
    c = _best(*args, "--engine", "vllm")
    held = 18 * 1152 + 18 * 144  # tokens of all 36 layers one sequence holds on average (input 1024, output 256)
    assert c["max_concurrent_sequences"] == c["kv_cache_tokens"] * 36 // held
    assert c["max_concurrent_sequences"] > 1.7 * (c["kv_cache_tokens"] // 1152)
    trt = _best(*args, "--engine", "trtllm")  # sizes every layer for the whole sequence (blocks of 32)
    assert trt["max_concurrent_sequences"] == trt["kv_cache_tokens"] // 1280


def test_mistral_long_prompts_hold_the_window_only():
    c = _best("-m", "mistral-7b", "--hardware", "l40s-pcie", "--tp", "2", "--gpus", "2", "--input-len", "8000",
              "--output-len", "2000")
    assert c["max_concurrent_sequences"] == c["kv_cache_tokens"] // 4112  # (ceil(4095 / 16) + 1) x 16


def test_models_without_windows_are_unchanged():
    vllm = scheduler_limits("vllm", gpu_name="H100", gpu_memory_bytes=80 * GiB)
    windows = (kv_window_mix(resolve_model("llama-70b").spec),)
    assert max_concurrency(vllm, kv_cache_tokens=500_000, input_len=1024, output_len=256, stage_windows=windows) == \
        max_concurrency(vllm, kv_cache_tokens=500_000, input_len=1024, output_len=256) == 500_000 // 1152


def test_explanation_states_what_a_sequence_holds_per_layer_kind():
    r = runner.invoke(app, ["recommend", "-m", "gpt-oss-120b", "--hardware", "dgx-h100", "--gpus", "8", "--wide"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert ("each holds 1,152 tokens in each of its 18 full-attention layers and 144 in each of its 18 "
            "sliding-window layers of 128 tokens: input + output/2 on average, in blocks of 16, vllm freeing the "
            "blocks behind the window") in text


def test_the_stage_that_needs_most_sets_the_concurrency_under_pipeline_stages():
    """gpt-oss-120b at PP4 (layers alternate sliding / full, 9 per stage): stages 0 and 2 hold 5 sliding + 4 full
    layers, stages 1 and 3 hold 4 sliding + 5 full; a sequence needs blocks on every stage, so the full-heavy stages
    bind. At 2,048 in / 1,024 out a full layer holds 2,048 + 512 = 2,560 tokens on average and a sliding one the
    144 its window's blocks keep: 9 x kv_cache_tokens // (5 x 2,560 + 4 x 144) sequences."""
    from tpplan.models.kv import kv_window_mix_by_stage

    spec = resolve_model("gpt-oss-120b").spec
    assert kv_window_mix_by_stage(spec, pp=4) == (((None, 4), (128, 5)), ((None, 5), (128, 4)),
                                                  ((None, 4), (128, 5)), ((None, 5), (128, 4)))
    vllm = scheduler_limits("vllm", gpu_name="H200", gpu_memory_bytes=140 * GiB)
    full = 2048 + 512  # input + output / 2, a multiple of 16
    kept = 144
    stages = kv_window_mix_by_stage(spec, pp=4)
    got = max_concurrency(vllm, kv_cache_tokens=100_000, input_len=2048, output_len=1024, stage_windows=stages)
    assert got == 100_000 * 9 // (5 * full + 4 * kept)

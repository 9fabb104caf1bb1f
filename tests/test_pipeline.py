"""Pipeline parallelism as engines run it (tpplan.cost.step._pipeline_step): pp micro-batches in flight, every
stage runs every micro-batch and re-reads its weights, the stage with the lm_head sets the pace, scheduler
limits per replica (vLLM) or per micro-batch (TensorRT-LLM)."""

from __future__ import annotations

import pytest

from tpplan.cost.batching import max_concurrency, scheduler_limits
from tpplan.cost.coefficients import coefficients
from tpplan.cost.step import decode_step
from tpplan.hardware.loader import resolve_profile
from tpplan.models.resolve import resolve_model
from tpplan.units import US, GiB


def _setup(pp: int, tp: int = 1):
    spec = resolve_model("llama-70b").spec
    profile = resolve_profile("dgx-h100")[0]
    return spec, profile, coefficients(spec, profile, tp=tp, pp=pp)


def test_last_stage_with_lm_head_paces_the_round():
    # Llama-3.1-70B: 80 layers / PP8 = 10 per stage, the last stage also runs the lm_head. One sequence per
    # micro-batch (batch 8): the round is 8 x (10 layers + lm_head) of kernels, against 80 layers + 1 lm_head
    # without PP, so the compute difference is 7 lm_heads at one token: weight bytes / memory rate + 1 kernel
    # (its one token of activations is < 0.1% of the bytes).
    spec, profile, c8 = _setup(8)
    c1 = _setup(1)[2]
    d8 = decode_step(c8, profile, batch=8, context_len=1024)
    d1 = decode_step(c1, profile, batch=1, context_len=1024)
    head_bytes = spec.vocab_size * spec.hidden_size * 2
    head_s = head_bytes / c1.rates.memory_bytes_per_s + c1.rates.kernel_overhead_s
    assert d8.compute_s - d1.compute_s == pytest.approx(7 * head_s, rel=1e-3)
    # the pp - 1 hand-offs of one token's activations over NVLink and the step overhead are not hidden; the host
    # passes one sequence per micro-batch over the 7 stage boundaries
    e = profile.efficiency
    assert d8.communication_s > 0
    assert d8.overhead_s == pytest.approx(e.step_overhead_s + 7 * e.pipeline_sequence_overhead_s)


def test_host_work_per_sequence_grows_with_stage_boundaries_and_not_without_pp():
    # 512 sequences: PP8 runs 8 micro-batches of 64, whose host work crosses 7 stage boundaries per round:
    # 7 x 64 x 50 us = 22.4 ms on top of the same round without it; PP4: 3 x 128 x 50 us = 19.2 ms; no PP: none
    # (the engine overlaps it with the previous step).
    from dataclasses import replace

    _, profile, c8 = _setup(8)
    c4, c1 = _setup(4)[2], _setup(1)[2]
    h = profile.efficiency.pipeline_sequence_overhead_s
    assert h == pytest.approx(50 * US)
    for c, extra in ((c8, 7 * 64 * h), (c4, 3 * 128 * h), (c1, 0.0)):
        with_host = decode_step(c, profile, batch=512, context_len=1024)
        without = decode_step(replace(c, pipeline_sequence_overhead_s=0.0), profile, batch=512, context_len=1024)
        assert with_host.overhead_s - without.overhead_s == pytest.approx(extra, rel=1e-9, abs=1e-12)
        assert with_host.compute_s == without.compute_s


def test_fewer_sequences_than_stages_run_fewer_micro_batches():
    # batch 2 on PP8: two micro-batches of one sequence; the GPUs idle while each crosses the other stages, so
    # the round is one pass of all stages (80 layers + lm_head), not 8 passes of the slowest stage.
    _, profile, c8 = _setup(8)
    c1 = _setup(1)[2]
    d8 = decode_step(c8, profile, batch=2, context_len=1024)
    d1 = decode_step(c1, profile, batch=1, context_len=1024)
    assert d8.compute_s == pytest.approx(d1.compute_s, rel=1e-9)


def test_max_num_seqs_per_replica_in_vllm_per_micro_batch_in_trtllm():
    kw = dict(kv_cache_tokens=10**9, input_len=128, output_len=128, micro_batches=4)
    vllm = scheduler_limits("vllm", gpu_name="H100", gpu_memory_bytes=80 * GiB)
    trt = scheduler_limits("trtllm", gpu_name="H100", gpu_memory_bytes=80 * GiB, max_num_seqs=256)
    assert max_concurrency(vllm, **kw) == 1024
    assert max_concurrency(trt, **kw) == 4 * 256


def test_pp_wins_max_throughput_and_tp_wins_latency_as_nvidia_reports_for_405b_on_h200():
    """NVIDIA's technical blog "Boosting Llama 3.1 405B Throughput by Another 1.5x on NVIDIA H200 Tensor Core
    GPUs and NVLink Switch" (developer.nvidia.com/blog, Oct 2024; TensorRT-LLM, FP8, one HGX H200): PP8 gives
    1.5x the maximum throughput of TP8, and TP8 is 5.6x faster than PP8 at minimum latency. An independent
    check of the pipeline model (nothing here was fitted to it): the direction must hold; the ratios tpplan
    gives (1.34x and 4.9x at the default 1024 in / 256 out) are quoted in the README's Accuracy section."""
    from tpplan.planner.plan import recommend

    def layouts(**kw):
        plan = recommend("llama-405b", hardware="hgx-h200", gpus=8, dtype="fp8", engine="trtllm", **kw)
        return {(c.tp, c.pp): c for c in plan.candidates if c.tp * c.pp == 8 and c.replicas == 1}

    busy, alone = layouts(), layouts(batch=1)
    assert busy[(1, 8)].output_tokens_per_s > 1.2 * busy[(8, 1)].output_tokens_per_s
    assert alone[(8, 1)].tpot_s * 3 < alone[(1, 8)].tpot_s


@pytest.mark.parametrize("engine", ["vllm", "trtllm", "sglang"])
def test_deepseek_v3_on_8_h200_is_served_without_pipeline_stages(engine):
    # What operators run on one HGX H200 (SGLang's DeepSeek docs: TP8 or DP attention + EP on 8 x H200; vLLM's
    # and TensorRT-LLM's: attention DP + EP). Before the host term tpplan chose TP1 x DP-attention 4 x PP2 with
    # vLLM and TensorRT-LLM: each of the ~3,300 sequences paid no host work at the stage boundary.
    from tpplan.planner.plan import recommend

    plan = recommend("deepseek-v3", hardware="hgx-h200", gpus=8, engine=engine)
    best = plan.recommended
    assert best.ep * best.dp_attention > 1, best
    if engine == "sglang":  # SGLang refuses --pp-size with DP attention (tpplan.planner.layouts)
        assert best.pp == 1, best
        return
    # TensorRT-LLM on an 8-GPU HGX, and vLLM at its default --all2all-backend allgather_reducescatter, all-gather the
    # tokens of DeepSeek's top-8 EP8 layer instead of an all-to-all (tpplan.cost.moe.gathers_tokens), which costs
    # DEP8 ~5%; and attention-DP ranks wait for each other at every MoE layer, so a prompt entering any of 8 ranks
    # holds up all 8 (tpplan.cost.steady), which favours 4 ranks x PP2: TensorRT-LLM 10,393 vs 10,908 tok/s, vLLM
    # 8,654 vs 9,375 (2026-12-07). What stays: attention DP wins, and no pipeline layout beats attention DP + EP over
    # all 8 GPUs by more than ~10%.
    dep8 = next(c for c in plan.candidates if (c.tp, c.pp, c.dp_attention, c.ep) == (1, 1, 8, 8))
    assert dep8.output_tokens_per_s > 0.9 * best.output_tokens_per_s


def test_deepseek_r1_on_two_h200_nodes_with_sglang_is_not_sixteen_stages():
    # Before the host term: pure PP16 at 15,499 sequences (a 681 ms round); the 15 stage boundaries now cost
    # 15 x 969 sequences x 50 us per round, and a layout without PP across the nodes wins.
    from tpplan.planner.plan import recommend

    plan = recommend("deepseek-r1", hardware="hgx-h200", nodes=2, gpus=16, engine="sglang")
    pp16 = next(c for c in plan.candidates if (c.tp, c.pp, c.dp_attention, c.ep) == (1, 16, 1, 1))
    assert plan.recommended.pp == 1
    assert plan.recommended.output_tokens_per_s > 1.3 * pp16.output_tokens_per_s


def test_sglang_prefill_batches_take_pipeline_slots(run_cli):
    """SGLang runs prefill-only batches of at most --chunked-prefill-size tokens, with PP as without (its pipeline
    loop fills each micro-batch slot from the same scheduler): a 64-token budget slows every layout, PP ones
    included, and a prompt under load waits for its 16 chunks, never longer than the whole job."""
    def layouts(*extra):
        r = run_cli("recommend", "--model", "llama-70b", "--gpus", "8", "--engine", "sglang", "--num-requests", "2000",
                    *extra, "-f", "json")
        assert r.code == 0, r.err
        return {(c["tp"], c["pp"], c["replicas"]): c for c in r.json()["candidates"] if c["feasible"]}

    default, small = layouts(), layouts("--chunked-prefill-size", "64")
    for key in ((1, 4, 2), (2, 2, 2), (4, 2, 1), (4, 1, 2)):
        assert small[key]["output_tokens_per_s"] < 0.6 * default[key]["output_tokens_per_s"], key
        assert small[key]["ttft_under_load_s"] <= small[key]["job_s"], key
    c = small[(1, 4, 2)]
    assert c["ttft_under_load_s"] >= c["ttft_s"] > 2 * default[(1, 4, 2)]["ttft_s"]  # 16 chunks of 64, one by one

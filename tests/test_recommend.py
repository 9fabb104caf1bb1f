"""`tpplan recommend`: the JSON contract, sanity cases from public sources, properties of the cost model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tpplan.cost.collectives import collective_time_s
from tpplan.hardware.loader import load_builtin, resolve_profile
from tpplan.models.resolve import resolve_model
from tpplan.planner.plan import recommend

GOLDEN = Path(__file__).parent / "golden"
CANDIDATE_KEYS = {"tp", "pp", "replicas", "gpus_used", "feasible", "reasons", "weight_bytes_per_gpu",
                  "kv_cache_bytes_per_gpu", "kv_cache_tokens", "max_concurrent_sequences", "allreduce_bytes_per_layer",
                  "ttft_s", "tpot_s", "output_tokens_per_s", "output_tokens_per_s_per_gpu", "ep", "dp_attention"}


def test_json_contract(run_cli):
    r = run_cli("recommend", "--model", "llama-70b", "--gpus", "8", "--format", "json")
    assert r.code == 0
    d = r.json()
    assert {"recommended", "candidates", "assumptions"} <= set(d)
    assert CANDIDATE_KEYS <= set(d["recommended"])
    assert all(CANDIDATE_KEYS <= set(c) for c in d["candidates"])
    assert "hardware" in d["assumptions"] and "dgx-h100" in d["assumptions"]["hardware"]
    assert d["assumptions"]["model"].startswith("llama-70b resolves to Llama-3.1-70B")


GOLDEN_CASES = {
    "llama-70b_dgx-h100_8": ["--model", "llama-70b", "--gpus", "8"],
    "llama-8b_h100-pcie_8": ["--model", "llama-8b", "--hardware", "h100-pcie", "--gpus", "8"],
    "mixtral_hgx-h200_8_fp8": ["--model", "mixtral", "--hardware", "hgx-h200", "--gpus", "8", "--dtype", "fp8"],
    "qwen-7b_l40s_4": ["--model", "qwen-7b", "--hardware", "l40s-pcie", "--gpus", "4"],
    "llama-405b_2node_16": ["--model", "llama-405b", "--hardware", "dgx-h100-2node", "--gpus", "16"],
}


def _golden_view(d):
    """The parts a regression should notice: layouts, feasibility, bytes, and rounded times."""
    def c(x):
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in x.items() if k in CANDIDATE_KEYS}
    return {"recommended": c(d["recommended"]) if d["recommended"] else None,
            "candidates": [c(x) for x in d["candidates"]]}


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_json(run_cli, name):
    r = run_cli("recommend", *GOLDEN_CASES[name], "--format", "json")
    got = _golden_view(r.json())
    path = GOLDEN / f"{name}.json"
    if os.environ.get("TPPLAN_UPDATE_GOLDEN") == "1":  # regenerate on purpose, then review the diff
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, indent=1) + "\n")
    assert path.exists(), f"{path} is missing; run with TPPLAN_UPDATE_GOLDEN=1 and review it"
    assert got == json.loads(path.read_text())


def test_70b_does_not_fit_one_80gb_gpu_and_says_by_how_much(run_cli):
    # Llama-3.1-70B bf16 weights are 131.4 GiB (70.55B params x 2 B; HF safetensors total): no 80 GB GPU holds them.
    r = run_cli("recommend", "--model", "llama-70b", "--gpus", "1", "--format", "json")
    assert r.code == 1
    d = r.json()
    assert d["recommended"] is None
    (tp1,) = d["candidates"]
    assert not tp1["feasible"]
    assert "weights 131.4 GiB" in tp1["reasons"][0] and "by 65.2 GiB" in tp1["reasons"][0]
    # fp8 weights of Llama-3.1-70B are ~65.7 GiB + 5.5 GiB reserve > 71.7 GiB usable: still no fit on one GPU, so
    # --dtype fp8 is not suggested; every suggestion left was re-planned and runs
    assert all(s["flag"] != "--dtype fp8" for s in d["suggestions"])
    assert d["suggestions"] and all(s["would_give"] for s in d["suggestions"])
    assert r.err.strip() == ("Error: no layout of Llama-3.1-70B fits 1 x H100 SXM5 80GB; e.g. --gpus 3 runs TP1 x PP3 "
                             "x 1 replica")


def test_nothing_fits_table_still_renders_and_exits_1(run_cli):
    r = run_cli("recommend", "--model", "llama-70b", "--gpus", "1")
    assert r.code == 1 and "What would help" in r.out and "rejected" in r.out


def test_tp4x2_against_tp8_on_nvlink_is_explained():
    # 8x H100 NVLink: the classic choice between one TP8 replica and two TP4 replicas (FACTS.md §7, §9).
    plan = recommend("llama-70b", gpus=8, hardware="dgx-h100")
    shapes = {(c.tp, c.pp, c.replicas) for c in plan.candidates if c.feasible}
    assert {(8, 1, 1), (4, 1, 2)} <= shapes
    text = " ".join(plan.explanation)
    assert "TP4 x PP1 x 2 replicas" in text and "TP8 x PP1 x 1 replica" in text
    assert "collectives" in text and "batch" in text


def test_pcie_only_large_tp_loses_to_replicas_or_pp():
    # PCIe-only 8-GPU boxes: NCCL all-reduce goes through the host at 14-28 GB/s busbw (NVIDIA/nccl#1639: 8x PCIe
    # Gen5 GPUs 28 GB/s; Gen4 half), 15-30x below NVSwitch, so TP8's all-reduce outweighs its smaller shards.
    for hw in ("l40s-pcie", "h100-pcie"):
        best = recommend("llama-70b", gpus=8, hardware=hw).recommended
        assert best.tp < 8 and (best.replicas > 1 or best.pp > 1), hw


def test_405b_on_two_nodes_keeps_tp_in_node_and_pp_across():
    # Llama-3.1-405B bf16 (811.7 GB) on 2 x 8 H100: TP8 inside each node, PP2 across (vLLM's documented layout
    # for 405B on two nodes: --tensor-parallel-size 8 --pipeline-parallel-size 2). That is the lowest-latency
    # layout; for throughput deeper pipelines (fewer all-reduces per token) may win, but never TP across nodes.
    plan = recommend("llama-405b", gpus=16, hardware="dgx-h100-2node", objective="latency")
    assert (plan.recommended.tp, plan.recommended.pp) == (8, 2)
    plan = recommend("llama-405b", gpus=16, hardware="dgx-h100-2node")
    assert plan.recommended.tp <= 8
    tp16 = [c for c in plan.candidates if c.tp == 16]
    assert tp16 and all(not c.feasible for c in tp16)


def test_emit_vllm_command(run_cli):
    r = run_cli("recommend", "--model", "llama-70b", "--gpus", "8", "--objective", "latency", "--emit", "vllm",
                "-f", "json")
    assert "vllm serve meta-llama/Llama-3.1-70B" in r.out and "--tensor-parallel-size 8" in r.out


def test_bad_inputs(run_cli):
    assert run_cli("recommend", "--model", "llama-70b", "--gpus", "16").err == (
        "Error: --gpus 16 exceeds profile 'dgx-h100' (8 GPUs per node x 1 node(s) = 8); pass --nodes 2\n")
    r = run_cli("recommend", "--model", "llama-70b", "--max-model-len", "200000")
    assert r.code == 1 and "exceeds Llama-3.1-70B's max_position_embeddings (131072)" in r.err
    r = run_cli("recommend", "--model", "llama-70b", "--objective", "speed")
    assert (r.code, r.out) == (2, "") and "'speed' is not one of 'throughput', 'latency', 'gpus', 'cost'" in r.err
    assert run_cli("recommend", "--model", "llama-70b", "--gpus", "0").code == 2


def test_latency_limit_caps_batch():
    free = recommend("llama-70b", gpus=8).recommended
    limited = recommend("llama-70b", gpus=8, max_tpot_ms=20).recommended
    # the limit holds for the time between tokens at the load the plan runs, prefill chunks included
    assert limited.tpot_under_load_s <= 0.020 and limited.tpot_s <= limited.tpot_under_load_s
    assert limited.batch < free.batch and free.tpot_under_load_s > 0.020


def test_training_workload_runs():
    plan = recommend("llama-8b", gpus=8, workload="train", input_len=4096, batch=1)
    assert plan.recommended is not None and plan.recommended.step_time_s > 0


def test_python_api_returns_plan():
    import tpplan

    plan = tpplan.recommend("llama-8b", gpus=4)
    assert plan.recommended.gpus_used <= 4


# --- properties --------------------------------------------------------------------------------------------
H100 = load_builtin("dgx-h100")


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["llama-8b", "llama-70b", "qwen-72b", "mixtral"]), st.sampled_from([1, 2, 4]))
def test_more_gpus_never_worse_best_latency(model, gpus):
    a = recommend(model, gpus=gpus, objective="latency").recommended
    b = recommend(model, gpus=gpus * 2, objective="latency").recommended
    if a is not None:
        assert b is not None and b.tpot_s <= a.tpot_s + 1e-12


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["llama-8b", "llama-70b", "mistral-7b", "gemma-27b"]), st.sampled_from([2, 4, 8]))
def test_fp8_kv_never_reduces_kv_tokens(model, gpus):
    a = {(c.tp, c.pp): c for c in recommend(model, gpus=gpus).candidates}
    b = {(c.tp, c.pp): c for c in recommend(model, gpus=gpus, kv_cache_dtype="fp8").candidates}
    for k in a:
        assert b[k].kv_cache_tokens >= a[k].kv_cache_tokens


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 2**31), st.integers(1, 2**31), st.sampled_from([2, 4, 8]))
def test_allreduce_time_zero_at_tp1_and_monotone_in_bytes(x, y, t):
    small, large = sorted((x, y))
    assert collective_time_s(H100, kind="allreduce", group_size=1, n_bytes=large) == 0
    assert collective_time_s(H100, kind="allreduce", group_size=t, n_bytes=small) <= \
        collective_time_s(H100, kind="allreduce", group_size=t, n_bytes=large)


def test_allreduce_latency_term_matches_nccl_constants():
    # FACTS.md §6: ring all-reduce latency on 8 NVLink GPUs = base + 2(n-1) x hop: Simple 56 us, LL 15 us.
    t = collective_time_s(H100, kind="allreduce", group_size=8, n_bytes=1)
    assert t == pytest.approx(6.6e-6 + 14 * 0.6e-6, rel=1e-3)
    # A 16 KiB decode all-reduce (70B, batch 1): 16.6-29 us measured with NCCL on 8x H100 (FACTS.md §7).
    assert 14e-6 < collective_time_s(H100, kind="allreduce", group_size=8, n_bytes=16384) < 29e-6
    # A 32 MiB prefill all-reduce: ~197 us measured.
    assert 150e-6 < collective_time_s(H100, kind="allreduce", group_size=8, n_bytes=32 * 2**20) < 260e-6


def test_alias_resolution_is_stated(run_cli):
    r = run_cli("recommend", "--model", "llama-70b", "--gpus", "8")
    assert "llama-70b resolves to Llama-3.1-70B" in r.out


def test_kv_replication_in_plan():
    spec = resolve_model("llama-70b").spec
    plan = recommend(spec, gpus=8)
    tp8 = next(c for c in plan.candidates if (c.tp, c.pp) == (8, 1))
    assert tp8.kv_cache_tokens == tp8.kv_cache_bytes_per_gpu // 40_960


def test_nodes_option(run_cli):
    r = run_cli("recommend", "--model", "llama-8b", "--hardware", "l40s-pcie", "--nodes", "2")
    assert r.code == 1 and r.err == ("Error: --nodes 2: profile 'l40s-pcie' has no network section; use a multi-node "
                                     "profile (e.g. dgx-h100-2node) or add network: to yours\n")
    # a DGX H100 ships with 8 x 400 Gb/s NDR InfiniBand: --nodes works on the single-node profile
    d = run_cli("recommend", "--model", "llama-405b", "--hardware", "dgx-h100", "--nodes", "2",
                "--objective", "latency",
                "-f", "json")
    assert d.code == 0 and d.json()["gpus"] == 16 and d.json()["recommended"]["pp"] == 2
    d = run_cli("recommend", "--model", "llama-405b", "--hardware", "dgx-h100-4node", "--nodes", "2", "-f", "json")
    assert d.code == 0 and d.json()["gpus"] == 16


def test_sequence_parallel_uses_reduce_scatter_plus_all_gather():
    plain = recommend("llama-70b", gpus=8, batch=64).recommended
    sp = recommend("llama-70b", gpus=8, batch=64, sequence_parallel=True).recommended
    assert sp.tp == plain.tp and sp.communication_time_per_step_s != plain.communication_time_per_step_s
    # RS + AG of the same bytes: the same bandwidth term, twice the latency term
    assert sp.communication_time_per_step_s > plain.communication_time_per_step_s


def test_trtllm_memory_fraction_is_of_the_free_memory_after_weights():
    # TensorRT-LLM's kv_cache_free_gpu_memory_fraction is a share of the memory left after weights (docs,
    # examples/kvcacheconfig.html); vLLM's gpu_memory_utilization is a share of the whole GPU. Llama-3.1-70B FP8
    # (67.7 GiB of weights) on one H100: vLLM at 0.90 cannot hold it, TensorRT-LLM ran it (perf-overview v0.17:
    # 3,378 output tok/s at 128/128).
    args = dict(hardware="dgx-h100", gpus=1, dtype="fp8", kv_cache_dtype="fp8", input_len=128, output_len=128,
                max_model_len=256)
    vllm = recommend("llama-70b", engine="vllm", **args).candidates[0]
    trt = recommend("llama-70b", engine="trtllm", **args).candidates[0]
    assert not vllm.feasible and trt.feasible
    capacity = resolve_profile("dgx-h100")[0].gpu.memory_bytes
    free = capacity - trt.weight_bytes_per_gpu - trt.runtime_reserve_bytes_per_gpu
    assert trt.kv_cache_bytes_per_gpu == int(0.90 * free)
    half = recommend("llama-70b", engine="trtllm", gpu_memory_utilization=0.45, **args).candidates[0]
    assert half.kv_cache_bytes_per_gpu == int(0.45 * free)


def test_objective_latency_ranks_by_the_latency_the_limits_check():
    """At a batch with long prompts the decode step alone favours TP8, but every running request also waits for the
    prefill chunks mixed into its steps: the latency objective ranks by that (tpot_under_load_s)."""
    plan = recommend("llama-8b", gpus=8, objective="latency", batch=128, input_len=4096, output_len=128)
    feasible = [c for c in plan.candidates if c.feasible]
    best = plan.recommended
    assert best.tpot_under_load_s == min(c.tpot_under_load_s for c in feasible)
    assert any(c.tpot_s < best.tpot_s for c in feasible)  # not the fastest decode step alone


def test_a_runner_up_on_fewer_gpus_is_explained_by_its_total(run_cli):
    """On 7 GPUs the runner-up TP2 x PP3 is faster per GPU but leaves one idle: the explanation says so, with both
    totals, never a negative "% fewer tok/s per GPU"."""
    import re

    r = run_cli("recommend", "--model", "llama-70b", "--hardware", "dgx-h100", "--gpus", "7", "-f", "json")
    assert r.code == 0, r.err
    d = r.json()
    text = " ".join(d["explanation"])
    best = d["recommended"]
    six = next(c for c in d["candidates"] if c["feasible"] and c["gpus_used"] == 6
               and c["output_tokens_per_s_per_gpu"] > best["output_tokens_per_s_per_gpu"])
    assert "uses 6 of the 7 GPUs" in text
    assert f"({six['output_tokens_per_s']:,.0f} vs {best['output_tokens_per_s']:,.0f};" in text
    assert re.search(r"-\d+% fewer", text) is None


def test_dp_attention_on_a_gqa_model_is_not_credited_with_uncopied_kv(run_cli):
    """Mixtral's 8 KV heads shard over TP4, so DP attention's gain there is its ranks' own schedulers, not KV that TP
    would copy; on DeepSeek-V3 (MLA) the latent KV copied on every TP rank is the reason."""
    text = " ".join(run_cli("recommend", "--model", "mixtral", "--hardware", "dgx-a100-80g", "-f",
                            "json").json()["explanation"])
    assert "beats TP4: each of its DP ranks runs its own scheduler's sequences" in text
    assert "caches only its own sequences" not in text
    mla = " ".join(run_cli("recommend", "--model", "deepseek-v3", "--hardware", "hgx-h200", "-f",
                           "json").json()["explanation"])
    assert "the latent KV is not replicated on every GPU" in mla

"""MoE models as they are served: expert parallelism (ep) and attention data parallelism (dp_attention), issue 14."""

from __future__ import annotations

import dataclasses

import pytest

from tpplan.cost.coefficients import coefficients, mlp_activation_widths
from tpplan.cost.collectives import collective_time_s
from tpplan.cost.moe import (
    destinations_per_token,
    dispatch_bytes_per_gpu,
    gather_ranks,
    gathers_tokens,
    keeps_tp_allreduce,
    layers_comm_time_s,
    moe_comm_time_s,
    routing_tokens,
)
from tpplan.hardware.loader import load_builtin
from tpplan.models.resolve import resolve_model
from tpplan.planner.candidates import activation_reserve_bytes
from tpplan.planner.plan import recommend
from tpplan.planner.workload import Workload
from tpplan.units import ceil_div


def _cand(plan, *, tp, pp, dp, ep):
    return next(c for c in plan.candidates if (c.tp, c.pp, c.dp_attention, c.ep) == (tp, pp, dp, ep))


def _find(cands, *, tp, dp, ep, pp=1):
    return next(c for c in cands if (c["tp"], c["pp"], c["dp_attention"], c["ep"]) == (tp, pp, dp, ep))


@pytest.fixture(scope="module")
def deepseek_h200_sglang(request):
    from typer.testing import CliRunner

    from tpplan.cli import app

    r = CliRunner().invoke(app, ["recommend", "-m", "deepseek-v3", "--hardware", "hgx-h200", "--gpus", "8",
                                 "--engine", "sglang", "-f", "json"])
    assert r.exit_code == 0, r.output
    import json

    return json.loads(r.stdout)


def test_deepseek_v3_fp8_fits_8_h200_and_dp_attention_beats_tp8_at_max_throughput(deepseek_h200_sglang):
    d = deepseek_h200_sglang
    assert d["inputs"]["dtype"].startswith("fp8")  # its own FP8 block checkpoint
    best, tp8 = d["recommended"], _find(d["candidates"], tp=8, dp=1, ep=1)
    assert tp8["feasible"] and best["feasible"] and best["gpus_used"] == 8
    assert best["dp_attention"] > 1  # attention DP (with EP or TP experts) wins at high load
    dp8 = [c for c in d["candidates"] if c["dp_attention"] == 8 and c["feasible"]]
    assert {c["ep"] for c in dp8} == {1, 8}  # both expert layouts under DP attention are planned
    for c in dp8:
        assert c["output_tokens_per_s"] > 1.5 * tp8["output_tokens_per_s"]
        # MLA's latent KV is replicated on every TP rank; DP ranks each cache their own sequences
        assert c["max_concurrent_sequences"] > 4 * tp8["max_concurrent_sequences"]
    assert any("beats TP8" in e and "latent KV is not replicated" in e for e in d["explanation"])


def test_mla_kv_per_gpu_is_the_same_latent_under_tp_and_dp_attention(deepseek_h200_sglang):
    # one latent of (kv_lora_rank 512 + rope 64) per layer per token on every GPU, whatever the layout, so the
    # tokens a GPU caches follow its KV bytes: DP attention multiplies sequences by the number of ranks instead
    d = deepseek_h200_sglang
    for c in d["candidates"]:
        if c["feasible"] and c["pp"] == 1:  # a PP stage caches only its own layers
            per_token = c["kv_cache_bytes_per_gpu"] / c["kv_cache_tokens"]
            assert per_token == pytest.approx((512 + 64) * 2 * 61, rel=1e-4)


def test_mixtral_8x7b_on_8_h100_vllm_compares_tp_and_ep_in_numbers():
    plan = recommend("mixtral-8x7b", hardware="dgx-h100", gpus=8, engine="vllm")
    tp8 = next(c for c in plan.candidates if (c.tp, c.pp, c.ep, c.dp_attention) == (8, 1, 1, 1))
    ep8 = next(c for c in plan.candidates if (c.tp, c.pp, c.ep, c.dp_attention) == (8, 1, 8, 1))
    ep8_dp8 = next(c for c in plan.candidates if (c.tp, c.pp, c.ep, c.dp_attention) == (1, 1, 8, 8))
    for c in (tp8, ep8, ep8_dp8):
        assert c.feasible and c.tpot_s > 0 and c.output_tokens_per_s > 0 and c.decode_step.compute_s > 0
    # EP inside the TP group holds the same expert bytes (8 experts / 8 GPUs = one whole expert, or 1/8 of each)
    assert ep8.weight_bytes_per_gpu == tp8.weight_bytes_per_gpu
    # top-2 routing: the busiest EP rank carries imbalance x the mean, so EP8 is not faster than TP8 per step
    assert ep8.tpot_s >= tp8.tpot_s
    # DP attention replicates attention on every GPU but caches only each rank's sequences: more of them
    assert ep8_dp8.max_concurrent_sequences > tp8.max_concurrent_sequences


def test_expert_parallel_weights_per_gpu_by_hand():
    """Mixtral-8x7B (HF config: hidden 4096, 32 layers, 32 heads, 8 KV heads x 128, 8 experts of width 14336,
    vocab 32000, untied) in bf16 on 8 GPUs with attention TP 1, DP-attention 8, EP 8: each GPU holds all of
    attention, one whole expert per layer, the router, norms, the embedding and lm_head."""
    h, layers, kv, d, f, e, vocab = 4096, 32, 8, 128, 14336, 8, 32000
    attention = h * h + 2 * h * kv * d + h * h  # q, k+v, o
    one_expert = 3 * h * f  # gate, up, down
    router, norms = h * e, 2 * h
    per_layer = attention + one_expert * (e // 8) + router + norms
    params = layers * per_layer + 2 * vocab * h + h  # embedding, lm_head (vocab 32000 is a multiple of 64), norm
    plan = recommend("mixtral-8x7b", hardware="dgx-h100", gpus=8, engine="vllm", dtype="bf16", tp=1,
                     dp_attention=8, ep=8)
    assert plan.chosen.weight_bytes_per_gpu == 2 * params
    # DeepSeek-V3 under EP8: 256 routed experts / 8 = 32 whole experts of 3 x 7168 x 2048 fp8 weights per MoE layer
    # (vLLM: its DP ranks hold everything else at attention TP 1, so the experts are the whole difference; SGLang
    # also splits the dense layers, shared experts and lm_head, test_moe_layouts.py)
    ds = recommend("deepseek-v3", hardware="hgx-h200", gpus=8, engine="vllm", tp=1, dp_attention=8, ep=8)
    full = recommend("deepseek-v3", hardware="hgx-h200", gpus=8, engine="vllm", tp=1, dp_attention=1, ep=1,
                     replicas=1)
    expert_bytes = 3 * 7168 * 2048 * (1 + 4 / 128 ** 2)  # fp8 + one fp32 scale per 128 x 128 block
    saved = full.chosen.weight_bytes_per_gpu - ds.chosen.weight_bytes_per_gpu
    assert saved == pytest.approx(58 * (256 - 32) * expert_bytes, rel=1e-6)


def test_all_to_all_only_with_dp_attention_and_ep():
    spec, profile = resolve_model("deepseek-v3").spec, load_builtin("hgx-h200")
    gathered = coefficients(spec, profile, tp=1, ep=8, dp_attention=8, moe_imbalance=1.0).moe
    # the all-to-all an engine runs when asked (DeepEP: SGLang --moe-a2a-backend deepep, vLLM --all2all-backend
    # deepep_low_latency); the engines' defaults gather instead (test_default_token_movement_per_engine)
    ep_dp = dataclasses.replace(gathered, gather_dispatch=False)
    tp_dp = coefficients(spec, profile, tp=1, ep=1, dp_attention=8).moe
    ep_tp = coefficients(spec, profile, tp=8, ep=8, dp_attention=1).moe
    assert coefficients(spec, profile, tp=8).moe is None
    # 8 top-8 experts over 8 GPUs land on 8 x (1 - (7/8)^8) = 5.25 GPUs on average: each token is sent once to each
    assert destinations_per_token(ep_dp) == pytest.approx(8 * (1 - (7 / 8) ** 8))
    # 64 tokens per rank x 8 ranks / 8 GPUs x 5.25 destinations x 7168 hidden x 2 bytes
    assert dispatch_bytes_per_gpu(ep_dp, 64) == pytest.approx(64 * 5.2509 * 7168 * 2, rel=1e-4)
    assert dispatch_bytes_per_gpu(gathered, 64) == 0
    assert dispatch_bytes_per_gpu(tp_dp, 64) == 0 and moe_comm_time_s(tp_dp, profile, 64) > 0  # gathers instead
    assert moe_comm_time_s(ep_tp, profile, 64) == 0  # tokens already on every rank: the usual all-reduce
    assert moe_comm_time_s(ep_dp, profile, 512) > moe_comm_time_s(ep_dp, profile, 64)


def test_moe_imbalance_slows_expert_parallel_layouts_only():
    base = recommend("mixtral-8x7b", hardware="dgx-h100", gpus=8, engine="vllm", batch=256)
    skewed = recommend("mixtral-8x7b", hardware="dgx-h100", gpus=8, engine="vllm", batch=256, moe_imbalance=1.8)
    key = {(c.tp, c.pp, c.ep, c.dp_attention): c for c in base.candidates}
    for c in skewed.candidates:
        if not c.feasible:
            continue
        other = key[(c.tp, c.pp, c.ep, c.dp_attention)]
        if c.ep > 1:
            assert c.tpot_s > other.tpot_s
        else:
            assert c.tpot_s == other.tpot_s
    assert "imbalance 1.80" in skewed.assumptions["moe"]


def test_engine_rules_and_flags(run_cli):
    trt = recommend("mixtral-8x7b", hardware="dgx-h100", gpus=8, engine="trtllm")
    bad = next(c for c in trt.candidates if (c.tp, c.dp_attention) == (2, 4))
    assert not bad.feasible and "enable_attention_dp runs attention with TP 1" in bad.reasons[0]
    assert all(c.ep == 1 and c.dp_attention == 1 for c in recommend("llama-8b", gpus=8).candidates)
    out = run_cli("recommend", "-m", "deepseek-v3", "--hardware", "hgx-h200", "--gpus", "8", "--emit", "vllm",
                  "-f", "json").json()
    best = out["recommended"]
    assert best["dp_attention"] > 1  # the emitted command is the recommendation's layout
    assert f"--data-parallel-size {best['dp_attention']}" in out["serve_command"]
    assert ("--enable-expert-parallel" in out["serve_command"]) == (best["ep"] > 1)
    plan = recommend("deepseek-v3", hardware="hgx-h200", gpus=8, engine="vllm")
    plan.recommended = _cand(plan, tp=1, pp=1, dp=8, ep=8)
    cmd = plan.serve_command()
    assert "--data-parallel-size 8" in cmd and "--enable-expert-parallel" in cmd and "--pipeline" not in cmd
    # the token movement that was modelled (tpplan.cost.moe.gathers_tokens), named so a changed default cannot move it
    assert "--all2all-backend allgather_reducescatter" in cmd
    plan.recommended = _cand(plan, tp=1, pp=1, dp=8, ep=1)
    # DP without EP still dispatches through the all2all manager vLLM builds whenever data_parallel_size > 1
    assert "--all2all-backend allgather_reducescatter" in plan.serve_command()
    dense = recommend("llama-8b", gpus=8, engine="vllm")
    assert "--all2all-backend" not in dense.serve_command()  # a dense model has no MoE layer to dispatch
    plan = recommend("deepseek-v3", hardware="hgx-h200", gpus=8, engine="trtllm")
    plan.recommended = _cand(plan, tp=1, pp=1, dp=8, ep=8)
    cmd = plan.serve_command("trtllm")
    assert "--ep_size 8" in cmd and "enable_attention_dp: true" in cmd and "--tp_size 8" in cmd
    sg = recommend("deepseek-v3", hardware="hgx-h200", gpus=8, engine="sglang").serve_command()
    assert "--enable-dp-attention" in sg and "--dp-size 8" in sg and "--tp-size 8" in sg
    assert "--moe-a2a-backend" not in sg  # its default "none" gathers, as modelled


def test_bad_ep_is_one_error_line(run_cli):
    r = run_cli("recommend", "-m", "mixtral-8x7b", "--gpus", "8", "--tp", "1", "--dp-attention", "8", "--ep", "3")
    assert r.code == 1 and r.err.startswith("Error: --ep 3 with --tp 1 --dp-attention 8 asks for TP1 x EP3 x "
                                            "DP-attention 8, but vllm spreads the routed experts over every GPU "
                                            "of a replica: EP must be 1 or TP x DP-attention = 8 "
                                            "(--engine sglang or trtllm also runs an EP that "
                                            "divides TP); ")
    r = run_cli("recommend", "-m", "llama-8b", "--gpus", "8", "--tp", "1", "--ep", "8")
    assert r.code == 1 and "Llama-3.1-8B has no routed experts" in r.err


@pytest.mark.parametrize("name,total_b,active_b", [("qwen3-30b-a3b", 30.5, 3.3), ("qwen3-235b-a22b", 235, 22),
                                                   ("deepseek-r1", 671, 37)])
def test_moe_catalogue_totals_match_the_model_cards(name, total_b, active_b):
    """Model cards: Qwen/Qwen3-30B-A3B "30.5B in total and 3.3B activated"; Qwen/Qwen3-235B-A22B "235B in total and
    22B activated"; deepseek-ai/DeepSeek-R1 "671B total, 37B activated" (MTP module not served). The cards
    truncate the activated figure (30B-A3B: 3.353B with the embedding -> "3.3B")."""
    from tpplan.models.params import active_params, total_params

    spec = resolve_model(name).spec
    digits = len(str(total_b).split(".")[-1]) if "." in str(total_b) else 0
    assert round(total_params(spec) / 1e9, digits) == total_b
    assert int(active_params(spec) / 1e9 * 10 ** digits) / 10 ** digits == active_b


def test_trtllm_gathers_tokens_except_on_multi_node_nvlink_with_ep_above_top_k():
    """TensorRT-LLM picks all-to-all only when moe_ep_size > top_k on an MNNVL fabric (fused_moe_cutlass.py
    select_alltoall_method_type); on an 8-GPU HGX it all-gathers every rank's tokens and reduce-scatters."""
    maverick = resolve_model("llama4-maverick").spec  # top-1
    hgx, nvl72 = load_builtin("hgx-h200"), load_builtin("gb200-nvl72")
    on_hgx = coefficients(maverick, hgx, tp=1, ep=8, dp_attention=8, engine="trtllm", dtype="fp8").moe
    on_nvl = coefficients(maverick, nvl72, tp=1, ep=8, dp_attention=8, engine="trtllm", dtype="fp8").moe
    assert on_hgx.gather_dispatch and not on_nvl.gather_dispatch
    # DeepSeek's top-8 over EP8 is not above top_k: gathered even on NVL72
    ds = coefficients(resolve_model("deepseek-v3").spec, nvl72, tp=1, ep=8, dp_attention=8, engine="trtllm").moe
    assert ds.gather_dispatch
    # gathered: no all-to-all buffer, the full T x hidden all-gather + reduce-scatter, and routing over all T tokens
    assert dispatch_bytes_per_gpu(on_hgx, 64) == 0 and dispatch_bytes_per_gpu(on_nvl, 64) > 0
    full = 64 * 8 * 5120 * 2
    expected = (collective_time_s(hgx, kind="allgather", group_size=8, n_bytes=full)
                + collective_time_s(hgx, kind="reducescatter", group_size=8, n_bytes=full))
    assert moe_comm_time_s(on_hgx, hgx, 64) == pytest.approx(expected)
    assert routing_tokens(on_hgx, 64) == 64 * 8 and routing_tokens(on_nvl, 64) == 64


def test_default_token_movement_per_engine():
    """EP + DP attention at each engine's default backend: vLLM --all2all-backend allgather_reducescatter (default
    since v0.11.0, vllm/config/parallel.py), SGLang --moe-a2a-backend none (python/sglang/srt/server_args.py) both
    gather; TensorRT-LLM gathers on HGX, dispatches all-to-all on MNNVL with ep > top_k; other engines all-to-all."""
    hgx, nvl72 = load_builtin("hgx-h200"), load_builtin("gb200-nvl72")
    rule = {e: gathers_tokens(engine=e, ep=8, experts_per_token=1, nvlink_domain_gpus=8)
            for e in ("vllm", "sglang", "trtllm", "megatron")}
    assert rule == {"vllm": True, "sglang": True, "trtllm": True, "megatron": False}
    for e in ("vllm", "sglang"):  # on a multi-node NVLink fabric too: only TensorRT-LLM changes its choice there
        assert gathers_tokens(engine=e, ep=16, experts_per_token=1, nvlink_domain_gpus=72)
    assert not gathers_tokens(engine="trtllm", ep=16, experts_per_token=1, nvlink_domain_gpus=72)
    # vLLM gathers over its DP group (one GPU per attention-TP rank), SGLang over its whole TP group
    assert gather_ranks(engine="vllm", tp=2, dp_attention=4) == 4
    assert gather_ranks(engine="sglang", tp=2, dp_attention=4) == 8
    assert gather_ranks(engine="trtllm", tp=1, dp_attention=8) == 8
    spec = resolve_model("deepseek-v3").spec
    for engine in ("vllm", "sglang"):
        for profile in (hgx, nvl72):
            m = coefficients(spec, profile, tp=1, ep=8, dp_attention=8, engine=engine).moe
            assert m.gather_dispatch and m.gather_ranks == 8 and dispatch_bytes_per_gpu(m, 64) == 0


def test_vllm_dep8_deepseek_v3_gathers_512_tokens_of_7168_bf16():
    """DeepSeek-V3 on 8 H200 under vLLM DP8 + EP8, 64 decode tokens per DP rank: each MoE layer all-gathers the
    8 x 64 = 512 tokens x 7,168 hidden x 2 bytes = 7,340,032 bytes and reduce-scatters the same buffer, and the
    routing kernels read all 512 tokens; the step costs what DP8 with experts split 8 ways costs in communication."""
    spec, hgx = resolve_model("deepseek-v3").spec, load_builtin("hgx-h200")
    m = coefficients(spec, hgx, tp=1, ep=8, dp_attention=8, engine="vllm").moe
    full = 512 * 7168 * 2
    assert full == 7_340_032
    expected = (collective_time_s(hgx, kind="allgather", group_size=8, n_bytes=full)
                + collective_time_s(hgx, kind="reducescatter", group_size=8, n_bytes=full))
    assert moe_comm_time_s(m, hgx, 64) == pytest.approx(expected)
    assert routing_tokens(m, 64) == 512
    plan = recommend("deepseek-v3", hardware="hgx-h200", gpus=8, engine="vllm", batch=512)
    dep8, dp8 = _cand(plan, tp=1, pp=1, dp=8, ep=8), _cand(plan, tp=1, pp=1, dp=8, ep=1)
    assert dep8.decode_step.communication_s == pytest.approx(dp8.decode_step.communication_s)
    # the all-to-all it replaced moved 5.25 / 8 of the tokens per GPU: cheaper, and no longer what vLLM runs
    a2a = dataclasses.replace(m, gather_dispatch=False)
    assert moe_comm_time_s(a2a, hgx, 64) < moe_comm_time_s(m, hgx, 64)


def test_vllm_gathers_over_dp_ranks_and_keeps_the_tp_all_reduce():
    """Mixtral-8x7B, attention TP 2 x DP 4 on 8 H100 (hidden 4096, bf16, 32 MoE layers, 2 all-reduces per layer):
    vLLM all-gathers and reduce-scatters over its 4 DP ranks (strided over all 8 GPUs) and still all-reduces each
    MoE output over TP 2; SGLang gathers over all 8 GPUs and drops that all-reduce."""
    spec, h100 = resolve_model("mixtral-8x7b").spec, load_builtin("dgx-h100")
    tokens, tp_ar = 32, 1e-5
    full = 4 * tokens * 4096 * 2
    for engine, ranks, allreduces in (("vllm", 4, 64), ("sglang", 8, 64 - 32)):
        m = coefficients(spec, h100, tp=2, ep=8, dp_attention=4, engine=engine).moe
        assert m.gather_ranks == ranks and keeps_tp_allreduce(m) == (engine == "vllm")
        one = (collective_time_s(h100, kind="allgather", group_size=ranks, n_bytes=full)
               + collective_time_s(h100, kind="reducescatter", group_size=ranks, n_bytes=full))
        assert moe_comm_time_s(m, h100, tokens) == pytest.approx(one)
        total = layers_comm_time_s(m, h100, tokens, tp_collective_s=tp_ar, collectives_per_layer=2, num_layers=32,
                                   num_moe_layers=32)
        assert total == pytest.approx(allreduces * tp_ar + 32 * one)


def test_mlp_activation_widths_follow_the_layers_the_model_has():
    # Llama 4 Scout: all 48 layers MoE (top-1 of 8,192 + one shared expert of 8,192); its config's
    # intermediate_size_mlp 16,384 belongs to no layer. Maverick interleaves 24 dense layers of 16,384.
    scout, maverick = resolve_model("llama4-scout").spec, resolve_model("llama4-maverick").spec
    assert mlp_activation_widths(scout) == (0, 8192 + 8192)
    assert mlp_activation_widths(maverick) == (16384, 8192 + 8192)
    # DeepSeek-V3: 3 dense layers of 18,432, MoE layers top-8 + 1 shared expert of 2,048
    assert mlp_activation_widths(resolve_model("deepseek-v3").spec) == (18432, 9 * 2048)
    profile = load_builtin("dgx-h100")
    # layer average per GPU at TP8: Maverick (24 x 16,384 + 24 x 16,384) / 48 / 8; DeepSeek (3 x 18,432 + 58 x 18,432)
    assert coefficients(maverick, profile, tp=8, dtype="fp8").mlp_width_per_gpu == 2048
    assert coefficients(resolve_model("mixtral").spec, profile, tp=8).mlp_width_per_gpu == 2 * 14336 // 8


def test_activation_reserve_ignores_a_dense_width_no_layer_has():
    scout = resolve_model("llama4-scout").spec
    profile, w = load_builtin("dgx-h100"), Workload(gpus=8, engine="vllm", dtype="fp8").for_model(scout)
    c = coefficients(scout, profile, tp=8, dtype="fp8")
    wider = dataclasses.replace(scout, intermediate_size=4 * scout.intermediate_size)
    assert activation_reserve_bytes(wider, c, w) == activation_reserve_bytes(scout, c, w)
    tokens = min(w.max_model_len, 8192)
    logits = 256 * ceil_div(scout.vocab_size, 8) * 4  # fp32 logits of 256 sequences
    assert activation_reserve_bytes(scout, c, w) == tokens * (4 * 5120 + 2 * 16384 // 8) * 2 + logits

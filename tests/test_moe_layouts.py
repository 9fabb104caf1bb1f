"""Issue 14: the EP / DP-attention layouts in `sweep` as in `recommend`, combined with pipeline stages where the
engine accepts it (tpplan.planner.layouts cites each engine's rule), and the engine flags of each."""

from __future__ import annotations

import pytest

from tpplan.planner.layouts import serving_layouts
from tpplan.planner.plan import recommend
from tpplan.planner.sweep import sweep

FIELDS = ("tpot_s", "ttft_s", "ttft_under_load_s", "kv_cache_bytes_per_gpu", "weight_bytes_per_gpu",
          "max_concurrent_sequences", "output_tokens_per_s", "output_tokens_per_s_per_gpu")


def _key(c) -> tuple[int, int, int, int]:
    return (c.tp, c.pp, c.dp_attention, c.ep)


def _cand(plan, *, tp, pp, dp, ep):
    return next(c for c in plan.candidates if _key(c) == (tp, pp, dp, ep))


@pytest.mark.parametrize("model,hardware,engine,batch", [("mixtral", "hgx-h200", "vllm", 48),
                                                         ("deepseek-v3", "hgx-h200", "sglang", 96)])
def test_sweep_evaluates_every_recommend_layout_with_the_same_numbers(model, hardware, engine, batch):
    df, _ = sweep(models=[model], hardware=[hardware], gpus=[8], batches=[batch], input_lens=[1000],
                  output_lens=[301], engine=engine)
    plan = recommend(model, hardware=hardware, gpus=8, engine=engine, batch=batch, input_len=1000, output_len=301)
    rows = {(r.tp, r.pp, r.dp_attention, r.ep): r for r in df.itertuples()}
    assert set(rows) == {_key(c) for c in plan.candidates}  # one enumeration: the same layouts, no more, no fewer
    assert any(k[2] > 1 and k[1] > 1 for k in rows)  # PP x DP attention is among them
    compared = 0
    for c in plan.candidates:
        row = rows[_key(c)]
        assert (row.replicas, row.gpus_used) == (c.replicas, c.gpus_used)
        if c.tpot_s is None:  # a layout an engine rule refuses: no numbers, the same reasons
            assert not row.feasible and row.reason == "; ".join(c.reasons)
            continue
        assert (row.batch_run, bool(row.feasible)) == (c.batch, c.feasible)  # a batch capped alike
        for field in FIELDS:
            if not c.feasible and field in ("tpot_s", "ttft_s", "ttft_under_load_s", "tpot_under_load_s"):
                assert getattr(row, field) != getattr(row, field)  # NaN: a layout that cannot run has no latencies
                continue
            assert getattr(row, field) == pytest.approx(getattr(c, field), rel=1e-9), (_key(c), field)
        compared += 1
    assert compared >= 10


def test_moe_layouts_include_pipeline_stages_and_fill_the_gpus():
    plan = recommend("mixtral", hardware="hgx-h200", gpus=8, engine="vllm")
    layouts = serving_layouts(plan.model, plan.workload)
    assert all(lay.gpus_per_replica * lay.replicas <= 8 for lay in layouts)
    assert len({lay.key for lay in layouts}) == len(layouts)
    keys = {lay.key for lay in layouts}
    # (tp, pp, dp, ep): EP inside TP4 over two stages, DP attention 4 over two stages with whole or split experts
    assert {(4, 2, 1, 4), (1, 2, 4, 4), (1, 2, 4, 1), (2, 2, 2, 4)} <= keys
    assert all(lay.ep == 1 and lay.dp_attention == 1 for lay in
               serving_layouts(recommend("llama-8b", gpus=8).model, plan.workload))  # dense: none


@pytest.mark.parametrize("engine", ["vllm", "trtllm"])
def test_engines_that_accept_pp_with_dp_attention_get_it(engine):
    """vLLM builds one EP group of DP x TP per PP stage (vllm/distributed/parallel_state.py); TensorRT-LLM runs
    attention DP with pp > 1 (NVIDIA/TensorRT-LLM PR #3244, #3370)."""
    plan = recommend("deepseek-v3", hardware="hgx-h200", gpus=8, engine=engine)
    c = _cand(plan, tp=1, pp=2, dp=4, ep=4)
    assert c.feasible and c.gpus_used == 8 and c.tpot_s > 0
    # each stage holds half the layers: half the latent KV per token of DP-attention 8 without PP
    flat = _cand(plan, tp=1, pp=1, dp=8, ep=8)
    per_token = c.kv_cache_bytes_per_gpu / c.kv_cache_tokens
    assert per_token == pytest.approx(flat.kv_cache_bytes_per_gpu / flat.kv_cache_tokens * 31 / 61, rel=1e-3)


def test_sglang_refuses_pp_with_dp_attention_and_says_why(run_cli):
    out = run_cli("recommend", "-m", "deepseek-r1", "--hardware", "hgx-h200", "--nodes", "2", "--gpus", "16",
                  "--engine", "sglang", "-f", "json").json()
    for c in out["candidates"]:
        assert {"tp", "pp", "ep", "dp_attention", "replicas"} <= set(c)
    pp2 = next(c for c in out["candidates"] if (c["tp"], c["pp"], c["dp_attention"], c["ep"]) == (1, 2, 8, 8))
    assert not pp2["feasible"] and pp2["tpot_s"] is None
    assert any("issue #9805" in r and "--pp-size 2 with --enable-dp-attention" in r for r in pp2["reasons"])
    assert any(line.startswith("TP1 (EP8 + DP-attention 8) x PP2 x 1 replica: rejected: sglang: --pp-size 2")
               for line in out["explanation"])
    best = out["recommended"]
    assert not (best["pp"] > 1 and best["dp_attention"] > 1)
    # PP with EP inside one TP group passes SGLang's checks and is planned
    ep_pp = next(c for c in out["candidates"] if (c["tp"], c["pp"], c["dp_attention"], c["ep"]) == (8, 2, 1, 8))
    assert not any("sglang" in r for r in ep_pp["reasons"])


@pytest.mark.parametrize("engine,expected", [
    ("vllm", ["--tensor-parallel-size 1", "--pipeline-parallel-size 2", "--data-parallel-size 4",
              "--enable-expert-parallel"]),
    ("trtllm", ["--tp_size 4", "--pp_size 2", "--ep_size 4", "--extra_llm_api_options extra_llm_api_options.yaml",
                "enable_attention_dp: true"]),
])
def test_emit_pp_with_dp_attention_and_ep(engine, expected):
    plan = recommend("deepseek-v3", hardware="hgx-h200", gpus=8, engine=engine)
    plan.recommended = _cand(plan, tp=1, pp=2, dp=4, ep=4)
    cmd = plan.serve_command()
    for flag in expected:
        assert flag in cmd, (flag, cmd)


def test_emit_sglang_pp_with_ep_over_two_nodes():
    plan = recommend("deepseek-r1", hardware="hgx-h200", nodes=2, gpus=16, engine="sglang")
    plan.recommended = _cand(plan, tp=8, pp=2, dp=1, ep=8)
    blocks = plan.serve_command().split("# on node ")
    assert len(blocks) == 3  # '' before the first node, then node 0 and node 1
    for node, block in enumerate(blocks[1:]):
        for flag in ("--tp-size 8", "--pp-size 2", "--ep-size 8", "--nnodes 2", f"--node-rank {node}"):
            assert flag in block, (flag, block)
        assert "--enable-dp-attention" not in block


def test_explanation_compares_with_plain_tp_over_the_same_stages_and_names_every_rejection():
    import dataclasses

    from tpplan.planner.explain import explain, label

    plan = recommend("deepseek-r1", hardware="hgx-h200", nodes=2, gpus=16, engine="sglang")
    rejected = [c for c in plan.candidates if not c.feasible]
    assert len(rejected) > 20
    for c in rejected:  # every rejected layout, with its reasons
        assert f"{label(c)}: rejected: {'; '.join(c.reasons)}." in plan.explanation
    # a DP-attention x PP winner is compared with TP over one stage's GPUs and the same stages
    plan = recommend("deepseek-v3", hardware="hgx-h200", gpus=8, engine="vllm")
    best = _cand(plan, tp=1, pp=2, dp=4, ep=4)
    plan.recommended = best
    line = next(x for x in explain(plan) if "beats" in x)
    rival = _cand(plan, tp=4, pp=2, dp=1, ep=1)
    assert line.startswith("EP4 + DP-attention 4 x PP2 beats TP4 x PP2: the latent KV is not replicated on every GPU, "
                           f"{best.max_concurrent_sequences / rival.max_concurrent_sequences:.1f}x the sequences")
    # TP over the same stages rejected: compared with TP over all 8 GPUs; both rejected: the line says why
    tp8 = _cand(plan, tp=8, pp=1, dp=1, ep=1)
    plan.candidates = [dataclasses.replace(c, feasible=False, reasons=("no room",)) if c is rival else c
                       for c in plan.candidates]
    assert next(x for x in explain(plan) if "beats" in x).startswith("EP4 + DP-attention 4 x PP2 beats TP8: ")
    plan.candidates = [dataclasses.replace(c, feasible=False, reasons=("no room",)) if c is tp8 else c
                       for c in plan.candidates]
    line = next(x for x in explain(plan) if "beats" in x)
    assert line == "EP4 + DP-attention 4 x PP2 beats TP4 x PP2, which is rejected: no room."


def test_vllm_refuses_pp_with_dp_attention_across_nodes():
    """vLLM keeps each DP rank's stages on one node (--data-parallel-size-local), so a stage's DP x TP group would
    span nodes; on one node the same combination is planned (test_engines_that_accept_pp_with_dp_attention_get_it)."""
    plan = recommend("deepseek-r1", hardware="hgx-h200", nodes=2, gpus=16, engine="vllm")
    c = _cand(plan, tp=1, pp=2, dp=8, ep=8)
    assert not c.feasible and c.reasons[-1].startswith("vllm: each DP rank keeps its 2 pipeline stages on one node")
    assert _cand(plan, tp=1, pp=1, dp=16, ep=16).feasible  # DP attention over both nodes
    assert _cand(plan, tp=8, pp=2, dp=1, ep=8).feasible  # EP inside TP8, stages across nodes
    trt = recommend("deepseek-r1", hardware="hgx-h200", nodes=2, gpus=16, engine="trtllm")
    assert _cand(trt, tp=1, pp=2, dp=8, ep=8).feasible  # tensorrt_llm/mapping.py: the TP group inside a PP stage


def test_sweep_moe_imbalance_reaches_the_ep_layouts_as_in_recommend():
    kw = {"gpus": 8, "engine": "vllm", "batch": 48, "input_len": 1000, "output_len": 301}
    df, _ = sweep(models=["mixtral"], hardware=["hgx-h200"], gpus=[8], batches=[48], input_lens=[1000],
                  output_lens=[301], engine="vllm", moe_imbalance=1.6)
    skewed = _cand(recommend("mixtral", hardware="hgx-h200", moe_imbalance=1.6, **kw), tp=1, pp=1, dp=8, ep=8)
    even = _cand(recommend("mixtral", hardware="hgx-h200", moe_imbalance=1.0, **kw), tp=1, pp=1, dp=8, ep=8)
    row = next(r for r in df.itertuples() if (r.tp, r.pp, r.dp_attention, r.ep) == (1, 1, 8, 8))
    assert row.tpot_s == pytest.approx(skewed.tpot_s, rel=1e-9)
    assert skewed.tpot_s > even.tpot_s  # the busiest rank's extra tokens cost time


def test_sweep_cli_refuses_an_imbalance_below_one(run_cli):
    r = run_cli("sweep", "--models", "mixtral", "--moe-imbalance", "0.9")
    assert r.code == 2 and "--moe-imbalance" in r.err and "Traceback" not in r.err


def test_each_engine_applies_its_running_request_limit_where_the_engine_does():
    """SGLang's --max-running-requests and --chunked-prefill-size are the server's: each of dp attention-DP workers
    gets max_running_requests // dp_size and chunked_prefill_size / dp (sglang server_args / scheduler). vLLM runs an
    engine core with its own --max-num-seqs per DP rank, TensorRT-LLM an executor with its own max_batch_size."""
    from tpplan.cost.batching import max_concurrency, rank_limits, scheduler_limits

    sgl = scheduler_limits("sglang", gpu_name="H200", gpu_memory_bytes=141 * 2**30, max_num_seqs=1024)
    per_rank = rank_limits(sgl, 16)
    assert (per_rank.max_num_seqs, per_rank.max_num_batched_tokens) == (64, 512)
    vllm = scheduler_limits("vllm", gpu_name="H200", gpu_memory_bytes=141 * 2**30, max_num_seqs=1024)
    assert rank_limits(vllm, 16) == vllm
    # SGLang decodes apart from its prefill batches: the token budget does not cap the decode batch; vLLM mixes
    # prefill into every step, so a steady state of 1024 in / 256 out holds at most 8192 x 256 / 1280 sequences
    free = scheduler_limits("sglang", gpu_name="H200", gpu_memory_bytes=141 * 2**30)
    assert max_concurrency(free, kv_cache_tokens=10_000_000, input_len=1024, output_len=256) == 10_000_000 // 1152
    many = scheduler_limits("vllm", gpu_name="H200", gpu_memory_bytes=141 * 2**30, max_num_seqs=4096)
    assert max_concurrency(many, kv_cache_tokens=10_000_000, input_len=1024, output_len=256) == 8192 * 256 // 1280


def test_sglang_dp_attention_plans_the_servers_running_request_limit():
    """--max-running-requests 1024 with 8 DP-attention ranks: 1024 sequences in the server, not 8 x 1024."""
    plan = recommend("deepseek-v3", gpus=8, hardware="hgx-h200", engine="sglang", max_num_seqs=1024, tp=1,
                     dp_attention=8, ep=8, replan_suggestions=False)
    assert plan.chosen.batch <= 1024
    few = recommend("deepseek-v3", gpus=8, hardware="hgx-h200", engine="sglang", max_num_seqs=4, tp=1,
                    dp_attention=8, ep=8, replan_suggestions=False).chosen
    assert not few.feasible and "--max-running-requests 4 is below the 8 attention-DP workers" in few.reasons[-1]


def test_sglang_defaults_follow_its_server_args_and_model_runner():
    """chunked_prefill_size 2048 / 8192 / 16384 below 35 GiB / below 160 GiB / above (server_args.py); the running-
    request limit of a worker is kv_tokens / context_len x 512 clamped to [2048, 4096] and at most kv_tokens / 2
    (ModelRunner._resolve_max_num_reqs)."""
    from tpplan.cost.batching import scheduler_limits, sglang_running_requests

    def tokens(gib):
        return scheduler_limits("sglang", gpu_name="x", gpu_memory_bytes=gib * 2**30).max_num_batched_tokens

    assert (tokens(24), tokens(80), tokens(141), tokens(180)) == (2048, 8192, 8192, 16384)
    assert sglang_running_requests(1_000_000, 8192) == 4096  # 62,500 estimated, clamped
    assert sglang_running_requests(40_000, 8192) == 2500  # inside the clamp
    assert sglang_running_requests(3_000, 8192) == 1500  # clamped up to 2048, then at most half the pool
    assert sglang_running_requests(1_000_000, 131072) == 3906


def test_sglang_plans_at_most_its_own_running_request_limit():
    """Llama-3-8B on one H200, 64 in / 64 out: the KV pool holds ~9,000 sequences but SGLang runs at most 4096
    (context 8192); the plan and its TPOT are those of 4096, not of what memory alone would allow."""
    plan = recommend("llama-3-8b", gpus=1, hardware="hgx-h200", engine="sglang", input_len=64, output_len=64,
                     replan_suggestions=False)
    assert plan.recommended.max_concurrent_sequences == plan.recommended.batch == 4096


def test_emit_pins_the_token_budget_the_plan_assumed():
    """A user's --max-num-batched-tokens reaches the command in each engine's spelling; SGLang's low-latency DeepEP
    prefill, whose buffer was sized for the budget, always names it (SGLang's default depends on the GPU)."""
    from tpplan.planner.emit import serve_commands

    def command(engine, **kw):
        plan = recommend("llama-8b", gpus=1, engine=engine, replan_suggestions=False, **kw)
        return " ".join(n.command for n in serve_commands(plan, engine))

    assert "--max-num-batched-tokens 4096" in command("vllm", max_num_batched_tokens=4096)
    assert "--chunked-prefill-size 4096" in command("sglang", max_num_batched_tokens=4096)
    assert "--max_num_tokens 4096" in command("trtllm", max_num_batched_tokens=4096)
    assert "--chunked-prefill-size" not in command("sglang")
    ll = dict(gpus=8, hardware="dgx-b200", engine="sglang", all2all_backend="deepep", deepep_mode="low_latency", tp=1,
              dp_attention=8, ep=8, replan_suggestions=False)
    # B200's default chunked_prefill_size 16384 is 2048 tokens per rank in one low-latency call: DeepEP refuses it
    assert not recommend("qwen3-30b-a3b", **ll).chosen.feasible
    plan = recommend("qwen3-30b-a3b", max_num_batched_tokens=8192, **ll)
    text = " ".join(n.command for n in serve_commands(plan, "sglang"))
    assert "--chunked-prefill-size 8192" in text and "SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK=1024" in text


def test_sglang_ep_must_divide_the_routed_experts(run_cli):
    """SGLang's FusedMoE asserts num_experts % ep_size == 0 (python/sglang/srt/layers/moe/fused_moe_triton/layer.py):
    Mixtral's 8 experts over EP6 (--tp 2 x --dp-attention 3) are refused with the reason and the fix; vLLM, which
    places the remainder on the first ranks, plans the same layout."""
    args = ("recommend", "-m", "mixtral", "--gpus", "6", "--tp", "2", "--dp-attention", "3", "--ep", "6", "-f", "json")
    chosen = run_cli(*args, "--engine", "sglang").json()["chosen"]
    assert not chosen["feasible"]
    # --ep 1 is no fix here: Mixtral's expert width 14,336 does not split over 6 GPUs
    assert chosen["reasons"] == ["sglang: --ep-size 6 does not divide the 8 routed experts (SGLang's FusedMoE asserts "
                                 "num_experts % ep_size == 0); use an EP group of 4 GPUs (--tp x --dp-attention = 4, "
                                 "--ep 4)"]
    assert chosen["weight_bytes_per_gpu"] == 0  # refused before sizing
    assert run_cli(*args, "--engine", "vllm").json()["chosen"]["feasible"]
    # the suggested layout runs
    fixed = run_cli("recommend", "-m", "mixtral", "--gpus", "6", "--tp", "2", "--dp-attention", "2", "--ep", "4",
                    "--engine", "sglang", "-f", "json").json()["chosen"]
    assert fixed["feasible"], fixed["reasons"]
    # the --emit of a refused layout names the reason
    r = run_cli(*args[:-2], "--engine", "sglang", "--emit", "sglang")
    assert r.code == 1 and "--ep-size 6 does not divide the 8 routed experts" in r.err


def test_tp_groups_that_would_span_two_nodes_are_not_planned(run_cli):
    """TensorRT-LLM runs Llama 4 Maverick (40 heads) at TP5, but two 8-GPU nodes hold only two TP5 groups (a third
    would straddle them): recommend plans 2 replicas, and a layout asking for 3 groups is refused with the count."""
    from tpplan.planner.layouts import tp_group_slots

    assert tp_group_slots(gpus=16, tp=5, nvlink_domain_size=8, gpus_per_node=8) == (2, 8)
    assert tp_group_slots(gpus=16, tp=4, nvlink_domain_size=8, gpus_per_node=8) == (4, 8)
    assert tp_group_slots(gpus=72, tp=5, nvlink_domain_size=72, gpus_per_node=72) == (14, 72)  # NVL72: one domain
    assert tp_group_slots(gpus=8, tp=2, nvlink_domain_size=1, gpus_per_node=8) == (4, 8)  # PCIe: the node
    # 10 GPUs asked of two 8-GPU nodes may be 5 + 5: two TP5 groups, one per node
    assert tp_group_slots(gpus=10, tp=5, nvlink_domain_size=8, gpus_per_node=8, pool_gpus=16) == (2, 8)
    assert tp_group_slots(gpus=10, tp=5, nvlink_domain_size=8, gpus_per_node=8) == (1, 8)  # one node's worth
    r = run_cli("recommend", "--model", "llama4-maverick", "--hardware", "dgx-b200", "--nodes", "2", "--engine",
                "trtllm", "-f", "json")
    assert r.code == 0, r.err
    tp5 = {(c["pp"], c["dp_attention"]): c for c in r.json()["candidates"] if c["tp"] == 5}
    assert tp5[(1, 1)]["replicas"] == 2 and tp5[(1, 1)]["gpus_used"] == 10 and tp5[(1, 1)]["feasible"]
    assert not tp5[(3, 1)]["feasible"] and tp5[(3, 1)]["reasons"][0] == (
        "its 3 TP5 groups do not fit 16 GPUs in 8-GPU NVLink domains: each NVLink domain holds 1 of them, 2 in all, "
        "so one would span two; use a TP degree that divides 8, or at most 2 pipeline stages x attention-DP ranks")


def test_a_fixed_tp_without_replicas_gets_as_many_as_fit(run_cli):
    """`--tp 5` alone on two 8-GPU nodes: two whole TP5 groups fit, so the fixed layout runs 2 replicas (feasible),
    as the candidate table plans it; `compare 5 8` likewise."""
    args = ("--model", "llama4-maverick", "--hardware", "dgx-b200", "--nodes", "2", "--engine", "trtllm")
    r = run_cli("recommend", *args, "--tp", "5", "-f", "json")
    assert r.code == 0, r.err
    chosen = r.json()["chosen"]
    assert (chosen["replicas"], chosen["feasible"]) == (2, True)
    r = run_cli("compare", *args, "5", "8", "-f", "json")
    assert r.code == 0, r.err
    assert [(c["tp"], c["replicas"], c["feasible"]) for c in r.json()["layouts"]][0] == (5, 2, True)


def test_a_moe_win_always_names_a_reason(run_cli):
    """Mixtral-8x22B on 8 x H100 under vLLM: DP-attention 4 x PP2 beats TP4 x PP2 though it runs fewer sequences and
    replicates no KV heads; the line gives the difference that remains (its collectives' share), never an empty
    reason."""
    r = run_cli("recommend", "-m", "mixtral-8x22b", "--hardware", "dgx-h100", "--engine", "vllm", "-f", "json")
    assert r.code == 0, r.err
    lines = [x for x in r.json()["explanation"] if " beats " in x]
    assert lines and all(": ;" not in x for x in lines)
    assert any("collectives take" in x for x in lines)


def test_sglang_dp_attention_splits_lm_head_dense_and_shared_over_the_whole_group(run_cli):
    """SGLang under --enable-dp-attention (tpplan.planner.candidates.sglang_dp_attention_splits): the lm_head over
    all --tp-size GPUs, the embedding whole, attention at attention TP; vLLM's DP ranks hold everything at attention
    TP. Mixtral TP1 x DP8 x EP8 (no dense layers, no shared experts): SGLang holds 7/8 of the lm_head less,
    7/8 x 32,000 x 4,096 x 2 B = 229,376,000 B."""
    args = ("recommend", "-m", "mixtral-8x7b", "--hardware", "hgx-h200", "--gpus", "8", "--tp", "1",
            "--dp-attention", "8", "--ep", "8", "-f", "json")
    sglang = run_cli(*args, "--engine", "sglang").json()["chosen"]["weight_bytes_per_gpu"]
    vllm = run_cli(*args, "--engine", "vllm").json()["chosen"]["weight_bytes_per_gpu"]
    assert vllm - sglang == 229_376_000
    # DeepSeek-V3 (FP8): its shared experts (58 MoE layers x 3 x 7,168 x 2,048 FP8 weights, about 2.55 GB) are split
    # over the 8 GPUs by default and whole on each GPU when DeepEP moves the tokens
    ds = ("recommend", "-m", "deepseek-v3", "--hardware", "hgx-h200", "--engine", "sglang", "--gpus", "8", "--tp", "1",
          "--dp-attention", "8", "--ep", "8", "-f", "json")
    default = run_cli(*ds).json()["chosen"]["weight_bytes_per_gpu"]
    deepep = run_cli(*ds, "--moe-a2a-backend", "deepep").json()["chosen"]["weight_bytes_per_gpu"]
    assert deepep - default == pytest.approx(7 / 8 * 58 * 3 * 7168 * 2048, rel=0.01)


@pytest.mark.parametrize("engine,flags", [("sglang", ["--tp-size 8", "--ep-size 4"]),
                                          ("trtllm", ["--tp_size 8", "--ep_size 4"])])
def test_hybrid_ep_inside_one_tp_group_on_sglang_and_trtllm(run_cli, engine, flags):
    """SGLang and TensorRT-LLM run EP < TP inside one TP group (tpplan.planner.layouts.HYBRID_EP_ENGINES): Mixtral at
    TP8 x EP4 holds 2 of the 8 experts per GPU, each split 2 ways, so its weights per GPU equal TP8's; vLLM, whose EP
    is always TP x DP, refuses it in one line."""
    base = ("recommend", "-m", "mixtral-8x7b", "--hardware", "dgx-h100", "--gpus", "8", "--engine", engine)
    hybrid = run_cli(*base, "--tp", "8", "--ep", "4", "--emit", engine, "-f", "json").json()
    tp8 = run_cli(*base, "--tp", "8", "-f", "json").json()["chosen"]
    c = hybrid["chosen"]
    assert (c["tp"], c["ep"], c["dp_attention"], c["feasible"]) == (8, 4, 1, True)
    assert c["weight_bytes_per_gpu"] == tp8["weight_bytes_per_gpu"]
    assert all(f in hybrid["serve_command"] for f in flags)
    r = run_cli("recommend", "-m", "mixtral-8x7b", "--gpus", "8", "--engine", "vllm", "--tp", "8", "--ep", "4")
    assert r.code == 1 and "EP must be 1 or TP x DP-attention = 8" in r.err
    r = run_cli(*base, "--tp", "8", "--ep", "3")
    assert r.code == 1 and "--ep 2 for TP8 x EP2 (a divisor of 8)" in r.err


def test_hybrid_ep_memory_by_hand_when_experts_do_not_split_evenly_over_ep():
    """DeepSeek-V3 TP8 x EP4 on TensorRT-LLM: 64 of the 256 routed experts per EP rank, each split TP / EP = 2 ways:
    the same expert bytes per GPU as TP8 (256 experts split 8 ways) and as EP8 (32 whole experts)."""
    from tpplan.planner.plan import recommend

    kw = dict(hardware="hgx-h200", gpus=8, engine="trtllm")
    hybrid = recommend("deepseek-v3", tp=8, ep=4, **kw).chosen
    ep8 = recommend("deepseek-v3", tp=8, ep=8, **kw).chosen
    tp8 = recommend("deepseek-v3", tp=8, **kw).chosen
    assert hybrid.feasible and hybrid.weight_bytes_per_gpu == pytest.approx(tp8.weight_bytes_per_gpu, rel=1e-6)
    assert hybrid.weight_bytes_per_gpu == pytest.approx(ep8.weight_bytes_per_gpu, rel=1e-6)


def test_sglang_dp_attention_keeps_dense_layers_whole_where_blocks_would_split(run_cli):
    """SGLang under DP attention splits DeepSeek-V3's dense MLP (18,432) and, without DeepEP, its shared expert (2,048)
    over all --tp-size GPUs: at 32 GPUs 576 and 64 per GPU, not whole 128-blocks. --moe-dense-tp-size 1 keeps the
    dense layers whole on every GPU (as SGLang's large EP deployments of DeepSeek run); the shared experts stay whole
    only under DeepEP. So the default backend is refused with that fix, and with DeepEP the plan sizes the dense
    layers whole and prints the flag; at 16 GPUs (1,152 = 9 blocks, 128 shared) the default split loads."""
    base = ("recommend", "-m", "deepseek-v3", "--engine", "sglang", "--tp", "1", "--ep")
    args = (*base, "32", "--hardware", "dgx-h100-4node", "--dp-attention", "32")
    refused = run_cli(*args, "-f", "json").json()["chosen"]
    assert not refused["feasible"] and any(
        "shared experts' width 2048 split over 32 GPUs is 64 per GPU" in x and "--moe-a2a-backend deepep" in x
        for x in refused["reasons"])
    doc = run_cli(*args, "--moe-a2a-backend", "deepep", "--emit", "sglang", "-f", "json").json()
    assert doc["chosen"]["feasible"] and "--moe-dense-tp-size 1" in doc["serve_command"]
    r16 = run_cli(*base, "16", "--hardware", "dgx-h100-2node", "--dp-attention", "16", "--emit", "sglang", "-f",
                  "json").json()
    assert r16["chosen"]["feasible"] and "--moe-dense-tp-size" not in r16["serve_command"]
    from tpplan.models.resolve import resolve_model
    from tpplan.planner.candidates import sglang_dp_attention_splits
    from tpplan.planner.workload import Workload

    spec, w = resolve_model("deepseek-v3").spec, Workload(gpus=32, engine="sglang")
    assert sglang_dp_attention_splits(spec, w, tp=1, dp_attention=32, ep=32) == {
        "dense_tp": 1, "shared_tp": 32, "embed_tp": 1, "dense_whole": 1}
    assert sglang_dp_attention_splits(spec, w, tp=1, dp_attention=16, ep=16) == {
        "dense_tp": 16, "shared_tp": 16, "embed_tp": 1}
    maverick = resolve_model("llama4-maverick").spec  # attention split over tp only: no spurious whole dense layers
    assert "dense_whole" not in sglang_dp_attention_splits(maverick, Workload(gpus=16, engine="sglang", dtype="int4"),
                                                           tp=1, dp_attention=16, ep=16)


def test_sglang_search_never_recommends_a_forced_backend_on_ep_without_dp_attention(run_cli):
    r = run_cli("recommend", "-m", "qwen3-235b", "--hardware", "hgx-h200", "--gpus", "8", "--engine", "sglang",
                "--moe-a2a-backend", "deepep", "--objective", "latency", "-f", "json")
    doc = r.json()
    for c in doc["candidates"]:
        if c["ep"] > 1 and c["dp_attention"] == 1:
            assert not c["feasible"] and any("not priced by tpplan" in x for x in c["reasons"])


def test_the_search_includes_hybrid_ep_on_sglang_and_trtllm_only():
    """recommend's candidates for an MoE model carry EP < TP inside one TP group where the engine runs it
    (TP8 x EP2 / EP4, TP4 x EP2 on 8 GPUs), and none on vLLM."""
    from tpplan.models.resolve import resolve_model
    from tpplan.planner.layouts import moe_layouts
    from tpplan.planner.workload import Workload

    spec = resolve_model("mixtral-8x7b").spec
    hybrid = {(tp, ep) for tp, pp, dp, ep in moe_layouts(spec, Workload(gpus=8, engine="trtllm"))
              if dp == 1 and 1 < ep < tp}
    assert hybrid == {(4, 2), (8, 2), (8, 4)}
    assert not [x for x in moe_layouts(spec, Workload(gpus=8, engine="vllm")) if x[2] == 1 and 1 < x[3] < x[0]]

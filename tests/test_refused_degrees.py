"""A degree the heads do not allow: the reason quotes the engine and lists the degrees that work on the GPUs given,
and the table shows no memory for a layout that was never sized."""

from __future__ import annotations

from tpplan.planner.plan import recommend


def test_a_refused_degree_lists_the_degrees_that_work():
    plan = recommend("llama-70b", gpus=8, tp=3)
    assert plan.chosen is not None and not plan.chosen.feasible
    assert plan.chosen.reasons[0] == ("vllm: Total number of attention heads (64) must be divisible by tensor parallel "
                                      "size (3). TP degrees that work with vllm on 8 GPUs: 1, 2, 4, 8")


def test_a_refused_degree_shows_dashes_not_zero_memory(run_cli):
    r = run_cli("recommend", "--model", "llama-70b", "--gpus", "8", "--tp", "3")
    row = next(line for line in r.out.splitlines() if line.startswith("→"))
    assert row.split()[1:4] == ["3", "1", "2"]
    assert "0.0" not in row and row.split()[-3:] == ["-", "-", "-"]


def test_wide_adds_each_candidates_step_split_in_ms(run_cli):
    """--wide shows what the JSON's decode_step / prefill carry: compute, communication, overhead (ms)."""
    wide = run_cli("recommend", "--model", "llama-70b", "--gpus", "8", "--wide").out.splitlines()
    narrow = run_cli("recommend", "--model", "llama-70b", "--gpus", "8").out
    header = next(line for line in wide if line.lstrip().startswith("TP PP"))
    assert header.endswith("dec cmp dec comm dec ovh pre cmp pre comm") and "dec cmp" not in narrow
    plan = recommend("llama-70b", gpus=8)
    best = plan.recommended
    star = next(line for line in wide if line.startswith("★")).split()
    split = (best.decode_step.compute_s, best.decode_step.communication_s, best.decode_step.overhead_s,
             best.prefill.compute_s, best.prefill.communication_s)
    assert star[-5:] == [f"{1e3 * s:.1f}" if 1e3 * s < 10 else f"{1e3 * s:,.0f}" for s in split]


def test_a_block_fp8_checkpoint_must_split_into_whole_blocks():
    """vLLM's Fp8MoEMethod: "The output_size of gate's and up's weight = 192 is not divisible by weight quantization
    block_n = 128" -- MiniMax-M2 (experts 1536 wide, 128x128 blocks) at TP8 without expert parallelism; with EP each
    GPU holds whole experts and it loads (the fix its deployment reports give). DeepSeek-V3's dense layers (18432)
    split over 32 GPUs are 576 per GPU: refused too."""
    from tpplan.planner.plan import recommend

    plan = recommend("minimax-m2", hardware="hgx-h200", gpus=8, engine="vllm")
    tp8 = next(c for c in plan.candidates if (c.tp, c.ep, c.dp_attention, c.pp) == (8, 1, 1, 1))
    assert any("moe_intermediate_size 1536 split over 8 GPUs is 192 per GPU, not a multiple of its block_n 128" in r
               and "use expert parallelism (--ep)" in r for r in tp8.reasons)
    ep8 = next(c for c in plan.candidates if (c.tp, c.ep, c.dp_attention, c.pp) == (8, 8, 1, 1))
    assert not any("block_n" in r for r in ep8.reasons)
    assert plan.recommended is not None and not any("block_n" in r for r in plan.recommended.reasons)
    # the same model planned in bf16 has no blocks to keep whole; TensorRT-LLM's own loader is not this rule
    bf16 = recommend("minimax-m2", hardware="hgx-h200", gpus=8, engine="vllm", dtype="bf16")
    assert not any("block_n" in r for c in bf16.candidates for r in c.reasons)


def test_group_quantized_shards_need_whole_groups(run_cli):
    """vLLM / SGLang refuse GPTQ / AWQ / --dtype int4 (g128) weights whose row-parallel shards do not hold whole
    groups: Qwen2.5-72B's MLP (29,568) at TP2 is 14,784 per GPU, 115.5 groups (vllm-project/vllm#13640), at TP4
    7,392, at TP8 3,696; Llama-3.1-70B's (28,672) at TP8 is 3,584 = 28 x 128. A g64 checkpoint of Qwen2.5-72B holds
    whole groups at TP2 (231 of 64) and loads, off the Marlin kernels. GLM-4.5's shared expert (1,536) at TP8 is
    192 per GPU, 1.5 groups."""
    from dataclasses import replace

    from tpplan.models.dtypes import weight_format
    from tpplan.models.engines import group_quant_violation
    from tpplan.models.resolve import resolve_model

    qwen, llama = resolve_model("qwen-72b").spec, resolve_model("llama-70b").spec
    int4 = weight_format(qwen, "int4")
    for tp in (2, 4, 8):
        assert f"split over {tp} GPUs is {29568 // tp} input features per GPU" in group_quant_violation(
            qwen, int4, tp=tp, engine="vllm")
    assert group_quant_violation(qwen, int4, tp=2, engine="trtllm") is None  # its own kernels: not checked
    assert group_quant_violation(qwen, replace(int4, elems_per_scale=64), tp=2, engine="vllm") is None
    glm = resolve_model("glm-4.5").spec
    assert "shared experts' width 1536 split over 8 GPUs is 192" in group_quant_violation(
        glm, weight_format(glm, "int4"), tp=8, engine="sglang")
    assert group_quant_violation(qwen, weight_format(qwen, "fp8"), tp=8, engine="vllm") is None
    assert all(group_quant_violation(llama, weight_format(llama, "int4"), tp=t, engine="vllm") is None
               for t in (2, 4, 8))
    r = run_cli("models", "show", "qwen-72b", "--dtype", "int4", "-f", "json")
    assert r.code == 0, r.err
    assert r.json()["valid_tp_degrees"] == [1]
    r = run_cli("recommend", "-m", "qwen-72b", "--hardware", "hgx-h200", "--gpus", "4", "--dtype", "int4", "--tp", "4",
                "-f", "json")
    assert r.code == 0, r.err
    chosen = r.json()["chosen"]
    assert not chosen["feasible"] and "not whole groups of 128" in chosen["reasons"][-1]
    assert r.json()["recommended"]["tp"] == 1

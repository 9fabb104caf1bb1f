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

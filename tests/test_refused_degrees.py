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

"""An --ep the engines do not run (EP neither 1 nor TP x DP-attention) is one line that names the layout asked for
(TPx x EPy, with or without DP-attention) and the flags that fix it; each fix it offers is a layout recommend runs."""

from __future__ import annotations

import re

import pytest

MIXTRAL = ("recommend", "--model", "mixtral-8x7b", "--gpus", "8")


@pytest.mark.parametrize("layout, line", [
    (["--tp", "1", "--ep", "8"],
     "--ep 8 with --tp 1 asks for TP1 x EP8 without DP-attention, but vllm spreads the routed experts over every "
     "GPU of a replica: EP must be 1 or TP x DP-attention = 1 (--engine sglang or trtllm also runs an EP that "
     "divides TP); add --dp-attention 8 for TP1 x EP8 x DP-attention 8 "
     "(8 GPUs per replica); or leave --ep out"),
    (["--tp", "8", "--ep", "4"],
     "--ep 4 with --tp 8 asks for TP8 x EP4 without DP-attention, but vllm spreads the routed experts over every "
     "GPU of a replica: EP must be 1 or TP x DP-attention = 8 (--engine sglang or trtllm also runs an EP that "
     "divides TP); set --tp 4 for TP4 x EP4; or --ep 8 for TP8 x EP8; or "
     "leave --ep out to split the experts over the 8 GPUs by TP"),
    (["--tp", "2", "--dp-attention", "4", "--ep", "4"],
     "--ep 4 with --tp 2 --dp-attention 4 asks for TP2 x EP4 x DP-attention 4, but vllm spreads the routed "
     "experts over every GPU of a replica: EP must be 1 or TP x DP-attention = 8 (--engine sglang or trtllm "
     "also runs an EP that divides TP); set --dp-attention 2 for TP2 x EP4 x "
     "DP-attention 2 (4 GPUs per replica); or --ep 8 for TP2 x EP8 x DP-attention 4; or leave --ep out to split the "
     "experts over the 8 GPUs by TP"),
])
def test_an_ep_the_engines_do_not_run_names_the_layout_and_the_fix(refusal, layout, line):
    assert refusal(*MIXTRAL, *layout) == f"Error: {line}"


def _fixed(layout: list[str], fix: str) -> list[str]:
    """`layout` with one fix of the message applied ('add/set --flag N', '--ep N', 'leave --ep out')."""
    flags = dict(zip(layout[::2], layout[1::2], strict=True))
    if fix.startswith("leave --ep out"):
        flags.pop("--ep")
    else:
        flag, value = re.match(r"(?:add |set )?(--[a-z-]+) (\d+)", fix).groups()
        flags[flag] = value
    return [x for kv in flags.items() for x in kv]


@pytest.mark.parametrize("layout", [["--tp", "1", "--ep", "8"], ["--tp", "2", "--ep", "8"], ["--tp", "8", "--ep", "4"],
                                    ["--tp", "2", "--dp-attention", "4", "--ep", "4"],
                                    ["--tp", "1", "--dp-attention", "4", "--ep", "8"]])
def test_every_fix_offered_is_a_layout_recommend_runs(refusal, run_cli, layout):
    line = refusal(*MIXTRAL, *layout)
    fixes = line.split("TP x DP-attention = ", 1)[1].split("; ", 1)[1].split("; or ")
    assert fixes
    for fix in fixes:
        r = run_cli(*MIXTRAL, *_fixed(layout, fix), "-f", "json")
        assert r.code == 0 and r.json()["chosen"] is not None, (fix, r.err)


def test_ep_without_tp_offers_the_tp_that_makes_the_layout(refusal):
    base = "Error: --pp, --replicas, --ep, --etp and --dp-attention fix a layout together with --tp; add --tp N"
    assert refusal(*MIXTRAL, "--ep", "8") == (f"{base}: --tp 8 for TP8 x EP8, or --tp 1 --dp-attention 8 for TP1 x "
                                              f"EP8 x DP-attention 8")
    assert refusal(*MIXTRAL, "--ep", "8", "--dp-attention", "4") == f"{base}: --tp 2 for TP2 x EP8 x DP-attention 4"
    assert refusal(*MIXTRAL, "--ep", "8", "--workload", "train") == base  # Megatron's EP is not tied to TP


def test_fix_hints_name_only_layouts_that_run(run_cli):
    """Mixtral (32 heads, 8 experts of width 14,336): TP3 is refused by the heads, so a hint must not send the user
    there; an expert width that does not split over 6 GPUs rules out --ep 1 on TP2 x DP-attention 3."""
    r = run_cli("recommend", "-m", "mixtral-8x7b", "--engine", "vllm", "--tp", "2", "--ep", "3", "--gpus", "6")
    assert r.code == 1 and "--tp 3" not in r.err and "--ep 2 for TP2 x EP2" in r.err
    r = run_cli("recommend", "-m", "mixtral-8x7b", "--engine", "sglang", "--tp", "2", "--dp-attention", "3",
                "--ep", "6", "--gpus", "6", "-f", "json")
    reason = r.json()["chosen"]["reasons"][0]
    assert "--ep 1" not in reason and reason.endswith("use an EP group of 4 GPUs (--tp x --dp-attention = 4, --ep 4)")


def test_trtllm_hints_offer_attention_dp_only_at_tp1_and_a_refused_layout_keeps_its_moe_label(run_cli):
    """TensorRT-LLM runs attention DP with attention TP 1 only, so an --ep hint at --tp 2 does not send the user to
    --dp-attention; and an --emit of a refused MoE layout names it with its EP / DP-attention."""
    r = run_cli("recommend", "-m", "mixtral-8x7b", "--gpus", "8", "--engine", "trtllm", "--tp", "2", "--ep", "4")
    assert r.code == 1 and "--dp-attention" not in r.err.split("; ", 1)[1]
    r = run_cli("recommend", "-m", "deepseek-v3", "--engine", "sglang", "--tp", "1", "--dp-attention", "32", "--ep",
                "32", "--hardware", "dgx-h100-4node", "--emit", "sglang")
    assert r.code == 1 and "the --tp layout TP1 (EP32 + DP-attention 32) x PP1 x 1 replica(s) does not run" in r.err

"""A step token budget below the prompt: the prompt alone is prefilled in budget-sized chunks, one step each; and
vLLM's own rule that the budget covers every running sequence."""

from __future__ import annotations

import pytest

from tpplan.cost.coefficients import coefficients
from tpplan.cost.step import prefill
from tpplan.errors import TpplanError
from tpplan.hardware.loader import resolve_profile
from tpplan.models.resolve import resolve_model
from tpplan.planner.plan import recommend


def test_a_prompt_longer_than_the_budget_is_prefilled_in_chunks():
    plan = recommend("llama-8b", gpus=1, max_num_batched_tokens=16, max_num_seqs=16, input_len=1024)
    best = plan.recommended
    spec, profile = resolve_model("llama-8b").spec, resolve_profile("dgx-h100")[0]
    c = coefficients(spec, profile, tp=1, engine="vllm")
    chunk = prefill(c, profile, prompts=1, input_len=16)
    assert best.prefill.total_s == pytest.approx(64 * chunk.total_s)
    assert best.ttft_s >= best.prefill.total_s
    whole = recommend("llama-8b", gpus=1, input_len=1024).recommended.prefill  # budget 8192: one step
    assert whole.total_s == pytest.approx(prefill(c, profile, prompts=1, input_len=1024).total_s)
    assert best.prefill.total_s > 5 * whole.total_s


def test_vllm_refuses_a_budget_below_its_running_sequences(refusal):
    err = refusal("recommend", "--model", "llama-8b", "--gpus", "1", "--max-num-batched-tokens", "16")
    assert err == ("Error: --max-num-batched-tokens 16 is below --max-num-seqs (vLLM's default on this GPU) 1024: "
                   "vLLM refuses it (max_num_batched_tokens must be greater than or equal to max_num_seqs); raise "
                   "--max-num-batched-tokens or lower --max-num-seqs")
    with pytest.raises(TpplanError, match=r"^--max-num-batched-tokens 64 is below --max-num-seqs 128: vLLM refuses"):
        recommend("llama-8b", gpus=1, max_num_batched_tokens=64, max_num_seqs=128)
    recommend("llama-8b", gpus=1, max_num_batched_tokens=64, max_num_seqs=128, engine="sglang")  # vLLM's rule only


def test_a_long_prompt_pays_each_chunk_steps_overhead_and_the_whole_prompts_attention():
    """32k tokens under an 8192-token budget: 4 steps, so 4 x the step overhead; compute at least the whole prompt's
    (its attention to earlier chunks) and at least 4 chunks' (4 weight reads)."""
    from tpplan.planner.candidates import prefill_alone

    spec, profile = resolve_model("llama-8b").spec, resolve_profile("dgx-h100")[0]
    c = coefficients(spec, profile, tp=1, engine="vllm")
    got = prefill_alone(c, profile, input_len=32768, token_budget=8192)
    whole = prefill(c, profile, prompts=1, input_len=32768)
    chunk = prefill(c, profile, prompts=1, input_len=8192)
    assert got.overhead_s == pytest.approx(4 * chunk.overhead_s) and got.overhead_s > whole.overhead_s
    assert got.compute_s == pytest.approx(max(whole.compute_s, 4 * chunk.compute_s))
    one = prefill_alone(c, profile, input_len=4096, token_budget=8192)
    assert one.total_s == pytest.approx(prefill(c, profile, prompts=1, input_len=4096).total_s)

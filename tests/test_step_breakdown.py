"""mixed_step_terms splits the continuous-batching step the planner ranks by, and benchmarks/step_breakdown.py
prints it beside the published rows."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tpplan.cost.coefficients import coefficients
from tpplan.cost.step import mixed_step, mixed_step_terms, prefill_units, steady_step, steady_step_terms
from tpplan.errors import TpplanError
from tpplan.hardware.loader import resolve_profile
from tpplan.models.resolve import resolve_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.mark.parametrize("model,tp", [("llama-8b", 1), ("llama-70b", 4), ("mixtral", 2)])
def test_terms_sum_to_the_mixed_step(model, tp):
    spec, h100 = resolve_model(model).spec, resolve_profile("dgx-h100")[0]
    c = coefficients(spec, h100, tp=tp, dtype="fp8", kv_cache_dtype="fp8", engine="trtllm")
    kw = {"batch": 300, "context_len": 2000, "prefill_tokens": 150, "input_len": 1000}
    terms = mixed_step_terms(c, h100, **kw)
    assert sum(terms.values()) == pytest.approx(mixed_step(c, h100, **kw).total_s, rel=1e-12)
    assert all(v >= 0 for v in terms.values())
    assert (terms["communication_s"] == 0) == (tp == 1)


@pytest.mark.parametrize("model,tp", [("llama-8b", 1), ("llama-70b", 4)])
def test_steady_terms_sum_to_the_steady_step(model, tp):
    spec, h100 = resolve_model(model).spec, resolve_profile("dgx-h100")[0]
    c = coefficients(spec, h100, tp=tp, dtype="fp8", kv_cache_dtype="fp8", engine="trtllm")
    kw = {"batch": 300, "context_len": 2000, "prefill_tokens": 150, "input_len": 1000, "token_budget": 8192}
    terms = steady_step_terms(c, h100, **kw)
    assert sum(terms.values()) == pytest.approx(steady_step(c, h100, **kw).total_s, rel=1e-12)


def test_prefill_arrives_in_whole_prompts_or_budget_chunks():
    # 150 prefill tokens per step on average of 1000-token prompts: 15% of steps carry one whole prompt
    (w0, p0), (w1, p1) = prefill_units(prefill_tokens=150, input_len=1000, room_tokens=7892)
    assert (w0, p0, w1, p1) == (pytest.approx(0.85), 0, pytest.approx(0.15), 1000)
    # 20,000-token prompts with 1,948 tokens of room: chunks of the room
    (w0, p0), (w1, p1) = prefill_units(prefill_tokens=3000, input_len=20000, room_tokens=1948)
    assert (p0, p1) == (1948, 3896) and w0 * p0 + w1 * p1 == pytest.approx(3000)
    # a 70B step at batch 28 with 2048-token prompts arriving 14 tokens per step on average (isl/osl 2048/128 at
    # TP1): the steps without a prompt stream the weights for 28 tokens, so the mean step is longer than one that
    # spreads the prefill over every step
    spec, h100 = resolve_model("llama-70b").spec, resolve_profile("dgx-h100")[0]
    c = coefficients(spec, h100, tp=1, dtype="fp8", kv_cache_dtype="fp8", engine="trtllm")
    kw = {"batch": 28, "context_len": 2112, "prefill_tokens": 28 * 2048 / 128, "input_len": 2048}
    assert steady_step(c, h100, token_budget=8192, **kw).total_s > 1.1 * mixed_step(c, h100, **kw).total_s


def test_terms_refuse_pipeline_steps():
    spec, h100 = resolve_model("llama-70b").spec, resolve_profile("dgx-h100")[0]
    c = coefficients(spec, h100, tp=2, pp=2, engine="trtllm")
    with pytest.raises(TpplanError, match="PP"):
        mixed_step_terms(c, h100, batch=8, context_len=100, prefill_tokens=4, input_len=50)


def test_breakdown_of_a_published_row_sums_to_the_planned_step():
    import fidelity
    import step_breakdown

    row = next(r for r in fidelity.csv.DictReader(open(fidelity.DATA / "throughput.csv"))
               if r["model"] == "Llama 3.1 8B" and r["hardware"] == "H100-SXM-80GB" and r["engine_version"] == "1.0"
               and (r["isl"], r["osl"]) == ("1000", "1000"))
    d = step_breakdown.breakdown(row)
    assert sum(d["terms"].values()) == pytest.approx(d["predicted_step_s"], rel=1e-9)
    assert d["implied_step_s"] == pytest.approx(d["batch"] / float(row["value"]))


def test_breakdown_of_an_attention_dp_row_is_one_rank_step():
    """A DEPn row (attention DP + EP) is broken down as one DP rank's step; the routed experts are part of mlp."""
    import fidelity
    import step_breakdown

    row = next(r for r in fidelity.csv.DictReader(open(fidelity.DATA / "throughput.csv"))
               if r["model"] == "Llama 4 Maverick" and r["hardware"] == "H200-SXM-141GB"
               and r["engine_version"] == "1.0" and (r["isl"], r["osl"]) == ("128", "2048"))
    d = step_breakdown.breakdown(row)
    assert d["layout"] == "DEP"
    assert sum(d["terms"].values()) == pytest.approx(d["predicted_step_s"], rel=1e-9)
    assert 0 < d["moe_routed_s"] < d["terms"]["mlp_s"]

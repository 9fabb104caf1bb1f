"""mixed_step_terms splits one continuous-batching step and steady_state_terms the mean step the planner ranks by
(tpplan.cost.steady); benchmarks/step_breakdown.py prints the latter beside the published rows."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from tpplan.cost.coefficients import coefficients
from tpplan.cost.steady import prefill_units, steady_state, steady_state_terms
from tpplan.cost.step import mixed_step, mixed_step_terms
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


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_terms_sum_to_the_mixed_step_with_the_embedding_allreduce(engine):
    spec, h100 = resolve_model("llama-70b").spec, resolve_profile("dgx-h100")[0]
    c = coefficients(spec, h100, tp=8, engine=engine)
    kw = {"batch": 300, "context_len": 2000, "prefill_tokens": 150, "input_len": 1000}
    terms = mixed_step_terms(c, h100, **kw)
    assert sum(terms.values()) == pytest.approx(mixed_step(c, h100, **kw).total_s, rel=1e-12)


@pytest.mark.parametrize("model,tp,ranks", [("llama-8b", 1, 1), ("llama-70b", 4, 1), ("mixtral", 1, 4)])
def test_steady_terms_sum_to_the_steady_state(model, tp, ranks):
    spec, h100 = resolve_model(model).spec, resolve_profile("dgx-h100")[0]
    c = coefficients(spec, h100, tp=tp, dtype="fp8", kv_cache_dtype="fp8", engine="trtllm")
    kw = {"batch": 300, "context_len": 2000, "prefill_tokens": 150, "input_len": 1000, "token_budget": 8192,
          "lockstep_ranks": ranks}
    terms = steady_state_terms(c, h100, **kw)
    assert sum(terms.values()) == pytest.approx(steady_state(c, h100, **kw).mean.total_s, rel=1e-12)


def test_prefill_arrives_in_whole_prompts_or_chunks_of_the_room():
    # 150 prefill tokens per step on average of 1000-token prompts: 15% of steps carry one whole prompt
    u = prefill_units(prefill_tokens=150, input_len=1000, room_tokens=7892)
    assert (u.low_tokens, u.high_tokens, u.high_share) == (0, 1000, pytest.approx(0.15))
    # 5,000-token prompts, 6,000 tokens per step, 6,992 of room: one whole prompt, or that and a chunk of the next
    # (never more than the room)
    u = prefill_units(prefill_tokens=6000, input_len=5000, room_tokens=6992)
    assert (u.low_tokens, u.high_tokens) == (5000, 6992)
    assert u.low_tokens * (1 - u.high_share) + u.high_tokens * u.high_share == pytest.approx(6000)
    # 20,000-token prompts with 1,948 tokens of room: chunks of the room; with PP 2 per micro-batch
    u = prefill_units(prefill_tokens=1000, input_len=20000, room_tokens=1948, micro_batch_count=2)
    assert (u.low_tokens, u.high_tokens, u.high_share) == (0, 2 * 1948, pytest.approx(500 / 1948))


@pytest.mark.parametrize("prefill_tokens,input_len,room", [(1, 1, 1), (448, 2048, 7000), (9000, 128, 8000),
                                                           (3.7, 20000, 100.5), (7999, 7000, 8000)])
def test_prefill_units_keep_the_mean_and_the_room(prefill_tokens, input_len, room):
    u = prefill_units(prefill_tokens=prefill_tokens, input_len=input_len, room_tokens=room)
    assert 0 <= u.high_share <= 1 and u.low_tokens <= u.high_tokens <= max(room, prefill_tokens)
    assert u.low_tokens * (1 - u.high_share) + u.high_tokens * u.high_share == pytest.approx(prefill_tokens)


def test_steps_without_a_prompt_cost_what_a_spread_prefill_hides():
    # Llama-3.1-70B FP8 at TP1, batch 28, 2048/128: 28 x 2048 / 128 = 448 prefill tokens per step on average, so
    # a 2048-token prompt enters about one step in 4.6; the other steps stream the weights for 28 tokens
    spec, h100 = resolve_model("llama-70b").spec, resolve_profile("dgx-h100")[0]
    c = coefficients(spec, h100, tp=1, dtype="fp8", kv_cache_dtype="fp8", engine="trtllm")
    kw = {"batch": 28, "context_len": 2112, "prefill_tokens": 28 * 2048 / 128, "input_len": 2048}
    state = steady_state(c, h100, token_budget=8192, **kw)
    assert state.mean.total_s > 1.1 * mixed_step(c, h100, **kw).total_s
    assert state.with_prompt.total_s > state.mean.total_s
    # SGLang runs the prompt alone (no decode tokens in its step)
    alone = steady_state(c, h100, token_budget=8192, mixes_prefill=False, **kw)
    assert alone.with_prompt.total_s == pytest.approx(
        mixed_step(c, h100, batch=0, context_len=2112, prefill_tokens=2048, input_len=2048).total_s)


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


def test_fidelity_scan_overrides_exactly_the_named_fields_of_the_named_profiles():
    import fidelity_scan

    from tpplan.hardware.loader import load_builtin
    from tpplan.units import US

    o = fidelity_scan.parse_overrides(["attention_decode_memory_fused=0.8", "decode_sequence_overhead_s=80 ns"])
    assert o == {"attention_decode_memory_fused": 0.8, "decode_sequence_overhead_s": pytest.approx(0.08 * US)}
    h100, b200 = load_builtin("dgx-h100"), load_builtin("dgx-b200")
    got = fidelity_scan.overridden(h100, o, {"dgx-h100"})
    assert got.efficiency.attention_decode_memory_fused == 0.8
    assert got.efficiency.decode_sequence_overhead_s == pytest.approx(0.08 * US)
    assert dataclasses.replace(got.efficiency, attention_decode_memory_fused=h100.efficiency
                               .attention_decode_memory_fused, decode_sequence_overhead_s=h100.efficiency
                               .decode_sequence_overhead_s) == h100.efficiency
    assert fidelity_scan.overridden(b200, o, {"dgx-h100"}) is b200
    with pytest.raises(SystemExit, match="FIELD one of .*sustained_clock"):
        fidelity_scan.parse_overrides(["clock=0.9"])
    with pytest.raises(SystemExit, match="is not a number"):
        fidelity_scan.parse_overrides(["sustained_clock=fast"])

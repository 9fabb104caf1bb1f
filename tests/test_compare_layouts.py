"""`tpplan compare` layouts: the grammar TP[xPP[xREPLICAS]][+epEP][+dpDP] and MoE layouts (EP, DP attention) side by
side with plain TP, through every output format."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tpplan.errors import TpplanError
from tpplan.planner.compare import Layout, parse_layout
from tpplan.planner.plan import recommend

MIXTRAL_8_H100 = ("-m", "mixtral", "-g", "8", "--hardware", "dgx-h100", "--engine", "vllm")
GRAMMAR_ERROR = "layout {!r} is not TP[xPP[xREPLICAS]][+epEP][+dpDP]; write e.g. 8, 4x2, 2x1x4, 8+ep8, 1+dp8+ep8"


@pytest.mark.parametrize("text, layout", [
    ("8", Layout(tp=8)),
    ("4x2", Layout(tp=4, pp=2)),
    ("2x1x4", Layout(tp=2, pp=1, replicas=4)),
    ("tp4xpp2", Layout(tp=4, pp=2)),
    ("4,2", Layout(tp=4, pp=2)),
    ("8+ep8", Layout(tp=8, ep=8)),
    ("1+dp8+ep8", Layout(tp=1, dp_attention=8, ep=8)),
    ("1+ep8+dp8", Layout(tp=1, dp_attention=8, ep=8)),  # the + parts in any order
    ("2x1x2+ep2", Layout(tp=2, pp=1, replicas=2, ep=2)),
    ("TP1+DP8+EP8", Layout(tp=1, dp_attention=8, ep=8)),  # case-insensitive
    (" 2x1 + dp4 ", Layout(tp=2, pp=1, dp_attention=4)),  # whitespace ignored
    ("1x1x2+dp4", Layout(tp=1, pp=1, replicas=2, dp_attention=4)),
])
def test_layout_grammar(text, layout):
    assert parse_layout(text) == layout


@pytest.mark.parametrize("text", ["", "x", "8x", "0", "8x0", "8+", "+ep8", "8ep8", "8+ep", "8+ep0", "8+ep8+ep8",
                                  "8+tp2", "8+ep8+dp", "1+dp8+dp8", "8x1x1x1", "8+pp2", "-8", "8+ep-8"])
def test_a_malformed_layout_is_one_line_naming_it_with_examples(text):
    with pytest.raises(TpplanError) as err:
        parse_layout(text)
    assert str(err.value) == GRAMMAR_ERROR.format(text)


@given(tp=st.integers(1, 64), pp=st.integers(1, 8), replicas=st.none() | st.integers(1, 16),
       ep=st.integers(1, 64), dp=st.integers(1, 64))
def test_text_is_the_grammar_and_parses_back(tp, pp, replicas, ep, dp):
    lay = Layout(tp=tp, pp=pp, replicas=replicas, ep=ep, dp_attention=dp)
    assert parse_layout(lay.text()) == lay
    assert parse_layout(lay.text().upper()) == lay


def test_cli_refuses_a_malformed_layout_as_a_usage_error(usage_error):
    err = usage_error("compare", *MIXTRAL_8_H100, "8", "8+xp8")
    assert err.endswith(f"Error: Invalid value for 'LAYOUT...': {GRAMMAR_ERROR.format('8+xp8')}\n")
    assert usage_error("compare", *MIXTRAL_8_H100, "8").endswith(
        "Error: Invalid value for 'LAYOUT...': give at least two layouts, e.g. 8 4x1x2, or 8 8+ep8 1+dp8+ep8 for an "
        "MoE model\n")


def test_mixtral_on_8_h100_tp8_beside_ep8_and_dep8(run_cli):
    """TP8, TP8 with EP8, attention DP8 x EP8 ("DEP8"): each column is the layout asked for, evaluated as recommend's
    --tp/--ep/--dp-attention layout is."""
    d = run_cli("compare", *MIXTRAL_8_H100, "8", "8+ep8", "1+dp8+ep8", "-f", "json").json()
    asked = [(8, 1, 1), (8, 8, 1), (1, 8, 8)]
    assert [(c["tp"], c["ep"], c["dp_attention"]) for c in d["layouts"]] == asked
    assert all(c["feasible"] and c["gpus_used"] == 8 for c in d["layouts"])
    for c, (tp, ep, dp) in zip(d["layouts"], asked, strict=True):
        chosen = recommend("mixtral", gpus=8, hardware="dgx-h100", engine="vllm", tp=tp, ep=ep, dp_attention=dp).chosen
        assert c["tpot_s"] == pytest.approx(chosen.tpot_s, rel=1e-12)
    ep8, dep8 = d["differences"]
    assert ep8.startswith("TP8xPP1x1/EP8 vs TP8xPP1x1: EP 8 vs 1; tok/s ")
    assert dep8.startswith("TP1xPP1x1/EP8/DP8 vs TP8xPP1x1: EP 8 vs 1, DP-attention 8 vs 1; tok/s ")
    csv = run_cli("compare", *MIXTRAL_8_H100, "8", "8+ep8", "1+dp8+ep8", "-f", "csv").out.splitlines()
    header = csv[0].split(",")
    assert [(row.split(",")[header.index("ep")], row.split(",")[header.index("dp_attention")]) for row in csv[1:]] == [
        ("1", "1"), ("8", "1"), ("8", "8")]


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_the_table_shows_ep_and_dp_attention_rows(run_cli, monkeypatch, fmt):
    monkeypatch.setenv("COLUMNS", "80")
    out = run_cli("compare", *MIXTRAL_8_H100, "8", "8+ep8", "1+dp8+ep8", "-f", fmt).out
    assert ["EP", "1", "8", "8"] in _cells(out) and ["DP-attention", "1", "1", "8"] in _cells(out)
    plain = run_cli("compare", *MIXTRAL_8_H100, "8", "4x1x2", "-f", fmt).out  # no MoE parts: no such rows
    assert not [row for row in _cells(plain) if row[:1] in (["EP"], ["DP-attention"])]


def _cells(out: str) -> list[list[str]]:
    return [line.replace("|", " ").split() for line in out.splitlines()]


def test_the_planners_best_is_named_as_a_layout_to_compare(run_cli, monkeypatch):
    """The 'over every layout tpplan plans' line spells the best in compare's grammar; comparing it gives it."""
    monkeypatch.setenv("COLUMNS", "200")
    out = run_cli("compare", *MIXTRAL_8_H100, "8", "8+ep8").out
    text = out.split("as a layout to compare: ", 1)[1].split(")", 1)[0]
    best = recommend("mixtral", gpus=8, hardware="dgx-h100", engine="vllm").recommended
    assert parse_layout(text) == Layout(tp=best.tp, pp=best.pp, replicas=best.replicas, ep=best.ep,
                                        dp_attention=best.dp_attention)
    d = run_cli("compare", *MIXTRAL_8_H100, "8", text, "-f", "json").json()
    assert d["best_of_these"]["output_tokens_per_s"] == pytest.approx(best.output_tokens_per_s, rel=1e-12)


def test_moe_imbalance_reaches_every_layout(run_cli, usage_error):
    """--moe-imbalance means what recommend's does: the busiest EP rank's routed tokens / mean."""
    args = ("compare", *MIXTRAL_8_H100, "8", "8+ep8", "-f", "json")
    even, skewed = run_cli(*args).json(), run_cli(*args, "--moe-imbalance", "2").json()
    assert skewed["inputs"]["moe_imbalance"] == 2
    chosen = recommend("mixtral", gpus=8, hardware="dgx-h100", engine="vllm", tp=8, ep=8, moe_imbalance=2).chosen
    assert skewed["layouts"][1]["tpot_s"] == pytest.approx(chosen.tpot_s, rel=1e-12)
    assert skewed["layouts"][1]["tpot_s"] > even["layouts"][1]["tpot_s"]
    assert "'--moe-imbalance'" in usage_error("compare", *MIXTRAL_8_H100, "8", "8+ep8", "--moe-imbalance", "0.5")


def test_a_dense_model_with_ep_or_dp_is_one_error_line(refusal):
    line = refusal("compare", "-m", "llama-8b", "-g", "8", "8", "8+ep8")
    assert line == ("Error: layout '8+ep8' (--tp 8 --ep 8): --ep / --dp-attention apply to serving MoE models; "
                    "Llama-3.1-8B has no routed experts; leave them out")
    assert refusal("compare", "-m", "llama-8b", "-g", "8", "8", "1+dp8").startswith(
        "Error: layout '1+dp8' (--tp 1 --dp-attention 8): --ep / --dp-attention apply to serving MoE models")


def test_a_layout_the_engines_do_not_run_names_it_and_its_recommend_options(refusal):
    assert refusal("compare", *MIXTRAL_8_H100, "8", "4x1x2+ep8") == (
        "Error: layout '4x1x2+ep8' (--tp 4 --replicas 2 --ep 8): --ep 8 with --tp 4 asks for TP4 x EP8 without "
        "DP-attention, but vllm spreads the routed experts over every GPU of a replica: EP must be 1 or TP x "
        "DP-attention = 4 (--engine sglang or trtllm also runs an EP that "
        "divides TP); add --dp-attention 2 for TP4 x EP8 x DP-attention 2 (8 GPUs per replica); or --ep 4 for "
        "TP4 x EP4; or leave --ep out to split the experts over the 4 GPUs by TP")
    assert refusal("compare", *MIXTRAL_8_H100, "8", "4x1x4") == (
        "Error: layout '4x1x4' (--tp 4 --replicas 4): --tp 4 x --dp-attention 1 x --pp 1 x --replicas 4 = 16 GPUs "
        "exceeds --gpus 8; lower one of them or raise --gpus")


def test_none_of_the_layouts_runs_is_a_refusal(refusal):
    """Llama-3.1-70B in bf16 is 131.4 GiB of weights: TP1 fits no 80 GB H100, so neither TP1 layout runs; the line
    gives each layout's reason and a layout that does run (recommend's best on these 4 GPUs)."""
    line = refusal("compare", "-m", "llama-70b", "--gpus", "4", "1", "1x1x1")
    oom = "weights 131.4 GiB + runtime reserve 5.5 GiB per GPU exceed the 71.7 GiB usable (0.90 x 79.6 GiB) by 65.2 GiB"
    assert line == (f"Error: none of the 2 layouts compared runs (1x1x4: {oom}; 1x1x1: {oom}); compare a layout that "
                    f"runs, e.g. 2x2x1 (tpplan recommend's best with these options)")
    # nothing runs at all on these GPUs: the line says so and where to look
    line = refusal("compare", "-m", "llama-405b", "--gpus", "2", "1", "2")
    assert line.startswith("Error: none of the 2 layouts compared runs (1x1x2: weights 756.0 GiB ")
    assert line.endswith("; no layout runs on these 2 GPU(s); `tpplan recommend` with the same model and options "
                         "suggests what would")


def test_none_runs_in_json_still_writes_every_layouts_reasons(run_cli):
    """As recommend -f json when nothing fits: the document on stdout (each layout with its reasons), the one error
    line on stderr, exit 1."""
    r = run_cli("compare", "-m", "llama-70b", "--gpus", "4", "1", "1x1x1", "-f", "json")
    assert r.code == 1 and r.err.startswith("Error: none of the 2 layouts compared runs")
    layouts = r.json()["layouts"]
    assert [c["feasible"] for c in layouts] == [False, False] and all(c["reasons"] for c in layouts)


def test_one_layout_that_runs_is_an_answer(run_cli):
    r = run_cli("compare", "-m", "llama-70b", "--gpus", "4", "1", "2x2x1", "-f", "json")
    assert r.code == 0 and [c["feasible"] for c in r.json()["layouts"]] == [False, True]


@pytest.mark.parametrize("command", [("compare", "-m", "llama-70b", "8", "4"), ("sweep", "--models", "llama-8b")])
def test_compare_and_sweep_take_serving_engines_only(command, usage_error, run_cli):
    """Training is planned by `recommend --workload train` (Megatron-Core); compare and sweep plan serving."""
    for name in ("megatron", "Megatron"):
        err = usage_error(*command, "--engine", name)
        assert err.endswith(f"Error: Invalid value for '--engine': {name!r} plans training and `tpplan {command[0]}` "
                            f"plans serving only; plan training with `tpplan recommend --workload train`, or choose a "
                            f"serving engine: vllm, sglang, trtllm\n"), err
    assert usage_error(*command, "--engine", "tgi").endswith(
        "Error: Invalid value for '--engine': 'tgi' is not a serving engine; choose one of: vllm, sglang, trtllm\n")
    assert run_cli(*command, "--engine", "SGLang", "-f", "json").code == 0  # any case, as before


def _figure(out: str, label: str) -> list[str]:
    """The layouts' cells of one figure's row of a compare table (plain or markdown)."""
    for line in out.splitlines():
        if line.startswith(f"| {label} |"):
            return [x.strip() for x in line.strip("|").split("|")[1:]]
        if line.startswith(label):
            return line[len(label):].split()
    raise AssertionError(f"no row {label!r} in {out}")


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_a_layout_refused_before_sizing_shows_no_weights(run_cli, fmt):
    """TensorRT-LLM runs attention DP with attention TP 1 only, so 2+dp4+ep8 is refused by the engine's rule before
    it is sized: its memory is "-", not 0.0 (as in recommend's table); a layout sized and found too big keeps its
    weights (Llama-3.1-70B on one H100: 131.4 GiB)."""
    out = run_cli("compare", "-m", "deepseek-v3", "--hardware", "hgx-h200", "--engine", "trtllm", "1+dp8+ep8",
                  "2+dp4+ep8", "-f", fmt).out
    assert _figure(out, "weights GiB/GPU") == ["93.9", "-"] and _figure(out, "KV GiB/GPU") == ["37.2", "-"]
    assert _figure(out, "feasible") == ["yes", "no"]
    out = run_cli("compare", "-m", "llama-70b", "--gpus", "4", "1", "2x2x1", "-f", fmt).out
    assert _figure(out, "weights GiB/GPU") == ["131.4", "32.9"] and _figure(out, "KV GiB/GPU") == ["0.0", "33.8"]


def test_compare_shows_the_latencies_the_limits_check(run_cli):
    """Beside the decode-step TPOT and the lone prompt's TTFT, each layout's TPOT and TTFT at the batch it runs
    (prefill chunks mixed in), as the JSON carries them."""
    import json

    r = run_cli("compare", "--model", "llama-70b", "--gpus", "8", "8", "4x1x2")
    rows = {line.split("  ")[0].strip(): line.split()[-2:] for line in r.out.splitlines() if "under load" in line}
    d = json.loads(run_cli("compare", "--model", "llama-70b", "--gpus", "8", "8", "4x1x2", "-f", "json").out)
    assert rows["TPOT under load ms"] == [f"{1000 * c['tpot_under_load_s']:.1f}" for c in d["layouts"]]
    assert rows["TTFT under load ms"] == [f"{1000 * c['ttft_under_load_s']:,.0f}" for c in d["layouts"]]


def test_compare_and_sweep_take_the_cross_domain_flag_their_reasons_name(run_cli):
    """A TP group across nodes is refused with "pass --allow-cross-domain-tp"; compare and sweep take the flag."""
    base = ("--model", "llama-405b", "--hardware", "dgx-h100-2node", "--gpus", "16", "8x2", "16", "-f", "json")
    refused = run_cli("compare", *base).json()["layouts"][1]
    assert not refused["feasible"] and refused["reasons"] == [
        "TP 16 spans nodes (8 GPUs per node; all-reduce over network): use PP across nodes, or pass "
        "--allow-cross-domain-tp to consider it"]
    assert run_cli("compare", *base, "--allow-cross-domain-tp").json()["layouts"][1]["feasible"]
    sweep = ("sweep", "--models", "llama-405b", "--hardware", "dgx-h100-2node", "--gpus", "16", "--batch", "32",
             "-f", "json")
    tp16 = [r for r in run_cli(*sweep, "--allow-cross-domain-tp").json() if r["tp"] == 16]
    assert len(tp16) == 1 and tp16[0]["feasible"]


def test_a_narrow_terminal_shows_every_compared_layout_in_blocks(run_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    r = run_cli("compare", "--model", "mixtral", "--gpus", "8", "8", "8+ep8", "1+dp8+ep8", "2x1x4", "1x1x2+dp4")
    assert r.code == 0, r.err
    table = r.out.split("Differences:")[0]
    for name in ("TP8xPP1x1", "TP8xPP1x1/EP8", "TP1xPP1x1/EP8/DP8", "TP2xPP1x4", "TP1xPP1x2/DP4"):
        assert name in table
    assert max(len(line) for line in table.splitlines()) <= 80 and table.count("tok/s per GPU") == 2


def test_a_difference_names_the_layout_that_does_not_run(run_cli):
    """Only the first layout breaks a rule (EP 16 > 8 experts): the line against a runnable one blames the first."""
    r = run_cli("compare", "--model", "mixtral", "--hardware", "dgx-h100-2node", "8+dp2+ep16", "1+dp16", "-f", "json")
    (line,) = r.json()["differences"]
    assert line == ("TP1xPP1x1/DP16 vs TP8xPP1x1/EP16/DP2: EP 1 vs 16, DP-attention 16 vs 2; TP8xPP1x1/EP16/DP2 does "
                    "not run: EP 16 exceeds the 8 routed experts: some GPUs would hold none")

"""`tpplan recommend` output a platform engineer can use: the answer first, 80 columns, JSON that parses,
serve commands that run the plan, usage errors before any work."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tpplan.planner.plan import recommend

NUMBER = re.compile(r"\d[\d,.]*")


@pytest.fixture
def cols80(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")


def test_answer_first_and_fits_80_columns(run_cli, cols80):
    r = run_cli("recommend", "--model", "llama-70b", "--gpus", "8")
    lines = r.out.splitlines()
    assert r.code == 0 and len(lines) <= 40, len(lines)
    assert max(len(ln) for ln in lines) <= 80
    head = " ".join(ln.strip() for ln in lines[:3])  # the answer line, wrapped at 80 columns
    best = run_cli("recommend", "--model", "llama-70b", "--gpus", "8", "-f", "json").json()["recommended"]
    assert head.startswith(f"TP{best['tp']} x PP{best['pp']} x {best['replicas']} replica")
    assert f"--tensor-parallel-size {best['tp']}" in head
    m = re.search(r"[\d,]+ tok/s \([\d,]+/GPU\), TPOT ([\d.]+) ms \(([\d,]+) under load\), "
                  r"TTFT ([\d.]+) ms \(([\d,]+) under load\), \d+ seqs", head)
    assert m, head

    # every number in the table row of the recommendation is whole: compare against the JSON
    d = run_cli("recommend", "--model", "llama-70b", "--gpus", "8", "-f", "json").json()["recommended"]
    assert f"{d['output_tokens_per_s']:,.0f} tok/s" in head
    # TPOT is the decode step of DESIGN.md §3; under the load the throughput is computed at, prefill chunks ride in
    # the same steps: every running sequence gets one token per steady step = batch / throughput of a replica
    assert m.group(1) == f"{1000 * d['tpot_s']:.0f}" and m.group(2) == f"{1000 * d['tpot_under_load_s']:,.0f}"
    assert m.group(3) == f"{1000 * d['ttft_s']:.0f}" and m.group(4) == f"{1000 * d['ttft_under_load_s']:,.0f}"
    per_replica = d["output_tokens_per_s"] / d["replicas"]
    assert abs(d["tpot_under_load_s"] - d["batch"] / per_replica) < 1e-9 * d["tpot_under_load_s"]
    star = next(ln for ln in lines if ln.startswith("★"))
    assert f"{d['output_tokens_per_s']:,.0f}" in star.split()


def test_wrapped_lines_never_split_a_number(run_cli, cols80):
    out = run_cli("recommend", "--model", "llama-70b", "--gpus", "8").out
    wide = run_cli("recommend", "--model", "llama-70b", "--gpus", "8", "--wide").out
    # the numbers of the compact view, in order, all appear whole in the unwrapped --wide view
    wide_numbers = set(NUMBER.findall(wide))
    assert all(n in wide_numbers for n in NUMBER.findall(out))


def test_reasons_on_their_own_lines_and_legend(run_cli, cols80):
    out = run_cli("recommend", "--model", "llama-70b", "--gpus", "8").out
    assert "  - weights 131.4 GiB + runtime reserve" in out
    assert "★ recommended" in out and "x rejected" in out


def test_piped_output_is_compact_without_columns(monkeypatch):
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.run([sys.executable, "-m", "tpplan", "recommend", "--model", "llama-70b", "--gpus", "8"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and max(map(len, proc.stdout.splitlines())) <= 80


def test_ascii_terminal_gets_ascii():
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "COLUMNS": "80"}
    proc = subprocess.run([sys.executable, "-m", "tpplan", "recommend", "--model", "llama-70b", "--gpus", "8"],
                          capture_output=True, env=env)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr
    proc.stdout.decode("ascii")  # raises if anything non-ASCII came out
    assert b"\n* " in proc.stdout


def test_markdown_format(run_cli):
    out = run_cli("recommend", "--model", "llama-70b", "--gpus", "8", "--objective", "latency", "-f", "markdown").out
    assert out.startswith("**TP8 x PP1 x 1 replica") and "|---|" in out and "**Assumptions**" in out


def test_emit_json_is_valid_json_with_serve_command(run_cli):
    r = run_cli("recommend", "--model", "llama-70b", "--gpus", "8", "--objective", "latency", "--emit", "vllm",
                "-f", "json")
    d = json.loads(r.out)  # the whole of stdout parses
    assert d["schema_version"] == 1 and d["inputs"]["max_model_len"] == 8192
    cmd = d["serve_command"]
    assert cmd.startswith("vllm serve meta-llama/Llama-3.1-70B")
    for flag in ("--tensor-parallel-size 8", "--max-model-len 8192", "--gpu-memory-utilization 0.90"):
        assert flag in cmd


def test_emit_csv_keeps_stdout_csv(run_cli):
    import csv
    import io

    r = run_cli("recommend", "--model", "llama-70b", "--gpus", "8", "--emit", "vllm", "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(r.out)))
    assert rows and all(row["tp"].isdigit() for row in rows)
    assert "vllm serve" in r.err


def test_emit_flags_follow_the_plan(run_cli):
    cmd = run_cli("recommend", "--model", "llama-8b", "--gpus", "8", "--dtype", "fp8", "--kv-cache-dtype", "fp8",
                  "--max-model-len", "4096", "--gpu-memory-utilization", "0.85", "--emit", "vllm", "-f",
                  "json").json()["serve_command"]
    for flag in ("--quantization fp8", "--kv-cache-dtype fp8", "--max-model-len 4096",
                 "--gpu-memory-utilization 0.85"):
        assert flag in cmd
    assert "CUDA_VISIBLE_DEVICES=0-" not in cmd


def test_replicas_use_data_parallelism_or_device_lists():
    plan = recommend("llama-8b", gpus=8, tp=2, replicas=4)
    assert plan.chosen.replicas == 4
    plan = recommend("llama-8b", gpus=8)
    c = plan.recommended
    assert c.replicas > 1
    assert f"--data-parallel-size {c.replicas}" in plan.serve_command("vllm")
    sg = recommend("llama-8b", gpus=8, engine="sglang")
    assert f"--dp-size {sg.recommended.replicas}" in sg.serve_command("sglang")
    trt_plan = recommend("llama-8b", gpus=8, engine="trtllm")
    trt, best = trt_plan.serve_command(), trt_plan.recommended
    lists = re.findall(r"CUDA_VISIBLE_DEVICES=(\S+)", trt)
    assert trt.count("trtllm-serve") == best.replicas > 1 and len(lists) == best.replicas
    per_replica = best.tp * best.pp
    assert all(re.fullmatch(r"\d+(,\d+)*", x) and len(x.split(",")) == per_replica for x in lists)
    assert sorted(int(d) for x in lists for d in x.split(",")) == list(range(best.gpus_used))


def test_multi_node_prints_one_command_per_node():
    plan = recommend("llama-405b", gpus=16, hardware="dgx-h100-2node", engine="sglang")
    cmd = plan.serve_command()
    assert "--node-rank 0" in cmd and "--node-rank 1" in cmd and cmd.count("--nnodes 2") == 2
    vllm = recommend("llama-405b", gpus=16, hardware="dgx-h100-2node", objective="latency").serve_command()
    assert "ray start --head" in vllm and "--pipeline-parallel-size 2" in vllm
    assert "mpirun -np 16" in recommend("llama-405b", gpus=16, hardware="dgx-h100-2node",
                                        engine="trtllm").serve_command()


@pytest.mark.parametrize("args", [
    ["--engine", "tgi"], ["--emit", "megatron"], ["--dtype", "fp6"], ["--objective", "speed"],
    ["--max-tpot-ms", "0"], ["--gpus", "0"], ["--deepep-mode", "fast"], ["--no-such-option"]])
def test_usage_errors_exit_2_with_nothing_on_stdout(run_cli, args):
    """A value wrong on its own (type, range, choices) is a usage error (tpplan.cli's docstring states the rule)."""
    r = run_cli("recommend", "--model", "no-such-model", *args)  # the model is never looked up
    assert (r.code, r.out) == (2, ""), r.err
    assert r.err.startswith("Error: ") and r.err.count("\n") == 1 and "Traceback" not in r.err


@pytest.mark.parametrize("args, line", [
    (["--workload", "train", "--emit", "vllm"],
     "--emit prints a serve command; it does not apply to --workload train; leave --emit out"),
    (["--engine", "sglang", "--emit", "vllm"],
     "--emit vllm with --engine sglang: the plan follows sglang's rules; use --emit sglang or --engine vllm"),
    (["--workload", "train", "--engine", "vllm"], "--engine vllm with --workload train: training is planned as "
                                                  "Megatron-Core runs it; leave --engine out or use --engine megatron"),
    (["--pp", "2"], "--pp, --replicas, --ep, --etp and --dp-attention fix a layout together with --tp; add --tp N"),
    (["--engine", "trtllm", "--deepep-mode", "auto"], "--deepep-mode 'auto' applies to --engine sglang only; "
                                                      "TensorRT-LLM chooses its MoE all-to-all itself; leave it out"),
])
def test_options_that_contradict_each_other_exit_1_with_one_line(refusal, args, line):
    """Each value well-formed, together refused: one `Error:` line, exit 1, before any work."""
    assert refusal("recommend", "--model", "no-such-model", *args) == f"Error: {line}"  # the model is never looked up


def test_choices_are_case_insensitive_and_dash_h_and_debug_after_subcommand(run_cli):
    assert run_cli("recommend", "--model", "llama-8b", "--engine", "SGLang", "-f", "JSON").json()["inputs"][
        "engine"] == "sglang"
    assert run_cli("recommend", "-h").out.startswith("Usage: tpplan recommend")
    proc = subprocess.run([sys.executable, "-m", "tpplan", "models", "show", "no-such-model", "--debug"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "ModelSpecError" in proc.stderr


def test_help_never_truncates_an_option_name_at_80_columns():
    env = {**os.environ, "COLUMNS": "80"}
    out = subprocess.run([sys.executable, "-m", "tpplan", "recommend", "--help"], capture_output=True, text=True,
                         env=env).stdout
    for opt in ("--allow-cross-domain-tp", "--gpu-memory-utilization", "--price-per-gpu-hour", "--sequence-parallel"):
        assert opt in out
    assert "…" not in out


def test_input_plus_output_raises_default_max_model_len():
    plan = recommend("llama-8b", gpus=1, input_len=8000, output_len=1000)
    assert plan.workload.max_model_len == 9000 and "raised" in plan.assumptions["max_model_len"]


def test_emit_with_tp_prints_the_fixed_layout(run_cli):
    r = run_cli("recommend", "--model", "llama-70b", "--gpus", "8", "--tp", "4", "--emit", "vllm", "-f", "json")
    assert r.code == 0
    d = r.json()
    assert (d["chosen"]["tp"], d["chosen"]["replicas"]) == (4, 2)
    assert "--tensor-parallel-size 4" in d["serve_command"] and "--data-parallel-size 2" in d["serve_command"]
    bad = run_cli("recommend", "--model", "llama-70b", "--gpus", "8", "--tp", "1", "--replicas", "8", "--emit", "vllm")
    assert (bad.code, bad.out) == (1, "")
    assert bad.err.startswith("Error: the --tp layout TP1 x PP1 x 8 replica(s) does not run (weights 131.4 GiB")
    assert bad.err.endswith("so there is no serve command to emit; leave out --tp for the recommended layout's "
                           "command\n")


def test_compare_names_the_best_of_the_layouts_compared_and_the_planners_best(run_cli, cols80):
    """'Best of these' is one of the columns; a better layout outside them is named whole (DP-attention, EP)."""
    r = run_cli("compare", "--model", "deepseek-v3", "--gpus", "8", "--hardware", "hgx-h200", "8", "4x2")
    text = " ".join(r.out.split())
    assert r.code == 0
    from tpplan.planner.explain import label

    best = recommend("deepseek-v3", gpus=8, hardware="hgx-h200").recommended
    assert (best.tp, best.pp, best.dp_attention) not in ((8, 1, 1), (4, 2, 1))  # today: attention DP wins
    assert "Best of these for objective 'throughput': TP4xPP2x1;" in text
    assert f"over every layout tpplan plans: {label(best)}" in text
    r = run_cli("compare", "--model", "llama-70b", "--gpus", "8", "8", "4x1x2", "2x2x2")
    assert "Best of these for objective 'throughput': TP2xPP2x2" in " ".join(r.out.split())
    assert "over every layout" not in r.out  # the planner's best is among them


def test_readme_quotes_todays_make_demo_headline(run_cli, cols80):
    """The README's example answer is what `make demo` prints today (it went stale twice)."""
    from pathlib import Path

    r = run_cli("recommend", "--model", "llama-70b", "--gpus", "8")
    head = " ".join(r.out.split("\n\n")[0].split("\n")[:3]).split("  Llama")[0]
    head = " ".join(head.split())
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    assert head.split(": ", 1)[1] in readme, head


def test_notes_of_the_recommended_and_fixed_layouts_are_printed(run_cli, cols80):
    """A capped batch is said in the table view too, not only in JSON."""
    r = run_cli("recommend", "--model", "llama-70b", "--gpus", "8", "--batch", "100000")
    text = " ".join(r.out.split())
    assert r.code == 0 and "Notes: - batch capped at" in text and "(asked 100000)" in text
    md = run_cli("recommend", "--model", "llama-70b", "--gpus", "8", "--batch", "100000", "-f", "markdown").out
    assert "**Notes**" in md and "(asked 100000)" in md


def test_a_reason_is_given_once_in_the_compact_view(run_cli, cols80):
    """DeepSeek-V3 on 8 x H200 with SGLang: a dozen layouts whose weights do not fit and several that SGLang's
    PP x DP-attention rule refuses. Each kind of reason is written out once (under the first row it applies to); the
    later rows carry their numbers in their cells. --wide writes every row's reasons."""
    args = ("recommend", "--model", "deepseek-v3", "--hardware", "hgx-h200", "--gpus", "8", "--engine", "sglang")
    out, wide = run_cli(*args).out, run_cli(*args, "--wide").out
    rejected = [ln for ln in out.splitlines() if ln.startswith("x ")]
    assert len(rejected) > 10
    assert out.count("  - weights ") == 1 and out.count("sgl-project/sglang issue #9805") == 1
    assert wide.count("  - weights ") == sum(" 0.0 " in ln for ln in wide.splitlines() if ln.startswith("x "))
    assert wide.count("issue #9805") > 1
    assert "x rejected (why below, once per reason)" in out and "x rejected (why below)" in wide


def test_why_states_concurrency_from_the_tokens_each_sequence_holds(run_cli):
    """The KV cache in tokens divided by what one running sequence holds (input + output/2 on average with vLLM's
    paged cache; input + output with TensorRT-LLM's reservation), not by --max-model-len."""
    d = run_cli("recommend", "--model", "llama-8b", "--gpus", "1", "-f", "json").json()
    best, why = d["recommended"], " ".join(d["explanation"])
    assert best["kv_cache_tokens"] // 1152 == best["max_concurrent_sequences"]
    assert (f"{best['kv_cache_tokens']:,} tokens per GPU, up to {best['max_concurrent_sequences']} running sequences "
            "per replica (each holds 1,152 tokens: input + output/2 on average, in blocks of 16; --max-model-len "
            "8192)") in why
    assert "(1 GPU)" in why


def test_rows_only_the_latency_limits_reject_keep_their_numbers(run_cli, monkeypatch):
    """Each such row shows its TPOT / TTFT / batch cells and its own under-load TPOT in its reason (no compact column
    holds it), not '-' and a reason written once for all of them."""
    monkeypatch.setenv("COLUMNS", "80")
    out = run_cli("recommend", "-m", "llama-70b", "--gpus", "8", "--max-tpot-ms", "20").out
    plan = run_cli("recommend", "-m", "llama-70b", "--gpus", "8", "--max-tpot-ms", "20", "-f", "json").json()
    slow = [c for c in plan["candidates"] if c["reasons"] and all("--max-tpot-ms" in r for r in c["reasons"])]
    assert len(slow) >= 3
    for c in slow:
        row = next(ln for ln in out.splitlines() if ln.split()[:4] == ["x", str(c["tp"]), str(c["pp"]),
                                                                       str(c["replicas"])])
        assert row.split()[4:6] == ["-", "-"] and row.split()[6] == f"{c['tpot_s'] * 1000:.0f}"
        assert " ".join(out.split()).count(" ".join(c["reasons"][0].split())) == 1

"""What a training plan prints and writes: the per-GPU memory keys of its candidates, the table columns read from
them, and the assumptions it states (sequence length and batches, not a serving max_model_len)."""

from __future__ import annotations

import pytest

from tpplan.hardware.loader import load_builtin
from tpplan.planner.plan import recommend
from tpplan.units import ceil_div

TRAIN_70B = ("recommend", "-m", "llama-70b", "--workload", "train", "--gpus", "32", "--nodes", "4")
MEMORY_KEYS = ("model_state_bytes_per_gpu", "activation_bytes_per_gpu")

# Llama-3.1-70B (meta-llama/Llama-3.1-70B config.json): hidden_size 8192, 80 layers, 64 query heads.
LLAMA_70B_H, LLAMA_70B_LAYERS = 8192, 80


def test_training_json_carries_model_state_and_activations_per_gpu(run_cli):
    """Every training candidate, feasible or not: state = weights + gradients + optimizer, and the runtime reserve is
    the profile's reserve + the activations."""
    d = run_cli(*TRAIN_70B, "-f", "json").json()
    reserve = load_builtin("dgx-h100").efficiency.runtime_reserve_bytes
    assert any(c["feasible"] for c in d["candidates"]) and not all(c["feasible"] for c in d["candidates"])
    for c in [d["recommended"], *d["candidates"]]:
        assert c["model_state_bytes_per_gpu"] == c["weight_bytes_per_gpu"] + c["optimizer_state_bytes_per_gpu"]
        assert isinstance(c["activation_bytes_per_gpu"], int) and c["activation_bytes_per_gpu"] > 0
        assert c["runtime_reserve_bytes_per_gpu"] == reserve + c["activation_bytes_per_gpu"]


@pytest.mark.parametrize("args", [("-m", "llama-70b", "--gpus", "8"), ("-m", "llama-70b", "--gpus", "1"),
                                  ("-m", "mixtral", "--gpus", "8")])
def test_serving_json_carries_the_keys_as_null(run_cli, args):
    """Serving keeps no gradients, optimizer state or activations for a backward: the keys are there, null (its
    prefill activations are a different quantity, inside runtime_reserve_bytes_per_gpu)."""
    d = run_cli("recommend", *args, "-f", "json").json()
    for c in [x for x in (d["recommended"], d["chosen"]) if x] + d["candidates"]:
        assert {k: c[k] for k in MEMORY_KEYS} == dict.fromkeys(MEMORY_KEYS)


def _table_rows(out: str) -> dict[tuple[int, int, int], list[str]]:
    """(tp, pp, replicas) -> the row's cells after the mark, from a dense plan's --wide table."""
    rows = {}
    for line in out.splitlines():
        cells = line.split()
        if cells and cells[0] in ("★", "→", "x"):
            cells = cells[1:]
        if len(cells) > 3 and all(x.isdigit() for x in cells[:3]):
            rows[tuple(int(x) for x in cells[:3])] = cells
    return rows


def test_training_table_state_and_act_columns_are_the_json_values(run_cli):
    """The table's state GiB and act GiB are the JSON's bytes in GiB (2^30), row by row."""
    rows = _table_rows(run_cli(*TRAIN_70B, "--wide").out)
    cands = run_cli(*TRAIN_70B, "-f", "json").json()["candidates"]
    assert len(rows) == len(cands)
    for c in cands:
        state, act, _comm = rows[(c["tp"], c["pp"], c["replicas"])][-3:]
        assert (state, act) == (f"{c['model_state_bytes_per_gpu'] / 2**30:.1f}",
                                f"{c['activation_bytes_per_gpu'] / 2**30:.1f}"), c


def _layer_bytes(*, seq_len: int, micro_batch: int, hidden: int, tp: int, sp: bool) -> int:
    """Korthikanti et al. 2022 (arXiv:2205.05198, eq. 2 and §4.2.2), 16-bit activations of one transformer layer
    without recomputation and without the 5 a s / h attention-score term (flash attention keeps no score matrix):
    s b h (10 + 24 / t) with tensor parallelism, s b h 34 / t with sequence parallelism too. Integer arithmetic:
    exact for the hidden sizes below."""
    sbh = seq_len * micro_batch * hidden
    return sbh * 34 // tp if sp else sbh * (10 * tp + 24) // tp


def test_llama_70b_tp8_pp2_activations_by_hand():
    """s 1024, b 1, t 8, no SP: 1024 x 8192 x (10 + 3) = 109,051,904 B a layer. 1F1B's first stage holds pp = 2
    micro-batches of its 40 layers (Korthikanti §4.2.3): 80 layers' worth, 8,724,152,320 B = 8.125 GiB."""
    c = recommend("llama-70b", gpus=16, nodes=2, workload="train", input_len=1024, batch=1, tp=8, pp=2,
                  replicas=1, replan_suggestions=False).chosen
    assert _layer_bytes(seq_len=1024, micro_batch=1, hidden=LLAMA_70B_H, tp=8, sp=False) == 109_051_904
    assert c.activation_bytes_per_gpu == 80 * 109_051_904 == 8_724_152_320


@pytest.mark.parametrize("tp,pp,micro_batch,seq_len,sp", [
    (8, 2, 1, 1024, True), (4, 4, 2, 2048, False), (2, 8, 1, 4096, True), (8, 3, 1, 1024, False)])
def test_activation_bytes_follow_the_documented_formula(tp, pp, micro_batch, seq_len, sp):
    """activation_bytes_per_gpu = pp micro-batches x ceil(L / pp) layers x the per-layer formula; PP 3 does not
    divide 80 layers, so its first stage holds 27."""
    gpus = tp * pp
    c = recommend("llama-70b", gpus=gpus, nodes=ceil_div(gpus, 8), workload="train", input_len=seq_len,
                  batch=micro_batch, sequence_parallel=sp, tp=tp, pp=pp, replicas=1, replan_suggestions=False).chosen
    per_layer = _layer_bytes(seq_len=seq_len, micro_batch=micro_batch, hidden=LLAMA_70B_H, tp=tp, sp=sp)
    assert c.activation_bytes_per_gpu == pp * ceil_div(LLAMA_70B_LAYERS, pp) * per_layer


def test_training_assumptions_state_sequence_and_batches_not_max_model_len(run_cli):
    plan = recommend("llama-8b", gpus=8, workload="train", input_len=4096, batch=2, replan_suggestions=False)
    a = plan.assumptions
    assert "max_model_len" not in a and "batch" not in a
    assert a["seq_length"].startswith("4096 tokens per sequence")
    assert a["micro_batch_size"].startswith("2 sequences")
    assert a["global_batch_size"].startswith("8 x PP x DP sequences per step")
    out = run_cli("recommend", "-m", "llama-8b", "--gpus", "8", "--workload", "train", "--wide").out
    block = out[out.index("Assumptions:"):]
    assert "max_model_len" not in block and "KV cache" not in block
    assert all(f"  - {k}: " in block for k in ("seq_length", "micro_batch_size", "global_batch_size"))
    serve = recommend("llama-8b", gpus=8, replan_suggestions=False).assumptions
    assert "max_model_len" in serve and "KV cache bf16" in serve["dtype"] and "seq_length" not in serve


@pytest.mark.parametrize("args,kwargs", [
    (("-m", "qwen3-30b-a3b", "--gpus", "8", "--workload", "train"), dict(workload="train")),
    (("-m", "mixtral-8x7b", "--gpus", "8"), {}),
    (("-m", "deepseek-v3", "--gpus", "8", "--hardware", "hgx-h200", "--engine", "sglang"),
     dict(hardware="hgx-h200", engine="sglang"))])
def test_the_why_headlines_the_runner_up_once(run_cli, args, kwargs):
    """The MoE line may name the runner-up; then the short "Why" does not name it again in a "Runner-up" line
    (qwen3-30b-a3b training: the best expert-parallel layout is the runner-up)."""
    from tpplan.planner.candidates import label

    plan = recommend(args[1], gpus=8, **kwargs)
    runner_up = next(c for c in plan.candidates if c.feasible and c is not plan.recommended)
    lines = plan.explanation
    assert sum(x.startswith("Runner-up") or "it is the runner-up" in x for x in lines) == 1, lines
    r = run_cli("recommend", *args)
    assert r.code == 0, r.err
    why = " ".join(r.out[r.out.index("Why"):r.out.index("Assumptions:")].split())
    assert why.count(label(runner_up)) == 1, why

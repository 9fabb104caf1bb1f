"""Training plans that Megatron-LM starts as printed: even pipeline splits, sequence-parallel splits, the flags the
plan depends on, and 1F1B paced by its slowest stage (tpplan.planner.train_layouts / train)."""

from __future__ import annotations

import pytest

from tpplan.cost.coefficients import coefficients
from tpplan.cost.kernels import fusion_for
from tpplan.cost.step import forward_stage_share
from tpplan.hardware.loader import load_builtin
from tpplan.models.resolve import resolve_model
from tpplan.planner.train_layouts import TrainLayout, megatron_flags, pipeline_problem, sequence_split_problem

TRAIN = ("--workload", "train")


def test_pipeline_sizes_that_do_not_divide_the_layers_are_refused(run_cli):
    """Qwen2.5-7B has 28 layers: PP8 leaves 4 over, and Megatron asserts "Number of layers should be divisible by the
    pipeline-model-parallel size"."""
    spec = resolve_model("qwen-7b").spec
    assert pipeline_problem(spec, 7) is None and pipeline_problem(spec, 1) is None
    assert pipeline_problem(spec, 8) == (
        "Megatron splits the 28 layers evenly over the pipeline and PP8 does not divide them (\"Number of layers "
        "should be divisible by the pipeline-model-parallel size\"); PP degrees that do: 1, 2, 4, 7, 14, 28")
    r = run_cli("recommend", "-m", "qwen-7b", "--gpus", "8", *TRAIN, "--tp", "1", "--pp", "8", "-f", "json")
    assert r.code == 0, r.err
    doc = r.json()
    assert not doc["chosen"]["feasible"] and any("PP8 does not divide" in x for x in doc["chosen"]["reasons"])
    assert 28 % doc["recommended"]["pp"] == 0


@pytest.mark.parametrize("model,gpus,extra", [("llama-70b", 72, ("--hardware", "gb200-nvl72")),
                                              ("llama-8b", 12, ("--nodes", "2")),
                                              ("qwen3-235b", 64, ("--nodes", "8"))])
def test_no_recommended_pipeline_leaves_layers_over(run_cli, model, gpus, extra):
    r = run_cli("recommend", "-m", model, "--gpus", str(gpus), *extra, *TRAIN, "--input-len", "4096", "-f", "json")
    doc = r.json()  # exit 1 when nothing fits (Qwen3-235B's 94 layers on 64 GPUs): the document is still printed
    layers = resolve_model(model).spec.num_hidden_layers
    for c in doc["candidates"]:
        if c["feasible"]:
            assert layers % c["pp"] == 0, (c["tp"], c["pp"])


def test_sequence_parallelism_needs_the_sequence_divisible_by_tp(run_cli):
    assert sequence_split_problem(4096, 8, True) is None and sequence_split_problem(4099, 8, False) is None
    assert sequence_split_problem(4099, 8, True).endswith("use --input-len 4096 or 4104")
    assert sequence_split_problem(3, 4, True).endswith("use --input-len 4")
    r = run_cli("recommend", "-m", "qwen3-30b-a3b", "--gpus", "8", *TRAIN, "--input-len", "4099", "--tp", "8",
                "-f", "json")
    assert r.code == 1  # nothing fits: every TP > 1 layout of this MoE model needs sequence parallelism
    chosen = r.json()["chosen"]
    assert not chosen["feasible"] and any("divisible by TP" in x for x in chosen["reasons"])


def test_flags_carry_sequence_parallelism_and_the_planned_batch():
    dense = TrainLayout(tp=4, pp=8, replicas=2)
    assert megatron_flags(dense, sequence_parallel=True, micro_batch=1) == [
        "--bf16", "--tensor-model-parallel-size 4", "--pipeline-model-parallel-size 8", "--sequence-parallel",
        "--micro-batch-size 1", "--global-batch-size 64"]  # 1 x 4 x PP8 micro-batches x DP2
    assert "--sequence-parallel" not in megatron_flags(TrainLayout(tp=1, pp=2, replicas=4), sequence_parallel=True)


def test_headline_of_a_dense_sequence_parallel_plan_prints_the_flag(run_cli):
    r = run_cli("recommend", "-m", "llama-70b", "--gpus", "64", "--nodes", "8", *TRAIN, "--input-len", "4096",
                "--sequence-parallel", "--wide")
    assert r.code == 0, r.err
    head = r.out.splitlines()[0]
    assert "--sequence-parallel" in head and "--global-batch-size" in head


def test_the_last_stage_paces_1f1b():
    """Llama-3.1-8B at PP8: each stage runs 4 of 32 layers and the last also the 128,256-wide lm_head over every
    position, so the slowest stage is well above an eighth of the forward pass, and a step is
    (m - 1) x slowest + the whole pass per micro-batch, not (m + pp - 1) / pp of it."""
    spec, profile = resolve_model("llama-8b").spec, load_builtin("dgx-h100")
    c = coefficients(spec, profile, tp=1, pp=8, engine="megatron", fusion=fusion_for("megatron"))
    share = forward_stage_share(c, profile, prompts=1, input_len=1024, every_position=True)
    assert 1.3 / 8 < share < 1.6 / 8
    c1 = coefficients(spec, profile, tp=1, pp=1, engine="megatron", fusion=fusion_for("megatron"))
    assert forward_stage_share(c1, profile, prompts=1, input_len=1024) == 1.0


def test_distributed_optimizer_shards_master_weights_and_moments_over_dp(run_cli):
    """Megatron's distributed optimizer: 6 + 12 / d bytes per parameter (bf16 weight 2, fp32 gradient 4, fp32
    master weight and Adam moments 12 / d). Llama-3.1-8B (8,030,261,248 parameters) at TP1 x PP1 x DP8: 2 + 4 + 1.5
    = 7.5 bytes a parameter on every GPU, 60,226,959,360 bytes of model state; 18 bytes without it."""
    args = ("recommend", "-m", "llama-8b", "--gpus", "8", *TRAIN, "--tp", "1", "--replicas", "8", "-f", "json")
    plain = run_cli(*args).json()["chosen"]
    sharded = run_cli(*args, "--use-distributed-optimizer").json()["chosen"]
    params = 8_030_261_248
    assert plain["model_state_bytes_per_gpu"] == 18 * params
    assert sharded["weight_bytes_per_gpu"] == 2 * params
    assert sharded["optimizer_state_bytes_per_gpu"] == 4 * params + 12 * params // 8
    assert sharded["model_state_bytes_per_gpu"] == 60_226_959_360


def test_distributed_optimizer_flag_is_printed_and_refused_for_serving(run_cli):
    r = run_cli("recommend", "-m", "llama-70b", "--gpus", "64", "--nodes", "8", *TRAIN, "--input-len", "4096",
                "--use-distributed-optimizer", "--wide")
    assert r.code == 0, r.err
    assert "--use-distributed-optimizer" in r.out.splitlines()[0]
    r = run_cli("recommend", "-m", "llama-70b", "--use-distributed-optimizer")
    assert r.code == 1 and r.err.strip() == (
        "Error: --use-distributed-optimizer applies to --workload train (Megatron's distributed optimizer); serving "
        "holds no optimizer state; leave it out")


def test_nothing_fits_suggests_only_flags_that_re_plan_to_a_fit(run_cli):
    """Llama-3.1-70B training on 8 GPUs: the distributed optimizer holds 6 P / (TP x PP) + 12 P / N >= 18 P / N, no
    less than TP x PP = 8 without it, so re-planned it still fits nothing and is not suggested; 40 GPUs are."""
    r = run_cli("recommend", "-m", "llama-70b", "--gpus", "8", *TRAIN, "--input-len", "4096", "-f", "json")
    assert r.code == 1
    suggested = {s.get("flag"): s["would_give"] for s in r.json()["suggestions"]}
    assert "--use-distributed-optimizer" not in suggested
    assert suggested["--gpus 40 --nodes 5"]["gpus_used"] <= 40


def test_distributed_optimizer_suggestion_is_replanned_and_the_gpu_bound_stays_18_bytes(run_cli):
    """The suggestion's flag is re-planned like the others (`would_give`); the fewest GPUs that hold the state is
    18 bytes per parameter over N whatever the optimizer: a GPU holds 6 P / (TP x PP) + 12 P / N >= 18 P / N."""
    from tpplan.hardware.loader import load_builtin
    from tpplan.planner.plan import _replan

    base = dict(model="llama-8b", gpus=8, workload="train", input_len=1024, hardware="dgx-h100")
    got = _replan("--use-distributed-optimizer", base, load_builtin("dgx-h100"))
    assert got is not None and got["gpus_used"] == 8  # the boolean flag is re-planned, not skipped
    sharded = run_cli("recommend", "-m", "mixtral-8x22b", "--hardware", "dgx-h100-4node", *TRAIN,
                      "--use-distributed-optimizer", "-f", "json").json()
    plain = run_cli("recommend", "-m", "mixtral-8x22b", "--hardware", "dgx-h100-4node", *TRAIN, "-f", "json").json()
    gpus = [x["flag"] for x in plain["suggestions"] if (x.get("flag") or "").startswith("--gpus")]
    assert gpus == [x["flag"] for x in sharded["suggestions"] if (x.get("flag") or "").startswith("--gpus")]


def test_tp_above_the_kv_heads_splits_the_qkv_weight_and_gathers_its_activation(run_cli):
    """Megatron-Core 0.16+ runs TP > num_query_groups by all-gathering the fused QKV activation of each layer; its
    weight stays in plain TP row shards. vLLM replicates the KV heads instead (tpplan.models.engines.gathers_qkv)."""
    from tpplan.models.params import param_groups
    from tpplan.models.weights import params_per_gpu

    spec = resolve_model("qwen3-30b-a3b").spec  # 4 KV heads of 128
    kv = next(g for g in param_groups(spec) if g.name == "attention.kv_proj")
    assert params_per_gpu(spec, kv, tp=8, engine="megatron") == kv.params // 8
    assert params_per_gpu(spec, kv, tp=8, engine="vllm") == kv.params // 4  # one replicated head per rank
    assert params_per_gpu(spec, kv, tp=4, engine="megatron") == kv.params // 4
    profile = load_builtin("dgx-h100")
    tp8 = coefficients(spec, profile, tp=8, engine="megatron", fusion=fusion_for("megatron"))
    assert tp8.qkv_gather_width == (32 + 2 * 4) * 128
    assert coefficients(spec, profile, tp=4, engine="megatron").qkv_gather_width == 0
    assert coefficients(spec, profile, tp=8, engine="vllm").qkv_gather_width == 0
    r = run_cli("recommend", "-m", "qwen3-30b-a3b", "--gpus", "8", *TRAIN, "--tp", "8", "--ep", "8", "--etp", "1",
                "-f", "json")
    assert r.code == 0, r.err
    notes = r.json()["chosen"]["notes"]
    assert any(n.startswith("TP 8 > 4 KV heads: needs Megatron-Core 0.16 or later") for n in notes), notes


def test_the_qkv_gather_is_priced_as_one_more_collective_per_layer():
    from dataclasses import replace

    from tpplan.cost.collectives import collective_time_s
    from tpplan.cost.step import prefill

    spec = resolve_model("qwen3-30b-a3b").spec
    profile = load_builtin("dgx-h100")
    c = coefficients(spec, profile, tp=8, engine="megatron")
    with_gather = prefill(c, profile, prompts=1, input_len=1024, sequence_parallel=True).communication_s
    without = prefill(replace(c, qkv_gather_width=0), profile, prompts=1, input_len=1024,
                      sequence_parallel=True).communication_s
    one = collective_time_s(profile, kind="allgather", group_size=8, n_bytes=1024 * c.qkv_gather_width * c.act_bytes)
    assert with_gather - without == pytest.approx(spec.num_hidden_layers * one)


def test_a_fixed_global_batch_sets_each_layouts_micro_batches_and_refuses_a_dp_that_does_not_divide_it(run_cli):
    """--global-batch-size 64 with --micro-batch-size 2: TP2 x PP2 x DP2 runs 64 / (2 x 2) = 16 micro-batches per
    replica (Megatron's --global-batch-size, printed as given); DP8 with 60 is refused in Megatron's words."""
    from tpplan.planner.train_layouts import global_batch_problem, micro_batches_per_replica

    lay = TrainLayout(tp=2, pp=2, replicas=2)
    assert micro_batches_per_replica(lay, 2, 64) == 16 and micro_batches_per_replica(lay, 2, None) == 8
    assert micro_batches_per_replica(TrainLayout(tp=1, pp=1, replicas=8), 2, 60) is None
    assert global_batch_problem(TrainLayout(tp=1, pp=1, replicas=8), 2, 60) == (
        "global batch size (60) is not divisible by micro batch size (2) times data parallel size (8) (Megatron "
        "refuses it); use --global-batch-size 48 or 64")
    base = ("recommend", "-m", "llama-8b", "--gpus", "8", *TRAIN, "--micro-batch-size", "2")
    doc = run_cli(*base, "--global-batch-size", "64", "--tp", "2", "--pp", "2", "-f", "json").json()
    assert doc["inputs"]["global_batch_size"] == 64 and doc["inputs"]["batch"] == 2
    c = doc["chosen"]
    assert c["feasible"] and c["output_tokens_per_s"] * c["step_time_s"] == pytest.approx(64 * 1024)
    text = run_cli(*base, "--global-batch-size", "64", "--tp", "2", "--pp", "2").out
    assert "--micro-batch-size 2 --global-batch-size 64" in " ".join(text.split())
    default = run_cli(*base, "--tp", "2", "--pp", "2", "-f", "json").json()["chosen"]  # 2 x 4 x PP2 x DP2 = 32
    assert default["output_tokens_per_s"] * default["step_time_s"] == pytest.approx(32 * 1024)
    assert default["step_time_s"] < c["step_time_s"]  # half the micro-batches per step


def test_global_batch_size_is_refused_for_serving(refusal):
    assert refusal("recommend", "-m", "llama-8b", "--gpus", "8", "--global-batch-size", "64") == (
        "Error: --global-batch-size applies to --workload train (sequences per optimizer step); serving has no "
        "optimizer step: leave it out, or use --batch for concurrent sequences")


def test_activations_count_only_the_micro_batches_a_step_has():
    """1F1B keeps min(PP, m) micro-batches in flight on the first stage: a global batch of one micro-batch per step
    (m = 1) at PP2 holds the larger of one micro-batch's layers and the last stage's layers plus logits."""
    from tpplan.planner.train import activation_bytes_per_gpu

    spec = resolve_model("llama-70b").spec
    kw = dict(tp=8, pp=2, micro_batch=1, seq_len=4096, sp=True, attention_scores=False)
    full, one = activation_bytes_per_gpu(spec, **kw), activation_bytes_per_gpu(spec, **kw, micro_batches=1)
    assert one < full and activation_bytes_per_gpu(spec, **kw, micro_batches=8) == full
    assert one >= full / 2  # one micro-batch of the first stage's layers, or the last stage's with its logits


def test_debug_is_scoped_to_one_call(monkeypatch):
    from tpplan.cli import main

    monkeypatch.setenv("TPPLAN_DEBUG", "0")
    main(["--debug", "--version"])
    import os

    assert os.environ["TPPLAN_DEBUG"] == "0"
    monkeypatch.delenv("TPPLAN_DEBUG")
    main(["--debug", "--version"])
    assert "TPPLAN_DEBUG" not in os.environ

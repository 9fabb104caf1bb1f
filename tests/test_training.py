"""Training plans (`--workload train`): the step and memory figures users compare layouts by."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tpplan.cost.collectives import collective_time_s
from tpplan.hardware.loader import load_builtin
from tpplan.models.resolve import resolve_model
from tpplan.models.spec import ModelSpec
from tpplan.planner.plan import recommend
from tpplan.planner.train import GRAD_BYTES_PER_PARAM, activation_bytes_per_gpu
from tpplan.planner.workload import TRAIN_MICROBATCHES_PER_STAGE

TRAIN = dict(workload="train", engine="megatron", input_len=4096, batch=1, replan_suggestions=False)


def _layout(plan, **key):
    return next(c for c in plan.candidates if all(getattr(c, k) == v for k, v in key.items()))


def test_throughput_counts_every_data_parallel_replica():
    """Each replica runs its own 4 x PP micro-batches per step: TP4 x PP1 x 2 replicas on 8 GPUs processes
    2 x 4 x 1 x 4096 = 32,768 tokens a step."""
    plan = recommend("llama-8b", gpus=8, **TRAIN)
    c = _layout(plan, tp=4, pp=1, replicas=2)
    assert c.feasible
    assert c.output_tokens_per_s == pytest.approx(2 * TRAIN_MICROBATCHES_PER_STAGE * 4096 / c.step_time_s)


def test_activations_without_attention_scores_drop_only_the_score_term():
    """GPT-3 175B shape at TP8, s 2048, b 1 (Korthikanti et al. 2022): s b h = 25,165,824 bytes per unit; without
    sequence parallelism a layer holds s b h (10 + 24/8) = 327,155,712 B without the scores (Megatron's fused /
    flash attention) and s b h (13 + 5 x 96 x 2048 / (12288 x 8)) = 578,813,952 B with them. One stage (PP1) also
    holds the loss's fp32 logits, 4 s b V / t = 4 x 2048 x ceil(50257 / 8) = 51,470,336 B (§4.3)."""
    spec = ModelSpec(name="gpt3-175b-shape", hf_id="test", model_type="llama", hidden_size=12288,
                     num_hidden_layers=96, num_attention_heads=96, num_key_value_heads=96, head_dim=128,
                     tie_word_embeddings=False, intermediate_size=4 * 12288, vocab_size=50257,
                     max_position_embeddings=2048)
    kw = dict(tp=8, pp=1, micro_batch=1, seq_len=2048, sp=False)
    assert activation_bytes_per_gpu(spec, **kw, attention_scores=False) == 96 * 327_155_712 + 51_470_336
    assert activation_bytes_per_gpu(spec, **kw) == 96 * 578_813_952 + 51_470_336


def test_data_parallel_all_reduce_is_priced_on_the_network_its_ranks_span():
    """TP8 x 2 replicas on two 8-GPU nodes: Megatron's DP group (ranks 0 and 8, ...) crosses the nodes, so the
    step's fp32 gradient all-reduce is the network's, not NVLink's. It is the only difference in communication
    from one TP8 replica (whose DP group is a single GPU)."""
    two = recommend("llama-8b", gpus=16, nodes=2, tp=8, replicas=2, **TRAIN).chosen
    one = recommend("llama-8b", gpus=8, tp=8, replicas=1, **TRAIN).chosen
    profile2 = dataclasses.replace(load_builtin("dgx-h100"), nodes=2)
    grads = two.communication_time_per_step_s - one.communication_time_per_step_s
    n_bytes = two.weight_bytes_per_gpu // 2 * GRAD_BYTES_PER_PARAM
    network = collective_time_s(profile2, kind="allreduce", group_size=2, n_bytes=n_bytes, span_gpus=16)
    assert grads == pytest.approx(network)
    assert grads > 2 * collective_time_s(profile2, kind="allreduce", group_size=2, n_bytes=n_bytes)


# --- expert parallelism (Megatron-Core EP / ETP with MoE parallel folding) --------------------------------------
# Mixtral-8x7B-v0.1 (HF config): h 4096, 32 layers, 32 q / 8 kv heads of 128, 8 experts of 3 x 4096 x 14336, top 2,
# vocab 32,000 (a multiple of Megatron's 128 x tp for tp 1 and 2, so no padding), untied lm_head. Per layer:
# q, o 16,777,216 each + k, v 4,194,304 each = 41,943,040; norms 8,192; router 32,768; one expert 176,160,768.
# Embedding and lm_head 131,072,000 each, final norm 4,096. Total 46,702,792,704 (the HF safetensors count).
MIXTRAL_LAYER_DENSE = 41_943_040 + 8_192 + 32_768
MIXTRAL_EXPERT = 176_160_768


def test_ep8_state_per_gpu_by_hand():
    """TP1 x EP8 (ETP1) on 8 GPUs: every GPU holds all attention, the embeddings and one whole expert per layer:
    32 x 41,984,000 + 262,144,000 + 4,096 = 1,605,636,096 dense + 32 x 176,160,768 = 5,637,144,576 expert
    = 7,242,780,672 params; 2 B of bf16 weights and 16 B of fp32 grad, master and Adam state each."""
    c = recommend("mixtral", gpus=8, tp=1, ep=8, **TRAIN).chosen
    params = 32 * MIXTRAL_LAYER_DENSE + 2 * 131_072_000 + 4_096 + 32 * MIXTRAL_EXPERT
    assert params == 7_242_780_672
    assert (c.weight_bytes_per_gpu, c.optimizer_state_bytes_per_gpu) == (2 * params, 16 * params)
    assert (c.ep, c.etp, c.dp_attention, c.replicas) == (8, 1, 1, 8)


def test_ep4_with_attention_tp2_state_per_gpu_by_hand():
    """TP2 x 4 replicas with EP4 x ETP1 (folding: the expert group of 4 spans two TP groups): attention, norms and
    vocab rows split over TP2 (q/k/v/o 20,971,520 per layer; 16,000 of the 32,000 rows each of embedding and
    lm_head = 65,536,000), routers and norms whole: 32 x (20,971,520 + 8,192 + 32,768) + 131,072,000 + 4,096 =
    803,475,456; two whole experts per layer: 32 x 2 x 176,160,768 = 11,274,289,152; 12,077,764,608 params."""
    c = recommend("mixtral", gpus=8, tp=2, ep=4, etp=1, **TRAIN).chosen
    params = 32 * (20_971_520 + 8_192 + 32_768) + 131_072_000 + 4_096 + 32 * 2 * MIXTRAL_EXPERT
    assert params == 12_077_764_608
    assert c.weight_bytes_per_gpu == 2 * params and c.etp == 1 and c.replicas == 4


def test_moe_layer_activations_by_hand():
    """Mixtral at TP1, one micro-batch of 4,096 tokens, no attention scores (flash attention), EP8 x ETP1 balanced:
    per MoE layer s b h (7 + 8/1) = 251,658,240 B (attention and norms), the MoE input and dropout mask
    3 s b h = 50,331,648 B, and 4,096 x 2 pairs x (2 x 4,096 + 6 x 14,336) = 771,751,936 B (permuted input, gate/up
    and SwiGLU outputs): 1,073,741,824 B a layer, 32 GiB for 32 layers; and the loss's fp32 logits,
    4 x 4,096 x 32,000 = 524,288,000 B."""
    from tpplan.cost.train_experts import ExpertParallelLayout
    from tpplan.models.resolve import resolve_model

    spec = resolve_model("mixtral").spec
    x = ExpertParallelLayout(tp=1, ep=8, etp=1, imbalance=1.0)
    got = activation_bytes_per_gpu(spec, tp=1, pp=1, micro_batch=1, seq_len=4096, sp=False, attention_scores=False,
                                   experts=x)
    assert got == 32 * 1_073_741_824 + 524_288_000


def test_token_exchange_by_hand():
    """EP8 x ETP1, TP1, 4,096 tokens, top 2, h 4,096, bf16: each GPU sends 4,096 x 2 rows of 8,192 B = 67,108,864 B,
    all-to-all for the dispatch and again for the combine; with ETP2 the 2 x 8,192 rows it computes are also
    all-gathered and reduce-scattered over the ETP pair."""
    from tpplan.cost.train_experts import ExpertParallelLayout, pairs_per_gpu, token_exchange_time_s

    p = load_builtin("dgx-h100")
    kw = dict(top_k=2, hidden_size=4096, act_bytes=2)
    ep8 = ExpertParallelLayout(tp=1, ep=8, etp=1)
    a2a = collective_time_s(p, kind="alltoall", group_size=8, n_bytes=67_108_864)
    assert token_exchange_time_s(ep8, p, 4096, **kw) == pytest.approx(2 * a2a)
    ep4 = ExpertParallelLayout(tp=1, ep=4, etp=2)
    full = pairs_per_gpu(ep4, 4096, top_k=2) * 8192
    assert full == 2 * 8192 * 8192
    assert token_exchange_time_s(ep4, p, 4096, **kw) == pytest.approx(
        2 * collective_time_s(p, kind="alltoall", group_size=4, n_bytes=67_108_864, span_gpus=8)
        + collective_time_s(p, kind="allgather", group_size=2, n_bytes=full)
        + collective_time_s(p, kind="reducescatter", group_size=2, n_bytes=full))


def test_tp_split_experts_compute_every_pair_and_ep_the_busiest_ranks_share():
    from tpplan.cost.train_experts import ExpertParallelLayout, pairs_per_gpu

    assert pairs_per_gpu(ExpertParallelLayout(tp=4, ep=1, etp=4, imbalance=1.5), 4096, top_k=8) == 4096 * 8
    assert pairs_per_gpu(ExpertParallelLayout(tp=4, ep=8, etp=1, imbalance=1.5), 4096, top_k=8) == 1024 * 8 * 1.5


def test_ep_fits_where_no_tp_only_layout_does():
    """Qwen3-30B-A3B (30.5B params, 128 experts) on 8 H100 at 4,096 tokens: 18 B/param over 8 GPUs is 64 GiB with
    any layout, and TP8 with the experts split over TP (Megatron's allgather layout) also keeps all 4,096 x 8
    routed copies of every token on each GPU; EP8 x ETP1 keeps only its share and fits."""
    plan = recommend("qwen3-30b-a3b", gpus=8, **TRAIN)
    best = plan.recommended
    assert (best.tp, best.ep, best.etp) == (8, 8, 1)
    assert not any(c.feasible for c in plan.candidates if c.ep == 1)
    assert any(e.startswith("EP8 x ETP1 fits where no TP-only layout does") for e in plan.explanation)


def test_ep_moves_fewer_bytes_than_tp_split_experts_and_wins_when_routing_is_balanced():
    """Mixtral on 16 H100, TP8 x PP2: with the experts split over TP8 each MoE layer reduce-scatters and all-gathers
    the micro-batch's hidden states (2 x 7/8 of them per GPU); EP8 x ETP1 sends each GPU's 1/8 of the tokens
    twice per top-2 choice (0.5 of them) all-to-all, so it communicates less. Its experts see whole 14,336-wide
    GEMMs too, so with balanced routing it is faster; with the busiest rank at 1.5 x the mean it is slower."""
    def pair(imbalance):
        plan = recommend("mixtral", gpus=16, nodes=2, moe_imbalance=imbalance, **TRAIN)
        return _layout(plan, tp=8, pp=2, ep=1), _layout(plan, tp=8, pp=2, ep=8, etp=1)

    tp_only, ep = pair(1.0)
    assert ep.communication_time_per_step_s < tp_only.communication_time_per_step_s
    assert ep.output_tokens_per_s > 1.05 * tp_only.output_tokens_per_s
    tp_only, ep = pair(1.5)
    assert ep.output_tokens_per_s < tp_only.output_tokens_per_s


def test_ep_over_two_nodes_is_priced_on_the_network():
    """An all-to-all whose EP group spans two 8-GPU nodes runs at the network's speed, not NVLink's."""
    from tpplan.cost.train_experts import ExpertParallelLayout, token_exchange_time_s

    p = dataclasses.replace(load_builtin("dgx-h100"), nodes=2)
    kw = dict(top_k=8, hidden_size=2048, act_bytes=2)
    inside = token_exchange_time_s(ExpertParallelLayout(tp=1, ep=8, etp=1), p, 4096, **kw)
    across = token_exchange_time_s(ExpertParallelLayout(tp=1, ep=16, etp=1), p, 4096, **kw)
    assert across > 4 * inside


def test_training_json_keeps_ep_dp_attention_and_adds_etp(run_cli):
    doc = run_cli("recommend", "-m", "qwen3-30b-a3b", "--gpus", "8", "--workload", "train", "--engine", "megatron",
                  "--input-len", "4096", "--batch", "1", "-f", "json").json()
    for c in doc["candidates"]:
        assert c["dp_attention"] == 1 and c["ep"] >= 1 and c["etp"] in (1, c["tp"])
    assert {(c["ep"], c["etp"]) for c in doc["candidates"]} >= {(1, 8), (8, 1), (2, 4)}
    dense = run_cli("recommend", "-m", "llama-8b", "--gpus", "8", "--workload", "train", "-f", "json").json()
    assert all(c["ep"] == 1 and c["etp"] is None for c in dense["candidates"])


def test_headline_prints_megatrons_expert_flags(run_cli):
    r = run_cli("recommend", "-m", "qwen3-30b-a3b", "--gpus", "8", "--workload", "train", "--engine", "megatron",
                "--input-len", "4096", "--batch", "1", "--wide")
    assert r.code == 0
    assert r.out.startswith("TP8 (EP8 x ETP1) x PP1 x 1 replica (--bf16 --tensor-model-parallel-size 8 "
                            "--expert-model-parallel-size 8 --expert-tensor-parallel-size 1 --sequence-parallel "
                            "--moe-token-dispatcher-type alltoall --moe-grouped-gemm --micro-batch-size 1 "
                            "--global-batch-size 4): ")


def test_megatron_flags_leave_out_defaults():
    from tpplan.planner.train_layouts import TrainLayout, megatron_flags

    assert megatron_flags(TrainLayout(tp=1, pp=2, replicas=4, ep=8, moe=True)) == [
        "--bf16", "--tensor-model-parallel-size 1", "--pipeline-model-parallel-size 2",
        "--expert-model-parallel-size 8", "--moe-token-dispatcher-type alltoall", "--moe-grouped-gemm"]
    assert megatron_flags(TrainLayout(tp=4, pp=1, replicas=2, moe=True)) == [
        "--bf16", "--tensor-model-parallel-size 4", "--sequence-parallel", "--moe-grouped-gemm"]
    assert megatron_flags(TrainLayout(tp=4, pp=1, replicas=2), "fp8") == [
        "--bf16", "--fp8-format hybrid", "--tensor-model-parallel-size 4"]
    assert megatron_flags(TrainLayout(tp=4, pp=1, replicas=2), "fp16") == ["--fp16", "--tensor-model-parallel-size 4"]


TRAIN_ARGS = ("--gpus", "8", "--workload", "train", "--engine", "megatron")


@pytest.mark.parametrize("args,line", [
    (("-m", "mixtral", "--tp", "1", "--ep", "3"),
     "Error: --ep 3: num_experts (8) of Mixtral-8x7B-v0.1 is not a multiple of Megatron's "
     "--expert-model-parallel-size ('Number of experts should be a multiple of expert model parallel_size.'); EP "
     "sizes that divide it and fit this layout: 1, 2, 4, 8 with --etp 1"),
    (("-m", "mixtral", "--tp", "1", "--ep", "8", "--etp", "2"),
     "Error: --ep 8 x --etp 2 x --pp 1 = 16 GPUs does not divide the 8 GPUs of --tp 1 x --pp 1 x --replicas 8 "
     "(Megatron: 'world_size (8) is not divisible by expert_tensor_model_pipeline_parallel size (16)'); make --ep x "
     "--etp divide --tp x --replicas = 8; e.g. add --etp 1 (experts whole on each GPU)"),
    (("-m", "gpt-oss-120b", "--tp", "2", "--ep", "4"),
     "Error: expert tensor-parallel size 2 (--etp, default --tp): gpt-oss-120b's experts have biases, and "
     "Megatron-Core supports bias in MoE only with --expert-tensor-parallel-size 1 ('Bias in Moe is only supported "
     "when ETP==1'); add --etp 1"),
    (("-m", "llama-8b", "--tp", "1", "--ep", "2"),
     "Error: --ep / --etp apply to MoE models; Llama-3.1-8B has no routed experts; leave them out"),
    (("-m", "mixtral", "--tp", "1", "--dp-attention", "2"),
     "Error: --dp-attention 2 applies to --workload serve; in Megatron training the attention's data parallelism "
     "is the data-parallel size, --replicas"),
])
def test_megatron_rule_violations_are_one_error_line(run_cli, args, line):
    r = run_cli("recommend", *TRAIN_ARGS, *args)
    assert (r.code, r.out, r.err) == (1, "", line + "\n")


def test_etp_is_training_only(run_cli):
    r = run_cli("recommend", "-m", "mixtral", "--gpus", "8", "--tp", "1", "--etp", "1")
    assert (r.code, r.out) == (1, "")
    assert r.err == ("Error: --etp 1 applies to --workload train (Megatron's --expert-tensor-parallel-size); serving "
                     "engines split the routed experts over --tp x --dp-attention GPUs, or hold them whole with --ep; "
                     "leave --etp out\n")
    r = run_cli("recommend", "-m", "mixtral", *TRAIN_ARGS, "--etp", "1")
    assert r.code == 1 and "fix a layout together with --tp" in r.err  # options that need another: exit 1


def test_expert_biases_reject_tp_split_experts():
    """gpt-oss keeps biases in its experts, which Megatron-Core trains only with ETP 1: TP-only layouts with TP > 1
    carry that reason, and EP layouts with ETP 1 are the ones offered."""
    plan = recommend("gpt-oss-120b", gpus=8, **TRAIN)
    plain = _layout(plan, tp=2, pp=1, ep=1)
    assert any("'Bias in Moe is only supported when ETP==1'" in r for r in plain.reasons)
    assert all(c.etp == 1 for c in plan.candidates if c.ep > 1)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["mixtral", "qwen3-30b-a3b", "deepseek-v3"]), st.sampled_from([1, 2, 4, 8]),
       st.sampled_from([1, 2, 4]), st.sampled_from([1, 2, 4, 8, 16]), st.booleans())
def test_routed_experts_are_split_exactly_over_pp_ep_and_etp(model, tp, pp, ep, etp_is_tp):
    """Summed over the pipeline stages, one GPU of each holds 1 / (EP x ETP) of the routed experts: none is lost or
    copied inside an expert group (the experts of these models divide evenly)."""
    from tpplan.models.params import param_groups
    from tpplan.models.resolve import resolve_model
    from tpplan.models.weights import params_by_stage

    spec = resolve_model(model).spec
    assume(spec.num_experts % ep == 0)  # Megatron's rule
    etp = tp if etp_is_tp else 1
    routed = sum(g.params * spec.num_moe_layers for g in param_groups(spec) if g.experts)
    held = sum(params_by_stage(spec, tp=tp, pp=pp, ep=ep, expert_tp=etp, engine="megatron", routed_only=True))
    assert held * ep * etp == routed


def test_mixtral_ep8_on_64_h100_near_megatrons_published_throughput():
    """Megatron-Core's MoE guide (megatron/core/transformer/moe/README.md): "468 TFLOPS for Mixtral 8X7B bf16
    training" with its reference mapping on 64 H100: TP1 x EP8 x PP4 (VPP 8), micro-batch 1, global batch 256
    (16 micro-batches per replica, = tpplan's 4 x PP), 4,096 tokens, all-to-all dispatcher. Model FLOPs per token:
    6 x the active parameters less the input embedding (12,879,925,248 - 131,072,000: two of eight experts, the
    lm_head counted) + 12 L h s for attention (Megatron's count) = 82.9 GFLOP. The
    planner has no virtual pipeline (bubble 3/19 instead of ~3/128) and routing is taken as balanced here, so it
    should land somewhat below 468."""
    c = recommend("mixtral", gpus=64, nodes=8, tp=1, pp=4, ep=8, replicas=16, moe_imbalance=1.0, **TRAIN).chosen
    flops_per_token = 6 * (12_879_925_248 - 131_072_000) + 12 * 32 * 4096 * 4096
    tflops = c.output_tokens_per_s_per_gpu * flops_per_token / 1e12
    assert c.feasible and 0.75 * 468 < tflops < 1.05 * 468


def test_training_is_planned_as_megatron_whatever_engine_the_library_is_given():
    """The same Megatron plan from any engine argument: kernels, memory fraction and the engine line."""
    args = dict(gpus=16, nodes=2, workload="train", input_len=4096, batch=1, replan_suggestions=False)
    plans = [recommend("mixtral-8x7b", engine=e, **args) for e in ("megatron", "vllm", "trtllm")]
    assert {p.workload.engine for p in plans} == {"megatron"}
    best = [(p.recommended.tp, p.recommended.pp, p.recommended.ep, p.recommended.output_tokens_per_s) for p in plans]
    assert best[0] == best[1] == best[2]


def test_training_refuses_another_engine_and_serving_only_options(refusal, run_cli):
    err = refusal("recommend", "--model", "mixtral-8x7b", "--gpus", "8", "--workload", "train", "--engine", "vllm")
    assert err == ("Error: --engine vllm with --workload train: training is planned as Megatron-Core runs it; leave "
                   "--engine out or use --engine megatron")
    r = run_cli("recommend", "--model", "mixtral-8x7b", "--gpus", "16", "--nodes", "2", "--workload", "train",
                "--format", "json")
    assert r.code == 0 and r.json()["inputs"]["engine"] == "megatron"
    from tpplan.errors import TpplanError

    with pytest.raises(TpplanError, match="--all2all-backend deepep_low_latency applies to serving engines"):
        recommend("mixtral-8x7b", gpus=8, workload="train", all2all_backend="deepep_low_latency")
    with pytest.raises(TpplanError, match="--deepep-mode normal applies to SGLang serving"):
        recommend("mixtral-8x7b", gpus=8, workload="train", deepep_mode="normal")
    for kw, name in ((dict(kv_cache_dtype="fp8"), "--kv-cache-dtype"), (dict(max_tpot_ms=50), "--max-tpot-ms"),
                     (dict(max_num_seqs=64), "--max-num-seqs"), (dict(max_model_len=4096), "--max-model-len"),
                     (dict(output_len=512), "--output-len"), (dict(objective="latency"), "--objective latency")):
        with pytest.raises(TpplanError, match=f"^{name} applies to --workload serve"):
            recommend("llama-8b", gpus=8, workload="train", **kw)


def test_a_training_sequence_needs_only_its_input_len_within_the_context(refusal):
    """A 4,096-token model trains on 4,096-token sequences (no generated tokens are added to them); one token more
    is refused in one line."""
    from tpplan.errors import TpplanError

    ctx = resolve_model("llama-2-7b").spec.max_position_embeddings
    assert ctx == 4096
    plan = recommend("llama-2-7b", gpus=8, workload="train", input_len=ctx)
    assert plan.recommended is not None and plan.workload.input_len == ctx
    with pytest.raises(TpplanError, match=r"^--input-len = 4097 exceeds Llama-2-7B's context "
                                          r"\(max_position_embeddings 4096\); shorten the sequence$"):
        recommend("llama-2-7b", gpus=8, workload="train", input_len=ctx + 1)
    err = refusal("recommend", "--model", "llama-8b", "--gpus", "8", "--workload", "train", "--objective", "latency")
    assert err.startswith("Error: --objective latency applies to --workload serve")


def test_training_refuses_a_serving_only_weight_format():
    from tpplan.errors import TpplanError

    with pytest.raises(TpplanError, match="--dtype nvfp4 with --workload train: tpplan plans Megatron training in "
                                          "bf16, fp16, fp8"):
        recommend("mixtral-8x7b", gpus=8, workload="train", dtype="nvfp4")
    with pytest.raises(TpplanError, match="Transformer Engine's FP8 GEMMs need FP8 tensor cores"):
        recommend("llama-3-8b", gpus=8, hardware="dgx-a100-80g", workload="train", dtype="fp8")


def test_an_fp8_checkpoint_trains_in_bf16_unless_fp8_is_asked_for():
    """DeepSeek-V3's checkpoint is FP8 (block-scaled); Megatron trains from bf16 weights and runs FP8 GEMMs only when
    asked (--fp8-format, planned as --dtype fp8): the default plan computes at the bf16 rate."""
    args = dict(gpus=256, nodes=32, workload="train", input_len=4096, batch=1, replan_suggestions=False)
    auto = recommend("deepseek-v3", **args)
    assert auto.workload.dtype == "bf16"
    bf16 = recommend("deepseek-v3", dtype="bf16", **args)
    assert [c.step_time_s for c in auto.candidates] == [c.step_time_s for c in bf16.candidates]


def test_an_ep_size_that_does_not_divide_the_experts_names_the_sizes_that_do(usage_error, run_cli):
    r = run_cli("recommend", "--model", "mixtral-8x7b", "--gpus", "8", "--workload", "train", "--tp", "8",
                "--ep", "3")
    assert r.code == 1 and "Traceback" not in r.err
    assert ("EP sizes that divide it and fit this layout: 1 with --etp 8; with --etp 1: 1, 2, 4, 8"
            in " ".join((r.out + r.err).split()))
    r = run_cli("recommend", "--model", "mixtral-8x7b", "--gpus", "8", "--workload", "train", "--tp", "8",
                "--ep", "2")
    assert "e.g. add --etp 1" in " ".join((r.out + r.err).split())


def test_nothing_fits_names_the_whole_layout_the_suggestion_gives():
    """'--gpus N would give ...' names EP and replicas, the layout that really fits (not TP x PP alone)."""
    from tpplan.report.plan import headline

    plan = recommend("mixtral-8x7b", gpus=8, workload="train", input_len=4096, batch=1)
    assert plan.recommended is None
    first = next(s for s in plan.suggestions if s.would_give)
    assert first.would_give["layout"].startswith(f"TP{first.would_give['tp']}")
    assert f"would give {first.would_give['layout']} at" in headline(plan)


def test_megatron_is_refused_for_serving(run_cli, usage_error):
    """--engine megatron plans training: recommend's serving plan with it is one error line (exit 1: it contradicts
    --workload serve); compare and sweep plan serving only, so there it is a usage error (exit 2) naming
    `tpplan recommend --workload train`."""
    line = ("Error: --engine megatron plans training; add --workload train, or choose a serving engine (vllm, sglang, "
            "trtllm) for --workload serve\n")
    r = run_cli("recommend", "-m", "llama-8b", "-g", "8", "--engine", "megatron")
    assert (r.code, r.out, r.err) == (1, "", line)
    for args in (("compare", "-m", "llama-8b", "-g", "8", "--engine", "megatron", "8", "4x1x2"),
                 ("sweep", "--models", "llama-8b", "--gpus", "8", "--engine", "megatron")):
        assert "plan training with `tpplan recommend --workload train`" in usage_error(*args), args


def test_training_table_shows_model_state_and_activations_not_serving_columns(run_cli):
    out = run_cli("recommend", "-m", "llama-8b", "--gpus", "8", "--workload", "train", "--input-len", "4096",
                  "--wide").out
    header = next(line for line in out.splitlines() if line.lstrip().startswith("TP "))
    assert header.split() == ["TP", "PP", "rep", "tok/s", "tok/s/GPU", "step", "s", "state", "GiB", "act", "GiB",
                              "comm"]
    assert "Megatron-Core training, bf16, sequences of 4096 tokens, micro-batch 1" in out
    assert "KV" not in header and "TTFT" not in header
    plan = recommend("llama-8b", gpus=8, workload="train", input_len=4096)
    c = plan.recommended
    row = next(line for line in out.splitlines() if line.startswith("★"))
    state_gib = (c.weight_bytes_per_gpu + c.optimizer_state_bytes_per_gpu) / 2**30
    act_gib = (c.runtime_reserve_bytes_per_gpu - plan.profile.efficiency.runtime_reserve_bytes) / 2**30
    assert row.split()[-3:] == [f"{state_gib:.1f}", f"{act_gib:.1f}", f"{100 * c.comm_share:.0f}%"]


@pytest.mark.parametrize("args,row", [
    (("-m", "llama-8b", "--workload", "train", "--input-len", "4096", "--batch", "2", "--tp", "4", "--pp", "2"),
     ["4", "2", "1"]),
    (("-m", "llama-70b", "--tp", "8"), ["8", "1", "1"]),
])
def test_your_tp_layout_row_carries_its_arrow(run_cli, args, row):
    """A --tp layout that is not the recommended one is marked → in its own row (training evaluates it again, so
    the row must be the re-evaluated candidate, not the list's copy)."""
    out = run_cli("recommend", "--gpus", "8", *args, "--wide").out
    rows = [line.split() for line in out.splitlines() if line.startswith(("→", "★")) and line.split()[1].isdigit()]
    assert ["→", *row] in [r[:4] for r in rows], rows
    assert sum(r[0] == "★" for r in rows) == 1


@pytest.mark.parametrize("workload", ["serve", "train"])
def test_moe_imbalance_on_a_dense_model_is_refused_not_ignored(refusal, workload):
    """A dense model routes no tokens to experts: --moe-imbalance would change nothing, so it is refused (serving and
    training alike) in one line naming the value, the model and the fix."""
    err = refusal("recommend", "--model", "llama-8b", "--gpus", "8", "--workload", workload, "--moe-imbalance", "1.5")
    assert err == ("Error: --moe-imbalance 1.5 applies to MoE models (the busiest expert-parallel rank's routed tokens "
                   "/ mean); Llama-3.1-8B has no routed experts; leave --moe-imbalance out")


def test_moe_imbalance_on_an_moe_model_and_gpu_memory_utilization_in_training_are_used(run_cli):
    """Neither is ignored where it applies: an MoE model trains with the imbalance given, and a training plan's
    usable memory is --gpu-memory-utilization x the GPU's (tpplan.planner.candidates.usable_bytes_per_gpu), so the
    option is honoured, not refused, with --workload train."""
    r = run_cli("recommend", "--model", "mixtral-8x7b", "--gpus", "16", "--nodes", "2", "--workload", "train",
                "--moe-imbalance", "1.5", "-f", "json")
    assert r.code == 0 and "EP load imbalance 1.50" in r.json()["assumptions"]["moe"]
    from tpplan.hardware.loader import load_builtin

    memory = load_builtin("dgx-h100").gpu.memory_bytes
    for util in (0.9, 0.5):
        d = run_cli("recommend", "--model", "llama-8b", "--gpus", "8", "--workload", "train",
                    "--gpu-memory-utilization", str(util), "-f", "json").json()
        assert d["recommended"]["usable_bytes_per_gpu"] == int(memory * util)


def test_megatron_tp_groups_on_consecutive_ranks_may_not_span_nodes(run_cli):
    """Megatron numbers TP groups on consecutive ranks: TP5 x 3 on two 8-GPU nodes puts ranks 5-9 in one group, across
    the nodes; that layout is refused with the ranks, TP degrees that divide 8 are not."""
    from tpplan.planner.train_layouts import megatron_placement_reasons

    assert megatron_placement_reasons(tp=4, groups=4, nvlink_domain_size=8, gpus_per_node=8) == []
    assert megatron_placement_reasons(tp=5, groups=1, nvlink_domain_size=8, gpus_per_node=8) == []  # ranks 0-4
    r = run_cli("recommend", "--model", "phi-3-medium-4k", "--workload", "train", "--hardware", "dgx-h100",
                "--nodes", "2", "-f", "json")
    assert r.code == 0, r.err
    tp5 = [c for c in r.json()["candidates"] if c["tp"] == 5]
    assert tp5 and all(not c["feasible"] for c in tp5)
    assert tp5[0]["reasons"][0] == ("Megatron places TP group 1 on ranks 5-9, across two 8-GPU domains (TP groups "
                                    "take consecutive ranks); use a TP degree that divides 8")
    assert any(c["feasible"] for c in r.json()["candidates"] if c["tp"] in (2, 4))

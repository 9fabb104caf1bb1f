"""MiniMax-M2 (model_type minimax_m2) and Qwen3-Next (qwen3_next, Gated DeltaNet + gated attention): parameter counts
summed by hand from the transformers modeling files, the linear layers' per-sequence state as vLLM allocates it, the
TP rules, and plans on H100 / H200 nodes."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tpplan.cost.batching import max_concurrency, scheduler_limits
from tpplan.cost.coefficients import coefficients, hybrid_kv_block_tokens
from tpplan.cost.step import decode_step
from tpplan.errors import ModelSpecError
from tpplan.files import package_dir
from tpplan.hardware.loader import load_builtin
from tpplan.models.engines import tp_violation, valid_tp_degrees
from tpplan.models.hf_config import spec_from_hf_config
from tpplan.models.kv import (
    kv_cache_bytes_per_sequence,
    kv_cache_bytes_per_token,
    linear_state_bytes_per_layer,
    linear_state_bytes_per_sequence,
)
from tpplan.models.params import active_params_excluding_embedding, param_groups, total_params
from tpplan.models.resolve import resolve_model

MINIMAX_M2_SERVED = 228_689_764_864
"""MiniMax-M2 without its MTP modules: test_minimax_m2_total_from_the_modeling_file. Model card: 230B total."""
QWEN3_NEXT_SERVED = 79_674_391_296
"""Qwen3-Next-80B-A3B without its MTP layer: test_qwen3_next_total_from_the_modeling_file. Model card: 80B total."""


def _config(file: str) -> dict:
    return json.loads((package_dir("tpplan.models.catalogue") / file).read_text())["config"]


def test_minimax_m2_total_from_the_modeling_file():
    """MiniMaxM2ForCausalLM (transformers models/minimax_m2/modeling_minimax_m2.py) with MiniMax-M2's shapes: per
    layer bias-free q (48 x 128), k and v (8 x 128 each), o; q_norm RMSNorm(48 x 128) and k_norm RMSNorm(8 x 128);
    2 RMSNorms; MiniMaxM2SparseMoeBlock of 256 gated experts of 1536 (gate_up 2 x 1536 x 3072, down 3072 x 1536), a
    router weight of 256 x 3072 and e_score_correction_bias of 256; untied embedding and lm_head of 200064 x 3072;
    final norm."""
    h, q, kv = 3072, 48 * 128, 8 * 128
    attention = h * q + 2 * h * kv + q * h + q + kv
    moe = 256 * 3 * h * 1536 + 256 * h + 256
    by_hand = 62 * (attention + moe + 2 * h) + 2 * 200064 * h + h
    s = resolve_model("minimax-m2").spec
    assert total_params(s) == by_hand == MINIMAX_M2_SERVED
    assert round(total_params(s) / 1e9) == 229 and abs(total_params(s) / 230e9 - 1) < 0.006  # card: 230B
    assert round(active_params_excluding_embedding(s) / 1e9) == 10  # card: 10B active
    assert s.qk_norm and s.qk_norm_per_head and s.router_score_bias and not s.n_shared_experts
    assert s.quantization is not None and s.quantization.method == "fp8"
    assert kv_cache_bytes_per_token(s) == 2 * 62 * 8 * 128 * 2
    assert any("MTP modules" in note for note in s.notes)


def test_minimax_m2_plans_on_8_h200(run_cli):
    s = resolve_model("minimax-m2").spec
    # 48 heads, 8 KV heads, experts of 1536: 1, 2, 4, 8 shard the KV heads; 3 does not divide 8 KV heads
    assert valid_tp_degrees(s)[:4] == [1, 2, 4, 8] and tp_violation(s, 3) is not None
    r = run_cli("recommend", "--model", "minimax-m2", "--hardware", "hgx-h200", "--gpus", "8", "-f", "json")
    assert r.code == 0, r.err
    d = r.json()
    best = d["recommended"]
    assert best["feasible"] and best["tp"] in (1, 2, 4, 8) and best["max_concurrent_sequences"] > 0
    assert all(c["tp"] in valid_tp_degrees(s) for c in d["candidates"] if c["feasible"])


@pytest.mark.parametrize(("change", "message"), [
    ({"attn_type_list": [0] + [1] * 61}, "field 'attn_type_list' names lightning-attention layers (0); tpplan reads "
                                         "MiniMax-M2's softmax-attention layers (1) only"),
    ({"qk_norm_type": "per_head"}, "field 'qk_norm_type' is 'per_head'; tpplan reads MiniMax-M2's 'per_layer' q/k "
                                   "norms only"),
    ({"shared_intermediate_size": 1536}, "field 'shared_intermediate_size' is 1536; MiniMax-M2 checkpoints have no "
                                         "shared expert (0) and tpplan reads none"),
])
def test_minimax_m2_refuses_what_it_does_not_model(change, message):
    with pytest.raises(ModelSpecError) as exc:
        spec_from_hf_config({**_config("minimax-m2.json"), **change})
    assert str(exc.value) == f"config.json: {message}"


def test_qwen3_next_total_from_the_modeling_file():
    """Qwen3NextForCausalLM (transformers models/qwen3_next/modular_qwen3_next.py) with Qwen3-Next-80B-A3B's shapes.
    12 gated-attention layers: q_proj 2048 x (2 x 16 x 256) (query and gate), k/v 2048 x (2 x 256), o 4096 x 2048,
    q_norm and k_norm of 256. 36 Gated DeltaNet layers (key_dim 16 x 128, value_dim 32 x 128): in_proj_qkvz
    2048 x (2 x 2048 + 2 x 4096), in_proj_ba 2048 x 64, conv1d 8192 x 4, dt_bias and A_log 32 each, norm 128,
    out_proj 4096 x 2048. Every layer: 2 RMSNorms, 512 experts of 512 (3 x 2048 x 512 each), router 512 x 2048, a
    shared expert of 512 and its gate 2048 x 1. Untied embedding and lm_head 151936 x 2048, final norm."""
    h = 2048
    attention = h * 2 * 16 * 256 + 2 * h * 2 * 256 + 16 * 256 * h + 2 * 256
    linear = h * (2 * 2048 + 2 * 4096) + h * 64 + 8192 * 4 + 2 * 32 + 128 + 4096 * h
    moe = 512 * 3 * h * 512 + 512 * h + 3 * h * 512 + h
    by_hand = 12 * attention + 36 * linear + 48 * (moe + 2 * h) + 2 * 151936 * h + h
    s = resolve_model("qwen3-next").spec
    assert (attention, linear) == (27_263_488, 33_718_464)
    assert total_params(s) == by_hand == QWEN3_NEXT_SERVED
    assert round(total_params(s) / 1e9) == 80  # model card: 80B total
    assert s.num_linear_layers == 36 and [i for i in range(48) if not s.is_linear_layer(i)] == list(range(3, 48, 4))
    assert (s.num_moe_layers, s.n_shared_experts, s.shared_expert_gate, s.attn_output_gate) == (48, 1, True, True)


def test_qwen3_next_kv_and_per_sequence_state():
    """Only the 12 attention layers cache tokens: 12 x 2 x 2 KV heads x 256 x 2 B. Each Gated DeltaNet layer holds,
    per running sequence, vLLM's gated_delta_net_state_shape (layers/mamba/mamba_utils.py): conv (4 - 1) x 8192 and
    recurrent 32 x 128 x 128, bf16: 1,097,728 B; 36 layers: 39,518,208 B (37.7 MiB) per sequence at tp 1, split
    over TP with the heads."""
    s = resolve_model("qwen3-next").spec
    assert kv_cache_bytes_per_token(s) == 12 * 2 * 2 * 256 * 2 == 24_576
    assert linear_state_bytes_per_layer(s) == (3 * 8192 + 32 * 128 * 128) * 2 == 1_097_728
    assert linear_state_bytes_per_sequence(s) == 36 * 1_097_728 == 39_518_208
    assert linear_state_bytes_per_sequence(s, tp=4) == 39_518_208 // 4
    assert linear_state_bytes_per_sequence(s, pp=2) == 18 * 1_097_728
    # the KV cache of one sequence does not count the linear layers (they cache no tokens)
    assert kv_cache_bytes_per_sequence(s, context_len=1000) == 1000 * 24_576
    # vLLM grows the attention block until one page holds a linear layer's state: 16 x ceil(1,097,728 / 32,768)
    assert hybrid_kv_block_tokens(1_097_728, 2 * 2 * 256 * 2) == 544


def test_qwen3_next_tp_rules():
    """16 heads, 2 KV heads (replicated past tp 2), 16 key and 32 value heads in the linear layers (vLLM splits both
    over TP): 1, 2, 4, 8, 16."""
    s = resolve_model("qwen3-next").spec
    assert valid_tp_degrees(s) == [1, 2, 4, 8, 16]
    wide = replace(s, num_attention_heads=32, linear_num_key_heads=8, linear_num_value_heads=32)
    assert tp_violation(wide, 16) == ("linear_num_key_heads (8) is not divisible by tensor parallel size (16) (the "
                                      "Gated DeltaNet layers split their heads over TP).")


def test_qwen3_next_layer_types():
    cfg = _config("qwen3-next-80b-a3b.json")
    kinds = ["full_attention" if i % 2 else "linear_attention" for i in range(48)]
    assert spec_from_hf_config({**cfg, "layer_types": kinds}).num_linear_layers == 24
    assert spec_from_hf_config({**cfg, "full_attention_interval": 2}).num_linear_layers == 24
    with pytest.raises(ModelSpecError) as exc:
        spec_from_hf_config({**cfg, "layer_types": ["mamba"] * 48})
    assert str(exc.value) == ("config.json: field 'layer_types' must list 'linear_attention' or 'full_attention' "
                              "once per layer (48)")
    dense = spec_from_hf_config({**cfg, "mlp_only_layers": [0, 1]})
    assert dense.num_dense_layers == 2 and total_params(dense) > QWEN3_NEXT_SERVED - 2 * 512 * 3 * 2048 * 512


def test_state_lowers_concurrency_and_slows_decode():
    """The per-sequence state takes KV memory: fewer sequences fit than the tokens alone allow; and a decode step
    reads and writes it for every running sequence."""
    s = resolve_model("qwen3-next").spec
    profile = load_builtin("dgx-h100")
    c = coefficients(s, profile, tp=4)
    assert c.linear_layers == 36 and c.kv_block_tokens == 16 * -(-274_432 // (16 * 1024))
    assert c.state_tokens_per_sequence == 36 * c.kv_block_tokens // 12
    limits = scheduler_limits("vllm", gpu_name=profile.gpu.name, gpu_memory_bytes=profile.gpu.memory_bytes,
                              max_num_seqs=100_000, max_num_batched_tokens=10_000_000)
    plain = max_concurrency(limits, kv_cache_tokens=2_000_000, input_len=1024, output_len=256)
    held = max_concurrency(limits, kv_cache_tokens=2_000_000, input_len=1024, output_len=256,
                           state_tokens_per_sequence=c.state_tokens_per_sequence)
    assert (plain, held) == (2_000_000 // 1152, 2_000_000 // (1152 + c.state_tokens_per_sequence))
    with_state = decode_step(c, profile, batch=256, context_len=2048).total_s
    without = decode_step(replace(c, linear_state_bytes=0.0), profile, batch=256, context_len=2048).total_s
    assert with_state > without


@pytest.mark.parametrize("gpus", [4, 8])
def test_qwen3_next_plans_a_sane_batch_on_h100(run_cli, gpus):
    r = run_cli("recommend", "--model", "qwen3-next", "--hardware", "dgx-h100", "--gpus", str(gpus), "-f", "json")
    assert r.code == 0, r.err
    best = r.json()["recommended"]
    assert best["feasible"] and 64 <= best["max_concurrent_sequences"] and best["batch"] > 0
    assert best["tp"] in (1, 2, 4, 8)


def test_qwen3_next_on_one_and_two_h100(run_cli):
    """80B bf16 weights (148 GiB) fit no single H100 and no pair; FP8 weights fit two."""
    one = run_cli("recommend", "--model", "qwen3-next", "--hardware", "dgx-h100", "--gpus", "1", "-f", "json").json()
    assert one["recommended"] is None or not one["recommended"]["feasible"]
    two = run_cli("recommend", "--model", "qwen3-next", "--hardware", "dgx-h100", "--gpus", "2", "--dtype", "fp8",
                  "-f", "json").json()
    assert two["recommended"]["feasible"] and two["recommended"]["max_concurrent_sequences"] > 64


def test_attention_groups_live_only_in_attention_layers():
    s = resolve_model("qwen3-next").spec
    scopes = {g.name: g.scope for g in param_groups(s)}
    assert scopes["attention.q_proj"] == "attention_layer" and scopes["linear_attn.out_proj"] == "linear_layer"
    assert {g.scope for g in param_groups(resolve_model("minimax-m2").spec) if g.component == "attention"} == {"layer"}


def test_models_show_reports_the_state(run_cli):
    d = run_cli("models", "show", "qwen3-next", "-f", "json").json()
    assert d["linear_state_bytes_per_sequence"] == 39_518_208 and d["kv_cache_bytes_per_token"] == 24_576
    assert run_cli("models", "show", "minimax-m2", "-f", "json").json()["linear_state_bytes_per_sequence"] == 0
    out = run_cli("models", "show", "qwen3-next").out
    assert "36 Gated DeltaNet linear-attention layers (16 key / 32 value heads), 12 attention layers" in out


def test_a_quantized_checkpoint_can_keep_the_linear_layers_in_16_bits():
    """An ignore list that names the Gated DeltaNet modules ('re:.*linear_attn.*', as FP8 Qwen3-Next exports do for
    their in_proj_qkvz / in_proj_ba / out_proj) keeps those groups at 2 bytes per parameter."""
    cfg = {**_config("qwen3-next-80b-a3b.json"), "quantization_config": {
        "quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128],
        "modules_to_not_convert": ["re:.*linear_attn.*", "lm_head"]}}
    s = spec_from_hf_config(cfg)
    by_group = {g.name: s.quantization.bytes_per_param(g) for g in param_groups(s)}
    assert {by_group[f"linear_attn.{m}"] for m in ("in_proj_qkvz", "in_proj_ba", "out_proj")} == {2}
    assert by_group["attention.q_proj"] < 1.01
    # an ignore list naming in_proj_ba alone keeps that small projection in 16 bits, not in_proj_qkvz beside it
    cfg["quantization_config"]["modules_to_not_convert"] = ["re:.*linear_attn\\.in_proj_ba$"]
    s = spec_from_hf_config(cfg)
    by_group = {g.name: s.quantization.bytes_per_param(g) for g in param_groups(s)}
    assert by_group["linear_attn.in_proj_ba"] == 2 and by_group["linear_attn.in_proj_qkvz"] < 1.01


def test_sglang_keeps_the_state_in_its_own_fp32_pool_and_caps_running_requests():
    """SGLang (ServerArgs: mamba_ssm_dtype "float32", mamba_full_memory_ratio 0.9; MAMBA_CACHE_SIZE_MAX_RUNNING_
    REQUESTS_RATIO 3): the recurrent state is fp32, it lives in a pool of 0.9 / 1.9 of the budget, and a third of the
    pool's slots can run; the rest of the budget holds the KV cache."""
    s = resolve_model("qwen3-next").spec
    profile = load_builtin("dgx-h100")
    vllm, sglang = coefficients(s, profile, tp=4, engine="vllm"), coefficients(s, profile, tp=4, engine="sglang")
    conv = 3 * 8192 // 4 * 2  # conv state, bf16, per layer at tp 4
    assert vllm.linear_state_bytes == conv + 32 // 4 * 128 * 128 * 2
    assert sglang.linear_state_bytes == conv + 32 // 4 * 128 * 128 * 4
    limits = scheduler_limits("sglang", gpu_name=profile.gpu.name, gpu_memory_bytes=profile.gpu.memory_bytes,
                              max_num_seqs=100_000, max_num_batched_tokens=10_000_000)
    tokens, state = 2_000_000, sglang.state_tokens_per_sequence
    pool = tokens * 0.9 / 1.9
    got = max_concurrency(limits, kv_cache_tokens=tokens, input_len=1024, output_len=256,
                          state_tokens_per_sequence=state)
    assert got == min((tokens - pool) // 1152, pool // state // 3)


def test_sglang_qwen3_next_runs_far_fewer_sequences_than_vllm(run_cli):
    args = ("recommend", "--model", "qwen3-next", "--gpus", "4", "--tp", "4", "-f", "json")
    vllm = run_cli(*args).json()["chosen"]["max_concurrent_sequences"]
    sglang = run_cli(*args, "--engine", "sglang").json()["chosen"]["max_concurrent_sequences"]
    assert sglang < vllm / 2


def test_the_scheduler_assumption_says_how_the_state_is_held(run_cli):
    a = run_cli("recommend", "--model", "qwen3-next", "--gpus", "4", "-f", "json").json()["assumptions"]["scheduler"]
    assert "linear-attention state: one KV block per linear layer, blocks enlarged to hold it" in a
    a = run_cli("recommend", "--model", "qwen3-next", "--gpus", "4", "--engine", "sglang",
                "-f", "json").json()["assumptions"]["scheduler"]
    assert "fp32 recurrent state in its own pool" in a
    assert "linear-attention" not in run_cli("recommend", "--model", "llama-8b", "--gpus", "1",
                                             "-f", "json").json()["assumptions"]["scheduler"]


def test_minimax_m2_pays_its_full_width_qk_norms_all_reduces_under_tp():
    """vLLM's MiniMaxText01RMSNormTP all-reduces the q and k norms' sums of squares (one fp32 per token each) across
    TP: two small all-reduces per layer beside the two of the hidden state; none at TP1 or for per-head norms."""
    from tpplan.cost.collectives import collective_time_s

    s, profile = resolve_model("minimax-m2").spec, load_builtin("hgx-h200")
    c = coefficients(s, profile, tp=8, ep=8)
    assert c.norm_allreduces_per_layer == 2
    assert coefficients(s, profile, tp=1).norm_allreduces_per_layer == 0
    assert coefficients(resolve_model("qwen3-30b-a3b").spec, profile, tp=8).norm_allreduces_per_layer == 0
    with_norms = decode_step(c, profile, batch=256, context_len=1152).communication_s
    without = decode_step(replace(c, norm_allreduces_per_layer=0), profile, batch=256, context_len=1152)
    one = collective_time_s(profile, kind="allreduce", group_size=8, n_bytes=256 * 4)
    assert with_norms - without.communication_s == pytest.approx(s.num_hidden_layers * 2 * one)


def test_measure_says_what_of_a_hybrid_model_it_does_not_run():
    from tpplan.measure.shapes import layer_shape

    note = layer_shape(resolve_model("qwen3-next").spec, max_hidden=1024).note
    assert "the 36 linear-attention (Gated DeltaNet) layers are not measured" in note
    assert "linear-attention" not in layer_shape(resolve_model("llama-8b").spec, max_hidden=1024).note


def test_models_show_states_the_state_as_the_engine_allocates_it(run_cli):
    """vLLM: conv + recurrent state in bf16 (39,518,208 B over 36 layers); SGLang keeps the recurrent part in fp32:
    36 x (3 x 8192 x 2 + 32 x 128 x 128 x 4) = 77,266,944 B."""
    vllm = run_cli("models", "show", "qwen3-next", "-f", "json").json()["linear_state_bytes_per_sequence"]
    sglang = run_cli("models", "show", "qwen3-next", "--engine", "sglang", "-f",
                     "json").json()["linear_state_bytes_per_sequence"]
    assert (vllm, sglang) == (39_518_208, 36 * (3 * 8192 * 2 + 32 * 128 * 128 * 4))


def test_a_layout_whose_state_pool_holds_no_request_is_infeasible(run_cli):
    """Qwen3-Next at TP1 x PP2 on H100 NVL under SGLang at --gpu-memory-utilization 0.842: its weights leave 0.15 GiB
    of KV budget, whose linear-state pool has no slot for one request. The one-sequence memory check passes, but
    nothing can run: infeasible, with the reason, never a feasible layout of 0 sequences."""
    r = run_cli("recommend", "--model", "qwen3-next", "--hardware", "h100-nvl", "--engine", "sglang", "--tp", "1",
                "--pp", "2", "--replicas", "4", "--gpu-memory-utilization", "0.842", "-f", "json")
    assert r.code == 0, r.err
    chosen = r.json()["chosen"]
    assert not chosen["feasible"] and chosen["reasons"][-1].startswith(
        "sglang's linear-attention state pool (47% of the 0.15 GiB KV budget per GPU) has no slot for one running "
        "request")
    assert all(c["max_concurrent_sequences"] >= 1 for c in r.json()["candidates"] if c["feasible"])

"""ERNIE 4.5 (model_type ernie4_5_moe) and OLMo-2 (olmo2) read from their config.json files: parameter totals summed
by hand from the modeling files, the MoE layer pattern, and a plan on 8 x H100."""

from __future__ import annotations

import json

import pytest

from tpplan.errors import ModelSpecError
from tpplan.models.hf_config import spec_from_hf_config
from tpplan.models.params import active_params, total_params

ERNIE_21B = {
    "architectures": ["Ernie4_5_MoeForCausalLM"], "model_type": "ernie4_5_moe", "hidden_act": "silu",
    "hidden_size": 2560, "intermediate_size": 12288, "max_position_embeddings": 131072, "num_attention_heads": 20,
    "num_key_value_heads": 4, "num_hidden_layers": 28, "rms_norm_eps": 1e-05, "vocab_size": 103424,
    "rope_theta": 500000, "use_bias": False, "moe_num_experts": 64, "moe_num_shared_experts": 2,
    "moe_layer_start_index": 1, "moe_intermediate_size": 1536, "moe_capacity": [64, 64, 64], "moe_gate": "topk",
    "moe_k": 6, "moe_layer_interval": 1, "moe_use_aux_free": True, "tie_word_embeddings": True,
    "torch_dtype": "bfloat16"}
"""baidu/ERNIE-4.5-21B-A3B-PT config.json (model card: 21B total, 3B activated parameters per token)."""

OLMO2_13B = {
    "architectures": ["Olmo2ForCausalLM"], "model_type": "olmo2", "attention_bias": False, "hidden_act": "silu",
    "hidden_size": 5120, "intermediate_size": 13824, "max_position_embeddings": 4096, "num_attention_heads": 40,
    "num_hidden_layers": 40, "num_key_value_heads": 40, "rms_norm_eps": 1e-06, "rope_theta": 500000,
    "tie_word_embeddings": False, "vocab_size": 100352}
"""allenai/OLMo-2-1124-13B config.json."""


def test_ernie_45_21b_total_from_the_modeling_file():
    """Ernie4_5_MoeForCausalLM (vLLM ernie45_moe.py): 28 layers of bias-free q/k/v/o (20 x 128 queries, 4 x 128 keys
    and values) and 2 RMSNorms; layer 0 a dense MLP of 12288; layers 1-27 an MoE block of 64 gated experts of 1536,
    2 shared experts as one MLP of 3072, a router of 64 x 2560 and its 64 e_score_correction_bias; tied embedding
    of 103424 x 2560; final norm. The model card's 21B total and 3B active."""
    h, q, kv = 2560, 20 * 128, 4 * 128
    attention = 2 * h * q + 2 * h * kv
    moe = 64 * 3 * h * 1536 + 3 * h * 3072 + 64 * h + 64
    by_hand = 28 * (attention + 2 * h) + 3 * h * 12288 + 27 * moe + 103424 * h + h
    s = spec_from_hf_config(ERNIE_21B)
    assert total_params(s) == by_hand == 21_825_437_888
    assert s.num_moe_layers == 27 and s.moe_layers == tuple(range(1, 28)) and s.n_shared_experts == 2
    assert (s.num_experts, s.num_experts_per_tok, s.moe_intermediate_size) == (64, 6, 1536)
    assert s.router_score_bias and not s.attention_bias
    assert round(active_params(s) / 1e9) == 3


@pytest.mark.parametrize(("fields", "moe_layers"), [
    ({"moe_layer_interval": 2}, tuple(range(1, 28, 2))),
    ({"moe_layer_start_index": [3, 3], "moe_layer_end_index": [20, 25]}, tuple(range(3, 26))),
    ({"moe_layer_end_index": -1}, tuple(range(1, 28))),
    ({"use_moe": False}, ()),
])
def test_ernie_moe_layer_pattern(fields, moe_layers):
    """Layer i routes when (i + 1) % moe_layer_interval == 0 and start <= i <= end (vLLM Ernie4_5_MoeDecoderLayer);
    per-modality lists take the smallest start and the largest end; -1 is the last layer; use_moe false is dense."""
    s = spec_from_hf_config(ERNIE_21B | fields)
    assert s.moe_layers == moe_layers and s.num_moe_layers == len(moe_layers)


def test_ernie_moe_k_above_the_experts_is_refused():
    with pytest.raises(ModelSpecError, match=r"field 'moe_k' \(65\) exceeds moe_num_experts \(64\)"):
        spec_from_hf_config(ERNIE_21B | {"moe_k": 65})


def test_ernie_plans_on_8_h100(run_cli, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(ERNIE_21B))
    r = run_cli("recommend", "--model", str(path), "--gpus", "8", "-f", "json")
    assert r.code == 0, r.err
    plan = r.json()
    best = plan["recommended"]
    assert best["feasible"] and best["output_tokens_per_s"] > 0
    assert any(c["ep"] > 1 for c in plan["candidates"])  # expert parallelism is offered for the MoE layers


def test_olmo2_13b_counts_its_full_width_qk_norms():
    """Olmo2ForCausalLM (transformers modeling_olmo2.py): per layer q/k/v/o of 5120 x 5120 without bias, q_norm and
    k_norm over the whole projection (40 x 128 each), post-attention and post-feedforward RMSNorms, a gated MLP of
    13824; untied embedding and lm_head of 100352 x 5120; final norm. OLMo 2 13B: 13.7B parameters."""
    h = 5120
    by_hand = 40 * (4 * h * h + 2 * h + 3 * h * 13824 + 2 * h) + 2 * 100352 * h + h
    s = spec_from_hf_config(OLMO2_13B)
    assert total_params(s) == by_hand == 13_716_198_400
    assert s.qk_norm and s.qk_norm_per_head and s.qk_norm_full_width

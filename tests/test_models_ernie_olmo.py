"""ERNIE 4.5 (ernie4_5_moe), OLMo-2 (olmo2), OLMoE, Phi-3.5-MoE and Granite MoE read from their config.json files:
parameter totals summed by hand from the modeling files, the MoE layer pattern, and a plan on 8 x H100."""

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


OLMOE = {"architectures": ["OlmoeForCausalLM"], "model_type": "olmoe", "hidden_act": "silu", "hidden_size": 2048,
         "intermediate_size": 1024, "max_position_embeddings": 4096, "num_attention_heads": 16, "num_experts": 64,
         "num_experts_per_tok": 8, "num_hidden_layers": 16, "num_key_value_heads": 16, "rms_norm_eps": 1e-05,
         "tie_word_embeddings": False, "vocab_size": 50304}
"""allenai/OLMoE-1B-7B-0924 config.json (paper: 6.9B total, 1.3B active)."""
PHIMOE = {"architectures": ["PhiMoEForCausalLM"], "model_type": "phimoe", "attention_bias": True, "hidden_act": "silu",
          "hidden_size": 4096, "intermediate_size": 6400, "lm_head_bias": True, "max_position_embeddings": 131072,
          "num_attention_heads": 32, "num_experts_per_tok": 2, "num_hidden_layers": 32, "num_key_value_heads": 8,
          "num_local_experts": 16, "rms_norm_eps": 1e-05, "sliding_window": 131072, "tie_word_embeddings": False,
          "vocab_size": 32064}
"""microsoft/Phi-3.5-MoE-instruct config.json, rope_scaling left out (model card: 42B total, 6.6B active)."""
GRANITEMOE = {"architectures": ["GraniteMoeForCausalLM"], "model_type": "granitemoe", "hidden_act": "silu",
              "hidden_size": 1536, "intermediate_size": 512, "max_position_embeddings": 4096,
              "num_attention_heads": 24, "num_experts_per_tok": 8, "num_hidden_layers": 32, "num_key_value_heads": 8,
              "num_local_experts": 40, "tie_word_embeddings": True, "vocab_size": 49155}
"""ibm-granite/granite-3.0-3b-a800m config.json (model card: 3.3B total, 800M active)."""


def test_olmoe_phimoe_and_granitemoe_totals_from_their_modeling_files():
    """OLMoE (modeling_olmoe.py): MHA q/k/v/o without bias, q_norm of hidden and k_norm of kv x head_dim, 2 RMSNorms,
    64 gated experts of 1024 and a router per layer; untied. Phi-3.5-MoE (modeling_phimoe.py): q/k/v/o with biases,
    2 LayerNorms (weight + bias), 16 gated experts of 6400 and a router; untied, lm_head with bias, final LayerNorm.
    Granite-3.0-3B-A800M: GQA without bias, 2 RMSNorms, 40 gated experts of 512 and a router; tied."""
    h = 2048
    olmoe = 16 * (4 * h * h + 2 * h + 2 * h + 64 * 3 * h * 1024 + 64 * h) + 2 * 50304 * h + h
    h, q, kv = 4096, 4096, 8 * 128
    phimoe = (32 * (2 * h * q + 2 * h * kv + 2 * q + 2 * kv + 2 * 2 * h + 16 * 3 * h * 6400 + 16 * h)
              + 2 * 32064 * h + 32064 + 2 * h)
    h, kv = 1536, 8 * 64
    granite = 32 * (2 * h * h + 2 * h * kv + 2 * h + 40 * 3 * h * 512 + 40 * h) + 49155 * h + h
    # the cards' active figures: OLMoE's and Phi-3.5-MoE's count the embeddings, Granite's does not
    for cfg, by_hand, card_total, card_active, embeddings in (
            (OLMOE, olmoe, 6.9e9, 1.3e9, True), (PHIMOE, phimoe, 42e9, 6.6e9, True),
            (GRANITEMOE, granite, 3.3e9, 0.8e9, False)):
        s = spec_from_hf_config(cfg)
        assert total_params(s) == by_hand, cfg["model_type"]
        assert abs(by_hand / card_total - 1) < 0.01, cfg["model_type"]
        assert s.num_moe_layers == s.num_hidden_layers
        emb = 0 if embeddings else s.vocab_size * s.hidden_size * (1 if s.tie_word_embeddings else 2)
        assert abs((active_params(s) - emb) / card_active - 1) < 0.02, cfg["model_type"]

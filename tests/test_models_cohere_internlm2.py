"""Cohere (Command R / Aya), Cohere2 (Command R7B) and InternLM2 load from their config.json files as their modeling
files build them, and their totals equal the published ones (sources in tests/data/configs/SOURCES.md)."""

from __future__ import annotations

import json
from pathlib import Path

from tpplan.models.hf_config import load_config_file, spec_from_hf_config
from tpplan.models.params import param_groups, total_params

CONFIGS = Path(__file__).parent / "data" / "configs"
AYA = CONFIGS / "aya-expanse-8b.json"
INTERNLM = CONFIGS / "internlm2_5-7b-chat.json"


def test_aya_expanse_8b_matches_the_hub_safetensors_total():
    """CohereForAI/aya-expanse-8b: 8,028,033,024 parameters (HfApi.get_safetensors_metadata, search tool file id
    12439498600). One weight-only LayerNorm per layer, parallel attention + gated MLP, tied embeddings."""
    s = load_config_file(AYA)
    assert total_params(s) == 8_028_033_024
    assert s.parallel_attn and s.gated_mlp and s.norms_per_layer == 1 and s.tie_word_embeddings
    assert not (s.attention_bias or s.o_proj_bias or s.mlp_bias or s.qk_norm)


def test_cohere_use_qk_norm_adds_a_weight_row_per_head():
    """Command R+ (use_qk_norm): CohereAttention's q_norm is CohereLayerNorm((heads, head_dim)) and k_norm
    CohereLayerNorm((kv heads, head_dim)), weight only."""
    cfg = json.loads(AYA.read_text())
    s = spec_from_hf_config({**cfg, "use_qk_norm": True})
    assert {g.name: g.params for g in param_groups(s)}["attention.qk_norm"] == (32 + 8) * 128
    assert total_params(s) - total_params(load_config_file(AYA)) == 32 * (32 + 8) * 128


def test_cohere2_three_sliding_layers_then_one_global():
    """Cohere2Config: layer_types from sliding_window_pattern (default 4): layers 3, 7, ... are global. The layer
    shapes are Cohere's, so the same sizes give the same total."""
    cfg = {**json.loads(AYA.read_text()), "model_type": "cohere2", "sliding_window": 4096}
    s = spec_from_hf_config(cfg)
    assert [i for i, k in enumerate(s.layer_types) if k == "full_attention"] == list(range(3, 32, 4))
    assert s.sliding_window == 4096 and s.attention_window(0) == 4096 and s.attention_window(3) is None
    assert total_params(s) == 8_028_033_024
    defaults = spec_from_hf_config({"model_type": "cohere2"})  # Cohere2Config defaults: window 4096, 40 layers, tied
    assert defaults.sliding_window == 4096 and defaults.layer_types.count("full_attention") == 10


def test_internlm2_5_7b_matches_the_hub_safetensors_total():
    """internlm/internlm2_5-7b-chat: 7,737,708,544 parameters (file id 12439498600). Untied output, no biases
    (bias false), rope_scaling dynamic x2: vLLM's derived context 65,536."""
    s = load_config_file(INTERNLM)
    assert total_params(s) == 7_737_708_544
    assert not s.tie_word_embeddings and not s.attention_bias and s.max_position_embeddings == 65_536
    assert not any("not in tpplan's list" in n for n in s.notes)


def test_internlm2_bias_and_tie_defaults_follow_internlm2config():
    """InternLM2Config: bias=True (wqkv and wo carry biases), tie_word_embeddings=False."""
    cfg = json.loads(INTERNLM.read_text())
    del cfg["bias"], cfg["tie_word_embeddings"]
    s = spec_from_hf_config(cfg)
    assert s.attention_bias and s.o_proj_bias and not s.mlp_bias and not s.tie_word_embeddings
    assert total_params(s) - 7_737_708_544 == 32 * ((32 + 2 * 8) * 128 + 4096)


def test_models_show_cohere_and_internlm2(run_cli):
    for path, total in ((AYA, 8_028_033_024), (INTERNLM, 7_737_708_544)):
        r = run_cli("models", "show", str(path), "-f", "json")
        assert r.code == 0, r.err
        assert r.json()["total_params"] == total
    rec = run_cli("recommend", "--model", str(AYA), "--gpus", "2", "-f", "json")
    assert rec.code == 0, rec.err

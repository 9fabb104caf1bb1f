"""GLM-4.5 / GLM-4.5-Air (model_type glm4_moe): read as transformers' modeling_glm4_moe.py builds the layers, with
parameter totals checked against the Hub's and the model cards' figures (sources in each test and in the catalogue
entries' `source`), and planned on 8 x H200."""

from __future__ import annotations

import json

import pytest

from tpplan.files import package_dir
from tpplan.models.engines import valid_tp_degrees
from tpplan.models.hf_config import load_config_file, spec_from_hf_config
from tpplan.models.kv import kv_cache_bytes_per_token
from tpplan.models.params import active_params, mtp_params, param_groups, total_params
from tpplan.models.resolve import resolve_model

GLM45_SERVED = 352_797_829_024
"""GLM-4.5 without its MTP layer, as vLLM serves it: summed by hand in test_glm45_total_from_the_modeling_file."""
AIR_SERVED = 106_852_251_264


def _catalogue_json(name: str) -> str:
    """The catalogue entry's config.json, as a file's text."""
    file = {"GLM-4.5": "glm-4.5.json", "GLM-4.5-Air": "glm-4.5-air.json"}[name]
    return json.dumps(json.loads((package_dir("tpplan.models.catalogue") / file).read_text())["config"])


def test_glm45_total_from_the_modeling_file():
    """Glm4MoeForCausalLM (transformers modeling_glm4_moe.py) with GLM-4.5's shapes: per layer q/k/v with biases
    (96 x 128 queries, 8 x 128 keys and values), o_proj without bias, q_norm + k_norm of head_dim, 2 RMSNorms;
    3 dense MLPs of 12288; 89 MoE blocks of 160 gated experts of 1536, a shared expert of 1536, a router of
    160 x 5120 plus its 160 e_score_correction_bias; untied embedding and lm_head of 151552 x 5120; final norm."""
    h, q, kv = 5120, 96 * 128, 8 * 128
    attention = h * q + 2 * h * kv + q + 2 * kv + q * h + 2 * 128
    moe = 160 * 3 * h * 1536 + 3 * h * 1536 + 160 * h + 160
    by_hand = 92 * (attention + 2 * h) + 3 * 3 * h * 12288 + 89 * moe + 2 * 151552 * h + h
    s = resolve_model("glm-4.5").spec
    assert total_params(s) == by_hand == GLM45_SERVED
    assert s.model_type == "glm4_moe" and s.qk_norm and s.attention_bias and not s.o_proj_bias
    assert (s.first_k_dense_replace, s.num_moe_layers, s.num_experts, s.n_shared_experts) == (3, 89, 160, 1)
    assert s.router_score_bias and s.num_nextn_predict_layers == 1 and not s.tie_word_embeddings


def test_mtp_layer_is_the_gap_to_the_hub_totals():
    """The Hub's safetensors totals (huggingface.co/zai-org/models: GLM-4.5 358B, GLM-4.5-Air 110B) count the MTP
    layer (model.layers.92 / .46: a MoE decoder layer, enorm, hnorm, eh_proj 2h x h, shared_head norm and head,
    embed_tokens; vLLM glm4_moe_mtp.py); mlx-community's conversions, which drop it, list 353B and 107B."""
    glm, air = resolve_model("glm-4.5").spec, resolve_model("glm-4.5-air").spec
    assert round((GLM45_SERVED + mtp_params(glm)) / 1e9) == 358 and round(GLM45_SERVED / 1e9) == 353
    assert round((AIR_SERVED + mtp_params(air)) / 1e9) == 110 and round(AIR_SERVED / 1e9) == 107
    assert total_params(air) == AIR_SERVED and not air.qk_norm and air.first_k_dense_replace == 1


@pytest.mark.parametrize(("name", "card_total", "card_active", "served", "gap"), [
    ("glm-4.5", 355e9, 32e9, GLM45_SERVED, 0.007), ("glm-4.5-air", 106e9, 12e9, AIR_SERVED, 0.009)])
def test_model_card_figures(name, card_total, card_active, served, gap):
    """Model cards (zai-org/GLM-4.5 README): '355 billion total parameters with 32 billion active', GLM-4.5-Air
    '106 billion total parameters and 12 billion active'. The rounded totals are within 1% of the served count but
    outside half a unit of their last digit (GLM-4.5 352.80B, Air 106.85B): no one convention (with or without the
    MTP layer or the embeddings) gives both. The active figures are the count without the input embedding and the
    lm_head, rounded: 32.08B and 12.18B."""
    s = resolve_model(name).spec
    assert abs(served / card_total - 1) < gap
    emb = s.vocab_size * s.hidden_size
    assert round((active_params(s) - 2 * emb) / 1e9) == card_active / 1e9


def test_glm45_reads_from_a_config_file_and_plans_on_8_h200(run_cli, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(_catalogue_json("GLM-4.5"))
    s = load_config_file(path)
    assert total_params(s) == GLM45_SERVED and s.max_position_embeddings == 131072
    # 96 query heads, 8 KV heads: TP 1..8 shard the KV heads, 16 replicates them (vLLM), 3 does not divide 96 by 8.
    assert valid_tp_degrees(s)[:5] == [1, 2, 4, 8, 16]
    assert kv_cache_bytes_per_token(s) == 2 * 92 * 8 * 128 * 2
    for model in (str(path), "glm-4.5", "glm-4.5-air"):
        r = run_cli("recommend", "--model", model, "--hardware", "hgx-h200", "--gpus", "8", "-f", "json")
        assert r.code == 0, r.err
        best = r.json()["recommended"]
        assert best["feasible"] and best["tp"] in (1, 2, 4, 8) and best["gpus_used"] == 8


def test_glm45_air_on_8_h100(run_cli):
    r = run_cli("recommend", "--model", "glm-4.5-air", "--hardware", "dgx-h100", "--gpus", "8", "-f", "json")
    assert r.code == 0, r.err
    assert r.json()["recommended"]["tp"] in (1, 2, 4, 8)


def test_use_qk_norm_and_attention_bias_follow_the_config():
    """Glm4MoeConfig defaults: attention_bias False, use_qk_norm False, untied embeddings."""
    cfg = {k: v for k, v in json.loads(_catalogue_json("GLM-4.5")).items()
           if k not in ("attention_bias", "use_qk_norm", "tie_word_embeddings")}
    s = spec_from_hf_config(cfg)
    groups = {g.name for g in param_groups(s)}
    assert not s.attention_bias and not s.qk_norm and not s.tie_word_embeddings
    assert "attention.q_bias" not in groups and "attention.qk_norm" not in groups and "lm_head" in groups


def test_models_show_reports_the_mtp_layers_apart(run_cli):
    """DeepSeek-V3's README: "685B ... 671B of the Main Model weights and 14B of the Multi-Token Prediction (MTP)
    Module weights". models show counts the served model and states the MTP layers beside it."""
    d = run_cli("models", "show", "deepseek-v3", "-f", "json").json()
    assert d["num_nextn_predict_layers"] == 1
    assert round(d["total_params"] / 1e9) == 671
    assert abs(d["mtp_params"] - 14e9) < 0.05 * 14e9  # 13.46B
    assert abs(d["total_params"] + d["mtp_params"] - 685e9) < 0.005 * 685e9  # 684.49B
    out = run_cli("models", "show", "glm-4.5").out
    assert "MTP layers: 1 (" in out and "not counted or planned" in out
    assert run_cli("models", "show", "llama-70b", "-f", "json").json()["mtp_params"] == 0

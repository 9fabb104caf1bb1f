"""GPTBigCode (StarCoder 1, model_type gpt_bigcode) loads from its config.json as modeling_gpt_bigcode.py builds it:
multi-query attention, biased GELU blocks and a learned position embedding, with totals equal to published ones."""

from __future__ import annotations

import json
from pathlib import Path

from tpplan.models.hf_config import spec_from_hf_config
from tpplan.models.kv import kv_cache_bytes_per_token
from tpplan.models.params import param_groups, total_params
from tpplan.models.weights import weight_bytes_per_gpu

CONFIGS = Path(__file__).parent / "data" / "configs"
STARCODER_1B = CONFIGS / "starcoderbase-1b.json"


def _cfg() -> dict:
    return json.loads(STARCODER_1B.read_text())


def test_starcoder_1b_and_15b_match_the_published_totals():
    """1,137,207,296 (StarCoderBase-1B shapes) and 15,517,456,384 (StarCoder-15B shapes: n_embd 6144, 48 heads,
    n_inner 24576, 40 layers) as a public table lists the MultiPL-T fine-tunes of both (search tool, code corpus,
    file id 69542685706); the fine-tunes keep their base model's shapes."""
    assert total_params(spec_from_hf_config(_cfg())) == 1_137_207_296
    big = spec_from_hf_config({**_cfg(), "n_embd": 6144, "n_head": 48, "n_inner": 24576, "n_layer": 40})
    assert total_params(big) == 15_517_456_384


def test_gpt_bigcode_is_multi_query_with_a_replicated_position_embedding():
    s = spec_from_hf_config(_cfg())
    assert s.num_key_value_heads == 1 and s.head_dim == 128 and s.max_position_embeddings == 8192
    assert not s.gated_mlp and s.norm_type == "layer" and s.tie_word_embeddings
    groups = {g.name: g for g in param_groups(s)}
    assert groups["embed_positions"].params == 8192 * 2048 and groups["embed_positions"].split == "replicated"
    assert kv_cache_bytes_per_token(s) == 2 * 24 * 1 * 128 * 2  # one shared K/V head per layer, bf16
    # The position embedding is on every GPU: its bytes do not shrink with tp.
    no_wpe = spec_from_hf_config({**_cfg(), "n_positions": 1})
    for tp in (1, 2):
        assert weight_bytes_per_gpu(s, tp=tp) - weight_bytes_per_gpu(no_wpe, tp=tp) == 2 * (8192 - 1) * 2048


def test_gpt_bigcode_defaults_and_multi_query_false():
    """GPTBigCodeConfig: multi_query True by default; multi_query false is plain multi-head attention."""
    assert spec_from_hf_config({"model_type": "gpt_bigcode"}).num_key_value_heads == 1
    mha = spec_from_hf_config({**_cfg(), "multi_query": False})
    assert mha.num_key_value_heads == 16


def test_models_show_and_recommend_starcoder_1b(run_cli):
    d = run_cli("models", "show", str(STARCODER_1B), "-f", "json").json()
    assert d["total_params"] == 1_137_207_296
    r = run_cli("recommend", "--model", str(STARCODER_1B), "--gpus", "2", "-f", "json")
    assert r.code == 0, r.err

"""mllama (Llama-3.2-Vision) and starcoder2 load from their real config.json files as transformers loads them, and
their parameter totals equal the published ones (sources in each test and in tests/data/configs/SOURCES.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tpplan.errors import ModelSpecError
from tpplan.models.engines import padded_vocab
from tpplan.models.hf_config import load_config_file, spec_from_hf_config
from tpplan.models.kv import kv_cache_bytes_per_token
from tpplan.models.params import param_groups, params_by_component, total_params
from tpplan.models.weights import weight_bytes_per_gpu, weight_bytes_total

CONFIGS = Path(__file__).parent / "data" / "configs"
MLLAMA = CONFIGS / "llama-3.2-11b-vision-thai-handwriting.json"


def test_starcoder2_15b_matches_the_hub_safetensors_total():
    """bigcode/starcoder2-15b: 15,957,889,024 parameters (Hub safetensors metadata). Untied lm_head in the file."""
    s = load_config_file(CONFIGS / "starcoder2-15b.json")
    assert total_params(s) == 15_957_889_024
    assert s.name == "starcoder2-15b"  # not the file's local _name_or_path '/aot/checkpoints/15b/config.json'
    assert not s.gated_mlp and s.norm_type == "layer" and s.sliding_window == 4096
    assert (s.attention_bias, s.o_proj_bias, s.mlp_bias, s.tie_word_embeddings) == (True, True, True, False)


def test_starcoder2_3b_takes_the_transformers_tie_default():
    """bigcode/starcoder2-3b's config.json names no tie_word_embeddings: Starcoder2Config ties them (True), and the
    Hub lists 3.03B parameters; an untied lm_head would make it 3.18B."""
    s = load_config_file(CONFIGS / "starcoder2-3b.json")
    assert s.tie_word_embeddings and s.num_key_value_heads == 2
    assert round(total_params(s) / 1e9, 2) == 3.03
    untied = spec_from_hf_config({**json.loads((CONFIGS / "starcoder2-3b.json").read_text()),
                                  "tie_word_embeddings": False})
    assert total_params(untied) - total_params(s) == 49152 * 3072


def test_starcoder2_use_bias_false_drops_every_linear_bias():
    cfg = json.loads((CONFIGS / "starcoder2-3b.json").read_text())
    with_bias, without = spec_from_hf_config(cfg), spec_from_hf_config({**cfg, "use_bias": False})
    h, kv_width, q_width, mlp = 3072, 2 * 128, 3072, 12288
    per_layer = q_width + 2 * kv_width + h + mlp + h  # q, k, v, o, c_fc, c_proj biases
    assert total_params(with_bias) - total_params(without) == 30 * per_layer


def test_starcoder2_defaults_fill_a_sparse_config():
    """Starcoder2Config defaults: hidden 3072, 30 layers, 24 heads, 2 KV heads, 4096 positions."""
    s = spec_from_hf_config({"model_type": "starcoder2"})
    assert (s.hidden_size, s.num_hidden_layers, s.num_attention_heads, s.num_key_value_heads,
            s.max_position_embeddings) == (3072, 30, 24, 2, 4096)


def test_mllama_11b_language_model_plus_vision_tower_equals_the_hub_total():
    """meta-llama/Llama-3.2-11B-Vision-Instruct: 10,670,220,835 parameters (Hub safetensors metadata, read with
    HfApi.get_safetensors_metadata). The config leaves cross_attention_layers, the vision tiles, aspect ratios and
    global layers to MllamaTextConfig / MllamaVisionConfig defaults."""
    s = load_config_file(MLLAMA)
    assert s.model_type == "mllama" and s.cross_attention_layers == (3, 8, 13, 18, 23, 28, 33, 38)
    assert total_params(s) + s.vision_params == 10_670_220_835
    # The planned language model: 40 Llama-3.1-8B-shaped layers, embedding of vocab + 8 rows, untied lm_head.
    assert total_params(s) == 9_775_192_080 and s.vision_params == 895_028_755
    assert any("cross_attention_layers missing" in n for n in s.notes)


def test_mllama_cross_attention_groups_and_weights_follow_tp():
    s = load_config_file(MLLAMA)
    cross = next(g for g in param_groups(s) if g.scope == "cross_layer")
    assert cross.params == 2 * 128 + 2 and cross.split == "replicated"
    assert params_by_component(s)["embedding"] == (128256 + 8) * 4096
    assert weight_bytes_per_gpu(s, tp=1) == _language_model_bytes_tp1(s)  # no vision bytes in the planned weights
    assert weight_bytes_per_gpu(s, tp=8) < weight_bytes_per_gpu(s, tp=4) < weight_bytes_per_gpu(s, tp=1)
    assert kv_cache_bytes_per_token(s) == 2 * 32 * 8 * 128 * 2  # 8 of 40 layers cache image tokens, not text


def _language_model_bytes_tp1(s) -> int:
    """bf16 bytes of the language model at tp 1: its total plus the vocab padding engines add to the embedding
    (vocab + 8 rows) and the lm_head (vocab rows)."""
    pad_rows = (padded_vocab(s.vocab_size + 8, tp=1) - s.vocab_size - 8) + (padded_vocab(s.vocab_size, tp=1)
                                                                            - s.vocab_size)
    return weight_bytes_total(s) + 2 * pad_rows * s.hidden_size


@pytest.mark.parametrize("bad", [5, [3, 40], [1, 1], ["3"], [True]])
def test_bad_cross_attention_layers_is_one_error_naming_the_field(bad):
    cfg = json.loads(MLLAMA.read_text())
    cfg["text_config"]["cross_attention_layers"] = bad
    with pytest.raises(ModelSpecError, match="cross_attention_layers"):
        spec_from_hf_config(cfg)


def test_models_show_mllama_reports_format_groups_and_vision_tower(run_cli):
    r = run_cli("models", "show", str(MLLAMA), "-f", "json")
    assert r.code == 0, r.err
    d = r.json()
    assert d["weight_format"]["name"] == "bf16" and d["vision_params"] == 895_028_755
    assert d["vision_weight_bytes"] == 2 * 895_028_755 and d["total_params"] == 9_775_192_080
    groups = {g["group"]: g for g in d["weight_bytes_by_group"]}
    assert groups["cross_attention.qk_norm_gates"]["params"] == 8 * 258
    table = run_cli("models", "show", str(MLLAMA))
    assert table.code == 0 and "Vision tower: 895,028,755 parameters, 1.67 GiB at 16 bits" in table.out


def test_models_show_and_recommend_starcoder2(run_cli):
    path = str(CONFIGS / "starcoder2-15b.json")
    d = run_cli("models", "show", path, "-f", "json").json()
    groups = {g["group"] for g in d["weight_bytes_by_group"]}
    assert {"mlp.up_proj", "mlp.up_bias", "attention.q_bias", "attention.o_bias"} <= groups
    assert "mlp.gate_up_proj" not in groups and d["vision_params"] == 0
    r = run_cli("recommend", "--model", path, "--gpus", "4", "-f", "json")
    assert r.code == 0, r.err
    assert r.json()["recommended"]["tp"] in (1, 2, 4)


def test_recommend_plans_the_mllama_language_model_only(run_cli):
    r = run_cli("recommend", "--model", str(MLLAMA), "--gpus", "2", "-f", "json")
    assert r.code == 0, r.err
    one = next(c for c in r.json()["candidates"] if c["tp"] == 1 and c["pp"] == 1)
    assert one["weight_bytes_per_gpu"] == _language_model_bytes_tp1(load_config_file(MLLAMA))


def test_qwen2_vl_7b_language_model_plus_vision_tower_equals_the_hub_total():
    """Qwen/Qwen2-VL-7B-Instruct: 8,291,375,616 parameters (Hub safetensors metadata, the same public
    get_model_sizes() table as Llama-3.2-11B-Vision-Instruct above); the language model is Qwen2.5-7B's
    7,615,616,512."""
    s = load_config_file(CONFIGS / "qwen2-vl-7b-instruct.json")
    assert total_params(s) == 7_615_616_512
    assert total_params(s) + s.vision_params == 8_291_375_616

"""Gemma 3 (model_type gemma3 with a gemma3_text text_config, or gemma3_text alone) loads from its config.json as
transformers and vLLM read it, and its parameter totals equal the published ones (sources in each test and in
tests/data/configs/SOURCES.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tpplan.errors import ModelSpecError
from tpplan.models.hf_config import load_config_file, spec_from_hf_config
from tpplan.models.params import param_groups, total_params

CONFIGS = Path(__file__).parent / "data" / "configs"


@pytest.mark.parametrize("file,total", [
    # Hub safetensors totals (HfApi model info `safetensors.total`), as listed by public code that reads them:
    # google/gemma-3-1b-it 999,885,952 and google/gemma-3-4b-it 4,300,079,472 (search tool, code corpus, file id
    # 71142266638); unsloth/gemma-3-27b-it 27,432,406,640 (file id 70911651117; the same integer is KerasHub's
    # medgemma_instruct_27b preset, file id 3173084990).
    ("gemma-3-1b-it.json", 999_885_952),
    ("gemma-3-4b-it.json", 4_300_079_472),
    ("gemma-3-27b-it.json", 27_432_406_640),
])
def test_gemma3_language_model_plus_vision_tower_equals_the_hub_total(file, total):
    s = load_config_file(CONFIGS / file)
    assert s.model_type == "gemma3"
    assert total_params(s) + s.vision_params == total


def test_gemma3_vision_tower_matches_kerashub_vision_minus_text_presets():
    """KerasHub's gemma3 presets (file id 3173084990) list gemma3_27b (vision + text) 27,432,062,576 and
    gemma3_27b_text 27,009,002,240: the SigLIP tower and projector hold the difference, 423,060,336. Its text
    model has 262,144 embedding rows where the Hub's has 262,208, which moves both Keras totals by the same rows."""
    s = load_config_file(CONFIGS / "gemma-3-27b-it.json")
    assert s.vision_params == 27_432_062_576 - 27_009_002_240
    text_only = load_config_file(CONFIGS / "gemma-3-1b-it.json")
    assert text_only.vision_params == 0  # gemma3_text checkpoints (1B) have no tower; Keras gemma3_1b: 999,885,952


def test_gemma3_layers_five_sliding_then_one_global():
    """Gemma3TextConfig: layer i is global when (i + 1) % sliding_window_pattern == 0 (default 6)."""
    s = load_config_file(CONFIGS / "gemma-3-27b-it.json")
    assert s.sliding_window == 1024 and len(s.layer_types) == 62
    assert [i for i, k in enumerate(s.layer_types) if k == "full_attention"] == list(range(5, 62, 6))
    assert s.kv_cache_window(0) == 1024 and s.kv_cache_window(5) is None
    small = load_config_file(CONFIGS / "gemma-3-1b-it.json")
    assert small.sliding_window == 512 and small.layer_types.count("full_attention") == 4  # layers 5, 11, 17, 23


def test_gemma3_sliding_window_pattern_and_layer_types_from_the_config():
    cfg = json.loads((CONFIGS / "gemma-3-1b-it.json").read_text())
    s = spec_from_hf_config({**cfg, "sliding_window_pattern": 2})
    assert s.layer_types.count("full_attention") == 13
    kinds = ["full_attention"] * 26
    assert spec_from_hf_config({**cfg, "layer_types": kinds}).layer_types == tuple(kinds)
    with pytest.raises(ModelSpecError, match="sliding_window_pattern"):
        spec_from_hf_config({**cfg, "sliding_window_pattern": 0})


def test_gemma3_context_is_max_position_embeddings_not_scaled_again():
    """The 4B/12B/27B configs carry rope_scaling linear x8 over a max_position_embeddings that is already 131,072;
    vLLM skips the factor for gemma3 (config/model.py: "Gemma3's max_model_len (128K) is already scaled by RoPE
    scaling"), so the usable context is 131,072, not 1,048,576. A llama config with the same rope_scaling is
    multiplied, as vLLM does."""
    s = load_config_file(CONFIGS / "gemma-3-27b-it.json")
    assert s.max_position_embeddings == 131_072 and s.rope_scaling == "linear"
    llama = spec_from_hf_config({"model_type": "llama", "max_position_embeddings": 4096,
                                 "rope_scaling": {"rope_type": "linear", "factor": 8.0}})
    assert llama.max_position_embeddings == 32_768


def test_gemma3_layer_shapes_qk_norm_four_norms_gated_gelu_tied():
    s = load_config_file(CONFIGS / "gemma-3-1b-it.json")
    assert s.gated_mlp and s.qk_norm and s.norms_per_layer == 4 and s.tie_word_embeddings
    assert not (s.attention_bias or s.o_proj_bias or s.mlp_bias)
    groups = {g.name: g.params for g in param_groups(s)}
    assert groups["attention.qk_norm"] == 2 * 256 and groups["norms"] == 4 * 1152 and "lm_head" not in groups


def test_models_show_and_recommend_gemma3(run_cli):
    path = str(CONFIGS / "gemma-3-27b-it.json")
    d = run_cli("models", "show", path, "-f", "json").json()
    assert d["total_params"] == 27_009_346_304 and d["vision_params"] == 423_060_336
    r = run_cli("recommend", "--model", path, "--gpus", "4", "-f", "json")
    assert r.code == 0, r.err
    assert r.json()["recommended"]["tp"] in (1, 2, 4)
    text_only = run_cli("models", "show", str(CONFIGS / "gemma-3-1b-it.json"))
    assert text_only.code == 0 and "999,885,952" in text_only.out

"""Mistral Small 3.1 / 3.2 (model_type mistral3: a mistral text_config and a Pixtral vision tower) plans its
language model and reports the tower, and the two add up to the published total."""

from __future__ import annotations

import json
from pathlib import Path

from tpplan.models.hf_config import load_config_file, spec_from_hf_config
from tpplan.models.params import total_params

MISTRAL3 = Path(__file__).parent / "data" / "configs" / "mistral-small-3.1-24b-instruct-2503.json"


def test_mistral_small_3_1_language_model_plus_pixtral_equals_the_published_total():
    """24,011,361,280: KerasHub's mistral_small_3.1_24b presets ("24 billion parameter, 40-layer ... Mistral3 model
    with a Pixtral vision encoder", search tool file id 61107991196) and the Hub total of
    mistralai/Mistral-Small-3.2-24B-Instruct-2506 (same shapes; file id 70911651117)."""
    s = load_config_file(MISTRAL3)
    assert s.model_type == "mistral" and not s.tie_word_embeddings and s.sliding_window is None
    assert total_params(s) + s.vision_params == 24_011_361_280


def test_mistral3_projector_bias_counts_two_text_width_vectors():
    cfg = json.loads(MISTRAL3.read_text())
    with_bias = spec_from_hf_config({**cfg, "multimodal_projector_bias": True})
    assert with_bias.vision_params - load_config_file(MISTRAL3).vision_params == 2 * 5120


def test_models_show_mistral3(run_cli):
    r = run_cli("models", "show", str(MISTRAL3), "-f", "json")
    assert r.code == 0, r.err
    assert r.json()["vision_params"] + r.json()["total_params"] == 24_011_361_280

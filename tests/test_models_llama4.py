"""Llama 4 Scout and Maverick (model_type llama4) load from their config.json as transformers builds them.

Totals checked against the Hub's safetensors metadata (tests/data/configs/SOURCES.md): Scout 108,641,793,536 and
Maverick 401,583,781,376 parameters, language model plus vision tower and projector.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tpplan.errors import ModelSpecError
from tpplan.models.hf_config import load_config_file, spec_from_hf_config
from tpplan.models.kv import kv_cache_bytes_per_sequence, kv_cache_bytes_per_token
from tpplan.models.params import active_params, param_groups, total_params
from tpplan.models.resolve import resolve_model

CONFIGS = Path(__file__).parent / "data" / "configs"
SCOUT = CONFIGS / "llama-4-scout-17b-16e-instruct.json"
MAVERICK = CONFIGS / "llama-4-maverick-17b-128e-instruct.json"
SCOUT_HUB_TOTAL = 108_641_793_536
"""meta-llama/Llama-4-Scout-17B-16E-Instruct @92f3b15: safetensors.parameters.BF16 (exact)."""
MAVERICK_HUB_TOTAL = 401_583_781_376
"""meta-llama/Llama-4-Maverick-17B-128E-Instruct: parameter_count of Fireworks' llama4-maverick-instruct-basic and
a model explorer quoting the Hub metadata (exact; SOURCES.md)."""


def test_scout_language_model_plus_vision_tower_equals_the_hub_total():
    s = load_config_file(SCOUT)
    assert s.model_type == "llama4" and s.num_experts == 16 and s.num_experts_per_tok == 1
    assert s.num_moe_layers == 48 and s.num_dense_layers == 0 and s.n_shared_experts == 1
    assert total_params(s) + s.vision_params == SCOUT_HUB_TOTAL
    # Meta's "17B active": embedding, attention, one routed and the shared expert per layer, lm_head.
    assert active_params(s) == 17_172_894_720
    assert s.max_position_embeddings == 10_485_760 and s.rope_scaling == "llama3"


def test_maverick_interleaves_dense_and_moe_layers_and_matches_the_hub_total():
    s = load_config_file(MAVERICK)
    assert [layer for layer in range(48) if s.is_moe_layer(layer)] == list(range(1, 48, 2))
    assert s.num_moe_layers == s.num_dense_layers == 24
    assert s.intermediate_size == 16384 and s.moe_intermediate_size == 8192
    groups = {g.name: g for g in param_groups(s)}
    assert groups["mlp.gate_up_proj"].params == 2 * 5120 * 16384 and groups["mlp.gate_up_proj"].scope == "dense_layer"
    assert groups["router"].params == 5120 * 128  # Llama4Router: Linear(hidden, experts, bias=False)
    assert total_params(s) + s.vision_params == MAVERICK_HUB_TOTAL
    assert active_params(s) == 17_184_691_200


@pytest.mark.parametrize("path", [SCOUT, MAVERICK])
def test_every_fourth_layer_is_global_the_others_read_one_chunk(path):
    s = load_config_file(path)
    windows = [s.attention_window(layer) for layer in range(48)]
    assert windows == [None if (layer + 1) % 4 == 0 else 8192 for layer in range(48)]
    assert all(s.kv_cache_window(layer) is None for layer in range(48))


@pytest.mark.parametrize("path", [SCOUT, MAVERICK])
def test_kv_cache_counts_every_layer_over_the_whole_context(path):
    s = load_config_file(path)
    assert kv_cache_bytes_per_token(s) == 48 * 2 * 8 * 128 * 2  # 196,608 B (bf16)
    assert kv_cache_bytes_per_token(s, tp=8) == 48 * 2 * 1 * 128 * 2
    # chunked layers keep the whole context (vLLM's default): 20,000 tokens x 48 layers, not 12 + 36 x 8192
    assert kv_cache_bytes_per_sequence(s, context_len=20_000) == 20_000 * 196_608


def test_text_config_alone_gives_the_same_language_model():
    cfg = json.loads(SCOUT.read_text())["text_config"]
    s = spec_from_hf_config(cfg, origin="text_config.json")
    assert total_params(s) == SCOUT_HUB_TOTAL - 871_932_416 and s.vision_params == 0


def test_null_chunk_size_makes_every_layer_full_attention():
    cfg = json.loads(MAVERICK.read_text())
    cfg["text_config"]["attention_chunk_size"] = None
    s = spec_from_hf_config(cfg)
    assert all(s.attention_window(layer) is None for layer in range(48))


def test_explicit_moe_layers_override_the_interleave_step():
    cfg = json.loads(MAVERICK.read_text())
    cfg["text_config"]["moe_layers"] = [0, 47]
    s = spec_from_hf_config(cfg)
    assert s.num_moe_layers == 2 and s.is_moe_layer(47) and not s.is_moe_layer(1)


@pytest.mark.parametrize("field, value", [("moe_layers", [0, 99]), ("moe_layers", "all"),
                                          ("no_rope_layers", [1, 0]), ("interleave_moe_layer_step", 0),
                                          ("layer_types", ["sliding_attention"] * 48)])
def test_bad_llama4_fields_are_one_error_naming_the_field(field, value):
    cfg = json.loads(SCOUT.read_text())
    cfg["text_config"].pop("moe_layers" if field == "interleave_moe_layer_step" else "_none", None)
    cfg["text_config"][field] = value
    with pytest.raises(ModelSpecError, match=field):
        spec_from_hf_config(cfg, origin="scout.json")


@pytest.mark.parametrize("name, path", [("llama4-scout", SCOUT), ("llama4-maverick", MAVERICK)])
def test_catalogue_entries_are_the_fixture_configs(name, path):
    entry, fixture = resolve_model(name).spec, load_config_file(path)
    assert entry.hf_id.startswith("meta-llama/Llama-4-") and entry.quantization is None  # BF16 checkpoints
    for field in ("num_hidden_layers", "moe_layers", "layer_types", "attention_chunk_size", "intermediate_size",
                  "moe_intermediate_size", "num_experts", "n_shared_experts", "vision_params",
                  "max_position_embeddings", "tie_word_embeddings"):
        assert getattr(entry, field) == getattr(fixture, field), field


def test_step_model_reads_one_chunk_in_36_layers_and_the_context_in_12():
    from tpplan.cost.coefficients import coefficients
    from tpplan.hardware.loader import resolve_profile

    c = coefficients(resolve_model("llama4-maverick").spec, resolve_profile("dgx-h100")[0], tp=8)
    assert (c.full_layers, c.windowed_layers, c.chunked_layers) == (12, (), ((8192, 36),))
    assert (c.num_dense_layers, c.num_moe_layers) == (24, 24)


def test_models_show_json_lists_moe_layers_and_chunked_attention(run_cli):
    d = run_cli("models", "show", str(MAVERICK), "--format", "json").json()
    assert d["moe_layers"] == list(range(1, 48, 2)) and d["num_moe_layers"] == 24 and d["num_dense_layers"] == 24
    assert d["attention_chunk_size"] == 8192
    # NoPE layers 3, 7, ..., 47 attend globally; the other 36 read one chunk (no_rope_layer_interval 4)
    assert d["chunked_attention_layers"] == [i for i in range(48) if (i + 1) % 4 != 0]
    assert d["num_chunked_attention_layers"] == 36


def test_models_show_json_for_a_dense_full_attention_model_has_empty_layer_lists(run_cli):
    d = run_cli("models", "show", "llama-70b", "--format", "json").json()
    assert d["moe_layers"] == [] and d["num_moe_layers"] == 0 and d["num_dense_layers"] == 80
    assert d["attention_chunk_size"] is None and d["chunked_attention_layers"] == []
    assert d["num_chunked_attention_layers"] == 0


def test_models_show_table_states_the_layer_mix(run_cli):
    r = run_cli("models", "show", str(MAVERICK))
    assert r.code == 0
    assert ("Layers: 24 dense + 24 MoE layers (MoE: 1, 3, ..., 47); 36 chunked-attention layers (chunk 8,192 "
            "tokens), 12 full-attention") in r.out
    assert "Layers:" not in run_cli("models", "show", "llama-70b").out


def test_an_empty_moe_layers_list_is_a_dense_model_as_transformers_builds_it():
    """Llama4TextConfig keeps moe_layers = [] (only None takes the interleave default), so every decoder layer is a
    Llama4TextMLP of intermediate_size_mlp (Hub text-only Llama4ForCausalLM configs carry "moe_layers": [])."""
    cfg = json.loads(SCOUT.read_text())
    cfg["text_config"]["moe_layers"] = []
    s = spec_from_hf_config(cfg)
    assert not s.is_moe and s.num_moe_layers == 0 and s.num_dense_layers == 48 and s.n_shared_experts == 0
    assert s.intermediate_size == 16384 and not any(g.component == "experts" for g in param_groups(s))
    # by hand: q/o 2 x 5120 x 5120, k/v 2 x 5120 x 1024, gate/up/down 3 x 5120 x 16384, two norms of 5120 per layer;
    # untied embedding and lm_head of 202,048 x 5120, final norm 5120
    layer = 2 * 5120 * 5120 + 2 * 5120 * 1024 + 3 * 5120 * 16384 + 2 * 5120
    assert total_params(s) == 48 * layer + 2 * 202_048 * 5120 + 5120
    assert s.layer_types.count("chunked_attention") == 36  # the attention pattern does not depend on the experts


def test_a_llama4_config_without_experts_keeps_its_chunked_attention():
    cfg = json.loads(SCOUT.read_text())
    cfg["text_config"]["num_local_experts"] = 0
    s = spec_from_hf_config(cfg)
    assert not s.is_moe and s.attention_chunk_size == 8192 and s.layer_types.count("chunked_attention") == 36


def test_an_empty_no_rope_layers_list_takes_the_default_pattern():
    """transformers: `no_rope_layers if no_rope_layers else default` (an empty list is the default, not an error)."""
    cfg = json.loads(SCOUT.read_text())
    cfg["text_config"].pop("layer_types", None)
    cfg["text_config"]["no_rope_layers"] = []
    s = spec_from_hf_config(cfg)
    assert s.layer_types == tuple("full_attention" if (i + 1) % 4 == 0 else "chunked_attention" for i in range(48))


def test_prefill_counts_causal_pairs_inside_each_chunk_not_a_sliding_window():
    """A chunked layer's query at position p attends to the (p mod 8192) + 1 keys of its own chunk
    (transformers create_chunked_causal_mask; vLLM make_local_attention_virtual_batches): a 3-chunk-and-100-token
    prompt has 3 x 8192^2 / 2 + 100^2 / 2 pairs per chunked layer, not the ~I x 8192 of a sliding window."""
    from tpplan.cost.coefficients import coefficients
    from tpplan.cost.step import causal_pairs
    from tpplan.hardware.loader import resolve_profile

    c = coefficients(resolve_model("llama4-maverick").spec, resolve_profile("dgx-h100")[0], tp=8)
    short = 4096  # within one chunk every layer attends to the whole prompt
    assert causal_pairs(c, short) == 48 * short * short / 2
    long = 3 * 8192 + 100
    assert causal_pairs(c, long) == 12 * long * long / 2 + 36 * (3 * 8192 * 8192 + 100 * 100) / 2

"""Real config.json files load as transformers loads them: config-class defaults, rope_scaling context,
vision-language wrappers, non-gated MLP families. Totals against published counts (cited per case)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tpplan.errors import ModelSpecError
from tpplan.models.hf_config import load_config_file, spec_from_hf_config
from tpplan.models.params import total_params
from tpplan.models.resolve import resolve_model

CONFIGS = Path(__file__).parent / "data" / "configs"
REF = json.loads((CONFIGS / "llama-3.1-70b-awq-int4.json").read_text())


def test_falcon_40b_real_config_takes_falcon_defaults(run_cli):
    """tiiuae/falcon-40b's config.json has no max_position_embeddings: FalconConfig's default is 2048."""
    s = load_config_file(CONFIGS / "falcon-40b.json")
    assert s.max_position_embeddings == 2048 and any("max_position_embeddings" in n for n in s.notes)
    # HF safetensors total 41.84B counts the tied lm_head twice; minus one copy (FACTS.md §1, catalogue entry)
    assert total_params(s) == 41_303_293_952 == total_params(resolve_model("falcon-40b").spec)
    assert run_cli("models", "show", str(CONFIGS / "falcon-40b.json")).code == 0


@pytest.mark.parametrize(("file", "total", "exact"), [
    ("pythia-70m.json", 70_426_624, True),  # Pythia paper (arXiv:2304.01373) table 1
    ("gpt-neox-20b.json", 20_556_201_984, False),  # EleutherAI/gpt-neox-20b model card; ours is 0.008% lower
    ("phi-2.json", 2_780_000_000, False),  # microsoft/phi-2 on the Hub: 2.78B
])
def test_non_gated_families(file, total, exact):
    s = load_config_file(CONFIGS / file)
    assert not s.gated_mlp and s.norm_type == "layer"
    if exact:
        assert total_params(s) == total
    else:
        assert total_params(s) == pytest.approx(total, rel=1e-4 if "neox" in file else 0.002)


def test_pythia_non_embedding_count():
    """Pythia paper table 1: 18,915,328 non-embedding parameters for Pythia-70M."""
    s = load_config_file(CONFIGS / "pythia-70m.json")
    assert total_params(s) - 2 * s.vocab_size * s.hidden_size == 18_915_328


@pytest.mark.parametrize(("file", "lm", "hub_total_b"), [
    ("qwen2-vl-7b-instruct.json", 7_615_616_512, 8.29),  # LM = Qwen2.5-7B's count; Hub: 8.29B
    ("llava-1.5-7b-hf.json", 6_738_939_904, 7.06)])  # LM = Llama-2-7B + 64 extra tokens x 2; Hub: 7.06B
def test_vision_language_configs_plan_the_language_model(file, lm, hub_total_b, run_cli):
    s = load_config_file(CONFIGS / file)
    assert total_params(s) == lm and s.vision_params > 0
    assert round((total_params(s) + s.vision_params) / 1e9, 2) == hub_total_b
    d = run_cli("models", "show", str(CONFIGS / file), "-f", "json").json()
    assert d["vision_params"] == s.vision_params and d["total_params"] == lm


@pytest.mark.parametrize(("rope", "context"), [
    ({"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 8192}, 131072),
    ({"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}, 131072),
    ({"type": "linear", "factor": 2.0}, 262144),
    ({"type": "dynamic", "factor": 2.0}, 262144)])
def test_rope_scaling_decides_usable_context(rope, context):
    s = spec_from_hf_config({**REF, "quantization_config": None, "rope_scaling": rope})
    assert s.max_position_embeddings == context and s.rope_scaling == rope.get("rope_type", rope.get("type"))


@pytest.mark.parametrize("bad", [{"type": "yarn", "factor": float("nan")}, {"type": "linear", "factor": "x"},
                                 {"type": "linear", "factor": 0.5}, "yarn", {"factor": 2}])
def test_bad_rope_scaling_names_the_field(bad):
    with pytest.raises(ModelSpecError, match="rope_scaling"):
        spec_from_hf_config({**REF, "quantization_config": None, "rope_scaling": bad})


def test_llama_defaults_fill_a_sparse_config():
    s = spec_from_hf_config({"model_type": "llama", "vocab_size": 32000})
    assert (s.hidden_size, s.num_hidden_layers, s.intermediate_size, s.max_position_embeddings) == (
        4096, 32, 11008, 2048)
    assert not s.tie_word_embeddings  # LlamaConfig passes tie_word_embeddings=False


def test_a_mixtral_config_without_expert_fields_takes_mixtrals_8_experts_top_2():
    """MixtralConfig defaults num_local_experts 8, num_experts_per_tok 2: such a config is Mixtral-8x7B (46.7B
    parameters, 12.9B active, Mistral AI's figures), not a dense model; the plan says which fields were filled."""
    s = spec_from_hf_config({"model_type": "mixtral", "hidden_size": 4096, "num_attention_heads": 32,
                             "num_hidden_layers": 32, "intermediate_size": 14336, "vocab_size": 32000,
                             "num_key_value_heads": 8})
    assert (s.num_experts, s.num_experts_per_tok) == (8, 2)
    assert round(total_params(s) / 1e9, 1) == 46.7
    assert "num_local_experts missing from the config: transformers' mixtral config default 8" in s.notes


def test_a_gpt_oss_config_without_expert_fields_takes_gpt_oss_configs_128_experts_top_4(tmp_path, run_cli):
    """GptOssConfig (transformers models/gpt_oss/configuration_gpt_oss.py) defaults num_local_experts 128,
    num_experts_per_tok 4 and, without layer_types, slides on even layers: gpt-oss-120b's config.json without those
    fields is gpt-oss-120b (same parameters and layer kinds as the catalogue's), and the notes say what was filled."""
    import json

    catalogue = json.loads((Path(__file__).resolve().parents[1] / "tpplan" / "models" / "catalogue" /
                            "gpt-oss-120b.json").read_text())["config"]
    sparse = {k: v for k, v in catalogue.items() if k not in ("num_local_experts", "num_experts_per_tok",
                                                               "layer_types", "max_position_embeddings")}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(sparse))
    s, ref = load_config_file(path), resolve_model("gpt-oss-120b").spec
    assert (s.num_experts, s.num_experts_per_tok, s.max_position_embeddings) == (128, 4, 131072)
    assert total_params(s) == total_params(ref) and s.layer_types == ref.layer_types
    r = run_cli("models", "show", str(path), "-f", "json")
    assert r.code == 0 and r.json()["notes"] == [
        "max_position_embeddings missing from the config: transformers' gpt_oss config default 131072",
        "num_local_experts missing from the config: transformers' gpt_oss config default 128",
        "num_experts_per_tok missing from the config: transformers' gpt_oss config default 4"]


def test_qwen2_moe_counts_its_gated_shared_expert():
    """Qwen2MoeSparseMoeBlock: 60 routed experts of 1408, top-4, plus a shared expert of 5632 (= 4 x 1408) and its
    shared_expert_gate Linear(hidden, 1) in every layer. Qwen/Qwen1.5-MoE-A2.7B's model card: "14.3B parameters in
    total and 2.7B activated parameters"; without the shared expert the count was 13.49B."""
    from tpplan.models.hf_config import spec_from_hf_config
    from tpplan.models.params import active_params, total_params

    cfg = {"architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe", "hidden_size": 2048,
           "num_hidden_layers": 24, "num_attention_heads": 16, "num_key_value_heads": 16, "intermediate_size": 5632,
           "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632, "num_experts": 60,
           "num_experts_per_tok": 4, "vocab_size": 151936, "max_position_embeddings": 8192,
           "tie_word_embeddings": False, "decoder_sparse_step": 1, "hidden_act": "silu"}
    s = spec_from_hf_config(cfg)
    assert (s.n_shared_experts, s.shared_expert_gate) == (4, True)
    assert round(total_params(s) / 1e8) == 143 and round(active_params(s) / 1e8) == 27

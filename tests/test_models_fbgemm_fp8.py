"""fbgemm_fp8 checkpoints (Meta's Llama-4-Maverick-17B-128E-Instruct-FP8): fp8 weights with one fp32 scale per output
row, `modules_to_not_convert` in bf16, layer by layer.

Layout: vLLM quantization/fbgemm_fp8.py (weight fp8 (N, K), weight_scale fp32 (N, 1)); transformers
integrations/fbgemm_fp8.py (FbgemmFp8Llama4TextExperts: gate_up_proj_scale (E, 1, 2I), down_proj_scale (E, H, 1)).
Which modules Meta quantized: llama-models models/llama4/scripts/quantize.py (fp8_mixed: only the routed experts of
the MoE layers, "skip quantization on first and last layers").
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tpplan.errors import ModelSpecError
from tpplan.models.hf_config import load_config_file, spec_from_hf_config
from tpplan.models.weights import weight_bytes_by_stage, weight_bytes_per_gpu, weight_bytes_total

CONFIGS = Path(__file__).parent / "data" / "configs"
MAVERICK_FP8 = CONFIGS / "llama-4-maverick-17b-128e-instruct-fp8.json"
H, HEADS, KV, D, W, F, E, V = 256, 4, 2, 64, 128, 512, 4, 1024
"""Tiny Llama 4: hidden, heads, KV heads, head_dim, expert width, dense MLP width, experts, vocab (no vocab padding)."""


def _tiny(keep: list[str]) -> dict:
    text = {"model_type": "llama4_text", "hidden_size": H, "num_hidden_layers": 4, "num_attention_heads": HEADS,
            "num_key_value_heads": KV, "head_dim": D, "intermediate_size": W, "intermediate_size_mlp": F,
            "num_local_experts": E, "num_experts_per_tok": 1, "interleave_moe_layer_step": 2, "vocab_size": V,
            "max_position_embeddings": 4096, "attention_chunk_size": 1024, "use_qk_norm": False}
    return {"model_type": "llama4", "architectures": ["Llama4ForConditionalGeneration"], "text_config": text,
            "tie_word_embeddings": False,
            "quantization_config": {"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0,
                                    "modules_to_not_convert": keep}}


META_KEEP = ["language_model.model.layers.0.self_attn", "language_model.model.layers.1.self_attn",
             "language_model.model.layers.2.self_attn", "language_model.model.layers.3.self_attn",
             "language_model.model.layers.0.feed_forward", "language_model.model.layers.2.feed_forward",
             "language_model.model.layers.1.feed_forward.router",
             "language_model.model.layers.1.feed_forward.shared_expert",
             "language_model.model.layers.3.feed_forward", "language_model.lm_head", "vision_model",
             "multi_modal_projector"]
"""Meta's rule on 4 layers: MoE layers 1 and 3; the last (3) is skipped, so only layer 1's routed experts are fp8."""

BF16_PER_LAYER = 2 * (H * HEADS * D + 2 * H * KV * D + HEADS * D * H + 2 * H)  # q, k+v, o, two RMSNorms
DENSE_MLP = 2 * (2 * H * F + F * H)  # gate+up, down
MOE_BF16_PARTS = 2 * (H * E + 2 * H * W + W * H)  # router, shared expert gate+up, down
EXPERTS_BF16 = 2 * (E * 2 * H * W + E * W * H)
EXPERTS_FP8 = (E * 2 * H * W + E * W * H) + 4 * (E * 2 * W + E * H)  # 1 B per weight + one fp32 per output row
ENDS = 2 * (V * H + H + V * H)  # embedding, final norm, lm_head


def test_meta_layout_is_exact_to_the_byte():
    s = spec_from_hf_config(_tiny(META_KEEP), origin="tiny.json")
    assert s.quantization is not None and s.quantization.method == "fbgemm_fp8"
    expected = 4 * BF16_PER_LAYER + 2 * DENSE_MLP + 2 * MOE_BF16_PARTS + EXPERTS_FP8 + EXPERTS_BF16 + ENDS
    assert weight_bytes_total(s) == expected == 5_784_064
    assert weight_bytes_per_gpu(s, tp=1) == expected
    # pp 2: stage 0 = layers 0-1 (fp8 experts) + embedding, stage 1 = layers 2-3 (bf16 experts) + norm + lm_head
    stage0 = 2 * BF16_PER_LAYER + DENSE_MLP + MOE_BF16_PARTS + EXPERTS_FP8 + 2 * V * H
    stage1 = 2 * BF16_PER_LAYER + DENSE_MLP + MOE_BF16_PARTS + EXPERTS_BF16 + 2 * (H + V * H)
    assert weight_bytes_by_stage(s, tp=1, pp=2) == [stage0, stage1]


def test_without_layer_exceptions_every_moe_layer_is_fp8_and_the_rest_bf16():
    keep = ["re:.*self_attn.*", "re:.*feed_forward\\.(router|shared_expert|gate_proj|up_proj|down_proj).*",
            "language_model.lm_head"]
    s = spec_from_hf_config(_tiny(keep), origin="tiny.json")
    assert s.quantization is not None and s.quantization.layer_mean_bytes == ()
    assert weight_bytes_total(s) == 4 * BF16_PER_LAYER + 2 * DENSE_MLP + 2 * MOE_BF16_PARTS + 2 * EXPERTS_FP8 + ENDS


def test_the_mean_bytes_per_parameter_reproduce_the_total():
    """The cost model reads one bytes-per-parameter per group: the mean over its layers (here 1 fp8 + 1 bf16)."""
    s = spec_from_hf_config(_tiny(META_KEEP), origin="tiny.json")
    means = dict(s.quantization.layer_mean_bytes)
    assert set(means) == {"experts.gate_up_proj", "experts.down_proj"}
    assert means["experts.gate_up_proj"] == ((1 + 4 / H) + 2) / 2
    assert means["experts.down_proj"] == ((1 + 4 / W) + 2) / 2


def test_maverick_fp8_fixture_quantizes_23_of_24_moe_layers():
    s = load_config_file(MAVERICK_FP8)
    fmt = s.quantization
    assert fmt is not None and fmt.name == "fbgemm-fp8" and fmt.compute == "fp8" and not fmt.weight_only
    lm_params = 400_711_848_960  # test_models_llama4: the Hub total minus the vision tower
    experts_per_layer = 128 * 3 * 5120 * 8192  # gate, up, down of 128 routed experts
    scales_per_layer = 4 * 128 * (2 * 8192 + 5120)  # one fp32 per output row of gate_up and of down
    expected = 2 * lm_params - 23 * experts_per_layer + 23 * scales_per_layer  # layers 1, 3, ..., 45 in fp8
    assert weight_bytes_total(s) == expected == 431_235_999_744
    # tp 8: attention, dense MLPs, shared experts and the experts split 8 ways, routers and norms replicated
    assert weight_bytes_per_gpu(s, tp=8) == 53_932_894_208


def test_models_show_names_the_format(run_cli):
    d = run_cli("models", "show", str(MAVERICK_FP8), "--format", "json").json()
    assert d["weight_format"]["method"] == "fbgemm_fp8" and d["weight_format"]["from_checkpoint"]
    assert d["weight_bytes_total"] == 431_235_999_744
    groups = {g["group"]: g for g in d["weight_bytes_by_group"]}
    assert groups["attention.q_proj"]["bytes_per_param"] == 2 and groups["router"]["bytes_per_param"] == 2
    assert 1 < groups["experts.gate_up_proj"]["bytes_per_param"] < 1.05


@pytest.mark.parametrize("ub", ["big", -1.0, 0, float("nan"), True])
def test_a_bad_activation_scale_ub_names_the_field(ub):
    cfg = _tiny(META_KEEP)
    cfg["quantization_config"]["activation_scale_ub"] = ub
    with pytest.raises(ModelSpecError, match=r"'quantization_config\.activation_scale_ub' must be a positive number"):
        spec_from_hf_config(cfg, origin="tiny.json")


def test_bad_modules_to_not_convert_names_the_field():
    cfg = _tiny(META_KEEP)
    cfg["quantization_config"]["modules_to_not_convert"] = "lm_head"
    with pytest.raises(ModelSpecError, match=r"'quantization_config\.modules_to_not_convert' must be a list"):
        spec_from_hf_config(cfg, origin="tiny.json")


def test_an_unknown_method_still_lists_fbgemm_fp8_among_the_known(run_cli, tmp_path):
    cfg = _tiny(META_KEEP)
    cfg["quantization_config"] = {"quant_method": "fbgemm_fp16"}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    r = run_cli("models", "show", str(path))
    assert r.code == 1 and "quant_method 'fbgemm_fp16' is not supported" in r.err and "fbgemm_fp8" in r.err

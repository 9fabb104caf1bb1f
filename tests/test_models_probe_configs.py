"""Configs a probe of recent checkpoints misread, read as the engines read them now (sources in each test)."""

from __future__ import annotations

import json
from pathlib import Path

from tpplan.models.hf_config import spec_from_hf_config
from tpplan.models.kv import kv_cache_bytes_per_sequence
from tpplan.models.params import total_params
from tpplan.models.resolve import resolve_model

DATA = Path(__file__).parent / "data"


def test_qwen2_5_vl_window_is_off_and_its_vision_tower_sized():
    """Qwen/Qwen2.5-VL-7B-Instruct's config.json carries sliding_window 32768 with use_sliding_window false: vLLM
    drops the window (get_hf_config_sliding_window), so a 128,000-token sequence holds 57,344 B x 128,000 of KV,
    not 57,344 x 32,768. Its vision tower: 1,505,280 + 32 x 19,702,200 + 44,574,464 = 676,550,144 parameters, the
    published 8,292,166,656 less the language model's 7,615,616,512."""
    spec = spec_from_hf_config(json.loads((DATA / "configs" / "qwen2.5-vl-7b-instruct.json").read_text()))
    assert spec.sliding_window is None
    assert kv_cache_bytes_per_sequence(spec, context_len=128_000) == 57_344 * 128_000
    assert spec.vision_params == 676_550_144
    assert total_params(spec) + spec.vision_params == 8_292_166_656


def test_a_vision_config_tpplan_cannot_size_is_noted():
    cfg = json.loads((DATA / "configs" / "qwen2.5-vl-7b-instruct.json").read_text())
    cfg = {"model_type": "internvl", "vision_config": {"hidden_size": 3200}, "text_config": {
        k: v for k, v in cfg.items() if k not in ("vision_config", "model_type")} | {"model_type": "qwen2"}}
    spec = spec_from_hf_config(cfg)
    assert spec.vision_params == 0
    assert any("vision_config of model_type 'internvl' is not sized" in n for n in spec.notes)


def test_qwen3_moe_dense_layers_from_mlp_only_layers_and_sparse_step():
    """Qwen3MoeDecoderLayer builds a dense MLP where the layer is in mlp_only_layers or (i + 1) % decoder_sparse_step
    != 0. Qwen3-30B-A3B with layers 0-3 dense and step 2: 22 MoE and 26 dense layers, 30,532,122,624 - 26 x
    604,241,920 (a layer's experts and router) + 26 x 37,748,736 (a dense MLP of 6,144) = 15,803,299,840."""
    base = resolve_model("qwen3-30b-a3b").spec
    catalogue = Path(__file__).resolve().parents[1] / "tpplan" / "models" / "catalogue" / "qwen3-30b-a3b.json"
    cfg = {**json.loads(catalogue.read_text())["config"], "mlp_only_layers": [0, 1, 2, 3], "decoder_sparse_step": 2}
    spec = spec_from_hf_config(cfg)
    assert total_params(base) == 30_532_122_624
    assert total_params(spec) == 15_803_299_840


def test_compressed_tensors_mixed_schemes_are_planned_at_the_widest():
    """An llm-compressor mixed-precision recipe (fp8 channel attention, int4 g128 MLP) is planned as fp8 for every
    Linear layer whichever group comes first: an upper bound, stated in the format's description."""
    qc = {"quant_method": "compressed-tensors", "format": "mixed-precision", "ignore": ["lm_head"], "config_groups": {
        "group_0": {"targets": ["re:.*self_attn.(q|k|v|o)_proj$"],
                    "weights": {"num_bits": 8, "type": "float", "strategy": "channel", "symmetric": True},
                    "input_activations": {"num_bits": 8, "type": "float", "strategy": "token", "dynamic": True}},
        "group_1": {"targets": ["re:.*mlp.(gate|up|down)_proj$"],
                    "weights": {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 128,
                                "symmetric": True}, "input_activations": None}}}
    from tpplan.models.quant_config import parse_quantization_config

    fmt = parse_quantization_config(qc, origin="config.json")
    rev = parse_quantization_config({**qc, "config_groups": dict(reversed(qc["config_groups"].items()))},
                                    origin="config.json")
    assert fmt.weight_bits == rev.weight_bits == 8 and fmt.name == rev.name == "ct-fp8-channel"
    assert "config_groups mix 2 weight schemes (group_0, group_1): planned as group_0's for every layer, an upper " \
           "bound" in fmt.description


def test_mxfp4_quantizes_the_routed_experts_only():
    """vLLM's Mxfp4Config leaves every Linear layer unquantized, so a gpt-oss config without
    modules_to_not_convert holds the same bytes as openai's (attention, router, embeddings in bf16)."""
    from tpplan.models.weights import weight_bytes_total

    catalogue = Path(__file__).resolve().parents[1] / "tpplan" / "models" / "catalogue" / "gpt-oss-120b.json"
    cfg = json.loads(catalogue.read_text())["config"]
    bare = {**cfg, "quantization_config": {k: v for k, v in cfg["quantization_config"].items()
                                           if k != "modules_to_not_convert"}}
    assert weight_bytes_total(spec_from_hf_config(bare)) == weight_bytes_total(spec_from_hf_config(cfg)) \
        == 65_248_815_744


def test_models_show_says_which_tp_degrees_need_expert_parallelism_for_block_fp8(run_cli, tmp_path):
    """Qwen3-30B-A3B-FP8 (weight_block_size 128 x 128): an expert's 768-wide MLP split over TP4 is 192 per GPU, not
    whole 128-blocks, so vLLM loads it at TP4 and above only with expert parallelism (whole experts per GPU), as
    MiniMax-M2 is deployed at TP8; `models show` lists those degrees with that note, and `--tp 4` shows."""
    catalogue = Path(__file__).resolve().parents[1] / "tpplan" / "models" / "catalogue" / "qwen3-30b-a3b.json"
    cfg = {**json.loads(catalogue.read_text())["config"], "quantization_config": {
        "quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    doc = run_cli("models", "show", str(path), "-f", "json").json()
    assert doc["valid_tp_degrees"][:4] == [1, 2, 4, 8]
    assert any(n.startswith("TP 4, 8") and "only with expert parallelism" in n for n in doc["notes"])
    assert run_cli("models", "show", str(path), "--tp", "4").code == 0
    assert run_cli("models", "show", "minimax-m2", "--tp", "8").code == 0


def test_a_checkpoint_with_an_fp8_kv_cache_is_noted_when_the_plan_keeps_16_bits(run_cli, tmp_path):
    """nvidia's ModelOpt NVFP4 checkpoints carry kv_cache_scheme {num_bits 8, type float} (older ones
    kv_cache_quant_algo "FP8"); vLLM's --kv-cache-dtype auto picks FP8 from it in recent releases: the plan says so
    when it keeps a 16-bit cache, and not when --kv-cache-dtype fp8 plans the FP8 one."""
    catalogue = Path(__file__).resolve().parents[1] / "tpplan" / "models" / "catalogue" / "llama-3_3-70b.json"
    base = json.loads(catalogue.read_text())["config"]
    for qc in ({"quant_method": "modelopt", "quant_algo": "NVFP4", "ignore": ["lm_head"],
                "kv_cache_scheme": {"dynamic": False, "num_bits": 8, "type": "float"}},
               {"quant_method": "modelopt", "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8",
                                                             "exclude_modules": ["lm_head"]}}):
        path = tmp_path / "config.json"
        path.write_text(json.dumps({**base, "quantization_config": qc}))
        doc = run_cli("recommend", "-m", str(path), "--hardware", "dgx-b200", "-f", "json").json()
        assert "--kv-cache-dtype fp8 plans the FP8 one" in doc["assumptions"]["kv_cache"]
        fp8 = run_cli("recommend", "-m", str(path), "--hardware", "dgx-b200", "--kv-cache-dtype", "fp8",
                      "-f", "json").json()
        assert "kv_cache" not in fp8["assumptions"]


def test_gptq_quantized_lm_head_and_dynamic_overrides():
    """GPTQ `lm_head: true` (vLLM quantizes the head): Llama-3.1-8B's 128,256 x 4,096 head at int4 g128 is
    525,336,576 x (0.5 + 2.5 / 128) = 272,928,768 bytes, not 1,050,673,152 at 16 bits. GPTQModel `dynamic`: a "-:"
    rule leaves its modules 16-bit exactly; a "+:" rule with other bits is planned as an upper bound, and says so."""
    from tpplan.models.quant_config import parse_quantization_config
    from tpplan.models.weights import weight_bytes_total

    catalogue = Path(__file__).resolve().parents[1] / "tpplan" / "models" / "catalogue" / "llama-3_1-8b.json"
    base = json.loads(catalogue.read_text())["config"]
    qc = {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False, "sym": True}
    plain = weight_bytes_total(spec_from_hf_config({**base, "quantization_config": qc}))
    head = weight_bytes_total(spec_from_hf_config({**base, "quantization_config": {**qc, "lm_head": True}}))
    assert plain - head == 1_050_673_152 - 272_928_768
    skip = parse_quantization_config({**qc, "dynamic": {"-:.*mlp.*": {}}}, origin="config.json")
    assert skip.weight_bits == 4 and "re:.*mlp.*" in skip.keep_16bit
    wider = parse_quantization_config({**qc, "dynamic": {"+:.*self_attn.*": {"bits": 8, "group_size": 32}}},
                                      origin="config.json")
    assert (wider.weight_bits, wider.elems_per_scale) == (8, 32) and "an upper bound" in wider.description


def test_compressed_tensors_activation_only_groups_and_the_widest_by_bytes():
    """A group that quantizes activations only (weights null) is skipped, not refused; of two int4 schemes the one
    with more scale bytes (group 32 over group 128) is the wider, so the upper bound holds."""
    from tpplan.models.quant_config import parse_quantization_config

    qc = {"quant_method": "compressed-tensors", "config_groups": {
        "g0": {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "int", "strategy": "group",
                                                  "group_size": 128}},
        "g1": {"targets": ["re:.*self_attn.*"], "weights": {"num_bits": 4, "type": "int", "strategy": "group",
                                                            "group_size": 32}},
        "g2": {"targets": ["re:.*k_proj$"], "weights": None, "input_activations": {"num_bits": 8, "type": "float"}}}}
    fmt = parse_quantization_config(qc, origin="config.json")
    assert fmt.elems_per_scale == 32 and "planned as g1's" in fmt.description


def test_qwen_moe_with_every_layer_dense_is_a_dense_model():
    """decoder_sparse_step above the layer count: Qwen3MoeDecoderLayer builds a dense MLP of intermediate_size (6,144)
    in every layer, so Qwen3-30B-A3B's shapes make a 3,340,449,792-parameter dense model."""
    catalogue = Path(__file__).resolve().parents[1] / "tpplan" / "models" / "catalogue" / "qwen3-30b-a3b.json"
    spec = spec_from_hf_config({**json.loads(catalogue.read_text())["config"], "decoder_sparse_step": 100})
    assert not spec.is_moe and total_params(spec) == 3_340_449_792


def test_needs_ep_degrees_stop_at_the_expert_count_and_fp4_scales_count_in_the_widest(run_cli, tmp_path):
    """A block-FP8 Mixtral (8 experts of 14,336): EP cannot go past 8 experts, so TP 32 (448 per GPU, 3.5 blocks)
    is not valid even with EP; NVFP4 (group 16, 8-bit scales: 0.5625 B a weight) is wider than int4 g128 (0.516)."""
    from tpplan.models.quant_config import parse_quantization_config

    catalogue = Path(__file__).resolve().parents[1] / "tpplan" / "models" / "catalogue" / "mixtral-8x7b-v0_1.json"
    cfg = {**json.loads(catalogue.read_text())["config"], "quantization_config": {
        "quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    doc = run_cli("models", "show", str(path), "-f", "json").json()
    assert 32 not in doc["valid_tp_degrees"] and "32" in doc["invalid_tp_reasons"]
    qc = {"quant_method": "compressed-tensors", "config_groups": {
        "int4": {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "int", "strategy": "group",
                                                    "group_size": 128}},
        "fp4": {"targets": ["re:.*mlp.*"], "weights": {"num_bits": 4, "type": "float", "strategy": "tensor_group",
                                                       "group_size": 16}}}}
    assert "planned as fp4's" in parse_quantization_config(qc, origin="config.json").description

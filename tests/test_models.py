"""Parameter counts, weight bytes, KV bytes and valid TP degrees, pinned to published numbers."""

from __future__ import annotations

import pytest

from tpplan.models.engines import kv_heads_per_gpu, valid_tp_degrees
from tpplan.models.kv import kv_cache_bytes_per_sequence, kv_cache_bytes_per_token
from tpplan.models.params import active_params, active_params_excluding_embedding, mtp_params, total_params
from tpplan.models.resolve import catalogue, resolve_model
from tpplan.models.weights import weight_bytes_per_gpu, weight_bytes_total

# Exact totals: shared/reference/models/param_counts.csv (HF Hub safetensors totals, keras-hub presets).
EXACT_TOTALS = {
    "Llama-2-7B": 6_738_415_616, "Llama-2-13B": 13_015_864_320, "Llama-2-70B": 68_976_648_192,
    "Llama-3-8B": 8_030_261_248, "Llama-3-70B": 70_553_706_496, "Llama-3.1-8B": 8_030_261_248,
    "Llama-3.1-70B": 70_553_706_496, "Llama-3.1-405B": 405_853_388_800, "Llama-3.3-70B": 70_553_706_496,
    "Mistral-7B-v0.1": 7_241_732_096, "Mixtral-8x7B-v0.1": 46_702_792_704, "Qwen2.5-7B": 7_615_616_512,
    "Qwen2.5-72B": 72_706_203_648,
    "Phi-3-mini-4k": 3_821_079_552,  # keras-hub phi3_presets.py
    "Falcon-40B": 41_303_293_952,  # HF 41.84B minus the duplicated tied lm_head (FACTS.md §1)
}
# Derived from the config and checked against the publisher's rounded figure in the catalogue entry:
# Mixtral-8x22B 141B (mistral.ai), DeepSeek-V3 671B (arXiv:2412.19437), gpt-oss 116.83B / 20.91B
# (arXiv:2508.10925 table 1), Gemma-2 9.24B / 27.2B, Qwen2.5 14.8B / 32.8B (HF Hub), Phi-3-medium 14B.
DERIVED_TOTALS = {
    "Mixtral-8x22B-v0.1": 140_620_634_112, "DeepSeek-V3": 671_026_419_200, "gpt-oss-120b": 116_829_156_672,
    "gpt-oss-20b": 20_914_757_184, "Gemma-2-9B": 9_241_705_984, "Gemma-2-27B": 27_227_128_320,
    "Qwen2.5-14B": 14_770_033_664, "Qwen2.5-32B": 32_763_876_352, "Phi-3-medium-4k": 13_960_238_080,
    "Falcon-180B": 178_557_088_768,
    "GPT-J-6B": 6_050_882_784,  # modeling_gptj.py shapes; see test_gptj_matches_the_model_card
}
# KV bytes per token, bf16, whole model = 2 x layers x kv_heads x head_dim x 2 (MLA: layers x 576 x 2).
KV_BYTES = {
    "Llama-3.1-70B": 327_680, "Llama-3-8B": 131_072, "Llama-2-7B": 524_288, "Llama-3.1-405B": 516_096,
    "Mistral-7B-v0.1": 131_072, "Mixtral-8x7B-v0.1": 131_072, "Qwen2.5-7B": 57_344, "Qwen2.5-72B": 327_680,
    "DeepSeek-V3": 70_272, "Gemma-2-27B": 376_832, "gpt-oss-120b": 73_728, "Falcon-180B": 163_840,
    "Phi-3-medium-4k": 204_800, "GPT-J-6B": 458_752,
}


def _spec(name):
    return resolve_model(name).spec


def test_catalogue_has_every_required_model():
    names = {e.spec.name for e in catalogue()}
    assert len(names) >= 25 and set(EXACT_TOTALS) | set(DERIVED_TOTALS) <= names


@pytest.mark.parametrize("name,total", sorted(EXACT_TOTALS.items()))
def test_exact_published_totals(name, total):
    assert total_params(_spec(name)) == total


@pytest.mark.parametrize("name,total", sorted(DERIVED_TOTALS.items()))
def test_derived_totals(name, total):
    assert total_params(_spec(name)) == total


def test_every_catalogue_total_matches_its_published_figure():
    for e in catalogue():
        total = total_params(e.spec)
        if e.spec.name == "Falcon-180B":  # the published 179.5B counts the tied lm_head twice
            total += e.spec.vocab_size * e.spec.hidden_size
        total += e.spec.vision_params  # Hub totals of vision-language checkpoints (Llama 4) count the vision tower
        if e.published_total_includes_mtp:  # GLM-4.5's Hub totals count its MTP layer, which a serve does not load
            total += mtp_params(e.spec)
        if e.published_is_exact:
            assert total == e.published_total_params, e.spec.name
        else:  # a rounded figure: within half a unit of its last digit (e.g. 141B -> +-0.5B)
            digits = len(str(e.published_total_params).rstrip("0"))
            unit = 10 ** (len(str(e.published_total_params)) - digits)
            assert abs(total - e.published_total_params) <= unit / 2, (e.spec.name, total)


def test_gptj_matches_the_model_card():
    """GPT-J-6B, summed from transformers' modeling_gptj.py shapes: embedding 50400 x 4096; per layer ln_1 (2 x 4096),
    q/k/v/out_proj 4 x 4096^2 (no bias), fc_in 4096 x 16384 + 16384, fc_out 16384 x 4096 + 4096; ln_f; lm_head
    50400 x 4096 + 50400. The model card's n_parameters, 6,053,381,344, is 0.04% above that sum."""
    layer = 2 * 4096 + 4 * 4096**2 + (4096 * 16384 + 16384) + (16384 * 4096 + 4096)
    by_shapes = 50400 * 4096 + 28 * layer + 2 * 4096 + 50400 * 4096 + 50400
    spec = _spec("gpt-j")
    assert total_params(spec) == by_shapes
    assert abs(total_params(spec) / 6_053_381_344 - 1) < 0.0005
    assert spec.parallel_attn and not spec.gated_mlp and not spec.tie_word_embeddings
    assert valid_tp_degrees(spec, engine="trtllm") == [1, 2, 4, 8, 16]


def test_active_params_conventions():
    assert active_params(_spec("mixtral")) == 12_879_925_248  # mistral.ai: 12.9B per token
    assert round(active_params(_spec("deepseek-v3")) / 1e9) == 38  # report says 37B ("activated", rounded down)
    assert round(active_params_excluding_embedding(_spec("gpt-oss-120b")) / 1e7) == 513  # OpenAI 5.13B
    assert round(active_params_excluding_embedding(_spec("gpt-oss-20b")) / 1e7) == 361  # OpenAI 3.61B
    assert active_params(_spec("llama-70b")) == total_params(_spec("llama-70b"))


@pytest.mark.parametrize("name,kv", sorted(KV_BYTES.items()))
def test_kv_bytes_per_token(name, kv):
    assert kv_cache_bytes_per_token(_spec(name)) == kv


def test_gqa_replication_when_tp_exceeds_kv_heads():
    s = _spec("llama-70b")
    assert kv_cache_bytes_per_token(s, tp=8) == 40_960  # FACTS.md §2: 40 KiB/token/GPU at TP8 ...
    assert kv_cache_bytes_per_token(s, tp=16) == 40_960  # ... and still 40 KiB at TP16
    assert kv_heads_per_gpu(8, tp=16) == 1
    assert kv_heads_per_gpu(10, tp=4, engine="trtllm") == 3  # ceil(10 / 4)
    assert kv_heads_per_gpu(10, tp=4, engine="vllm") == 2


def test_mla_cache_is_replicated_on_every_rank():
    s = _spec("deepseek-v3")
    assert {kv_cache_bytes_per_token(s, tp=t) for t in (1, 2, 8, 16)} == {70_272}
    assert kv_cache_bytes_per_token(s, kv_dtype="fp8") == 35_136


def test_sliding_window_caps():
    m = _spec("mistral-7b")  # 4096-token window on every layer
    assert kv_cache_bytes_per_sequence(m, context_len=32768) == 4096 * 131_072
    assert kv_cache_bytes_per_sequence(m, context_len=1000) == 1000 * 131_072
    g = _spec("gemma-2-27b")  # alternating: 23 sliding (4096) + 23 global layers
    per_layer = 376_832 // 46
    assert kv_cache_bytes_per_sequence(g, context_len=8192) == (23 * 4096 + 23 * 8192) * per_layer
    o = _spec("gpt-oss-120b")  # 128-token window on alternating layers
    assert kv_cache_bytes_per_sequence(o, context_len=131072) == (18 * 128 + 18 * 131072) * (73_728 // 36)


def test_valid_degrees():
    assert valid_tp_degrees(_spec("phi-3-medium")) == [1, 2]  # vllm issue 5951
    assert 8 not in valid_tp_degrees(_spec("qwen-7b"))  # vllm issue 11797
    assert valid_tp_degrees(_spec("llama-70b"))[:4] == [1, 2, 4, 8]
    assert valid_tp_degrees(_spec("falcon-180b")) == [1, 2, 4, 8]  # 232 heads
    assert 3 not in valid_tp_degrees(_spec("llama-70b"), engine="megatron")
    # TensorRT-LLM shards ceil(kv / t) heads, so t=4 works with 10 KV heads; replication needs t % kv == 0
    assert valid_tp_degrees(_spec("phi-3-medium"), engine="trtllm")[:4] == [1, 2, 4, 5]


def test_weight_bytes_at_tp8_match_published_planner():
    s = _spec("llama-70b")
    # 16.43 GiB at TP8: aiconfigurator reports 16.4 GiB (FACTS.md §9), the 2-matrix peers 12.9 GiB.
    assert round(weight_bytes_per_gpu(s, tp=8) / 2**30, 2) == 16.43
    assert weight_bytes_total(s) == 2 * 70_553_706_496


def test_quantized_weights_keep_embeddings_16bit():
    s = _spec("llama-70b")
    fp8 = weight_bytes_total(s, dtype="fp8")
    sixteen_bit = 2 * s.vocab_size * s.hidden_size + (80 * 2 + 1) * s.hidden_size  # embed, lm_head, 161 norms
    assert fp8 == (70_553_706_496 - sixteen_bit) * 1 + sixteen_bit * 2
    assert weight_bytes_total(s, dtype="int4") < fp8


def test_pipeline_stages_split_layers_and_place_embeddings():
    s = _spec("llama-405b")
    one = weight_bytes_per_gpu(s, tp=8, pp=1)
    two = weight_bytes_per_gpu(s, tp=8, pp=2)
    assert one / 2 < two < one / 2 + s.vocab_size * s.hidden_size * 2

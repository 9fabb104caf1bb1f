"""Checkpoint weight formats: quantization_config parsing, bytes per parameter group, compute dtype per GPU, and
totals against published checkpoint sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tpplan.cost.coefficients import coefficients
from tpplan.errors import ModelSpecError
from tpplan.hardware.loader import resolve_profile
from tpplan.models.dtypes import compute_dtype, weight_format
from tpplan.models.hf_config import load_config_file, spec_from_hf_config
from tpplan.models.params import param_groups
from tpplan.models.quant_config import parse_quantization_config
from tpplan.models.resolve import resolve_model
from tpplan.models.weights import weight_bytes_per_gpu, weight_bytes_total
from tpplan.units import bytes_to_gib

CONFIGS = Path(__file__).parent / "data" / "configs"
TINY = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 2, "num_attention_heads": 32,
        "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 1000, "max_position_embeddings": 4096}


def _fmt(qc: dict):
    return parse_quantization_config(qc, origin="config.json")


# --- published checkpoint sizes ------------------------------------------------------------------------------

@pytest.mark.parametrize(("model", "published_gib"), [("gpt-oss-120b", 60.8), ("gpt-oss-20b", 12.8)])
def test_gpt_oss_mxfp4_checkpoint_size(model, published_gib):
    """OpenAI gpt-oss model card (arXiv:2508.10925) table 1, 'Checkpoint Size': 60.8 GiB and 12.8 GiB (MXFP4 MoE
    weights, everything else bf16). Published to 0.1 GiB, so ours must round to it."""
    s = resolve_model(model).spec
    assert s.quantization is not None and s.quantization.name == "mxfp4"
    assert abs(bytes_to_gib(weight_bytes_total(s)) - published_gib) <= 0.05


def test_deepseek_fp8_per_gpu_matches_engine_load_log():
    """vLLM (HabanaAI/vllm-fork issue #809) loading DeepSeek-R1 (DeepSeek-V3's architecture and FP8 block
    checkpoint) at TP8: 'Pre-loading model weights on hpu:0 took 79.41 GiB of device memory'."""
    s = resolve_model("deepseek-v3").spec
    assert s.quantization.name == "fp8-block128x128"
    assert bytes_to_gib(weight_bytes_per_gpu(s, tp=8)) == pytest.approx(79.41, rel=0.005)


# --- layouts ---------------------------------------------------------------------------------------------------

def test_awq_llama_70b_matches_tensor_shapes():
    """Every AWQ linear of Llama-3.1-70B, summed from the tensor shapes AutoAWQ GEMM writes (qweight int32
    (K/8, N), scales fp16 (K/128, N), qzeros int32 (K/128, N/8)), plus bf16 embeddings/norms/lm_head."""
    s = load_config_file(CONFIGS / "llama-3.1-70b-awq-int4.json")
    assert s.quantization.name == "awq-int4-g128" and s.quantization.weight_only
    h, i, kv, v, layers = 8192, 28672, 1024, 128256, 80
    linears = [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]  # q k v o gate up down as (K, N)
    per_layer = sum(k // 8 * n * 4 + k // 128 * n * 2 + k // 128 * (n // 8) * 4 for k, n in linears)
    unquantized = 2 * v * h + (2 * layers + 1) * h  # embedding, lm_head, norms
    assert weight_bytes_total(s) == layers * per_layer + 2 * unquantized
    assert bytes_to_gib(weight_bytes_total(s)) < 40  # vs 131 GiB planned at bf16 before


def test_gptq_group_and_act_order():
    f = _fmt({"quant_method": "gptq", "bits": 4, "group_size": 32, "desc_act": True, "sym": True})
    assert f.name == "gptq-int4-g32-actorder"
    assert f.linear_bytes_per_param(4096) == pytest.approx(0.5 + (2 + 0.5) / 32)
    per_channel = _fmt({"quant_method": "gptq", "bits": 8, "group_size": -1})
    assert per_channel.linear_bytes_per_param(4096) == pytest.approx(1 + (2 + 1) / 4096)


def test_compressed_tensors_schemes():
    def ct(weights, acts, ignore=("lm_head",)):
        return _fmt({"quant_method": "compressed-tensors", "format": "x", "ignore": list(ignore),
                     "config_groups": {"group_0": {"targets": ["Linear"], "weights": weights,
                                                   "input_activations": acts}}})
    fp8 = ct({"num_bits": 8, "type": "float", "strategy": "channel", "symmetric": True},
             {"num_bits": 8, "type": "float", "strategy": "token", "dynamic": True})
    assert (fp8.compute, fp8.linear_bytes_per_param(4096)) == ("fp8", 1 + 4 / 4096)
    w4a16 = ct({"num_bits": 4, "type": "int", "strategy": "group", "group_size": 128, "symmetric": True}, None)
    assert (w4a16.compute, w4a16.linear_bytes_per_param(4096)) == ("bf16", 0.5 + 2 / 128)
    asym = ct({"num_bits": 4, "type": "int", "strategy": "group", "group_size": 64, "symmetric": False}, None)
    assert asym.linear_bytes_per_param(4096) == 0.5 + 2.5 / 64
    nvfp4 = ct({"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16},
               {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16, "dynamic": "local"})
    assert (nvfp4.name, nvfp4.compute, nvfp4.linear_bytes_per_param(4096)) == ("ct-nvfp4", "fp4", 0.5 + 1 / 16)
    int8 = ct({"num_bits": 8, "type": "int", "strategy": "channel"}, {"num_bits": 8, "type": "int", "dynamic": True})
    assert int8.compute == "int8"


def test_modelopt_and_bitsandbytes():
    assert _fmt({"quant_method": "modelopt", "quant_algo": "FP8"}).compute == "fp8"
    nv = _fmt({"quant_method": "modelopt", "quantization": {"quant_algo": "NVFP4", "group_size": 16,
                                                             "exclude_modules": ["lm_head"]}})
    assert nv.linear_bytes_per_param(8192) == 0.5 + 1 / 16
    nf4 = _fmt({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                "bnb_4bit_use_double_quant": True})
    assert nf4.name == "bnb-nf4-dq" and nf4.linear_bytes_per_param(8192) == pytest.approx(0.5 + (1 + 4 / 256) / 64)
    assert _fmt({"quant_method": "bitsandbytes", "load_in_8bit": True}).linear_bytes_per_param(8192) == 1 + 4 / 8192


def test_gpt_oss_keeps_attention_router_and_head_in_bf16():
    s = resolve_model("gpt-oss-120b").spec
    fmt = weight_format(s)
    by_name = {g.name: fmt.bytes_per_param(g) for g in param_groups(s)}
    assert by_name["attention.q_proj"] == by_name["router"] == by_name["lm_head"] == 2
    assert by_name["experts.gate_up_proj"] == 0.5 + 1 / 32


def test_matmuls_kept_in_16_bits_run_at_the_16_bit_rate():
    """gpt-oss computes its MXFP4 experts at the fp4 rate but its bf16 attention projections and lm_head at the
    bf16 rate (B200: fp4 peak > bf16 peak); an fp8 Llama keeps fp8 attention and a bf16 lm_head; a weight-only
    format runs everything at 16 bits already."""
    p = resolve_profile("dgx-b200")[0]
    oss = coefficients(resolve_model("gpt-oss-120b").spec, p, tp=8, engine="trtllm", dtype="auto")
    bf16 = coefficients(resolve_model("llama-70b").spec, p, tp=8, dtype="bf16").rates
    assert oss.rates.matmul_flops_per_s > bf16.matmul_flops_per_s
    assert oss.attn_rates == oss.head_rates == bf16
    fp8 = coefficients(resolve_model("llama-70b").spec, p, tp=8, dtype="fp8")
    assert fp8.attn_rates is None and fp8.head_rates == bf16
    int4 = coefficients(resolve_model("llama-70b").spec, p, tp=8, dtype="int4")
    assert int4.attn_rates is None and int4.head_rates is None


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ModelSpecError, match=r"quant_method 'hqq' is not supported; tpplan reads awq, gptq"):
        spec_from_hf_config({**TINY, "quantization_config": {"quant_method": "hqq"}})
    with pytest.raises(ModelSpecError, match=r"quantization_config.group_size"):
        spec_from_hf_config({**TINY, "quantization_config": {"quant_method": "awq", "group_size": "x"}})


def test_ignore_regex_and_layer_names():
    f = _fmt({"quant_method": "compressed-tensors", "ignore": ["re:.*mlp.gate$", "lm_head"],
              "config_groups": {"g": {"targets": ["Linear"], "weights": {"num_bits": 8, "type": "float"}}}})
    assert f.keeps_16bit("router") and not f.keeps_16bit("mlp.gate_up_proj")


# --- overrides, compute and the cost model ---------------------------------------------------------------------

def test_dtype_override_and_fp4_alias():
    s = resolve_model("gpt-oss-120b").spec
    assert weight_format(s, "bf16").name == "bf16" and weight_bytes_total(s, dtype="bf16") > 3 * weight_bytes_total(s)
    assert weight_format(resolve_model("llama-8b").spec, "fp4").name == "nvfp4"


@pytest.mark.parametrize(("profile", "dtype", "compute", "weight_only_note"), [
    ("dgx-h100", "fp8", "fp8", False), ("dgx-a100-80g", "fp8", "bf16", True), ("a10g", "fp8", "bf16", True),
    ("dgx-b200", "nvfp4", "fp4", False), ("dgx-h100", "nvfp4", "bf16", True), ("dgx-h100", "int4", "bf16", False)])
def test_compute_follows_the_gpu(profile, dtype, compute, weight_only_note):
    p = resolve_profile(profile)[0]
    key, note = compute_dtype(weight_format(resolve_model("llama-8b").spec, dtype), p.gpu.peak_flops_per_s)
    assert key == compute and (note is not None) == weight_only_note


def test_int4_decode_streams_fewer_bytes():
    s, p = resolve_model("llama-70b").spec, resolve_profile("dgx-h100")[0]
    bf16, int4 = (coefficients(s, p, tp=4, dtype=d) for d in ("bf16", "int4"))
    assert int4.mlp_bytes / bf16.mlp_bytes == pytest.approx((0.5 + 2.5 / 128) / 2)


def test_recommend_deepseek_fits_8_h200_and_says_weight_only_on_a100(run_cli):
    d = run_cli("recommend", "-m", "deepseek-v3", "--hardware", "hgx-h200", "--gpus", "8", "-f", "json").json()
    best = d["recommended"]  # one replica over all 8 GPUs (TP x PP, or TP x DP-attention with EP)
    assert best["tp"] * best["dp_attention"] * best["pp"] == 8 and best["replicas"] == 1
    out = run_cli("recommend", "-m", "llama-8b", "--hardware", "dgx-a100-80g", "--gpus", "1", "--dtype", "fp8")
    text = " ".join(out.out.split())  # the terminal view wraps long assumption lines
    assert "no fp8 tensor cores" in text and "weight-only" in text


def test_models_show_states_format_and_groups(run_cli):
    d = run_cli("models", "show", "gpt-oss-120b", "-f", "json").json()
    assert d["dtype"] == "mxfp4" and d["weight_format"]["from_checkpoint"]
    groups = {g["group"]: g["bytes_per_param"] for g in d["weight_bytes_by_group"]}
    assert groups["experts.down_proj"] == 0.53125 and groups["embed_tokens"] == 2
    assert "MLA" in run_cli("models", "show", "deepseek-v3").out

"""`tpplan models ...`: JSON contract, bad input, exact error lines."""

from __future__ import annotations

import json

import pytest

LLAMA_CFG = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
             "max_position_embeddings": 8192, "tie_word_embeddings": False}


def test_show_json_contract(run_cli):
    r = run_cli("models", "show", "llama-70b", "--format", "json")
    assert r.code == 0
    d = r.json()
    assert {"name", "total_params", "active_params", "kv_cache_bytes_per_token", "valid_tp_degrees"} <= set(d)
    assert d["name"] == "Llama-3.1-70B" and d["resolved_from"] == "llama-70b"
    assert d["total_params"] == 70_553_706_496 and d["kv_cache_bytes_per_token"] == 327_680
    assert d["valid_tp_degrees"] == [1, 2, 4, 8, 16, 32, 64]


def test_show_table_states_the_alias(run_cli):
    r = run_cli("models", "show", "llama-70b")
    assert r.code == 0 and "llama-70b → Llama-3.1-70B" in r.out


def test_show_fp8_kv_halves_kv(run_cli):
    d = run_cli("models", "show", "llama-70b", "--kv-cache-dtype", "fp8", "-f", "json").json()
    assert d["kv_cache_bytes_per_token"] == 163_840


def test_list_has_all_models(run_cli):
    rows = run_cli("models", "list", "--format", "json").json()
    assert len(rows) >= 25 and {"name", "total_params", "num_hidden_layers"} <= set(rows[0])
    assert run_cli("models", "list", "--format", "csv").out.splitlines()[0].startswith("name,")


def test_invalid_degree_error_line(run_cli):
    r = run_cli("models", "show", "qwen-7b", "--tp", "8")
    assert r.code == 1
    assert r.err == ("Error: Qwen2.5-7B: Total number of attention heads (28) must be divisible by tensor parallel "
                     "size (8). Degrees that work with vllm: 1, 2, 4\n")


def test_phi3_medium_kv_rule(run_cli):
    r = run_cli("models", "show", "phi-3-medium", "--tp", "4")
    assert r.code == 1 and "Total number of KV heads (10)" in r.err and "work with vllm: 1, 2\n" in r.err


def test_unknown_model_lists_closest(run_cli):
    r = run_cli("models", "show", "lama-70b")
    assert r.code == 1
    assert r.err == ("Error: unknown model 'lama-70b'; closest: Llama-3.1-70B, Llama-3-70B, Llama-2-70B; or pass a "
                     "path to a Hugging Face config.json\n")


def test_unknown_engine_and_dtype(run_cli):
    # a usage error (exit 2, nothing on stdout), caught while parsing: before any model is resolved
    r = run_cli("models", "show", "llama-8b", "--engine", "tgi")
    assert (r.code, r.out) == (2, "")
    assert "Invalid value for '--engine': 'tgi' is not one of 'vllm', 'sglang', 'trtllm', 'megatron'." in r.err
    r = run_cli("models", "show", "llama-8b", "--dtype", "fp6")
    assert (r.code, r.out) == (2, "")
    assert "Invalid value for '--dtype': choose one of: auto, bf16, fp16, fp32, fp8, int8, int4, nvfp4, mxfp4" in r.err


def test_config_json_path_and_directory(run_cli, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_CFG))
    for target in (tmp_path, tmp_path / "config.json"):
        d = run_cli("models", "show", str(target), "-f", "json").json()
        assert d["total_params"] == 8_030_261_248


SUPPORTED = ("cohere, cohere2, deepseek_v2, deepseek_v3, ernie4_5, ernie4_5_moe, falcon, gemma, gemma2, gemma3, "
             "glm4_moe, gpt_bigcode, gpt_neox, gpt_oss, gptj, granite, granitemoe, internlm2, kimi_k2, llama, llama4, "
             "llava, minimax_m2, mistral, mistral3, mixtral, mllama, olmo2, olmoe, phi, phi3, phimoe, qwen2, "
             "qwen2_moe, qwen2_vl, qwen3, qwen3_moe, qwen3_next, starcoder2")


@pytest.mark.parametrize("mutate,expected", [
    # granite: no transformers default table in tpplan, so a missing size field is an error (llama would take
    # LlamaConfig's defaults, as transformers does)
    (lambda c: c.pop("hidden_size") and c.update(model_type="granite"),
     "required field 'hidden_size' is missing; add it to the config (Hugging Face "
     "spelling) or use a catalogue model (`tpplan models list`)"),
    (lambda c: c.pop("vocab_size") and c.update(model_type="granite"),
     "required field 'vocab_size' is missing; add it to the config (Hugging Face "
     "spelling) or use a catalogue model (`tpplan models list`)"),
    (lambda c: c.update(num_attention_heads="32"),
     "field 'num_attention_heads' must be a positive integer of at most 100,000,000, got '32'"),
    (lambda c: c.update(model_type="mamba", hidden_act="gelu"),
     f"model_type 'mamba' is not supported and its shapes cannot be derived (hidden_act 'gelu' is not a gated SiLU "
     f"MLP); supported model types: {SUPPORTED}"),
    (lambda c: c.update(num_key_value_heads=5), "num_attention_heads (32) must be a positive multiple of "
                                                "num_key_value_heads (5)"),
    (lambda c: c.update(hidden_size=4001), "field 'head_dim' is missing and hidden_size (4001) is not divisible by "
                                           "num_attention_heads (32); add head_dim"),
    (lambda c: c.pop("model_type"), f"required field 'model_type' is missing; supported model types: {SUPPORTED}"),
    # an unknown type is named before any of its fields is asked for
    (lambda c: (c.clear(), c.update(model_type="foo")),
     f"unsupported model_type 'foo'; supported model types: {SUPPORTED} (a type not listed is read as a Llama-style "
     f"decoder only when its hidden_act is 'silu')"),
    # an unlisted type whose config describes layers a Llama-style reading would not see is refused, not planned
    (lambda c: c.update(model_type="ernie5_moe", moe_num_experts=64, moe_k=6),
     f"model_type 'ernie5_moe' is not supported: its config describes routed experts (moe_k, moe_num_experts) that "
     f"tpplan cannot plan for this type; supported model types: {SUPPORTED}"),
    (lambda c: (c.pop("num_attention_heads"), c.update(model_type="falcon_mamba", state_size=16, conv_kernel=4)),
     f"model_type 'falcon_mamba' is not supported: its config describes state-space or linear-attention layers "
     f"(conv_kernel, state_size) that tpplan cannot plan for this type; supported model types: {SUPPORTED}"),
    (lambda c: c.update(intermediate_size=0),
     "field 'intermediate_size' must be positive (the width of the 32 dense MLP layers), got 0"),
    # MoE: transformers' MixtralSparseMoeBlock / DeepseekV3MoE cannot route over 0 experts; top-k <= experts
    (lambda c: c.update(model_type="mixtral", num_local_experts=0, num_experts_per_tok=2),
     "field 'num_local_experts' must be positive for model_type 'mixtral' (every MoE layer is a MixtralSparseMoeBlock "
     "that routes each token to its experts), got 0"),
    (lambda c: c.update(model_type="deepseek_v3", n_routed_experts=0, num_experts_per_tok=8),
     "field 'n_routed_experts' must be positive for model_type 'deepseek_v3' (every MoE layer is a DeepseekV3MoE "
     "that routes each token to its experts), got 0"),
    (lambda c: c.update(model_type="mixtral", num_local_experts=8, num_experts_per_tok=9),
     "field 'num_experts_per_tok' (9) exceeds num_local_experts (8): each token is routed to top-k of the experts; "
     "expected 1 to 8"),
    (lambda c: c.update(model_type="mixtral", num_local_experts=8, num_experts_per_tok=0),
     "field 'num_experts_per_tok' must be a positive integer of at most 100,000,000, got 0"),
])
def test_bad_config_errors_name_file_and_field(run_cli, tmp_path, mutate, expected):
    cfg = dict(LLAMA_CFG)
    mutate(cfg)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    r = run_cli("models", "show", str(path))
    assert r.code == 1
    assert r.err == f"Error: {path}: {expected}\n"


def test_malformed_json(run_cli, tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    r = run_cli("models", "show", str(path))
    assert r.code == 1 and r.err.startswith(f"Error: {path}: not valid JSON (Expecting property name enclosed in "
                                            f"double quotes: line 1 column 2 (char 1)); download the model's")


def test_missing_directory(run_cli, tmp_path):
    r = run_cli("models", "show", str(tmp_path))
    assert r.code == 1 and r.err == f"Error: {tmp_path}: no config.json found; pass a Hugging Face config.json " \
                                    f"or a directory holding one\n"


def test_unknown_llama_like_model_type_is_accepted_with_a_note(tmp_path):
    from tpplan.models.hf_config import spec_from_hf_config

    s = spec_from_hf_config({**LLAMA_CFG, "model_type": "newllama", "hidden_act": "silu"})
    assert s.notes and "Llama-style" in s.notes[0]


def test_show_stays_off_the_heavy_imports():
    """`models show` answers in ~0.15 s cold (benchmarks/) because it imports neither torch, pandas, numpy nor
    pydantic; this pins the cause, not a time."""
    import subprocess
    import sys

    code = ("import sys, io, contextlib\nfrom tpplan.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    main(['models', 'show', 'llama-70b'])\n"
            "print(sorted(m for m in ('torch', 'pandas', 'numpy', 'pydantic') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_show_sliding_window_cap(run_cli):
    d = run_cli("models", "show", "mistral-7b", "--context-len", "32768", "-f", "json").json()
    assert d["kv_cache_bytes_per_sequence"] == 4096 * 131_072  # every layer capped at the 4096-token window
    full = run_cli("models", "show", "llama-8b", "--context-len", "32768", "-f", "json").json()
    assert full["kv_cache_bytes_per_sequence"] == 32768 * 131_072
    assert "capped at 4096 tokens" in run_cli("models", "show", "mistral-7b").out


def test_zero_experts_in_a_qwen_moe_config_is_a_dense_model_as_in_transformers():
    """Qwen2MoeDecoderLayer builds its sparse block only when `config.num_experts > 0`; tpplan reads 0 the same way."""
    from tpplan.models.hf_config import spec_from_hf_config

    s = spec_from_hf_config({**LLAMA_CFG, "model_type": "qwen2_moe", "num_experts": 0, "num_experts_per_tok": 4})
    assert not s.is_moe and s.num_experts == 0


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_models_show_on_an_ascii_only_stdout(fmt):
    """A terminal or pipe that encodes ASCII only gets ASCII (the alias arrow as ->), never a UnicodeEncodeError."""
    import os
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "tpplan", "models", "show", "llama-70b", "-f", fmt], capture_output=True,
                       env={**os.environ, "PYTHONIOENCODING": "ascii"}, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    assert b"(llama-70b -> Llama-3.1-70B)" in r.stdout and r.stdout.isascii()


@pytest.mark.parametrize("extra", [{"num_experts": 1}, {"moe_type": "none"}, {"add_cross_attention": False},
                                   {"num_local_experts": 0}])
def test_an_unlisted_llama_like_config_with_empty_structure_fields_is_read(run_cli, tmp_path, extra):
    """Fields that name no experts, no cross-attention (one "expert" is a dense MLP) do not refuse a Llama-like type."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA_CFG | {"model_type": "llama_clone", "hidden_act": "silu"} | extra))
    r = run_cli("models", "show", str(path), "-f", "json")
    assert r.code == 0, r.err
    assert r.json()["total_params"] == 8_030_261_248

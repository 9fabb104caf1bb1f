"""`recommend --emit`: what the printed commands carry beyond the layout flags: TensorRT-LLM's LLM-API options file
(attention DP, FP8 KV cache), the note when --dtype plans weights the checkpoint does not have, and vLLM's sequence
parallelism."""

from __future__ import annotations

DS = ("recommend", "-m", "deepseek-v3", "--hardware", "hgx-h200")
DEP8 = ("--tp", "1", "--dp-attention", "8", "--ep", "8")


def _command(run_cli, *args: str) -> str:
    r = run_cli(*args, "-f", "json")
    assert r.code == 0, r.err
    return r.json()["serve_command"]


def test_trtllm_attention_dp_and_fp8_kv_go_in_one_options_file(run_cli):
    """NVIDIA/TensorRT-LLM examples/serve/deepseek_r1_reasoning_parser.sh writes `enable_attention_dp: true` and
    `kv_cache_config:` / `dtype: fp8` in the YAML it gives trtllm-serve; the file's kv_cache_config replaces the
    flag's, so the planned fraction is repeated in it."""
    cmd = _command(run_cli, *DS, "--gpus", "8", *DEP8, "--kv-cache-dtype", "fp8", "--emit", "trtllm")
    lines = cmd.splitlines()
    assert lines[:6] == ["cat > extra_llm_api_options.yaml <<'EOF'", "enable_attention_dp: true", "kv_cache_config:",
                         "  dtype: fp8", "  free_gpu_memory_fraction: 0.90", "EOF"]
    assert lines[6] == "trtllm-serve deepseek-ai/DeepSeek-V3 \\"
    assert cmd.count("--extra_llm_api_options extra_llm_api_options.yaml") == 1
    assert "attention_dp.yaml" not in cmd and "echo " not in cmd


def test_trtllm_options_file_only_when_needed(run_cli):
    # attention DP with a 16-bit KV cache: the attention-DP key alone
    cmd = _command(run_cli, *DS, "--gpus", "8", *DEP8, "--emit", "trtllm")
    assert cmd.splitlines()[:3] == ["cat > extra_llm_api_options.yaml <<'EOF'", "enable_attention_dp: true", "EOF"]
    assert "kv_cache_config" not in cmd
    # a dense model with an FP8 KV cache: the file holds the KV dtype and every replica's server reads it
    cmd = _command(run_cli, "recommend", "-m", "llama-70b", "--gpus", "8", "--tp", "4", "--kv-cache-dtype", "fp8",
                   "--emit", "trtllm")
    assert cmd.splitlines()[:5] == ["cat > extra_llm_api_options.yaml <<'EOF'", "kv_cache_config:", "  dtype: fp8",
                                    "  free_gpu_memory_fraction: 0.90", "EOF"]
    assert cmd.count("--extra_llm_api_options extra_llm_api_options.yaml") == 2  # two TP4 replicas
    assert "enable_attention_dp" not in cmd
    # neither: no file, no flag
    cmd = _command(run_cli, "recommend", "-m", "llama-70b", "--gpus", "8", "--tp", "4", "--emit", "trtllm")
    assert "extra_llm_api_options" not in cmd and "EOF" not in cmd


def test_trtllm_options_file_over_nodes_says_every_node(run_cli):
    cmd = _command(run_cli, *DS, "--nodes", "2", "--tp", "1", "--dp-attention", "16", "--ep", "16",
                   "--kv-cache-dtype", "fp8", "--emit", "trtllm")
    lines = cmd.splitlines()
    assert lines[0] == ("# write extra_llm_api_options.yaml on every node, in the directory mpirun starts in (each "
                        "node's ranks read it there)")
    assert lines[1:7] == ["cat > extra_llm_api_options.yaml <<'EOF'", "enable_attention_dp: true", "kv_cache_config:",
                          "  dtype: fp8", "  free_gpu_memory_fraction: 0.90", "EOF"]
    assert lines[7].startswith("mpirun -np 16 ") and "--extra_llm_api_options extra_llm_api_options.yaml" in cmd

"""`recommend --emit`: what the printed commands carry beyond the layout flags: TensorRT-LLM's LLM-API options file
(attention DP, FP8 KV cache), the note when --dtype plans weights the checkpoint does not have, and vLLM's sequence
parallelism."""

from __future__ import annotations

import json

import pytest

VLLM_SP = '{"pass_config": {"enable_sp": true}, "splitting_ops": [], "cudagraph_mode": "FULL"}'
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


LLAMA = ("recommend", "-m", "llama-70b", "--gpus", "8")


def test_dtype_override_of_a_16bit_checkpoint_says_what_to_serve(run_cli):
    """meta-llama/Llama-3.1-70B is a 16-bit checkpoint (no quantization_config): planned with --dtype fp8, vLLM's and
    SGLang's commands quantize it online (--quantization fp8, which they print); with --dtype int4, and on
    TensorRT-LLM (no online flag), the plan's weights need a checkpoint of that format."""
    for engine in ("vllm", "sglang"):
        cmd = _command(run_cli, *LLAMA, "--dtype", "fp8", "--emit", engine)
        assert cmd.splitlines()[0] == ("# the plan assumed fp8 weights, but meta-llama/Llama-3.1-70B is a 16-bit "
                                       "checkpoint: --quantization fp8 (below) quantizes it to fp8 as it loads "
                                       "(online), or serve an fp8 checkpoint of it")
        assert "--quantization fp8" in cmd
    cmd = _command(run_cli, *LLAMA, "--dtype", "fp8", "--emit", "trtllm")
    assert cmd.splitlines()[0] == ("# the plan assumed fp8 weights, but meta-llama/Llama-3.1-70B is a 16-bit "
                                   "checkpoint: serve an fp8 checkpoint of it instead (replace "
                                   "meta-llama/Llama-3.1-70B below)")
    cmd = _command(run_cli, *LLAMA, "--dtype", "int4", "--emit", "vllm")
    assert cmd.splitlines()[0] == ("# the plan assumed int4 weights, but meta-llama/Llama-3.1-70B is a 16-bit "
                                   "checkpoint: serve an int4 checkpoint of it instead (replace "
                                   "meta-llama/Llama-3.1-70B below)")
    assert cmd.splitlines()[1].startswith("vllm serve meta-llama/Llama-3.1-70B")


def test_no_note_when_the_checkpoint_is_what_was_planned(run_cli):
    for args in ((), ("--dtype", "bf16"), ("--dtype", "fp16"), ("--dtype", "auto")):  # the checkpoint, or a cast
        assert "# the plan assumed" not in _command(run_cli, *LLAMA, *args, "--emit", "vllm")
    assert "# the plan assumed" not in _command(run_cli, *DS, "--gpus", "8", "--emit", "sglang")  # its own FP8


def test_16bit_plan_of_a_quantized_checkpoint_needs_a_16bit_checkpoint(run_cli):
    """DeepSeek-V3's checkpoint is FP8 (128 x 128 blocks); planned in bf16 it needs a bf16 checkpoint. Over two nodes
    the note comes first, before the per-node commands."""
    cmd = _command(run_cli, *DS, "--nodes", "2", "--dtype", "bf16", "--emit", "sglang")
    lines = cmd.splitlines()
    assert lines[0] == ("# the plan assumed bf16 weights, but deepseek-ai/DeepSeek-V3 is an fp8-block128x128 "
                        "checkpoint: serve a bf16 checkpoint of it instead (replace deepseek-ai/DeepSeek-V3 below)")
    assert lines[1].startswith("# on node 0")


def test_vllm_sequence_parallelism_is_a_compilation_config(run_cli):
    """vLLM runs the TP all-reduce as reduce-scatter + all-gather with PassConfig.enable_sp (vllm/config/
    compilation.py; enable_sequence_parallelism before vllm-project/vllm PR #29646), on a full graph only (PR #38373
    turns it off under piecewise compilation; PR #26681's runs pass splitting_ops [] and cudagraph_mode FULL). SGLang
    and TensorRT-LLM have no such flag: their commands say so in a comment."""
    cmd = _command(run_cli, *LLAMA, "--tp", "4", "--sequence-parallel", "--emit", "vllm")
    assert cmd.splitlines()[-1] == ("    --compilation-config '" + VLLM_SP + "'")
    assert "--compilation-config" not in _command(run_cli, *LLAMA, "--tp", "4", "--emit", "vllm")
    # TP1 has no all-reduce to split
    one = _command(run_cli, "recommend", "-m", "llama-8b", "--gpus", "8", "--tp", "1", "--sequence-parallel",
                   "--emit", "vllm")
    assert "--compilation-config" not in one
    for engine in ("sglang", "trtllm"):
        other = _command(run_cli, *LLAMA, "--tp", "4", "--sequence-parallel", "--engine", engine, "--emit", engine)
        assert other.startswith(f"# the plan priced --sequence-parallel (reduce-scatter + all-gather per layer); "
                                f"{engine} serves with plain all-reduces")


def test_vllm_moe_replicas_over_nodes_are_separate_servers(run_cli):
    """An MoE layout's --data-parallel-size is its DP-attention group (one replica, one EP group): replicas spread
    over nodes are separate servers on each node's own GPUs, never one data-parallel deployment that would join
    them into an EP group across InfiniBand and leave GPUs idle."""
    d = run_cli("recommend", "-m", "mixtral", "--hardware", "dgx-h100-2node", "--tp", "1", "--dp-attention", "4",
                "--emit", "vllm", "-f", "json").json()
    chosen = d["chosen"]
    assert (chosen["tp"], chosen["dp_attention"], chosen["replicas"], chosen["gpus_used"]) == (1, 4, 4, 16)
    cmd = d["serve_command"]
    assert cmd.count("vllm serve ") == 4 and cmd.count("--data-parallel-size 4") == 4
    assert "--data-parallel-size-local" not in cmd and "--headless" not in cmd
    for node in ("# on node 0", "# on node 1"):
        block = cmd.split(node)[1].split("# on node")[0]
        assert "CUDA_VISIBLE_DEVICES=0,1,2,3 " in block and "CUDA_VISIBLE_DEVICES=4,5,6,7 " in block


def test_remote_code_checkpoints_are_served_with_trust_remote_code(run_cli):
    """Kimi K2's model_type kimi_k2 has no transformers class: its config and tokenizer load from the repo's code,
    which every engine runs only when told to (Moonshot's deploy guidance passes the flag to each); a checkpoint
    transformers knows (DeepSeek-V3) gets no such flag."""
    kimi = ("recommend", "-m", "kimi-k2", "--hardware", "hgx-h200", "--gpus", "8")
    assert "--trust-remote-code" in _command(run_cli, *kimi, "--emit", "vllm")
    assert "--trust-remote-code" in _command(run_cli, *kimi, "--emit", "sglang")
    assert "--trust_remote_code" in _command(run_cli, *kimi, "--engine", "trtllm", "--emit", "trtllm")
    assert "trust" not in _command(run_cli, *DS, "--gpus", "8", "--emit", "vllm")


def test_no_online_fp8_flag_on_a_checkpoint_quantized_another_way(run_cli):
    """vLLM refuses a --quantization other than the checkpoint's own: on gpt-oss (MXFP4) a plan at --dtype fp8 says
    to serve an fp8 checkpoint instead and does not print --quantization fp8; on a 16-bit checkpoint the flag is
    vLLM's online FP8."""
    cmd = _command(run_cli, "recommend", "-m", "gpt-oss-120b", "--gpus", "8", "--dtype", "fp8", "--emit", "vllm")
    assert cmd.startswith("# the plan assumed fp8 weights, but openai/gpt-oss-120b is an mxfp4 checkpoint")
    assert "--quantization" not in cmd
    assert "--quantization fp8" in _command(run_cli, "recommend", "-m", "llama-70b", "--gpus", "8", "--dtype", "fp8",
                                            "--emit", "vllm")


def test_replicas_that_do_not_divide_evenly_over_nodes(run_cli):
    """12 GPUs of two 8-GPU nodes as 3 replicas of 4: two on the first node, one on the second, each replica inside a
    node (vLLM: each node's own --data-parallel-size-local and start rank; SGLang: each node's server with its own
    --dp-size)."""
    args = ("recommend", "-m", "llama-70b", "--hardware", "dgx-h100", "--nodes", "2", "--gpus", "12", "--tp", "2",
            "--pp", "2")
    vllm = _command(run_cli, *args, "--emit", "vllm")
    node0, node1 = vllm.split("# on node 1")
    assert "--data-parallel-size 3" in node0 and "--data-parallel-size-local 2" in node0
    assert "--data-parallel-size-local 1" in node1 and "--headless --data-parallel-start-rank 2" in node1
    sglang = _command(run_cli, *args, "--engine", "sglang", "--emit", "sglang")
    node0, node1 = sglang.split("# on node 1")  # SGLang runs a node's replicas as one server with --dp-size
    assert "--dp-size 2" in node0 and "--dp-size" not in node1 and node1.count("sglang.launch_server") == 1


@pytest.mark.parametrize(("engine", "head"), [("vllm", "vllm serve "), ("sglang", "--model-path "),
                                              ("trtllm", "trtllm-serve ")])
def test_a_config_given_by_path_is_served_from_its_directory(run_cli, tmp_path, monkeypatch, engine, head):
    """`--model some/dir/config.json` plans the checkpoint in some/dir: the command loads that directory (absolute,
    so it runs from anywhere), not the bare directory name an engine would look up on the Hub."""
    from test_models_cli import LLAMA_CFG

    ckpt = tmp_path / "my llama"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps(LLAMA_CFG))
    monkeypatch.chdir(tmp_path)
    r = run_cli("recommend", "--model", "my llama/config.json", "--gpus", "1", "--emit", engine)
    assert r.code == 0, r.err
    assert f"{head}'{ckpt}'" in r.out


@pytest.mark.parametrize(("torch_dtype", "planned", "flag", "origin"), [
    ("float16", "fp16", "--dtype float16", "(fp16 checkpoint)"),
    ("bfloat16", "bf16", "--dtype bfloat16", "(bf16 checkpoint)"),
    ("float32", "bf16", "--dtype bfloat16", "(float32 checkpoint, served in bf16 as vLLM's --dtype auto does)"),
    (None, "bf16", "--dtype bfloat16", "(16-bit checkpoint)")])
def test_auto_dtype_follows_the_checkpoint_dtype(run_cli, tmp_path, torch_dtype, planned, flag, origin):
    """`--dtype auto` plans what vLLM's auto serves: a float16 checkpoint in fp16, bfloat16 in bf16, float32 cast to
    bf16 (vLLM >= 0.10.1); the summary says which, and the serve command carries the same dtype."""
    from test_models_cli import LLAMA_CFG

    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA_CFG | ({"torch_dtype": torch_dtype} if torch_dtype else {})))
    shown = run_cli("models", "show", str(path))
    assert f"Weight format {planned} {origin}" in shown.out
    r = run_cli("recommend", "--model", str(path), "--gpus", "1", "--emit", "vllm", "-f", "json")
    assert r.code == 0, r.err
    assert r.json()["inputs"]["dtype"] == planned and flag in r.json()["serve_command"]


def test_trtllm_nvfp4_needs_blackwell_but_mxfp4_experts_run_on_hopper(run_cli):
    """TensorRT-LLM's support matrix lists FP4 on Blackwell only; gpt-oss's MXFP4 experts run on Hopper (W4A16)."""
    r = run_cli("recommend", "--model", "llama-70b", "--gpus", "8", "--engine", "trtllm", "--dtype", "nvfp4")
    assert r.code == 1 and r.err.startswith("Error: NVFP4 weights with --engine trtllm: TensorRT-LLM computes NVFP4 on "
                                            "Blackwell only, and profile 'dgx-h100' lists no gpu.peak_flops.fp4")
    assert run_cli("recommend", "--model", "llama-70b", "--gpus", "8", "--engine", "trtllm", "--dtype", "nvfp4",
                   "--hardware", "dgx-b200").code == 0
    assert run_cli("recommend", "--model", "gpt-oss-120b", "--gpus", "8", "--engine", "trtllm").code == 0
    assert run_cli("recommend", "--model", "llama-70b", "--gpus", "8", "--engine", "vllm", "--dtype", "nvfp4").code == 0


def test_trtllm_refuses_an_nvfp4_checkpoint_before_blackwell_as_it_refuses_the_flag(run_cli, tmp_path):
    """The check reads the resolved format: a ModelOpt NVFP4 checkpoint under --dtype auto is refused like --dtype
    nvfp4, not planned weight-only."""
    from test_models_cli import LLAMA_CFG

    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA_CFG | {"quantization_config": {
        "quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16, "kv_cache_quant_algo": None,
        "exclude_modules": ["lm_head"]}}))
    assert run_cli("models", "show", str(path)).code == 0
    r = run_cli("recommend", "--model", str(path), "--gpus", "1", "--engine", "trtllm")
    assert r.code == 1 and "NVFP4 weights with --engine trtllm: TensorRT-LLM computes NVFP4 on Blackwell only" in r.err


def test_vllm_replicas_of_an_moe_model_are_separate_servers(run_cli):
    """vLLM's --data-parallel-size on an MoE model is attention DP with one MoE group over every rank
    (docs.vllm.ai data_parallel_deployment: "expert layers form a tensor parallel group of size DP x TP"), not
    independent replicas: TP2 x 4 replicas of Mixtral is four servers, each on its own GPUs and port."""
    r = run_cli("recommend", "-m", "mixtral-8x7b", "--hardware", "dgx-h100", "--tp", "2", "--dp-attention", "1",
                "--emit", "vllm", "-f", "json")
    assert r.code == 0, r.err
    doc = r.json()
    assert (doc["chosen"]["tp"], doc["chosen"]["replicas"], doc["chosen"]["dp_attention"]) == (2, 4, 1)
    cmd = doc["serve_command"]
    assert "--data-parallel-size" not in cmd
    assert [line.split(" vllm serve")[0] for line in cmd.splitlines() if " vllm serve " in line] == [
        "CUDA_VISIBLE_DEVICES=0,1", "CUDA_VISIBLE_DEVICES=2,3", "CUDA_VISIBLE_DEVICES=4,5", "CUDA_VISIBLE_DEVICES=6,7"]
    assert cmd.count("--tensor-parallel-size 2") == 4 and "--port 8003 &" in cmd
    # a dense model's replicas stay one server's data parallelism
    dense = run_cli("recommend", "-m", "llama-8b", "--hardware", "dgx-h100", "--tp", "2", "--emit", "vllm", "-f",
                    "json").json()["serve_command"]
    assert "--data-parallel-size 4" in dense and dense.count("vllm serve") == 1


def test_answer_line_flags_of_vllm_moe_replicas_name_no_data_parallel_size():
    from tpplan.planner.layouts import layout_flags

    assert layout_flags("vllm", tp=2, pp=1, replicas=4, moe_model=True) == ["--tensor-parallel-size 2"]
    assert layout_flags("vllm", tp=2, pp=1, replicas=4) == ["--tensor-parallel-size 2", "--data-parallel-size 4"]
    assert layout_flags("sglang", tp=2, pp=1, replicas=4, moe_model=True) == ["--tp-size 2", "--dp-size 4"]


def test_sglang_pipeline_stages_divide_the_nodes_it_is_launched_on(run_cli):
    """SGLang gives each node pp_size // nnodes stages (`_calculate_rank_ranges`): TP4 x PP3 runs on 3 nodes of one
    stage each, never on 2 nodes (where the third stage would never start)."""
    from tpplan.planner.emit import sglang_nodes
    from tpplan.planner.plan import recommend

    cmd = _command(run_cli, "recommend", "-m", "llama-405b", "--hardware", "dgx-h100-4node", "--gpus", "12",
                   "--tp", "4", "--pp", "3", "--emit", "sglang")
    assert cmd.count("--nnodes 3") == 3 and "--node-rank 2" in cmd
    c = recommend("llama-405b", hardware="dgx-h100-4node", gpus=12, tp=4, pp=3).chosen
    assert sglang_nodes(c, 8) == 3
    r = run_cli("recommend", "-m", "llama-405b", "--hardware", "dgx-h100-2node", "--gpus", "12", "--tp", "4", "--pp",
                "3", "--emit", "sglang")
    assert r.code == 1 and r.err.strip() == (
        "Error: sglang lays TP4 x PP3 over 3 nodes of 8 GPUs and profile 'dgx-h100-2node' has 2; choose a --pp that "
        "divides the node count, or a profile with more nodes")


def test_trtllm_hosts_hold_whole_pipeline_stages(run_cli, tmp_path):
    """TensorRT-LLM numbers ranks pp_rank x tp + tp_rank: mpirun's slots per host hold whole TP groups."""
    from pathlib import Path

    import yaml

    import hardware_profiles

    doc = yaml.safe_load((Path(hardware_profiles.__file__).parent / "dgx-h100-2node.yaml").read_text())
    doc["name"] = "six-per-node"
    doc["node"]["gpus_per_node"] = doc["node"]["nvlink_domain_size"] = 6
    six = tmp_path / "six.yaml"
    six.write_text(yaml.safe_dump(doc))
    cmd = _command(run_cli, "recommend", "-m", "llama-70b", "--hardware", str(six), "--tp", "4", "--pp", "2",
                   "--emit", "trtllm")
    assert "mpirun -np 8 -H node0:4,node1:4 " in cmd and "srun --nodes 2 --ntasks-per-node 4" in cmd
    cmd = _command(run_cli, "recommend", "-m", "llama-405b", "--hardware", "dgx-h100-2node", "--gpus", "12", "--tp",
                   "4", "--pp", "3", "--emit", "trtllm")
    assert "mpirun -np 12 -H node0:8,node1:4 " in cmd and "srun" not in cmd  # uneven: no --ntasks-per-node


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_replicas_that_span_nodes_each_get_their_own_nodes(run_cli, engine):
    """TP4 x PP4 x 2 replicas on four 8-GPU nodes: replica 0 on nodes 0-1, replica 1 on nodes 2-3, each with its
    own head; no "add --replicas 1" round trip."""
    cmd = _command(run_cli, "recommend", "-m", "llama-405b", "--hardware", "dgx-h100-4node", "--gpus", "32",
                   "--tp", "4", "--pp", "4", "--replicas", "2", "--emit", engine)
    heads = ("", "") if engine == "trtllm" else (", $HEAD_IP_0 = node 0's address", ", $HEAD_IP_1 = node 2's address")
    assert f"# replica 0: nodes 0-1{heads[0]}\n" in cmd and f"# replica 1: nodes 2-3{heads[1]}\n" in cmd
    assert cmd.rstrip().endswith("# 2 replicas: put a load balancer in front of their head nodes")
    if engine == "trtllm":
        assert "-H node0:8,node1:8 " in cmd and "-H node2:8,node3:8 " in cmd
    else:
        assert "$HEAD_IP_1" in cmd.split("# replica 1")[1] and "$HEAD_IP_0" not in cmd.split("# replica 1")[1]


def test_an_nvl72_rack_is_launched_one_tray_of_four_gpus_at_a_time(run_cli):
    """gb200-nvl72 is one NVLink domain (one node to the planner) over 18 hosts of 4 GPUs (gpus_per_host): every
    command runs on a host's 4 GPUs, never on device 4 or above."""
    import re

    for engine in ("vllm", "sglang", "trtllm"):
        cmd = _command(run_cli, "recommend", "-m", "llama-405b", "--hardware", "gb200-nvl72", "--gpus", "64",
                       "--tp", "2", "--pp", "4", "--replicas", "8", "--emit", engine)
        assert "# replica 7: nodes 14-15" in cmd, engine
        devices = [int(d) for m in re.findall(r"CUDA_VISIBLE_DEVICES=([\d,]+)", cmd) for d in m.split(",")]
        assert max(devices, default=0) <= 3, engine
    assert "mpirun -np 8 -H node14:4,node15:4 " in cmd


def test_a_domain_over_several_hosts_is_written_as_one_node_with_its_hosts(run_cli, tmp_path):
    from pathlib import Path

    import yaml

    import hardware_profiles

    doc = yaml.safe_load((Path(hardware_profiles.__file__).parent / "gb200-nvl72.yaml").read_text())
    doc["node"] |= {"gpus_per_node": 4, "nvlink_domain_size": 72}
    del doc["node"]["gpus_per_host"]
    bad = tmp_path / "trays.yaml"
    bad.write_text(yaml.safe_dump(doc))
    r = run_cli("profiles", "validate", str(bad))
    assert r.code == 1 and ("node.nvlink_domain_size: larger than gpus_per_node (got 72); expected at most 4 (an "
                            "NVLink domain over several hosts is one node: gpus_per_node 72 with gpus_per_host 4, as "
                            "gb200-nvl72)") in r.err
    doc["node"] |= {"gpus_per_node": 72, "gpus_per_host": 5}
    bad.write_text(yaml.safe_dump(doc))
    r = run_cli("profiles", "validate", str(bad))
    assert r.code == 1 and "node.gpus_per_host: does not divide gpus_per_node (got 5)" in r.err

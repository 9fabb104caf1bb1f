"""Engine command lines that run a recommendation as computed (`--emit vllm|sglang|trtllm`).

Flags are spelled as each engine's current documentation spells them:
- vLLM: `vllm serve` engine arguments (--tensor-parallel-size, --pipeline-parallel-size, --data-parallel-size,
  --max-model-len, --gpu-memory-utilization, --max-num-seqs, --kv-cache-dtype, --quantization, and
  --compilation-config for sequence parallelism, `VLLM_SEQUENCE_PARALLEL`); several nodes
  run as one Ray cluster (`ray start --head` / `ray start --address`, then `vllm serve` on the head with
  --distributed-executor-backend ray): https://docs.vllm.ai/en/stable/examples/online_serving/multi-node-serving/
  Data parallelism over nodes: --data-parallel-size-local, --data-parallel-address, --data-parallel-start-rank,
  --headless (https://docs.vllm.ai/en/stable/serving/data_parallel_deployment.html).
- SGLang: `python -m sglang.launch_server` with --tp-size, --pp-size, --dp-size, --context-length,
  --mem-fraction-static; several nodes: --nnodes, --node-rank, --dist-init-addr
  (https://docs.sglang.io/references/multi_node_deployment/multi_node.html).
- TensorRT-LLM: `trtllm-serve` with --tp_size, --pp_size, --max_seq_len, --max_batch_size,
  --kv_cache_free_gpu_memory_fraction; several nodes run in one MPI world under mpirun or srun with
  `trtllm-llmapi-launch` (https://nvidia.github.io/TensorRT-LLM/commands/trtllm-serve/). What has no flag goes in one
  LLM-API options file, extra_llm_api_options.yaml, written by a heredoc before the command and passed with
  --extra_llm_api_options (`trtllm_options`): attention DP and the FP8 KV cache.
- A checkpoint whose model_type transformers has no class for (ModelSpec.remote_code: Kimi K2's kimi_k2) loads its
  configuration and tokenizer from the repo's code: --trust-remote-code (vLLM, SGLang), --trust_remote_code
  (trtllm-serve), as Moonshot's Kimi-K2 deploy guidance passes it to every engine.
- MoE layouts (tpplan.planner.layouts): vLLM --data-parallel-size with --enable-expert-parallel; SGLang --tp-size
  (all GPUs of a stage) --dp-size --enable-dp-attention --ep-size; TensorRT-LLM --ep_size and
  `enable_attention_dp: true` in the options file. With pipeline stages each engine's PP
  flag is added (--pipeline-parallel-size, --pp-size, --pp_size); the EP group is one stage's GPUs. Replicas of
  such a layout are separate servers (a DP size would join them into one MoE group). So are vLLM replicas of any
  MoE model, TP-only ones included: vLLM's --data-parallel-size on an MoE model is attention DP, its ranks one MoE
  group ("By default, expert layers form a tensor parallel group of size DP x TP",
  docs.vllm.ai/en/latest/serving/data_parallel_deployment.html), not independent replicas.
- Token movement under EP + DP attention is what tpplan.cost.moe models (`gathers_tokens`): all-gather +
  reduce-scatter. vLLM's command names it, --all2all-backend allgather_reducescatter (its default since v0.11.0,
  spelled as a flag since the env variable VLLM_ALL2ALL_BACKEND was retired; docs.vllm.ai/en/latest/serving/
  expert_parallel_deployment/), so the command keeps running what was planned if the default moves (vllm-project/
  vllm PR #54268 proposes FlashInfer's all-to-all on GB200). SGLang's default --moe-a2a-backend none and
  TensorRT-LLM's own choice are what is modelled, so their commands leave them unset. A backend the user forced
  (`recommend --all2all-backend`, alias --moe-a2a-backend; tpplan.models.moe_backends) is printed for the EP +
  DP-attention layouts it was priced on: vLLM --all2all-backend <value> (deepep_high_throughput / deepep_low_latency
  name DeepEP's mode themselves), SGLang --moe-a2a-backend <value>, and with deepep its --deepep-mode (auto unless
  the user chose normal or low_latency: the mode tpplan.cost.deepep priced each step with). Where SGLang's low-latency
  kernels must dispatch more than its default 128 tokens per rank in one call (its decode batch per rank, or under
  --deepep-mode low_latency its prefill batch), the command starts with
  SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK=<tokens>, the buffer the plan reserved memory for
  (Candidate.deepep_ll_tokens_per_rank, tpplan.planner.moe_buffers), without which DeepEP's low_latency_dispatch
  asserts; and every SGLang command with low-latency kernels sets --max-running-requests to the planned batch, so no
  rank's decode batch outgrows that buffer. A DP-attention layout without EP gathers whatever the backend, so its
  command keeps vLLM's allgather_reducescatter and leaves SGLang's default.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Protocol

from tpplan.errors import TpplanError
from tpplan.models.dtypes import weight_format
from tpplan.models.engines import EMITTERS
from tpplan.models.moe_backends import ENGINE_DEFAULT_BACKEND, LL_TOKENS_ENV, LL_TOKENS_PER_CALL
from tpplan.planner.layouts import TRTLLM_OPTIONS_FILE, layout_flags
from tpplan.planner.workload import Workload
from tpplan.records import record

if TYPE_CHECKING:  # kept out of the import: `tpplan recommend --emit` is the only command that loads this module
    from tpplan.hardware.profile import HardwareProfile
    from tpplan.models.spec import ModelSpec
    from tpplan.planner.candidates import Candidate


class Plan(Protocol):
    """What emit reads of a tpplan.planner.result.Plan (a Protocol: result imports emit, not the reverse)."""

    model: ModelSpec
    profile: HardwareProfile
    workload: Workload
    recommended: Candidate | None

_DTYPE = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
VLLM_ALL2ALL_BACKEND = ENGINE_DEFAULT_BACKEND["vllm"]
"""vLLM's MoE token movement that tpplan.cost.moe models for EP + DP attention (vllm/config/parallel.py default)."""
VLLM_SEQUENCE_PARALLEL = '{"pass_config": {"enable_sp": true}, "splitting_ops": [], "cudagraph_mode": "FULL"}'
"""vLLM's --compilation-config that runs the TP all-reduce as reduce-scatter + all-gather (`recommend
--sequence-parallel`): PassConfig.enable_sp, "Enable sequence parallelism" (vllm/config/compilation.py); spelled
enable_sequence_parallelism up to v0.12 (renamed by vllm-project/vllm PR #29646). The pass rewrites the full graph
only: vLLM turns it off under its default piecewise compilation (PR #38373), so the config also asks for one graph
(splitting_ops []) captured whole (cudagraph_mode FULL), as vLLM's own SP runs do (PR #26681). Printed for TP > 1
only: a TP1 layout has no all-reduce to split."""
SEQUENCE_PARALLEL_NOTE = ("# the plan priced --sequence-parallel (reduce-scatter + all-gather per layer); {engine} "
                          "serves with plain all-reduces (no flag for it), which move the same bytes")
"""SGLang and TensorRT-LLM have no serving flag for Megatron-style sequence parallelism: said, not silently dropped."""
HEAD = "$HEAD_IP"
"""Placeholder for the first node's address in multi-node commands."""
_CONT = " \\\n    "


@record
class NodeCommand:
    """The shell command(s) to run on one node (node None: run once, from anywhere in the allocation)."""

    node: int | None
    command: str


def is_moe_layout(c: Candidate) -> bool:
    return c.ep > 1 or c.dp_attention > 1


def separate_servers(plan: Plan, c: Candidate, engine: str) -> bool:
    """Replicas run as one server each (a load balancer in front), not as one server's data parallelism:
    TensorRT-LLM (trtllm-serve has no replica flag), MoE layouts on every engine, and vLLM with any MoE model (its
    DP ranks would form one MoE group: module docstring)."""
    return engine == "trtllm" or is_moe_layout(c) or (engine == "vllm" and plan.model.is_moe)


def _rank_batch(c: Candidate) -> int:
    """Sequences per attention-DP rank: vLLM runs one engine core (scheduler) per DP rank, and TensorRT-LLM's
    max_batch_size is per rank; SGLang's --max-running-requests is given for the whole server."""
    return -(-c.batch // c.dp_attention)


def _must_cap_batch(c: Candidate, w: Workload) -> bool:
    """The engine must be told the running-sequence limit: the user set one (--max-num-seqs and its spellings), the
    plan runs SGLang's DeepEP low-latency kernels (SGLang admits what its KV cache holds whatever the low-latency
    buffer, and a rank's decode batch above the buffer fails DeepEP's assertion: the limit keeps every rank's decode
    steps inside the buffer the plan sized), or the plan's batch is below what the engine would schedule on its own
    (KV and its default limit, which `max_concurrent_sequences` already applies) for a reason other than the size of
    a --num-requests job (a workload size, not a server limit: the server admits what the job sends)."""
    if w.max_num_seqs is not None or (w.engine == "sglang" and c.deepep_ll_tokens_per_rank is not None):
        return True
    job_share = -(-w.num_requests // c.replicas) if w.num_requests else None
    return c.batch < c.max_concurrent_sequences and c.batch != job_share


def _must_pin_tokens(plan: Plan, c: Candidate) -> bool:
    """The engine must be told the step's token budget the plan assumed: the user set one (--max-num-batched-tokens
    and its spellings), or SGLang's low-latency DeepEP kernels carry prefill steps, whose buffer was sized for that
    budget (tpplan.planner.moe_buffers; SGLang's own default depends on the GPU's memory and would overflow it)."""
    w = plan.workload
    ll_prefill = w.engine == "sglang" and w.deepep_mode == "low_latency" and c.deepep_ll_tokens_per_rank is not None
    return w.max_num_batched_tokens is not None or ll_prefill


_SERVER_FLAGS = {
    "vllm": {"len": "--max-model-len", "mem": "--gpu-memory-utilization", "kv_fp8": "--kv-cache-dtype fp8",
             "seqs": "--max-num-seqs", "tokens": "--max-num-batched-tokens"},
    # SGLang server arguments: --context-length, --mem-fraction-static, --kv-cache-dtype fp8_e4m3,
    # --max-running-requests (https://docs.sglang.io/advanced_features/server_arguments.html)
    "sglang": {"len": "--context-length", "mem": "--mem-fraction-static", "kv_fp8": "--kv-cache-dtype fp8_e4m3",
               "seqs": "--max-running-requests", "tokens": "--chunked-prefill-size"},
}


def _server_args(engine: str, plan: Plan, c: Candidate, *, replicas: int) -> list[str]:
    """vLLM / SGLang flags for every number the plan depends on."""
    w, f = plan.workload, _SERVER_FLAGS[engine]
    args = layout_flags(engine, tp=c.tp, pp=c.pp, replicas=replicas, ep=c.ep, dp_attention=c.dp_attention,
                        moe_model=plan.model.is_moe)
    args += [f"{f['len']} {w.max_model_len}", f"{f['mem']} {w.gpu_memory_utilization:.2f}"]
    if plan.model.remote_code:  # vLLM and SGLang both spell it --trust-remote-code
        args.append("--trust-remote-code")
    if w.dtype in _DTYPE:
        args.append(f"--dtype {_DTYPE[w.dtype]}")
    elif w.dtype == "fp8" and (plan.model.quantization is None or plan.model.quantization.method == "fp8"):
        # online FP8 of a 16-bit checkpoint, or the method an FP8 checkpoint names itself; on a checkpoint quantized
        # another way (gpt-oss's MXFP4) the engine refuses a different --quantization: `checkpoint_note` says what
        # to serve instead
        args.append("--quantization fp8")
    if w.kv_cache_dtype == "fp8":
        args.append(f["kv_fp8"])
    elif w.kv_cache_dtype == "fp8_e5m2":  # both engines spell it so (vllm/config/cache.py; SGLang server_args)
        args.append("--kv-cache-dtype fp8_e5m2")
    if _must_cap_batch(c, w):
        args.append(f"{f['seqs']} {_rank_batch(c) if engine == 'vllm' else c.batch}")
    if _must_pin_tokens(plan, c):
        from tpplan.planner.candidates import engine_limits

        args.append(f"{f['tokens']} {engine_limits(plan.profile, w).max_num_batched_tokens}")
    # vLLM builds its all2all manager from --all2all-backend whenever data_parallel_size > 1, EP or not
    # (vllm/distributed/device_communicators/base_device_communicator.py: "as long as we use data parallel ... we
    # initialize the all2all manager"), and an MoE layer under DP dispatches through it
    if engine == "vllm" and plan.model.is_moe and c.dp_attention > 1:
        args.append(f"--all2all-backend {moe_backend(w, c) or VLLM_ALL2ALL_BACKEND}")
    if engine == "vllm" and w.sequence_parallel and c.tp > 1:
        args.append(f"--compilation-config '{VLLM_SEQUENCE_PARALLEL}'")
    if engine == "sglang" and c.dp_attention > 1:
        from tpplan.planner.candidates import sglang_dp_attention_splits

        if sglang_dp_attention_splits(plan.model, w, tp=c.tp, dp_attention=c.dp_attention, ep=c.ep).get("dense_whole"):
            args.append("--moe-dense-tp-size 1")  # the dense layers whole on every GPU, as the plan sized them
    if engine == "sglang" and moe_backend(w, c):
        args.append(f"--moe-a2a-backend {moe_backend(w, c)}")
        if moe_backend(w, c) == "deepep":
            args.append(f"--deepep-mode {w.deepep_mode or 'auto'}")
    return args


def _sglang_env(c: Candidate) -> str:
    """SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK=N and a space where the plan sized the low-latency buffer above
    SGLang's default (tpplan.models.moe_backends.LL_TOKENS_PER_CALL), else ''."""
    n = c.deepep_ll_tokens_per_rank
    return f"{LL_TOKENS_ENV}={n} " if n is not None and n > LL_TOKENS_PER_CALL["sglang"] else ""


def moe_backend(w: Workload, c: Candidate) -> str | None:
    """The backend the user forced (--all2all-backend / --moe-a2a-backend) where it is what the plan priced: an EP +
    DP-attention layout (tpplan.cost.moe applies a forced backend to those only), other than the engine's own default;
    None: the command names the engine's default (vLLM) or leaves it unset (SGLang)."""
    if w.moe_dispatch is None or c.ep == 1 or c.dp_attention == 1:
        return None
    return None if w.all2all_backend == ENGINE_DEFAULT_BACKEND[w.engine] else w.all2all_backend


def trtllm_options(w: Workload, c: Candidate) -> list[str]:
    """The lines of the TensorRT-LLM LLM-API options file (tpplan.planner.layouts.TRTLLM_OPTIONS_FILE) the plan needs;
    [] when it needs none. The keys are spelled as NVIDIA/TensorRT-LLM examples/serve/deepseek_r1_reasoning_parser.sh
    spells them: `enable_attention_dp: true` for attention DP; `kv_cache_config:` / `  dtype: fp8` for the FP8 KV
    cache, which trtllm-serve takes from no flag. The file's kv_cache_config replaces the one trtllm-serve builds from
    --kv_cache_free_gpu_memory_fraction (update_llm_args_with_extra_dict in tensorrt_llm/llmapi/llm_args.py merges
    `llm_args | llm_args_dict`, one level deep), so the fraction the plan assumed is repeated inside it, as that
    example does (free_gpu_memory_fraction)."""
    lines = ["enable_attention_dp: true"] if c.dp_attention > 1 else []
    if w.kv_cache_dtype == "fp8":
        lines += ["kv_cache_config:", "  dtype: fp8", f"  free_gpu_memory_fraction: {w.gpu_memory_utilization:.2f}"]
    return lines


def _trtllm_options_file(w: Workload, c: Candidate) -> str | None:
    """The shell heredoc that writes the options file; None when the plan needs none."""
    lines = trtllm_options(w, c)
    return "\n".join([f"cat > {TRTLLM_OPTIONS_FILE} <<'EOF'", *lines, "EOF"]) if lines else None


def _trtllm_args(plan: Plan, c: Candidate) -> list[str]:
    w = plan.workload
    tokens = [f"--max_num_tokens {w.max_num_batched_tokens}"] if w.max_num_batched_tokens is not None else []
    args = layout_flags("trtllm", tp=c.tp, pp=c.pp, replicas=1, ep=c.ep, dp_attention=c.dp_attention) + [
        f"--max_seq_len {w.max_model_len}", f"--max_batch_size {max(1, _rank_batch(c))}",
        f"--kv_cache_free_gpu_memory_fraction {w.gpu_memory_utilization:.2f}"] + tokens
    if plan.model.remote_code:  # trtllm-serve's flag (docs: commands/trtllm-serve, "--trust_remote_code")
        args.append("--trust_remote_code")
    options = f"--extra_llm_api_options {TRTLLM_OPTIONS_FILE}"
    return args + ([options] if trtllm_options(w, c) and options not in args else [])


def _join(head: str, args: list[str]) -> str:
    return _CONT.join([head, *args])


def _device_env(plan: Plan) -> str:
    name = plan.profile.gpu.name.upper()
    return "HIP_VISIBLE_DEVICES" if ("AMD" in name or "INSTINCT" in name or name.startswith("MI")) else \
        "CUDA_VISIBLE_DEVICES"


def _per_replica_servers(plan: Plan, c: Candidate, engine: str, model: str) -> list[NodeCommand]:
    """One server per replica on its own GPUs and port (`separate_servers`)."""
    n, env, lines = c.gpus_used // c.replicas, _device_env(plan), []
    options_file = _trtllm_options_file(plan.workload, c) if engine == "trtllm" else None
    if options_file:
        lines.append(options_file)
    for r in range(c.replicas):
        devices = ",".join(str(d) for d in range(r * n, (r + 1) * n))
        prefix = f"{env}={devices} " if c.replicas > 1 else ""
        port = f" --port {8000 + r}" if c.replicas > 1 else ""
        if engine == "trtllm":
            cmd = _join(f"{prefix}trtllm-serve {model}", _trtllm_args(plan, c))
        elif engine == "sglang":
            cmd = _join(f"{prefix}{_sglang_env(c)}python -m sglang.launch_server --model-path {model}",
                        _server_args("sglang", plan, c, replicas=1))
        else:
            cmd = _join(f"{prefix}vllm serve {model}", _server_args("vllm", plan, c, replicas=1))
        lines.append(cmd + port + (" &" if port else ""))
    if c.replicas > 1:
        lines.append(f"# {c.replicas} servers on ports 8000-{8000 + c.replicas - 1}: put a load balancer in front")
    return [NodeCommand(node=0, command="\n".join(lines))]


def _single_node(plan: Plan, c: Candidate, engine: str, model: str) -> list[NodeCommand]:
    if separate_servers(plan, c, engine):
        return _per_replica_servers(plan, c, engine, model)
    if engine == "vllm":
        args = _server_args("vllm", plan, c, replicas=c.replicas)
        return [NodeCommand(node=0, command=_join(f"vllm serve {model}", args))]
    head = f"python -m sglang.launch_server --model-path {model}"
    return [NodeCommand(node=0, command=_join(head, _server_args("sglang", plan, c, replicas=c.replicas)))]


def _hosts(plan: Plan) -> int:
    """Hosts the profile has: its nodes, or the hosts a node spans (HardwareProfile.gpus_per_host: NVL72 trays). A
    command runs on one host, so "node" in a command means a host."""
    return plan.profile.total_gpus // plan.profile.host_gpus


def node_slots(c: Candidate, per_node: int) -> list[int]:
    """GPUs one replica uses on each of its nodes with no TP group split between nodes: whole pipeline stages of
    tp x dp_attention GPUs, per_node // stage of them per node, the last node taking the rest (TP4 x PP2 on 6-GPU
    nodes: [4, 4]; TP4 x PP3 on 8: [8, 4]); a stage wider than a node fills whole nodes. TensorRT-LLM numbers ranks
    pp_rank x tp + tp_rank (its Mapping), so mpirun's slots per host must hold whole stages."""
    stage, stages = c.tp * c.dp_attention, c.pp
    if stage >= per_node:
        total = stage * stages
        return [per_node] * (total // per_node) + ([total % per_node] if total % per_node else [])
    fit, out = per_node // stage, []
    while stages > 0:
        out.append(min(fit, stages) * stage)
        stages -= out[-1] // stage
    return out


def sglang_nodes(c: Candidate, per_node: int) -> int | None:
    """The node count SGLang can lay one replica over: it gives each node pp_size // nnodes pipeline stages, or each
    stage nnodes // pp_size nodes (srt/entrypoints/engine.py `_calculate_rank_ranges`), so PP and the node count must
    divide one another and every node hold tp x pp / nnodes GPUs; None when no count up to 64 nodes does."""
    gpus = c.tp * c.dp_attention * c.pp
    for n in range(-(-gpus // per_node), 65):
        if (c.pp % n == 0 or n % c.pp == 0) and gpus % n == 0 and gpus // n <= per_node and \
                (n <= c.pp or (c.tp * c.dp_attention) % (n // c.pp) == 0):
            return n
    return None


def _multi_node(plan: Plan, c: Candidate, engine: str, model: str, first: int = 0,
                head: str = HEAD) -> list[NodeCommand]:
    """The commands of one replica (c.replicas == 1) over whole nodes, numbered from `first`, its head node's address
    `head`."""
    per_node = plan.profile.host_gpus
    if engine == "trtllm":
        slots = node_slots(c, per_node)
        hosts = ",".join(f"node{first + i}:{n}" for i, n in enumerate(slots))
        cmd = _join(f"mpirun -np {sum(slots)} -H {hosts} trtllm-llmapi-launch trtllm-serve {model}",
                    _trtllm_args(plan, c))
        even = f" (or srun --nodes {len(slots)} --ntasks-per-node {slots[0]})" if len(set(slots)) == 1 else ""
        stage = c.tp * c.dp_attention
        spans = -(-stage // per_node)
        placed = ("whole pipeline stages on each" if stage <= per_node else
                  f"each stage over {spans} nodes" if stage % per_node == 0 else
                  f"stages of {stage} GPUs straddling nodes of {per_node}")
        note = (f"\n# one MPI world over {len(slots)} nodes, {placed} (ranks are pp_rank x {stage} + tp_rank)"
                f"{even}")
        options_file = _trtllm_options_file(plan.workload, c)
        if options_file:  # each rank's trtllm-serve reads the file on its own node
            cmd = (f"# write {TRTLLM_OPTIONS_FILE} on every node, in the directory mpirun starts in (each node's "
                   f"ranks read it there)\n{options_file}\n{cmd}")
        return [NodeCommand(node=None, command=cmd + note)]
    nodes = _nodes_for(plan, c, engine)
    if engine == "sglang":
        start = f"{_sglang_env(c)}python -m sglang.launch_server --model-path {model}"
        return [NodeCommand(node=first + i, command=_join(start, _server_args("sglang", plan, c, replicas=1) + [
            f"--nnodes {nodes}", f"--node-rank {i}", f"--dist-init-addr {head}:20000"])) for i in range(nodes)]
    out = [NodeCommand(node=first, command="ray start --head --port=6379")]
    out += [NodeCommand(node=first + i, command=f"ray start --address={head}:6379") for i in range(1, nodes)]
    out.append(NodeCommand(node=first, command=_join(f"vllm serve {model}", _server_args("vllm", plan, c, replicas=1)
                                                     + ["--distributed-executor-backend ray"])))
    return out


def _nodes_for(plan: Plan, c: Candidate, engine: str) -> int:
    """Nodes one multi-node replica of `c` takes under `engine` (SGLang: `sglang_nodes`; TensorRT-LLM: `node_slots`;
    vLLM: as many as its GPUs fill); a TpplanError when SGLang cannot lay it out or the profile lacks the nodes."""
    per_node = plan.profile.host_gpus
    if engine == "sglang":
        n = sglang_nodes(c, per_node)
        if n is None:
            raise TpplanError(f"SGLang cannot lay TP{c.tp * c.dp_attention} x PP{c.pp} over nodes of {per_node} GPUs "
                              f"(each node runs pp_size / nnodes stages, or each stage nnodes / pp_size nodes); choose "
                              f"a --pp that divides or is divided by the node count")
    elif engine == "trtllm":
        n = len(node_slots(c, per_node))
    else:
        n = -(-c.gpus_used // c.replicas // per_node)
    if n > _hosts(plan):
        raise TpplanError(f"{engine} lays TP{c.tp * c.dp_attention} x PP{c.pp} over {n} nodes of {per_node} GPUs and "
                          f"profile {plan.profile.name!r} has {_hosts(plan)}; choose a --pp that divides the "
                          f"node count, or a profile with more nodes")
    return n


def _replicas_over_nodes(plan: Plan, c: Candidate, engine: str, model: str) -> list[NodeCommand]:
    """Replicas that each span several nodes: each replica's own multi-node commands on its own nodes (its head node
    the first of them, $HEAD_IP_<replica>), a load balancer in front."""
    one = _with_replicas(c, 1)
    k = _nodes_for(plan, one, engine)
    if k * c.replicas > _hosts(plan):
        raise TpplanError(f"{c.replicas} replicas of {k} nodes each need {k * c.replicas} nodes and the profile has "
                          f"{_hosts(plan)}; use --replicas {_hosts(plan) // k} or a profile with more "
                          f"nodes")
    out: list[NodeCommand] = []
    for r in range(c.replicas):
        blocks = _multi_node(plan, one, engine, model, first=r * k, head=f"$HEAD_IP_{r}")
        intro = f"# replica {r}: nodes {r * k}-{r * k + k - 1}" + (
            f", $HEAD_IP_{r} = node {r * k}'s address" if engine != "trtllm" else "")  # mpirun names its hosts
        out += [NodeCommand(node=b.node, command=(intro + "\n" + b.command) if i == 0 else b.command)
                for i, b in enumerate(blocks)]
    out[-1] = NodeCommand(node=out[-1].node, command=out[-1].command + f"\n# {c.replicas} replicas: put a load "
                                                                       f"balancer in front of their head nodes")
    return out


def replicas_per_node(c: Candidate, per_node: int, nodes: int) -> list[int]:
    """How many whole replicas each node runs: nodes filled in order, per_node // (GPUs of one replica) each (a
    replica never straddles two nodes), e.g. 3 replicas of 4 GPUs on 2 nodes of 8: [2, 1]."""
    fit, left, out = per_node // (c.gpus_used // c.replicas), c.replicas, []
    for _ in range(nodes):
        out.append(min(fit, left))
        left -= out[-1]
    return out


def _dp_over_nodes(plan: Plan, c: Candidate, engine: str, model: str, nodes: int) -> list[NodeCommand]:
    """Replicas that each fit in one node, spread over several nodes (`replicas_per_node`): vLLM's data parallelism
    over nodes for a dense layout, each node its own --data-parallel-size-local and start rank; for an MoE layout
    (whose --data-parallel-size is its DP-attention group, one replica) and for the other engines, per-replica
    servers on each node, a load balancer in front."""
    counts = replicas_per_node(c, plan.profile.host_gpus, nodes)
    if engine == "vllm" and not separate_servers(plan, c, engine):
        base = _server_args("vllm", plan, c, replicas=c.replicas) + [f"--data-parallel-address {HEAD}",
                                                                    "--data-parallel-rpc-port 13345"]
        return [NodeCommand(node=i, command=_join(f"vllm serve {model}", [*base, f"--data-parallel-size-local {n}"] + (
            [f"--headless --data-parallel-start-rank {sum(counts[:i])}"] if i else [])))
            for i, n in enumerate(counts)]
    out = []
    for i, n in enumerate(counts):
        single = _single_node(plan, _with_replicas(c, n), engine, model)[0].command
        out.append(NodeCommand(node=i, command=single + ("\n# a load balancer in front of every node's servers"
                                                         if i == 0 else "")))
    return out


def _vllm_dp_attention_over_nodes(plan: Plan, c: Candidate, model: str, nodes: int) -> list[NodeCommand]:
    """One vLLM MoE replica whose DP-attention ranks span nodes: dp / nodes ranks per node, the first node's API
    server in front (docs.vllm.ai data_parallel_deployment: --data-parallel-size-local, --headless)."""
    local = c.dp_attention // nodes
    base = _server_args("vllm", plan, c, replicas=1) + [
        f"--data-parallel-size-local {local}", f"--data-parallel-address {HEAD}", "--data-parallel-rpc-port 13345"]
    return [NodeCommand(node=i, command=_join(f"vllm serve {model}", base + (
        [f"--headless --data-parallel-start-rank {i * local}"] if i else []))) for i in range(nodes)]


def _with_replicas(c: Candidate, replicas: int) -> Candidate:
    import dataclasses

    return dataclasses.replace(c, replicas=replicas, gpus_used=c.gpus_used // c.replicas * replicas)


def serve_commands(plan: Plan, engine: str) -> list[NodeCommand]:
    """One NodeCommand per node (or one for a launcher that reaches every node), for the layout the user fixed with
    --tp (`plan.chosen`) when there is one, else for the recommendation."""
    c, m = plan.chosen or plan.recommended, plan.model
    if plan.workload.mode != "serve":
        raise TpplanError("--emit prints serve commands; it does not apply to --workload train")
    if engine not in EMITTERS:
        raise TpplanError(f"--emit {engine!r} is not known; choose one of: {', '.join(EMITTERS)}")
    if c is None:
        raise TpplanError("nothing fits, so there is no serve command to emit; see the suggestions")
    if not c.feasible:
        from tpplan.planner.candidates import moe_words

        moe = f" ({moe_words(c)})" if moe_words(c) else ""
        raise TpplanError(f"the --tp layout TP{c.tp}{moe} x PP{c.pp} x {c.replicas} replica(s) does not run "
                          f"({'; '.join(c.reasons)}), so there is no serve command to emit; leave out --tp for the "
                          f"recommended layout's command")
    model = _served_model(m)
    per_node = plan.profile.host_gpus
    if c.gpus_used <= per_node:
        return _single_node(plan, c, engine, model)
    nodes = -(-c.gpus_used // per_node)
    if c.gpus_used // c.replicas <= per_node:
        return _dp_over_nodes(plan, c, engine, model, nodes)
    if engine == "vllm" and is_moe_layout(c) and c.replicas == 1 and c.dp_attention % nodes == 0:
        return _vllm_dp_attention_over_nodes(plan, c, model, nodes)
    if c.replicas > 1:
        return _replicas_over_nodes(plan, c, engine, model)
    return _multi_node(plan, c, engine, model)


ONLINE_QUANTIZATION = {"vllm": {"fp8": "--quantization fp8"}, "sglang": {"fp8": "--quantization fp8"}}
"""The flags that quantize a 16-bit checkpoint as it loads, by engine and planned format (`_server_args` prints them).
vLLM --quantization fp8: "Online Dynamic Quantization ... no calibration data is required"
(docs.vllm.ai/en/latest/features/quantization/fp8.html; later releases also name it fp8_per_tensor,
docs.vllm.ai/en/stable/features/quantization/online/). SGLang --quantization fp8: "Online Quantization"
(docs.sglang.io/advanced_features/quantization.html). trtllm-serve has none: TensorRT-LLM serves checkpoints quantized
beforehand (NVIDIA ModelOpt), so its commands get no online flag."""


def checkpoint_note(plan: Plan, engine: str) -> str | None:
    """A `# ` line when the plan's weights (--dtype) are not the checkpoint's own (ModelSpec.quantization, None for a
    16-bit checkpoint): the command serves the checkpoint named, so it runs what was planned only with a checkpoint of
    the planned format, or the engine's online quantization flag (`ONLINE_QUANTIZATION`) where one exists for a
    16-bit checkpoint. None when they agree, or when a 16-bit checkpoint is only cast (--dtype fp16 / fp32)."""
    spec, fmt = plan.model, weight_format(plan.model, plan.workload.dtype)
    own = spec.quantization
    if fmt is own or (own is None and not fmt.quantized):
        return None
    model, want, have = _served_model(spec), _a(fmt.name), _a(own.name if own else "16-bit")
    online = ONLINE_QUANTIZATION.get(engine, {}).get(fmt.name) if own is None else None
    how = (f"{online} (below) quantizes it to {fmt.name} as it loads (online), or serve {want} checkpoint of it"
           if online else f"serve {want} checkpoint of it instead (replace {model} below)")
    return f"# the plan assumed {fmt.name} weights, but {model} is {have} checkpoint: {how}"


def _served_model(spec) -> str:
    """What the serve command loads: the Hub id, else the directory of a config.json given by path (shell-quoted
    when it needs it), else the model's name."""
    if spec.hf_id or not spec.checkpoint_path:
        return spec.hf_id or spec.name
    return shlex.quote(spec.checkpoint_path)


def _a(name: str) -> str:
    """'a bf16', 'an fp8', 'an int4', 'an nvfp4': the article as the name is read aloud, letter by letter."""
    return ("an " if name[0].lower() in "aefhilmnorsx" else "a ") + name


def serve_command(plan: Plan, engine: str) -> str:
    """All commands as one shell text, each node's under a `# node N` comment when there are several; first the
    `checkpoint_note` when the plan's weights are not the checkpoint's."""
    blocks = serve_commands(plan, engine)
    c = plan.chosen or plan.recommended
    notes = [checkpoint_note(plan, engine),
             SEQUENCE_PARALLEL_NOTE.format(engine=engine) if plan.workload.sequence_parallel and engine != "vllm"
             and c is not None and c.tp > 1 else None]
    if len(blocks) == 1:
        text = blocks[0].command
    else:
        head = "" if any("$HEAD_IP_" in b.command for b in blocks) else f" (node 0 = {HEAD})"  # one head a replica
        text = "\n".join((f"# on node {b.node}{head}" if b.node is not None else "# from any node") +
                          f"\n{b.command}" for b in blocks)
    return "\n".join([*(n for n in notes if n), text])

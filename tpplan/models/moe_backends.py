"""The MoE token-movement backends a serving engine can be told to use (`--all2all-backend`, SGLang's
`--moe-a2a-backend`), and what each means for the cost model: all-gather + reduce-scatter ("gather") or all-to-all
dispatch and combine ("all2all"); tpplan.cost.moe prices both.

The engines' own values:
- vLLM `--all2all-backend` (ParallelConfig.all2all_backend, `All2AllBackend` in vllm/config/parallel.py,
  github.com/vllm-project/vllm at 00193b82): default "allgather_reducescatter" ("All2all based on allgather and
  reducescatter"); "deepep_high_throughput" / "deepep_low_latency" (DeepEP normal / low-latency kernels),
  "deepep_v2", "mori_high_throughput" / "mori_low_latency" (MoRI EP), "nixl_ep", "flashinfer_nvlink_two_sided" /
  "flashinfer_nvlink_one_sided" and "flashinfer_all2allv" ("temporary alias for flashinfer_nvlink_two_sided") all
  dispatch tokens all-to-all. Earlier releases spell MoRI "mori" and still run "pplx" (PplxAll2AllManager, e.g. the
  v0.11-era list "naive, pplx, deepep_high_throughput, deepep_low_latency, mori, allgather_reducescatter,
  flashinfer_all2allv"); the newest ParallelConfig maps a removed "pplx" back to allgather_reducescatter with a
  warning, so "pplx" is planned as the all-to-all of the releases that run it. vLLM uses any of them only for
  expert-parallel layouts under data parallelism (FusedMoEParallelConfig.use_all2all_kernels = dp_size > 1 and
  use_ep, vllm/model_executor/layers/fused_moe/config.py).
- SGLang `--moe-a2a-backend` (ServerArgs.moe_a2a_backend, MOE_A2A_BACKEND_CHOICES in
  python/sglang/srt/server_args.py, github.com/sgl-project/sglang at 469c63e5): default "none" ("uses All-Reduce or
  All-Gather for token dispatch", docs.sglang.io/advanced_features/expert_parallelism.html); "deepep", "mooncake",
  "mori", "flashinfer" and, in later releases, "nixl" keep tokens on their rank and dispatch them all-to-all.
  "ascend_fuseep" (Ascend NPUs) is left out: no profile here describes an NPU. DeepEP's mode is SGLang's separate
  --deepep-mode (DeepEPMode in python/sglang/srt/layers/moe/utils.py: auto | normal | low_latency, default auto;
  `resolve(is_extend_in_batch)` gives normal kernels to a batch that carries prefill (extend) tokens on any DP rank
  and low-latency kernels to a decode batch; server_args `_handle_a2a_moe` disables CUDA graphs under normal).
- TensorRT-LLM has no such option: its MoE picks MNNVL all-to-all itself on a multi-node NVLink fabric with
  ep > top_k, DeepEP only under the environment variable TRTLLM_CAN_USE_DEEP_EP=1 (select_alltoall_method_type,
  tensorrt_llm/_torch/modules/fused_moe/fused_moe_cutlass.py); tpplan models its automatic choice
  (tpplan.cost.moe.trtllm_gathers_tokens) and refuses a forced value rather than plan a flag that does not exist.
  Megatron (training) is refused likewise.

Which kernels an all-to-all backend runs (`A2aMode`, priced by tpplan.cost.deepep):
- DeepEP normal (high-throughput) kernels: vLLM deepep_high_throughput (DeepEPHTPrepareAndFinalize), SGLang deepep
  with --deepep-mode normal, and SGLang's auto mode for steps that carry prefill.
- DeepEP low-latency kernels: vLLM deepep_low_latency (DeepEPLLPrepareAndFinalize; the docs' "Multi-node decode, CUDA
  graph support, masked layout", docs.vllm.ai/en/latest/serving/expert_parallel_deployment/), SGLang deepep with
  --deepep-mode low_latency, and SGLang's auto mode for decode steps.
- "fabric": every other all-to-all (pplx, MoRI, NIXL-EP, FlashInfer, Mooncake, DeepEP V2's unified ElasticBuffer, and
  TensorRT-LLM's MNNVL all-to-all). None is either DeepEP mode, so they keep the fabric's NCCL protocol parameters
  (the cheaper of LL and Simple per message size) over the per-rank deduplicated buffer. TensorRT-LLM's MNNVL
  kernels (tensorrt_llm/_mnnvl_utils.py MnnvlMoe) fit that pricing: the prepare step computes, on the GPU, each
  token's target ranks (compute_target_rank_id: expert // experts per rank) and moe_comm sends it once per target
  rank through NVLink fabric memory (one-sided, no host synchronisation, CUDA-graph capturable), within one NVLink
  domain: a per-rank deduplicated exchange paced by the NVLink protocols, with no RDMA stage and no host handshake.
"""

from __future__ import annotations

from typing import Literal

from tpplan.errors import TpplanError
from tpplan.units import MiB

TokenMovement = Literal["gather", "all2all"]
"""How EP + DP attention moves an MoE layer's tokens: all-gather + reduce-scatter, or all-to-all dispatch/combine."""

AUTO = "auto"
"""The engine's default backend: what tpplan.cost.moe.gathers_tokens says the engine runs by itself."""

ALL2ALL_BACKENDS: dict[str, dict[str, TokenMovement]] = {
    "vllm": {"allgather_reducescatter": "gather", "deepep_high_throughput": "all2all",
             "deepep_low_latency": "all2all", "deepep_v2": "all2all", "pplx": "all2all", "mori": "all2all",
             "mori_high_throughput": "all2all", "mori_low_latency": "all2all", "nixl_ep": "all2all",
             "flashinfer_all2allv": "all2all", "flashinfer_nvlink_two_sided": "all2all",
             "flashinfer_nvlink_one_sided": "all2all"},
    "sglang": {"none": "gather", "deepep": "all2all", "mooncake": "all2all", "mori": "all2all", "nixl": "all2all",
               "flashinfer": "all2all"},
}
"""Per engine, its backend values and the token movement each runs (sources in the module docstring)."""

OPTION_NAMES = {"vllm": "--all2all-backend", "sglang": "--moe-a2a-backend"}
"""Each engine's own name of the option (tpplan accepts both names for either engine)."""

ENGINE_DEFAULT_BACKEND = {"vllm": "allgather_reducescatter", "sglang": "none"}
"""The value each engine uses when the option is not given (vllm/config/parallel.py; sglang server_args.py)."""


def backend_choices(engine: str) -> tuple[str, ...]:
    """The values `--all2all-backend` accepts with `engine`: auto, then the engine's own."""
    return (AUTO, *ALL2ALL_BACKENDS.get(engine, {}))


def backend_problem(engine: str, backend: str) -> str | None:
    """Why `backend` is not a value of `engine`'s option, naming the valid ones (without the option's name, which the
    CLI's usage error and `token_movement`'s TpplanError each add); None when it is one."""
    if backend == AUTO or backend in ALL2ALL_BACKENDS.get(engine, {}):
        return None
    if engine not in ALL2ALL_BACKENDS:
        how = ("TensorRT-LLM chooses its MoE all-to-all itself (MNNVL on a multi-node NVLink fabric with ep > top_k, "
               "DeepEP with TRTLLM_CAN_USE_DEEP_EP=1) and tpplan plans that choice"
               if engine == "trtllm" else f"{engine} has no such option")
        return f"{backend!r} applies to --engine vllm and sglang only; {how}; leave it out (auto)"
    other = next((e for e, t in ALL2ALL_BACKENDS.items() if e != engine and backend in t), None)
    hint = f" ({backend} is {other}'s spelling)" if other else ""
    return f"{backend!r} is not a {engine} backend{hint}; choose one of: {', '.join(backend_choices(engine))}"


def unknown_backend_problem(backend: str) -> str | None:
    """Why `backend` is a value of no engine's option, listing every engine's values (without the option's name, which
    the CLI's usage error adds); None when auto or some engine's value (which engine's is checked with --engine:
    `backend_problem`)."""
    if backend == AUTO or any(backend in values for values in ALL2ALL_BACKENDS.values()):
        return None
    per_engine = "; ".join(f"{OPTION_NAMES[e]} ({e}): {', '.join(values)}" for e, values in ALL2ALL_BACKENDS.items())
    return f"{backend!r} is no engine's MoE all-to-all backend; choose auto (the engine's default) or {per_engine}"


A2aMode = Literal["fabric", "normal", "low_latency", "auto"]
"""The kernels of an all-to-all (module docstring): DeepEP's normal or low-latency kernels, "auto" (SGLang: normal for
steps with prefill, low-latency for decode steps), or "fabric" (the fabric's NCCL protocol parameters)."""

DEEPEP_MODES = ("auto", "normal", "low_latency")
"""SGLang --deepep-mode values (DeepEPMode, python/sglang/srt/layers/moe/utils.py); default auto."""

DEEPEP_KERNELS: dict[str, dict[str, A2aMode]] = {
    "vllm": {"deepep_high_throughput": "normal", "deepep_low_latency": "low_latency"},
    "sglang": {"deepep": "auto"},
}
"""The backends that run DeepEP's V1 kernels, and the mode each runs (SGLang's deepep: its --deepep-mode)."""

LL_TOKENS_PER_CALL = {"vllm": 256, "sglang": 128}
"""Tokens per rank one low-latency dispatch carries, which also sizes its buffers. vLLM dispatches a DP rank's tokens
in chunks of VLLM_MOE_DP_CHUNK_SIZE (default 256, vllm/envs.py: "the quantum of tokens that can be dispatched from a
DP rank"; FusedMoE.use_dp_chunking is on for deepep_low_latency), one low-latency call per chunk. SGLang sizes the
buffer for SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK (default 128, python/sglang/srt/environ.py) and DeepEP
asserts x.size(0) <= num_max_dispatch_tokens_per_rank (deep_ep.cpp; DeepEP issue 165), so a step dispatches in
one call or fails."""

LL_TOKENS_ENV = "SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK"
"""SGLang's environment variable for its low-latency buffer (`LL_TOKENS_PER_CALL`)."""

LL_MAX_TOKENS_PER_RANK = 1024
"""The most tokens per rank a DeepEP low-latency call can carry: "DeepEP internode_ll dispatch uses
FINISHED_SUM_TAG=1024 and the logic requires num-tokens-sent-from-one-rank-to-another-rank less than it", so SGLang
asserts num_max_dispatch_tokens_per_rank <= 1024 (_DeepEPDispatcherImplBase, python/sglang/srt/layers/moe/
token_dispatcher/deepep.py, sgl-project/sglang at 003a81bf)."""

VLLM_DEEPEP_BUFFER_BYTES = 1024 * MiB
"""vLLM's DeepEP NVLink buffer, and its normal kernels' RDMA buffer when the EP group spans nodes:
VLLM_DEEPEP_BUFFER_SIZE_MB (default 1024, "the size in MB of the buffers (NVL and RDMA) used by DeepEP", vllm/envs.py)
x 1024 x 1024 bytes (DeepEPHTAll2AllManager and DeepEPLLAll2AllManager._make_all2all_kwargs, vllm/distributed/
device_communicators/all2all.py at 00143004)."""


def ll_buffer_tokens(engine: str, mode: A2aMode, *, prefill_tokens_per_gpu: int, decode_tokens_per_gpu: int = 0) -> int:
    """Tokens per rank the low-latency buffer must hold: vLLM's chunk (256); SGLang's default 128, or more where one
    call must carry more: a GPU's decode batch (auto and low_latency dispatch decode steps in one call) and, under
    --deepep-mode low_latency, a GPU's prefill batch (DeepSeek's guidance: "low-latency mode will limit max dispatch
    num tokens ... While low-latency prefill technically works, it's not recommended", sgl-project/sglang issue 6017).
    SGLang does not cap its running batch by this buffer (without --max-running-requests a rank admits what its KV
    cache holds, max_total_num_tokens // 2 requests at most, ModelRunner) and DeepEP asserts a larger call, so the
    plan raises SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK to these tokens ("the runtime side still needs the buffer
    raised", sgl-project/sglang PR 28914)."""
    if engine != "sglang":
        return LL_TOKENS_PER_CALL["vllm"]
    prefill = prefill_tokens_per_gpu if mode == "low_latency" else 0
    return max(LL_TOKENS_PER_CALL["sglang"], decode_tokens_per_gpu, prefill)


def ll_chunk_tokens(engine: str) -> int | None:
    """Tokens per rank of each low-latency call where the engine splits a step's tokens into calls (vLLM); None where
    a step is one call (SGLang, whose buffer must then hold the step: `LL_TOKENS_PER_CALL`)."""
    return LL_TOKENS_PER_CALL["vllm"] if engine == "vllm" else None


def a2a_mode(engine: str, backend: str, deepep_mode: str | None = None) -> A2aMode:
    """The kernels `backend` runs on `engine` (module docstring): DeepEP's mode for the DeepEP backends (SGLang's
    from `deepep_mode`, default auto), "fabric" for every other backend and for the engine's default."""
    mode = DEEPEP_KERNELS.get(engine, {}).get(backend, "fabric")
    return (deepep_mode or "auto") if mode == "auto" else mode


def deepep_mode_problem(engine: str, backend: str, deepep_mode: str | None) -> str | None:
    """Why --deepep-mode `deepep_mode` does not apply (without the option's name), naming the fix; None when it
    does, or when it is not given. An explicit auto is SGLang's default and always accepted for SGLang."""
    if deepep_mode is None:
        return None
    if deepep_mode not in DEEPEP_MODES:
        return f"{deepep_mode!r} is not a DeepEP mode; choose one of: {', '.join(DEEPEP_MODES)}"
    if engine != "sglang":
        how = {"vllm": "vLLM picks DeepEP's kernels with --all2all-backend deepep_high_throughput or "
                       "deepep_low_latency",
               "trtllm": "TensorRT-LLM chooses its MoE all-to-all itself"}.get(engine, f"{engine} has no such option")
        return f"{deepep_mode!r} applies to --engine sglang only; {how}; leave it out"
    if deepep_mode != "auto" and backend != "deepep":
        return (f"{deepep_mode!r} selects DeepEP's kernels, which SGLang runs only with --moe-a2a-backend deepep; add "
                f"--moe-a2a-backend deepep or leave --deepep-mode out")
    return None


def check_deepep_mode(engine: str, backend: str, deepep_mode: str | None) -> None:
    """Raise TpplanError when --deepep-mode does not apply (`deepep_mode_problem`)."""
    problem = deepep_mode_problem(engine, backend, deepep_mode)
    if problem:
        raise TpplanError(f"--deepep-mode {problem}")


def token_movement(engine: str, backend: str) -> TokenMovement | None:
    """The token movement `backend` forces on `engine`'s EP + DP-attention layouts; None for "auto" (the engine's
    default, tpplan.cost.moe.gathers_tokens). Raises TpplanError naming the valid values for an unknown value, one
    of the other engine's, or a forced value for an engine without the option (`backend_problem`)."""
    problem = backend_problem(engine, backend)
    if problem:
        raise TpplanError(f"--all2all-backend {problem}")
    return None if backend == AUTO else ALL2ALL_BACKENDS[engine][backend]

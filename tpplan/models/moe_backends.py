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
  --deepep-mode (auto | normal | low_latency, default auto: normal kernels for prefill batches, low-latency for
  decode), which matches how the cost model prices an all-to-all (the cheaper of the fabric's LL and Simple
  protocols per message size), so it is left at its default.
- TensorRT-LLM has no such option: its MoE picks MNNVL all-to-all itself on a multi-node NVLink fabric with
  ep > top_k, DeepEP only under the environment variable TRTLLM_CAN_USE_DEEP_EP=1 (select_alltoall_method_type,
  tensorrt_llm/_torch/modules/fused_moe/fused_moe_cutlass.py); tpplan models its automatic choice
  (tpplan.cost.moe.trtllm_gathers_tokens) and refuses a forced value rather than plan a flag that does not exist.
  Megatron (training) is refused likewise.
"""

from __future__ import annotations

from typing import Literal

from tpplan.errors import TpplanError

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


def token_movement(engine: str, backend: str) -> TokenMovement | None:
    """The token movement `backend` forces on `engine`'s EP + DP-attention layouts; None for "auto" (the engine's
    default, tpplan.cost.moe.gathers_tokens). Raises TpplanError naming the valid values for an unknown value, one
    of the other engine's, or a forced value for an engine without the option (`backend_problem`)."""
    problem = backend_problem(engine, backend)
    if problem:
        raise TpplanError(f"--all2all-backend {problem}")
    return None if backend == AUTO else ALL2ALL_BACKENDS[engine][backend]

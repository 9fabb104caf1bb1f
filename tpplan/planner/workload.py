"""The request a plan answers: what to serve or train, and the limits it must meet. Every default lives here
once; `tpplan recommend`, `tpplan sweep` and the Python API read them from `WORKLOAD_DEFAULTS`."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from tpplan.errors import TpplanError
from tpplan.models.dtypes import resolve_dtype
from tpplan.models.moe_backends import A2aMode, TokenMovement, a2a_mode, token_movement
from tpplan.models.spec import ModelSpec
from tpplan.records import record

Objective = Literal["throughput", "latency", "gpus", "cost"]
Mode = Literal["serve", "train"]

DEFAULT_MAX_MODEL_LEN = 8192
"""--max-model-len default: min(the model's context, 8192)."""
ACTIVATION_RESERVE_LOGIT_SEQS = 256
"""The activation reserve holds fp32 logits of this many sequences (vLLM's sampler warm-up at max_num_seqs 256)."""
PREFILL_CHUNK_TOKENS_MAX = 8192
"""Activation reserve is sized for a prefill chunk of min(max_model_len, 8192) tokens (vLLM-style
max_num_batched_tokens)."""
MAX_BATCH = 1_000_000
"""--batch above this is refused: no engine schedules that many sequences in one replica (vLLM's max_num_seqs and
TensorRT-LLM's max_batch_size defaults are 1,024 and 2,048), and larger integers overflow the planner's floats."""
TRAIN_MICROBATCHES_PER_STAGE = 4
"""Training with PP: micro-batches per step = 4 x pp (bubble fraction (pp-1)/(5pp-1))."""


@record
class Workload:
    gpus: int = 1
    engine: str = "vllm"
    dtype: str = "auto"
    """Weight format: "auto" = the checkpoint's own (vLLM --dtype auto), else an override (bf16, fp8, int4, ...)."""
    kv_cache_dtype: str = "bf16"
    max_model_len: int | None = None
    """Longest sequence (prompt + output) a replica must hold; None: min(model context, 8192) (`for_model`)."""
    input_len: int = 1024
    output_len: int = 256
    batch: int | None = None
    """Concurrent sequences per replica (serve) or micro-batch sequences (train); None = best that fits."""
    num_requests: int | None = None
    """Serve: an offline job of this many requests, all queued at t=0 and split evenly over the replicas;
    throughput is then over the whole job (`tpplan.planner.candidates.job_time_s`). None: a steady stream."""
    gpu_memory_utilization: float = 0.90
    """vLLM's --gpu-memory-utilization default."""
    mode: Mode = "serve"
    objective: Objective = "throughput"
    max_tpot_s: float | None = None
    max_ttft_s: float | None = None
    max_num_seqs: int | None = None
    """Engine's running-sequence limit (vLLM max_num_seqs, TensorRT-LLM max_batch_size, SGLang
    max_running_requests); None: the engine's default (tpplan.cost.batching)."""
    max_num_batched_tokens: int | None = None
    """Engine's per-step token budget (vLLM max_num_batched_tokens, TensorRT-LLM max_num_tokens, SGLang
    chunked_prefill_size); None: the engine's default."""
    sequence_parallel: bool = False
    allow_cross_domain_tp: bool = False
    global_batch: int | None = None
    """Training: Megatron's --global-batch-size, sequences per optimizer step; each layout then runs global /
    (micro-batch x DP) micro-batches per replica (tpplan.planner.train_layouts.micro_batches_per_replica). None: 4 x
    PP micro-batches per replica, the global batch following the layout."""
    distributed_optimizer: bool = False
    """Training: Megatron's --use-distributed-optimizer, the fp32 master weights and Adam moments sharded over the
    data-parallel ranks (tpplan.planner.train)."""
    moe_imbalance: float = 1.2
    """Expert parallelism: routed tokens on the busiest EP rank / the mean (1.0 = perfectly balanced). The step
    waits for that rank. `--moe-imbalance` overrides it. Measured (TensorRT-LLM, "Scaling Expert Parallelism in
    TensorRT-LLM (Part 1)", docs/source/blogs/tech_blog/blog4_Scaling_Expert_Parallelism_in_TensorRT-LLM.md,
    Table 1: DeepSeek-R1 on 32 GB200, EP32, a machine-translation dataset, average over layers and iterations of
    (max - mean) / mean per rank): 1.564 without EPLB, i.e. busiest / mean = 2.56, and 0.109-0.115 (1.11) with
    EPLB's redundant experts. Those are EP32 values: a rank of EP8 holds 4x the experts, so its load varies about
    half as much (the table's per-rank std 491.6 / 1024 = 0.48 is its per-expert 164.1 / 128 = 1.28 over
    sqrt(8 experts per rank)). 1.2 is an assumption inside that measured range, not a measurement for EP8; no
    engine enables EPLB by default."""

    all2all_backend: str = "auto"
    """MoE token movement under EP + DP attention, as the engine spells it (vLLM --all2all-backend, SGLang
    --moe-a2a-backend): "auto" = the engine's default (tpplan.cost.moe.gathers_tokens), else one of the engine's
    values (tpplan.models.moe_backends.ALL2ALL_BACKENDS), which forces all-gather + reduce-scatter or all-to-all."""
    deepep_mode: str | None = None
    """SGLang --deepep-mode for --moe-a2a-backend deepep: auto (normal kernels in steps with prefill, low-latency in
    decode steps), normal or low_latency; None: not given (SGLang's default, auto). Other engines have no such
    option (tpplan.models.moe_backends.deepep_mode_problem)."""

    def __post_init__(self) -> None:
        if self.gpus < 1:
            raise ValueError("gpus must be >= 1")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError("gpu_memory_utilization must be in (0, 1]")
        if self.moe_imbalance < 1:
            raise ValueError("moe_imbalance must be >= 1")
        if self.num_requests is not None and self.num_requests < 1:
            raise ValueError("num_requests must be >= 1")

    @property
    def moe_dispatch(self) -> TokenMovement | None:
        """The token movement `all2all_backend` forces ("gather" / "all2all"), None for the engine's default; raises
        TpplanError for a value `engine` does not have (tpplan.models.moe_backends.token_movement)."""
        return token_movement(self.engine, self.all2all_backend)

    @property
    def a2a_mode(self) -> A2aMode:
        """The kernels of an all-to-all under `all2all_backend` (and `deepep_mode`): DeepEP normal / low_latency, auto,
        or fabric (tpplan.models.moe_backends.a2a_mode)."""
        return a2a_mode(self.engine, self.all2all_backend, self.deepep_mode)

    @property
    def decode_context_len(self) -> float:
        """Average context of a decode step: input + output / 2 (the same expression on arrays in `sweep`)."""
        return self.input_len + self.output_len / 2

    def for_model(self, spec: ModelSpec) -> Workload:
        """This workload with max_model_len and the weight format ("auto") resolved for `spec`."""
        mml = self.max_model_len or min(spec.max_position_embeddings, DEFAULT_MAX_MODEL_LEN)
        return replace(self, max_model_len=mml, dtype=resolve_dtype(spec, self.dtype))


WORKLOAD_DEFAULTS = Workload()


def max_model_len_for(spec: ModelSpec, given: int | None, needed: int, assumptions: dict[str, str], *,
                   what: str = "--input-len + --output-len") -> int:
    """--max-model-len: given, or min(context, 8192) raised to input + output when a request needs more."""
    ctx = spec.max_position_embeddings
    if needed > ctx:
        unit = "sequence" if what == "--input-len" else "request"
        raise TpplanError(f"{what} = {needed} exceeds {spec.name}'s context (max_position_embeddings {ctx}); "
                          f"shorten the {unit}")
    if given is None:
        value = min(ctx, DEFAULT_MAX_MODEL_LEN)
        if needed > value:
            assumptions["max_model_len"] = f"{needed} (raised from {value} to hold input + output)"
            return needed
        assumptions["max_model_len"] = f"{value} (min of the model's {ctx} and {DEFAULT_MAX_MODEL_LEN})"
        return value
    if given > ctx:
        raise TpplanError(f"--max-model-len {given} exceeds {spec.name}'s max_position_embeddings ({ctx}); use at "
                          f"most {ctx}")
    if given < needed:
        raise TpplanError(f"--max-model-len {given} is shorter than --input-len + --output-len = {needed}; raise it "
                          f"to at least {needed}")
    return given

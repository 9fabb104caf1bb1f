"""The request a plan answers: what to serve or train, and the limits it must meet. Every default lives here
once; `tpplan recommend`, `tpplan sweep` and the Python API read them from `WORKLOAD_DEFAULTS`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from tpplan.models.dtypes import resolve_dtype
from tpplan.models.spec import ModelSpec

Objective = Literal["throughput", "latency", "gpus", "cost"]
Mode = Literal["serve", "train"]

DEFAULT_MAX_MODEL_LEN = 8192
"""--max-model-len default: min(the model's context, 8192)."""
ACTIVATION_RESERVE_LOGIT_SEQS = 256
"""The activation reserve holds fp32 logits of this many sequences (vLLM's sampler warm-up at max_num_seqs 256)."""
PREFILL_CHUNK_TOKENS_MAX = 8192
"""Activation reserve is sized for a prefill chunk of min(max_model_len, 8192) tokens (vLLM-style
max_num_batched_tokens)."""
TRAIN_MICROBATCHES_PER_STAGE = 4
"""Training with PP: micro-batches per step = 4 x pp (bubble fraction (pp-1)/(5pp-1))."""


@dataclass(frozen=True, slots=True, kw_only=True)
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
    moe_imbalance: float = 1.2
    """Expert parallelism: routed tokens on the busiest EP rank / the mean (1.0 = perfectly balanced). The step
    waits for that rank. Measured (TensorRT-LLM tech blog 4, "Scaling Expert Parallelism in TensorRT-LLM",
    docs/source/blogs/tech_blog/blog4_Scaling_Expert_Parallelism_in_TensorRT-LLM.md; DeepSeek-R1 on 32 / 36
    GB200s, examples/ep_load_balancer/report_load_statistics.py, whose imbalance-ratio is max / mean - 1 per rank
    and step, averaged; the example output of its reproducing steps): 2.56 averaged over the MoE layers (1.46-3.46 in
    the layers it prints) at EP32 without rebalancing, 1.12 at EP36 with EPLB's 288 slots (32 redundant experts).
    1.2 is an assumption between them, near the balanced end:
    no source found measures EP <= 8 without EPLB (the layouts tpplan plans inside a node), where each rank averages
    more experts and the skew is smaller than at EP32. `--moe-imbalance` overrides it."""

    def __post_init__(self) -> None:
        if self.gpus < 1:
            raise ValueError("gpus must be >= 1")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError("gpu_memory_utilization must be in (0, 1]")
        if self.moe_imbalance < 1:
            raise ValueError("moe_imbalance must be >= 1")

    @property
    def decode_context_len(self) -> float:
        """Average context of a decode step: input + output / 2 (the same expression on arrays in `sweep`)."""
        return self.input_len + self.output_len / 2

    def for_model(self, spec: ModelSpec) -> Workload:
        """This workload with max_model_len and the weight format ("auto") resolved for `spec`."""
        mml = self.max_model_len or min(spec.max_position_embeddings, DEFAULT_MAX_MODEL_LEN)
        return replace(self, max_model_len=mml, dtype=resolve_dtype(spec, self.dtype))


WORKLOAD_DEFAULTS = Workload()

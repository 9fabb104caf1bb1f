"""The request a plan answers: what to serve or train, and the limits it must meet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Objective = Literal["throughput", "latency", "gpus", "cost"]
Mode = Literal["serve", "train"]

MAX_NUM_SEQS_DEFAULT = 256
"""vLLM's default max_num_seqs: the largest batch considered when --batch is not given."""
PREFILL_CHUNK_TOKENS_MAX = 8192
"""Activation reserve is sized for a prefill chunk of min(max_model_len, 8192) tokens (vLLM-style
max_num_batched_tokens)."""
TRAIN_MICROBATCHES_PER_STAGE = 4
"""Training with PP: micro-batches per step = 4 x pp (bubble fraction (pp-1)/(5pp-1))."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    gpus: int
    engine: str = "vllm"
    dtype: str = "bf16"
    kv_cache_dtype: str = "bf16"
    max_model_len: int
    """Longest sequence (prompt + output) a replica must hold; default min(model context, 8192)."""
    input_len: int = 1024
    output_len: int = 256
    batch: int | None = None
    """Concurrent sequences per replica (serve) or micro-batch sequences (train); None = best that fits."""
    gpu_memory_utilization: float = 0.90
    mode: Mode = "serve"
    objective: Objective = "throughput"
    max_tpot_s: float | None = None
    max_ttft_s: float | None = None
    sequence_parallel: bool = False
    allow_cross_domain_tp: bool = False

    def __post_init__(self) -> None:
        if self.gpus < 1:
            raise ValueError("gpus must be >= 1")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError("gpu_memory_utilization must be in (0, 1]")

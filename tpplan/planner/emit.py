"""Serve command lines for a recommendation (`--emit vllm|sglang|trtllm`). Flags as each engine names them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tpplan.errors import TpplanError

if TYPE_CHECKING:
    from tpplan.planner.result import Plan

EMITTERS = ("vllm", "sglang", "trtllm")
_DTYPE = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def serve_command(plan: Plan, engine: str) -> str:
    c, w, m = plan.recommended, plan.workload, plan.model
    if c is None:
        raise TpplanError("nothing fits, so there is no serve command to emit; see the suggestions above")
    model = m.hf_id or m.name
    if engine == "vllm":
        parts = [f"vllm serve {model}", f"--tensor-parallel-size {c.tp}", f"--pipeline-parallel-size {c.pp}",
                 f"--max-model-len {w.max_model_len}", f"--gpu-memory-utilization {w.gpu_memory_utilization:.2f}",
                 f"--max-num-seqs {max(1, c.batch)}"]
        if w.dtype in _DTYPE:
            parts.append(f"--dtype {_DTYPE[w.dtype]}")
        elif w.dtype == "fp8":
            parts.append("--quantization fp8")
        if w.kv_cache_dtype == "fp8":
            parts.append("--kv-cache-dtype fp8")
    elif engine == "sglang":
        parts = [f"python -m sglang.launch_server --model-path {model}", f"--tp-size {c.tp}",
                 f"--context-length {w.max_model_len}", f"--mem-fraction-static {w.gpu_memory_utilization:.2f}"]
        if c.pp > 1:
            parts.append(f"--pp-size {c.pp}")
        if c.replicas > 1:
            parts.append(f"--dp-size {c.replicas}")
        if w.kv_cache_dtype == "fp8":
            parts.append("--kv-cache-dtype fp8_e5m2")
    elif engine == "trtllm":
        parts = [f"trtllm-serve {model}", f"--tp_size {c.tp}", f"--pp_size {c.pp}", f"--max_seq_len {w.max_model_len}",
                 f"--max_batch_size {max(1, c.batch)}",
                 f"--kv_cache_free_gpu_memory_fraction {w.gpu_memory_utilization:.2f}"]
    else:
        raise TpplanError(f"--emit {engine!r} is not known; choose one of: {', '.join(EMITTERS)}")
    line = " \\\n    ".join(parts)
    if c.replicas > 1 and engine != "sglang":
        n = c.tp * c.pp
        line += (f"\n# run {c.replicas} replicas, one per {n} GPUs (e.g. CUDA_VISIBLE_DEVICES=0-{n - 1}, then the next "
                 f"{n}), behind a load balancer")
    return line

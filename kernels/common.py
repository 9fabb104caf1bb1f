"""Shared plumbing for the measured workloads: process group, timing, environment, statistics.

torch only (plus tpplan.units). Ranks are started by `tpplan measure` or by torchrun; both set RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT. NCCL on GPUs, gloo on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def add_common_args(p: argparse.ArgumentParser, *, dtype: str, warmup: int, iters: int) -> None:
    """Options every workload takes: dtype, iterations, backend, timeouts, threads, output, the failure hook."""
    p.add_argument("--dtype", default=dtype, choices=list(DTYPES))
    p.add_argument("--warmup", type=int, default=warmup, help="untimed calls first (NCCL sets up channels)")
    p.add_argument("--iters", type=int, default=iters, help="timed calls (nccl-tests default: 20)")
    p.add_argument("--backend", default="auto", help="nccl, gloo, or auto (nccl when CUDA is present)")
    p.add_argument("--timeout", type=float, default=120.0, help="process-group timeout, seconds")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per rank")
    p.add_argument("--fail-rank", type=int, default=None, help="test hook: this rank exits with code 3")
    p.add_argument("--out", default=None, help="rank 0 also writes its JSON here (atomically)")


def init_distributed(*, backend: str, timeout_s: float, threads: int) -> tuple[int, int, torch.device]:
    """Join the process group described by the environment; returns (rank, world_size, device)."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        device = torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        # torch uses every core per process by default; 2 ranks on 2 cores then fight (FACTS.md §8).
        torch.set_num_threads(threads)
    dist.init_process_group(backend=backend, rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s))
    return rank, world, device


def environment(device: torch.device) -> dict:
    """Versions and devices, reported with every result (as nccl-tests does)."""
    env = {"backend": dist.get_backend() if dist.is_initialized() else None,
           "world_size": dist.get_world_size() if dist.is_initialized() else 1,
           "torch": torch.__version__, "python": platform.python_version(), "host": platform.node(),
           "cuda": torch.version.cuda, "nccl": None, "device_names": [],
           "cpu_threads_per_rank": torch.get_num_threads()}
    if device.type == "cuda":
        env["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
        env["device_names"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    else:
        env["device_names"] = [cpu_model_name()]
    return env


def cpu_model_name() -> str:
    """The CPU's model as /proc/cpuinfo names it ("model name", e.g. "AMD EPYC 7R13 Processor"), else what
    `platform` knows (often only the architecture, "x86_64")."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name") and ":" in line:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def max_across_ranks(samples_s: list[float], group=None, *, device: torch.device) -> list[float]:
    """Per-iteration maximum over the ranks of `group`: a collective is as slow as its slowest rank.
    (On the rank's device: NCCL reduces CUDA tensors only.)"""
    t = torch.tensor(samples_s, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    return t.tolist()


def maybe_fail(rank: int, fail_rank: int | None) -> None:
    """Test hook (--fail-rank): this rank dies the way a crashed worker does."""
    if fail_rank is not None and rank == fail_rank:
        print(f"rank {rank}: failing on purpose (--fail-rank)", file=sys.stderr, flush=True)
        os._exit(3)


def emit(result: dict, out: str | None) -> None:
    """Rank 0 prints one JSON object and, with --out, writes it atomically."""
    text = json.dumps(result)
    if out:
        tmp = Path(out).with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, out)
    print(text, flush=True)


def shutdown() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()

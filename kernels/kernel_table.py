"""Workload 3: the per-kernel table. One process times, for each shard matmul shape [M, K] x [K, N], the matmul
over tokens M in each dtype (bf16, fp16 or fp32 as given; fp8 where the GPU has it: compute capability >= 8.9,
through torch._scaled_mm with unit scales and M padded to 16, as the H100 GEMM table did), and attention of one
rank's heads over decode context and over prefill length. Timing as kernels/stack.py: calls on rotated copies
larger than 4x L2, captured in a CUDA graph on GPU, CUDA events around the replays; perf_counter on CPU.

    python -m tpplan.kernels.kernel_table --shapes 6144x4096,4096x4096 --tokens 1,16,256,4096 --dtypes bf16
"""

from __future__ import annotations

import argparse

import torch
import torch.distributed as dist
from tpplan.kernels.common import DTYPES, add_common_args, emit, environment, init_distributed, maybe_fail, shutdown
from tpplan.kernels.stack import Timing, time_matmul, time_step
from tpplan.kernels.timing import capture_for, l2_bytes, rotation_copies, timer_for

FP8_MIN_CAPABILITY = (8, 9)
"""torch._scaled_mm needs Ada (8.9) or Hopper (9.0) and later."""
FP8_MIN_ROWS = 16
"""_scaled_mm wants M a multiple of 16 (the H100 table padded M up to 16)."""


def has_fp8(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= FP8_MIN_CAPABILITY


def _fp8_matmul_s(m: int, n: int, k: int, timing: Timing, device: torch.device) -> dict:
    rows = -(-max(m, FP8_MIN_ROWS) // FP8_MIN_ROWS) * FP8_MIN_ROWS
    x = torch.randn(rows, k, device=device).to(torch.float8_e4m3fn)
    copies = rotation_copies(n * k, cache_bytes=timing.cache_bytes, floor=1)
    weights = [torch.randn(n, k, device=device).to(torch.float8_e4m3fn) for _ in range(copies)]
    one = torch.ones((), device=device)

    def calls() -> None:
        for w in weights:
            torch._scaled_mm(x, w.T, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)

    step = time_step(calls, timing)
    return {**step, **{k_: step[k_] / copies for k_ in ("best_s", "median_s", "p25_s")}, "copies": copies}


def matmul_items(args, timing: Timing, device: torch.device) -> list[dict]:
    items = []
    for shape in args.shapes.split(","):
        n, k = (int(v) for v in shape.split("x"))
        for dtype in args.dtypes.split(","):
            if dtype == "fp8" and not has_fp8(device):
                continue
            w = None if dtype == "fp8" else torch.randn(n, k, dtype=DTYPES[dtype], device=device)
            for m in args.tokens:
                if w is None:
                    stats = _fp8_matmul_s(m, n, k, timing, device)
                else:
                    stats = time_matmul(torch.randn(m, k, dtype=w.dtype, device=device), w, timing, min_copies=1)
                items.append({"kind": "kernel_matmul", "n": n, "k": k, "m": m, "dtype": dtype,
                              "measured_s": stats["best_s"], **stats})
    return items


def attention_items(args, timing: Timing, device: torch.device) -> list[dict]:
    """Per head layout of one rank (heads x KV heads): decode, `batch` queries of one token against `length`
    cached tokens; prefill, one causal prompt. KV caches rotated through copies larger than 4x L2."""
    dtype_name = args.dtypes.split(",")[0]
    dtype, items = DTYPES[dtype_name], []
    for layout in args.head_layouts.split(","):
        heads, kv_heads = (int(v) for v in layout.split("x"))
        cases = [("decode", args.batch, 1, c) for c in args.contexts] + [("prefill", 1, n, n) for n in args.lengths]
        for mode, batch, q_len, length in cases:
            kv_shape = (batch, kv_heads, length, args.head_dim)
            kv_bytes = 2 * batch * kv_heads * length * args.head_dim * torch.tensor([], dtype=dtype).element_size()
            copies = rotation_copies(kv_bytes, cache_bytes=timing.cache_bytes, floor=1)
            q = torch.randn(batch, heads, q_len, args.head_dim, dtype=dtype, device=device)
            kvs = [tuple(torch.randn(kv_shape, dtype=dtype, device=device) for _ in "kv") for _ in range(copies)]

            def calls(q=q, kvs=kvs, causal=mode == "prefill") -> None:
                for k, v in kvs:
                    torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)

            step = time_step(calls, timing)
            stats = {**step, **{key: step[key] / copies for key in ("best_s", "median_s", "p25_s")}}
            items.append({"kind": "kernel_attention", "mode": mode, "heads": heads, "kv_heads": kv_heads,
                          "head_dim": args.head_dim, "batch": batch, "length": length, "dtype": dtype_name,
                          "copies": copies, "measured_s": stats["best_s"], **stats})
    return items


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ints = lambda v: [int(x) for x in v.split(",") if x]  # noqa: E731
    p.add_argument("--shapes", required=True, help="comma-separated NxK weight shapes")
    p.add_argument("--tokens", type=ints, required=True, help="M values")
    p.add_argument("--dtypes", default="bf16", help="comma-separated; fp8 is skipped where the GPU lacks it")
    p.add_argument("--head-layouts", required=True, help="comma-separated HEADSxKV_HEADS of one rank")
    p.add_argument("--head-dim", type=int, required=True)
    p.add_argument("--batch", type=int, default=1, help="decode sequences")
    p.add_argument("--contexts", type=ints, default=[256], help="decode context lengths")
    p.add_argument("--lengths", type=ints, default=[256], help="prefill prompt lengths")
    p.add_argument("--repeats", type=int, default=5)
    add_common_args(p, dtype="bf16", warmup=3, iters=10)
    args = p.parse_args(argv)
    rank, _world, device = init_distributed(backend=args.backend, timeout_s=args.timeout, threads=args.threads)
    maybe_fail(rank, args.fail_rank)
    timing = Timing(timer=timer_for(device), capture=capture_for(device), cache_bytes=l2_bytes(device),
                    repeats=args.repeats, replays=args.iters, warmup=args.warmup)
    items = matmul_items(args, timing, device) + attention_items(args, timing, device)
    if rank == 0:
        emit({"workload": "kernel_table", "environment": environment(device), "fp8": has_fp8(device),
              "items": items}, args.out)
    dist.barrier()
    shutdown()


if __name__ == "__main__":
    main()

"""Workload 1: all-reduce / all-gather / reduce-scatter over a size sweep, per TP group size.

nccl-tests conventions (NVIDIA/nccl-tests doc/PERFORMANCE.md): S is the buffer each rank contributes to
all-reduce and the full gathered buffer for all-gather / reduce-scatter; algbw = S / t; busbw = algbw x
2(n-1)/n (all-reduce) or (n-1)/n (the others). A warm pass over every size, then windows of back-to-back calls
between two clock readings (CUDA events on GPU); the slowest rank's best window. Every result is checked exactly:
rank r contributes the value r+1, so sums are small integers (exact in bf16, fp16 and fp32).

    python -m tpplan.kernels.collectives --ops allreduce --min-bytes 4096 --max-bytes 67108864 --factor 4
"""

from __future__ import annotations

import argparse

import torch
import torch.distributed as dist
from tpplan.kernels.common import (
    DTYPES,
    add_common_args,
    emit,
    environment,
    init_distributed,
    max_across_ranks,
    maybe_fail,
    shutdown,
)
from tpplan.kernels.timing import Timer, best_mean_s, timer_for

WARM_PASSES = 2
"""Untimed passes over the whole size sweep before timing (see warm_up)."""

FACTORS = {"allreduce": lambda n: 2 * (n - 1) / n, "allgather": lambda n: (n - 1) / n,
           "reducescatter": lambda n: (n - 1) / n}


def sizes(min_bytes: int, max_bytes: int, factor: int) -> list[int]:
    out, s = [], min_bytes
    while s <= max_bytes:
        out.append(s)
        s *= factor
    return out


def _buffers(op: str, n_bytes: int, t: int, dtype: torch.dtype, device: torch.device):
    elem = torch.tensor([], dtype=dtype).element_size()
    n = max(t, n_bytes // elem // t * t)  # divisible by t so shards are equal
    if op == "allreduce":
        return torch.empty(n, dtype=dtype, device=device), None
    return torch.empty(n // t, dtype=dtype, device=device), torch.empty(n, dtype=dtype, device=device)


def _run_once(op: str, send, recv, group) -> None:
    if op == "allreduce":
        dist.all_reduce(send, group=group)
    elif op == "allgather":
        dist.all_gather_into_tensor(recv, send, group=group)
    else:
        dist.reduce_scatter_tensor(send, recv, group=group)


def _check(op: str, send, recv, t: int) -> bool:
    """Exact check of the last result: rank r contributed r + 1 everywhere."""
    if op in ("allreduce", "reducescatter"):  # every element is the sum 1 + 2 + ... + t
        return bool(torch.all(send == t * (t + 1) // 2))
    chunks = recv.view(t, -1)
    return all(bool(torch.all(chunks[r] == r + 1)) for r in range(t))


def measure_sweep(op: str, all_sizes: list[int], t: int, group, rank: int, args, device, timer: Timer) -> list[dict]:
    """Windows of `args.iters` back-to-back calls between two clock readings (CUDA events on GPU), interleaved
    over the sizes (window 1 of every size, then window 2, ...) so that a slow moment of a shared machine does
    not land on one size; the best window's mean per call, the slowest rank's. Correctness is checked on a
    refilled buffer after timing (back-to-back sums grow, which does not change the time)."""
    dtype = DTYPES[args.dtype]
    bufs = [_buffers(op, n, t, dtype, device) for n in all_sizes]
    calls = [lambda a=a, b=b: _run_once(op, a, b, group) for a, b in bufs]
    windows: list[list[float]] = [[] for _ in all_sizes]
    dist.barrier(group=group)  # line the ranks up outside the timed region; the calls then pace each other
    for _ in range(args.repeats):
        for i, call in enumerate(calls):
            windows[i].append(best_mean_s(call, timer, calls=args.iters, repeats=1, warmup=args.warmup)["best_s"])
    return [_item(op, t, bufs[i], sorted(windows[i]), rank, group, args, device, timer, calls[i])
            for i in range(len(all_sizes))]


def _item(op, t, bufs, windows, rank, group, args, device, timer: Timer, call) -> dict:
    a, b = bufs
    stats = {"best_s": windows[0], "median_s": windows[len(windows) // 2], "p25_s": windows[len(windows) // 4]}
    worst = dict(zip(stats, max_across_ranks(list(stats.values()), group, device=device), strict=True))
    (b if op == "reducescatter" else a).fill_(rank + 1)  # reduce_scatter_tensor(output=a, input=b)
    call()
    ok = _check(op, a, b, t)
    bytes_total = (a.numel() * a.element_size()) if op == "allreduce" else b.numel() * b.element_size()
    algbw = bytes_total / worst["best_s"]
    return {"kind": op, "tp": t, "bytes": bytes_total, "dtype": args.dtype, "iters": args.iters,
            "windows": args.repeats, **worst, "measured_s": worst["best_s"], "timing": f"back_to_back+{timer.method}",
            "algbw_bytes_per_s": algbw, "busbw_bytes_per_s": algbw * FACTORS[op](t), "correct": ok}


def warm_up(ops: list[str], all_sizes: list[int], t: int, group, args, device) -> None:
    """Every op at every size WARM_PASSES times before anything is timed: the first calls of a group set up
    connections and channels, which otherwise lands on the smallest size (4 KiB read slower than 16 KiB)."""
    for _ in range(WARM_PASSES):
        for op in ops:
            for n_bytes in all_sizes:
                a, b = _buffers(op, n_bytes, t, DTYPES[args.dtype], device)
                _run_once(op, a, b, group)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ops", default="allreduce,allgather,reducescatter")
    p.add_argument("--min-bytes", type=int, default=4096)
    p.add_argument("--max-bytes", type=int, default=64 * 2**20)
    p.add_argument("--factor", type=int, default=4)
    p.add_argument("--group-sizes", default="", help="comma-separated; default 2, 4, ... up to the world size")
    add_common_args(p, dtype="bf16", warmup=5, iters=20)
    p.add_argument("--repeats", type=int, default=5, help="timed windows of --iters calls; the best is kept")
    args = p.parse_args(argv)
    rank, world, device = init_distributed(backend=args.backend, timeout_s=args.timeout, threads=args.threads)
    maybe_fail(rank, args.fail_rank)
    # no group of 1: engines run no collective at tp 1
    groups = [int(x) for x in args.group_sizes.split(",") if x] or [t for t in (2, 4, 8, 16, 32, 64, 128)
                                                                     if t <= world]
    items, timer, ops = [], timer_for(device), args.ops.split(",")
    all_sizes = sizes(args.min_bytes, args.max_bytes, args.factor)
    for t in groups:
        group = dist.new_group(list(range(t)))  # every rank must call new_group, members or not
        if rank < t:
            warm_up(ops, all_sizes, t, group, args, device)
            items += [it for op in ops for it in measure_sweep(op, all_sizes, t, group, rank, args, device, timer)]
        dist.barrier()
    if rank == 0:
        emit({"workload": "collectives", "environment": environment(device), "items": items}, args.out)
    shutdown()


if __name__ == "__main__":
    main()

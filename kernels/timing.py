"""How a workload times what it runs: injectable timers and graph capture, so the logic runs on CPU too.

GPU (STYLE.md "Kernels"; DESIGN.md §5): decode is a stack of layers captured once in a CUDA graph and replayed
with CUDA events around the replays; a kernel item is many back-to-back calls between two CUDA events. CPU:
the same loops around `time.perf_counter`. Every item says which method timed it (`timing`).

    timer = timer_for(device)          # CudaEventTimer on a CUDA device, PerfCounterTimer otherwise
    graph = capture_for(device)        # CudaGraphCapture on CUDA, EagerCapture otherwise
    replay = graph.capture(step)       # a callable that re-runs what `step` launched
    seconds_per_call = timer.per_call_s(replay, calls=10)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import torch

from tpplan.units import MS


class Timer(Protocol):
    method: str
    """Named in every item's `timing` field."""

    def per_call_s(self, fn: Callable[[], object], *, calls: int) -> float:
        """Seconds per call of `fn`, from `calls` back-to-back calls between two clock readings."""


class GraphCapture(Protocol):
    method: str

    def capture(self, fn: Callable[[], object]) -> Callable[[], object]:
        """A callable that replays the work `fn` does (the same input and output buffers)."""


class PerfCounterTimer:
    """CPU: perf_counter before and after the calls (the calls are synchronous on CPU)."""

    method = "perf_counter"

    def per_call_s(self, fn: Callable[[], object], *, calls: int) -> float:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - t0) / calls


class CudaEventTimer:
    """GPU: one CUDA event before the first call and one after the last; the host only enqueues, so launch
    gaps are hidden as long as the GPU work of a call outlasts its launch (true for a graph replay)."""

    method = "cuda_events"

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def per_call_s(self, fn: Callable[[], object], *, calls: int) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(self.device)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) * MS / calls  # CUDA events report milliseconds


class EagerCapture:
    """CPU (and gloo): nothing to capture; the replay is the eager call."""

    method = "eager"

    def capture(self, fn: Callable[[], object]) -> Callable[[], object]:
        return fn


class CudaGraphCapture:
    """Capture `fn` into a CUDA graph after WARMUP_CALLS eager calls on a side stream (as torch documents for
    torch.cuda.graph: allocations and lazy initialisation must happen before capture)."""

    method = "cuda_graph"
    WARMUP_CALLS = 3

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def capture(self, fn: Callable[[], object]) -> Callable[[], object]:
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(self.WARMUP_CALLS):
                fn()
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        return graph.replay


def timer_for(device: torch.device) -> Timer:
    return CudaEventTimer(device) if device.type == "cuda" else PerfCounterTimer()


def capture_for(device: torch.device) -> GraphCapture:
    return CudaGraphCapture(device) if device.type == "cuda" else EagerCapture()


def method_name(capture: GraphCapture | None, timer: Timer) -> str:
    """The `timing` field: 'cuda_graph+cuda_events' on GPU, 'eager+perf_counter' on CPU."""
    return f"{capture.method if capture else 'eager'}+{timer.method}"


def best_mean_s(fn: Callable[[], object], timer: Timer, *, calls: int, repeats: int, warmup: int) -> dict[str, float]:
    """`warmup` untimed calls, then `repeats` windows of `calls` calls; the best window's mean is the kernel's
    time (interference only adds time), the median window is reported too."""
    for _ in range(warmup):
        fn()
    windows = sorted(timer.per_call_s(fn, calls=calls) for _ in range(repeats))
    return {"best_s": windows[0], "median_s": windows[len(windows) // 2], "p25_s": windows[len(windows) // 4],
            "windows": repeats, "calls_per_window": calls}


def rotation_copies(weight_bytes: int, *, cache_bytes: int, floor: int = 1) -> int:
    """Copies of a weight to rotate through so that together they exceed 4x the last-level cache (as the H100
    GEMM table did: shared/reference/gpu/README.md), so each call streams its weight from memory."""
    need = -(-4 * cache_bytes // max(1, weight_bytes))
    return max(floor, need)


def l2_bytes(device: torch.device) -> int:
    """The GPU's L2 size (torch reports it); 0 on CPU, where weights are not rotated."""
    if device.type != "cuda":
        return 0
    return int(torch.cuda.get_device_properties(device).L2_cache_size)

"""Engine-faithful timing of a sharded layer and of its matmuls (used by tp_layer).

A step is a stack of `layers` distinct layers, each with its own weights and KV cache (so nothing is served
from L2), run back to back on one input buffer; on GPU it is captured once in a CUDA graph and replayed
between two CUDA events, as vLLM and SGLang replay decode (shared/reference/gpu/README.md: eager launches
inflated an 8B layer from ~205 us to 576-940 us). Collectives go inside the graph where NCCL allows it;
when capture fails the step is timed eagerly and the item says so. Matmul items: `copies` calls, each on a
different copy of the weight, captured together and replayed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from tpplan.kernels.timing import GraphCapture, Timer, best_mean_s, method_name, rotation_copies

REPEATS = 5
"""Timed windows per item; the best window's mean is kept (the reference GEMM table: best of 5 replays)."""
REPLAYS_PER_WINDOW = 10
"""Replays per window (the reference decode rows: 3 x 10 replays)."""
WARMUP_REPLAYS = 3


@dataclass(frozen=True, kw_only=True)
class Timing:
    """How to time: the injected timer and capture, and how many distinct layers make a step."""

    timer: Timer
    capture: GraphCapture
    cache_bytes: int
    """Last-level cache the weights must not fit in (the GPU's L2; 0 on CPU)."""
    repeats: int = REPEATS
    replays: int = REPLAYS_PER_WINDOW
    warmup: int = WARMUP_REPLAYS


def stack_layers(layer_bytes: int, *, cache_bytes: int, minimum: int) -> int:
    """Distinct layers in a timed step: at least `minimum`, and together over 4x the cache."""
    return rotation_copies(layer_bytes, cache_bytes=cache_bytes, floor=minimum)


def time_step(step: Callable[[], object], timing: Timing) -> dict:
    """Capture `step` (a stack of layers) and time its replays; falls back to eager calls if capture fails
    (a backend whose collectives cannot be captured), and says which method timed it."""
    capture = timing.capture
    try:
        replay = capture.capture(step)
    except RuntimeError as exc:  # e.g. a collective the backend cannot record into a graph
        replay, capture, why = step, None, f"graph capture failed ({str(exc).splitlines()[0][:120]}); eager"
    else:
        why = None
    stats = best_mean_s(replay, timing.timer, calls=timing.replays, repeats=timing.repeats, warmup=timing.warmup)
    out = {**stats, "timing": method_name(capture, timing.timer)}
    if why:
        out["timing_note"] = why
    return out


def time_matmul(x: torch.Tensor, weight: torch.Tensor, timing: Timing, *, min_copies: int) -> dict:
    """Seconds per `x @ weight.T`, weights rotated through copies that together exceed 4x the cache; all calls
    captured into one graph (on GPU) and replayed. Returns the per-call statistics and the copies used."""
    n_bytes = weight.numel() * weight.element_size()
    copies = rotation_copies(n_bytes, cache_bytes=timing.cache_bytes, floor=min_copies)
    weights = [weight.clone() for _ in range(copies)]
    outs = [torch.empty(x.shape[0], weight.shape[0], dtype=x.dtype, device=x.device) for _ in range(copies)]

    def calls() -> None:
        for w, o in zip(weights, outs, strict=True):
            torch.matmul(x, w.T, out=o)

    step = time_step(calls, timing)
    per_call = {k: step[k] / copies for k in ("best_s", "median_s", "p25_s")}
    return {**step, **per_call, "copies": copies, "timing": step["timing"].replace("+", "+back_to_back+", 1)}

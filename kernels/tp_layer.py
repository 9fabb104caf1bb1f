"""Workload 2: one transformer layer at a model's shapes, sharded for TP degree t (Megatron-style).

q/k/v and gate/up are column-parallel (query heads split t ways; KV heads split while kv >= t, otherwise each
rank keeps kv head rank * kv // t: vLLM's replication rule), o and down are row-parallel, and each row-parallel
output is all-reduced (2 all-reduces per layer). The sharded output is checked against the unsharded layer
computed on every rank from the same seed. Timed (kernels/stack.py: a CUDA-graph replay of several distinct
layers on GPU): the layer, each shard matmul with every rank running, and the layer's all-reduce (not at tp 1),
for decode (B sequences attending to a C-token cache) and prefill (one causal chunk). With --emulate-tp t one
process runs rank 0's shard of a TP-t layer without its all-reduces: the compute half of degree t on one GPU.

    python -m tpplan.kernels.tp_layer --hidden 4096 --heads 32 --kv-heads 8 --head-dim 128 --intermediate 14336
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass

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
from tpplan.kernels.stack import REPEATS, REPLAYS_PER_WINDOW, Timing, stack_layers, time_matmul, time_step
from tpplan.kernels.timing import capture_for, l2_bytes, timer_for

AllReduce = Callable[[torch.Tensor], None]


@dataclass(frozen=True)
class Shape:
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    gated: bool = True


def full_weights(s: Shape, *, seed: int, dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
    """Unsharded weights (out x in, as nn.Linear), scaled 1/sqrt(fan_in) so activations stay O(1)."""
    g = torch.Generator().manual_seed(seed)

    def w(out_f: int, in_f: int) -> torch.Tensor:
        return (torch.randn(out_f, in_f, generator=g) / math.sqrt(in_f)).to(dtype=dtype, device=device)

    h, a, k, d, f = s.hidden, s.heads, s.kv_heads, s.head_dim, s.intermediate
    out = {"q": w(a * d, h), "k": w(k * d, h), "v": w(k * d, h), "o": w(h, a * d),
           "up": w(f, h), "down": w(h, f), "norm": torch.ones(h, dtype=dtype, device=device)}
    if s.gated:
        out["gate"] = w(f, h)
    return out


def kv_heads_for_rank(s: Shape, rank: int, tp: int) -> range:
    """KV heads rank `rank` holds: a contiguous split when kv >= t, else one replicated head."""
    if s.kv_heads >= tp:
        per = s.kv_heads // tp
        return range(rank * per, (rank + 1) * per)
    head = rank * s.kv_heads // tp
    return range(head, head + 1)


def shard(full: dict[str, torch.Tensor], s: Shape, *, rank: int, tp: int) -> dict[str, torch.Tensor]:
    """Rank `rank`'s shard: column-parallel rows of q/k/v/gate/up, row-parallel columns of o/down."""
    d, a_local, f_local = s.head_dim, s.heads // tp, s.intermediate // tp
    q_rows = slice(rank * a_local * d, (rank + 1) * a_local * d)
    kv = kv_heads_for_rank(s, rank, tp)
    kv_rows = slice(kv.start * d, kv.stop * d)
    f_rows = slice(rank * f_local, (rank + 1) * f_local)
    out = {"q": full["q"][q_rows], "k": full["k"][kv_rows], "v": full["v"][kv_rows], "o": full["o"][:, q_rows],
           "up": full["up"][f_rows], "down": full["down"][:, f_rows], "norm": full["norm"]}
    if "gate" in full:
        out["gate"] = full["gate"][f_rows]
    return {k: v.contiguous() for k, v in out.items()}


def _rms_norm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-5).to(x.dtype) * w


def _attention(q, k, v, *, batch: int, cache: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """q: [batch, q_len, heads, d]; k/v: [batch, q_len, kv_heads, d]. Decode writes the new token into the last
    slot of a preallocated [batch, C+1, kv_heads, d] cache and attends to all of it, as serving engines do;
    prefill is causal over the chunk. GQA through SDPA's enable_gqa (no copies of KV heads)."""
    if cache is not None:
        cache[0][:, -1:].copy_(k)
        cache[1][:, -1:].copy_(v)
        k, v = cache
    out = torch.nn.functional.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                           is_causal=cache is None, enable_gqa=True)
    return out.transpose(1, 2).reshape(batch * q.shape[1], -1)


def forward(w: dict[str, torch.Tensor], x: torch.Tensor, s: Shape, *, allreduce: AllReduce, batch: int,
            cache: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """One layer on one rank. x: [batch * q_len, hidden] (replicated). Calls `allreduce` twice."""
    d = s.head_dim
    q_len = x.shape[0] // batch
    h = _rms_norm(x, w["norm"])
    q = (h @ w["q"].T).view(batch, q_len, -1, d)
    k = (h @ w["k"].T).view(batch, q_len, -1, d)
    v = (h @ w["v"].T).view(batch, q_len, -1, d)
    attn = _attention(q, k, v, batch=batch, cache=cache)
    o = attn @ w["o"].T
    allreduce(o)  # row-parallel output projection
    x = x + o
    h = _rms_norm(x, w["norm"])
    up = h @ w["up"].T
    act = torch.nn.functional.silu(h @ w["gate"].T) * up if "gate" in w else torch.nn.functional.gelu(up)
    down = act @ w["down"].T
    allreduce(down)  # row-parallel down projection
    return x + down


def make_cache(s: Shape, *, batch: int, context: int, seed: int, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """[batch, context + 1, kv_heads, head_dim] K and V: `context` cached tokens plus the slot decode writes."""
    g = torch.Generator().manual_seed(seed + 1)
    shape = (batch, context + 1, s.kv_heads, s.head_dim)
    return (torch.randn(shape, generator=g).to(dtype=dtype, device=device),
            torch.randn(shape, generator=g).to(dtype=dtype, device=device))


def local_cache(cache, s: Shape, *, rank: int, tp: int):
    heads = kv_heads_for_rank(s, rank, tp)
    return tuple(c[:, :, heads.start:heads.stop].contiguous() for c in cache)


def random_shard(s: Shape, *, tp: int, dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
    """Rank 0's shard of a TP-`tp` layer drawn directly on the device (timing only: the values do not matter,
    the shapes do); used for the extra layers of a timed stack and for emulation without the full layer."""
    d, h = s.head_dim, s.hidden
    a_local, kv_local, f_local = s.heads // tp, len(kv_heads_for_rank(s, 0, tp)), s.intermediate // tp

    def w(out_f: int, in_f: int) -> torch.Tensor:
        return torch.randn(out_f, in_f, dtype=dtype, device=device) / math.sqrt(in_f)

    out = {"q": w(a_local * d, h), "k": w(kv_local * d, h), "v": w(kv_local * d, h), "o": w(h, a_local * d),
           "up": w(f_local, h), "down": w(h, f_local), "norm": torch.ones(h, dtype=dtype, device=device)}
    if s.gated:
        out["gate"] = w(f_local, h)
    return out


def _dist_allreduce(t: torch.Tensor) -> None:
    dist.all_reduce(t)


def _no_allreduce(_t: torch.Tensor) -> None:
    """The unsharded reference, or an emulated shard (compute only), has nothing to reduce."""


def _max_over_ranks(stats: dict, device, *, divide: int = 1) -> dict:
    """The slowest rank's statistics (a TP step is as slow as its slowest rank), per `divide` units."""
    keys = ("best_s", "median_s", "p25_s")
    worst = max_across_ranks([stats[k] for k in keys], device=device)
    return {**stats, **{k: v / divide for k, v in zip(keys, worst, strict=True)}}


def _matmul_items(w, s: Shape, tokens: int, tp: int, device, dtype, mode: str, timing: Timing) -> list[dict]:
    x = torch.randn(tokens, s.hidden, dtype=dtype, device=device)
    act = torch.randn(tokens, s.intermediate // tp, dtype=dtype, device=device)
    attn = torch.randn(tokens, w["o"].shape[1], dtype=dtype, device=device)
    qkv = torch.cat([w["q"], w["k"], w["v"]])
    gate_up = torch.cat([w["gate"], w["up"]]) if "gate" in w else w["up"]
    cases = {"qkv": (x, qkv), "o": (attn, w["o"]), "gate_up": (x, gate_up), "down": (act, w["down"])}
    items = []
    for name, (inp, weight) in cases.items():
        stats = _max_over_ranks(time_matmul(inp, weight, timing, min_copies=1), device)
        n_out, n_in = weight.shape
        items.append({"kind": "matmul", "name": name, "mode": mode, "tp": tp, "tokens": tokens, "m": tokens,
                      "n": n_out, "k": n_in, "flops": 2 * tokens * n_out * n_in,
                      "bytes": weight.numel() * weight.element_size(), "measured_s": stats["best_s"], **stats})
    return items


def _check(full, w, s: Shape, *, mode: str, tokens: int, context: int, args, dtype, device) -> dict:
    """The sharded layer (with its all-reduces) against the unsharded one, on the same input and cache."""
    rank, tp = dist.get_rank(), dist.get_world_size()
    batch = tokens if mode == "decode" else 1
    cache = make_cache(s, batch=batch, context=context, seed=args.seed, dtype=dtype, device=device) \
        if mode == "decode" else None
    lcache = local_cache(cache, s, rank=rank, tp=tp) if cache else None
    x = torch.randn(tokens, s.hidden, generator=torch.Generator().manual_seed(args.seed + tokens)).to(
        dtype=dtype, device=device)
    out = forward(w, x, s, allreduce=_dist_allreduce, batch=batch, cache=lcache)
    ref = forward(full, x, s, allreduce=_no_allreduce, batch=batch, cache=cache)
    err = (out.float() - ref.float()).abs().max().item()
    return {"mode": mode, "tokens": tokens, "max_abs_error": err,
            "passed": err <= args.tolerance * max(1.0, ref.float().abs().max().item())}


def _layer_item(stack: list[dict], s: Shape, *, mode: str, tokens: int, tp: int, args, dtype, device,
                allreduce: AllReduce, timing: Timing) -> dict:
    """Per-layer time of a step through `stack` (distinct layers, a KV cache of their own each)."""
    batch = tokens if mode == "decode" else 1
    context = args.context if mode == "decode" else tokens
    kv_shape = (batch, args.context + 1, len(kv_heads_for_rank(s, 0, tp)), s.head_dim)
    caches = [(torch.randn(kv_shape, dtype=dtype, device=device), torch.randn(kv_shape, dtype=dtype, device=device))
              if mode == "decode" else None for _ in stack]
    x = torch.randn(tokens, s.hidden, dtype=dtype, device=device)
    out = torch.empty_like(x)

    def step() -> None:
        h = x
        for w, cache in zip(stack, caches, strict=True):
            h = forward(w, h, s, allreduce=allreduce, batch=batch, cache=cache)
        out.copy_(h)

    stats = _max_over_ranks(time_step(step, timing), device, divide=len(stack))
    return {"kind": "layer", "mode": mode, "tp": tp, "tokens": tokens, "batch": batch, "context": context,
            "layers_timed": len(stack), "measured_s": stats["best_s"], **stats}


def _allreduce_item(s: Shape, *, mode: str, tokens: int, tp: int, dtype, device, timing: Timing) -> dict:
    buf = torch.empty(tokens, s.hidden, dtype=dtype, device=device)
    stats = _max_over_ranks(time_step(lambda: dist.all_reduce(buf), timing), device)
    return {"kind": "allreduce", "source": "layer", "mode": mode, "tp": tp, "tokens": tokens,
            "bytes": buf.numel() * buf.element_size(), "measured_s": stats["best_s"], **stats}


def _timing(args, device) -> Timing:
    return Timing(timer=timer_for(device), capture=capture_for(device), cache_bytes=l2_bytes(device),
                  repeats=args.repeats, replays=args.iters, warmup=args.warmup)


def run(args) -> None:
    rank, world, device = init_distributed(backend=args.backend, timeout_s=args.timeout, threads=args.threads)
    maybe_fail(rank, args.fail_rank)
    emulate = args.emulate_tp
    if emulate and world != 1:
        raise SystemExit(f"--emulate-tp runs rank 0's shard on one process; got a world of {world}")
    tp = emulate or world
    dtype, timing = DTYPES[args.dtype], _timing(args, device)
    s = Shape(args.hidden, args.heads, args.kv_heads, args.head_dim, args.intermediate, not args.no_gate)
    checks, base = [], torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    if not emulate:  # numerics: the sharded layer against the unsharded one (emulation has no peers to sum)
        full = full_weights(s, seed=args.seed, dtype=dtype, device=device)
        w0 = shard(full, s, rank=rank, tp=tp)
        for mode, tokens_list in (("decode", args.decode_batch), ("prefill", args.prefill_tokens)):
            checks += [_check(full, w0, s, mode=mode, tokens=n, context=args.context, args=args, dtype=dtype,
                              device=device) for n in tokens_list]
        del full
    w0 = random_shard(s, tp=tp, dtype=dtype, device=device) if emulate else w0
    shard_bytes = sum(t.numel() * t.element_size() for t in w0.values())
    memory = {"kind": "memory", "tp": tp, "what": "sharded layer weights", "measured_bytes": shard_bytes,
              "allocator": "shard tensor sizes (CPU)"}
    if device.type == "cuda":
        memory.update(measured_bytes=torch.cuda.memory_allocated(device) - base,
                      allocator="torch.cuda.memory_allocated")
    n_layers = stack_layers(shard_bytes, cache_bytes=timing.cache_bytes, minimum=args.layers)
    stack = [w0] + [random_shard(s, tp=tp, dtype=dtype, device=device) for _ in range(n_layers - 1)]
    allreduce = _no_allreduce if emulate else _dist_allreduce
    items = []
    for mode, tokens_list in (("decode", args.decode_batch), ("prefill", args.prefill_tokens)):
        for tokens in tokens_list:
            items.append(_layer_item(stack, s, mode=mode, tokens=tokens, tp=tp, args=args, dtype=dtype,
                                     device=device, allreduce=allreduce, timing=timing))
            if tp > 1 and not emulate:  # engines run no all-reduce at tp 1
                items.append(_allreduce_item(s, mode=mode, tokens=tokens, tp=tp, dtype=dtype, device=device,
                                             timing=timing))
            items += _matmul_items(w0, s, tokens, tp, device, dtype, mode, timing)
    items.append(memory)
    for it in items:
        it.update(emulated=bool(emulate), compute_only=bool(emulate) or tp == 1)
    if rank == 0:
        emit({"workload": "tp_layer", "environment": environment(device), "shape": s.__dict__, "dtype": args.dtype,
              "emulate_tp": emulate, "checks": checks, "items": items}, args.out)
    shutdown()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("hidden", "heads", "kv-heads", "head-dim", "intermediate"):
        p.add_argument(f"--{name}", type=int, required=True)
    p.add_argument("--no-gate", action="store_true", help="2-matrix GELU MLP instead of SwiGLU")
    p.add_argument("--decode-batch", type=lambda v: [int(x) for x in v.split(",")], default=[1, 8])
    p.add_argument("--prefill-tokens", type=lambda v: [int(x) for x in v.split(",")], default=[128])
    p.add_argument("--context", type=int, default=256, help="cached tokens each decode sequence attends to")
    add_common_args(p, dtype="bf16", warmup=3, iters=REPLAYS_PER_WINDOW)
    p.add_argument("--repeats", type=int, default=REPEATS, help="timed windows of --iters replays; best kept")
    p.add_argument("--layers", type=int, default=4, help="at least this many distinct layers in a timed step")
    p.add_argument("--emulate-tp", type=int, default=None,
                   help="one process runs rank 0's shard of a TP-t layer, compute only (no all-reduce)")
    p.add_argument("--tolerance", type=float, default=2e-2, help="max |sharded - unsharded| / max |unsharded|")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> None:
    run(parser().parse_args(argv))


if __name__ == "__main__":
    main()

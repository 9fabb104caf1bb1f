"""The rules the torch kernels re-implement (they may import only torch and tpplan.units) are the library's rules.

kernels/tp_layer.py shards KV heads itself and kernels/collectives.py computes busbw itself; if either drifts
from tpplan.models.engines / tpplan.cost.collectives, `tpplan measure` would time a different layer or report a
different bandwidth than the cost model predicts.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from tpplan.kernels.collectives import FACTORS  # noqa: E402
from tpplan.kernels.tp_layer import Shape, kv_heads_for_rank  # noqa: E402

from tpplan.cost.collectives import bus_factor  # noqa: E402
from tpplan.models.engines import kv_heads_per_gpu  # noqa: E402

KV_HEADS = [1, 2, 3, 4, 5, 6, 8, 12, 16]
DEGREES = [1, 2, 3, 4, 5, 6, 8, 12, 16]


@pytest.mark.parametrize("kv", KV_HEADS)
def test_kernel_kv_sharding_matches_the_library(kv):
    for t in DEGREES:
        if kv % t and t % kv:
            continue  # not a degree vLLM accepts for this model
        shape = Shape(hidden=64 * kv, heads=kv * 16, kv_heads=kv, head_dim=64, intermediate=256)
        held = [kv_heads_for_rank(shape, r, t) for r in range(t)]
        assert all(len(h) == kv_heads_per_gpu(kv, tp=t, engine="vllm") for h in held), (kv, t)
        covered = set().union(*(set(h) for h in held))
        assert covered == set(range(kv)), (kv, t)  # every head on some rank
        if t > kv:  # replicated: each head on exactly t / kv ranks
            assert all(sum(h.start == head for h in held) == t // kv for head in range(kv))


@pytest.mark.parametrize("op,kind", [("allreduce", "allreduce"), ("allgather", "allgather"),
                                     ("reducescatter", "reducescatter")])
def test_kernel_bus_factors_match_the_cost_model(op, kind):
    for t in (2, 3, 4, 6, 8, 16, 72):
        assert FACTORS[op](t) == pytest.approx(bus_factor(kind, t))

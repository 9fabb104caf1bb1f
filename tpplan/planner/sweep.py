"""`tpplan sweep`: the cartesian product of models x hardware x GPUs x batch x input x output x dtype.

Per (model, hardware, dtype, GPUs) the candidates' memory and coefficients are computed once (scalars);
latency and throughput are then evaluated with numpy over the whole batch x input x output grid through the
same cost functions `recommend` uses (tpplan.cost.step accepts arrays). Rows whose batch exceeds the KV capacity,
or whose layout is infeasible, stay in the table with feasible = False and a reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tpplan.cost.step import coefficients, decode_step_s, prefill_s
from tpplan.models.spec import ModelSpec
from tpplan.planner.candidates import fill_memory, new_candidate
from tpplan.planner.plan import candidate_shapes
from tpplan.planner.workload import Workload


@dataclass(frozen=True, slots=True)
class SweepStats:
    rows: int
    evaluate_s: float
    """Seconds spent in the vectorised cost evaluation (the candidate evaluations/s figure)."""
    total_s: float


def _grid(batches, inputs, outputs):
    import numpy as np

    b, i, o = np.meshgrid(np.asarray(batches, float), np.asarray(inputs, float), np.asarray(outputs, float),
                          indexing="ij")
    return b.ravel(), i.ravel(), o.ravel()


def _evaluate_group(spec: ModelSpec, profile, w: Workload, grid, frames: list, timer: list[float]) -> None:
    import numpy as np

    b, i, o = grid
    for tp, pp in candidate_shapes(spec, w):
        cand = new_candidate(spec, profile, w, tp=tp, pp=pp, replicas=w.gpus // (tp * pp))
        c = coefficients(spec, profile, tp=tp, pp=pp, dtype=w.dtype, kv_cache_dtype=w.kv_cache_dtype, engine=w.engine)
        fill_memory(cand, spec, profile, c, w)
        start = time.perf_counter()
        tpot, comm = decode_step_s(c, profile, batch=b, context_len=i + o / 2, sequence_parallel=w.sequence_parallel)
        ttft = prefill_s(c, profile, prompts=1.0, input_len=i)[0]
        prefill_b = prefill_s(c, profile, prompts=b, input_len=i)[0]
        fits = (b <= cand.max_concurrent_sequences) & cand.feasible
        per_replica = np.where(fits, b * o / (o * tpot + prefill_b), 0.0)
        timer[0] += time.perf_counter() - start
        reason = "; ".join(cand.reasons) if not cand.feasible else ""
        frames.append({"tp": tp, "pp": pp, "replicas": cand.replicas, "gpus_used": cand.gpus_used,
                       "batch": b.astype(int), "input_len": i.astype(int), "output_len": o.astype(int),
                       "feasible": fits,
                       "reason": np.where(fits, "", reason or f"batch exceeds KV capacity "
                                                              f"({cand.max_concurrent_sequences} sequences)"),
                       "weight_bytes_per_gpu": cand.weight_bytes_per_gpu,
                       "kv_cache_bytes_per_gpu": cand.kv_cache_bytes_per_gpu,
                       "max_concurrent_sequences": cand.max_concurrent_sequences, "ttft_s": ttft, "tpot_s": tpot,
                       "comm_share": comm / tpot, "output_tokens_per_s": per_replica * cand.replicas,
                       "output_tokens_per_s_per_gpu": per_replica * cand.replicas / cand.gpus_used})


def sweep(*, models: Sequence[str], hardware: Sequence[str], gpus: Sequence[int], batches: Sequence[int],
          input_lens: Sequence[int], output_lens: Sequence[int], dtypes: Sequence[str] = ("bf16",),
          engine: str = "vllm", kv_cache_dtype: str = "bf16", max_model_len: int | None = None,
          progress: Callable[[int, int], None] | None = None):
    """Return (DataFrame, SweepStats). One row per model x hardware x gpus x dtype x (tp, pp) x batch x in x out."""
    import pandas as pd

    from tpplan.errors import TpplanError
    from tpplan.hardware.loader import resolve_profile
    from tpplan.models.dtypes import normalize_dtype, resolve_dtype
    from tpplan.models.resolve import resolve_model

    start = time.perf_counter()
    specs = [resolve_model(m).spec for m in models]
    profiles = [resolve_profile(h)[0] for h in hardware]
    grid = _grid(batches, input_lens, output_lens)
    groups = [(s, p, d, g) for s in specs for p in profiles for d in dtypes for g in gpus]
    frames: list[pd.DataFrame] = []
    timer = [0.0]
    for n, (spec, profile, dtype, g) in enumerate(groups, 1):
        if g > profile.total_gpus:
            raise TpplanError(f"--gpus {g} exceeds profile {profile.name!r} ({profile.total_gpus} GPUs)")
        mml = max_model_len or min(spec.max_position_embeddings, max(input_lens) + max(output_lens))
        w = Workload(gpus=g, engine=engine, dtype=resolve_dtype(spec, dtype),
                     kv_cache_dtype=normalize_dtype(kv_cache_dtype, kind="kv"), max_model_len=mml)
        cols: list[dict] = []
        _evaluate_group(spec, profile, w, grid, cols, timer)
        for col in cols:
            frame = pd.DataFrame(col)
            frame.insert(0, "dtype", w.dtype)
            frame.insert(0, "gpus", g)
            frame.insert(0, "hardware", profile.name)
            frame.insert(0, "model", spec.name)
            frames.append(frame)
        if progress:
            progress(n, len(groups))
    df = pd.concat(frames, ignore_index=True)
    return df, SweepStats(rows=len(df), evaluate_s=timer[0], total_s=time.perf_counter() - start)

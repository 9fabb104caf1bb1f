"""`tpplan sweep`: the cartesian product of models x hardware x GPUs x batch x input x output x dtype.

Per (model, hardware, dtype, GPUs) the layouts are the ones `recommend` evaluates (`serving_layouts`: TP x PP and,
for MoE models, expert parallelism / attention data parallelism with PP), each prepared once by
`prepare_serving` (engine rules, coefficients, memory: scalars); the serving numbers are then
`serving_performance` -- the function `recommend` calls -- on numpy arrays of the whole batch x input x output
grid. A row runs its batch (`batch`, the grid's) capped, as recommend caps --batch, at the sequences the KV cache
and the scheduler hold (`batch_run`). SGLang layouts with a DeepEP low-latency buffer, whose size depends on the
batch it leaves room for, are evaluated row by row by recommend's own function (`_scalar_rows`). Rows whose layout
cannot run stay in the table with feasible = False, a reason and no latencies (NaN), timed at the asked batch; a
layout an engine rule refuses has no numbers (NaN) and throughput 0, as recommend's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from tpplan.models.spec import ModelSpec
from tpplan.planner.candidates import (
    PreparedLayout,
    engine_limits,
    prepare_serving,
    replica_concurrency,
    serving_performance,
)
from tpplan.planner.layouts import serving_layouts
from tpplan.planner.workload import WORKLOAD_DEFAULTS, Workload, max_model_len_for
from tpplan.records import record


@record(kw_only=False)
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


def _layout_columns(prep: PreparedLayout, grid, run_batch=None) -> dict:
    """The columns that name a row: the layout (the same keys as a recommend candidate), `batch` the grid's value and
    `batch_run` the batch the row runs (`_run_batch`; a recommend candidate's `batch`)."""
    lay, b = prep.layout, grid[0]
    return {"tp": lay.tp, "pp": lay.pp, "ep": lay.ep, "dp_attention": lay.dp_attention, "replicas": lay.replicas,
            "gpus_used": lay.gpus_used, "batch": b.astype(int),
            "batch_run": (b if run_batch is None else run_batch).astype(int), "input_len": grid[1].astype(int),
            "output_len": grid[2].astype(int)}


def _run_batch(prep: PreparedLayout, asked, concurrency):
    """The batch each row runs, as recommend runs --batch: capped at the sequences the KV cache and the scheduler
    hold; a layout that cannot run (or holds no sequence) is timed at the asked batch."""
    import numpy as np

    if prep.reasons:
        return asked
    return np.where(concurrency >= 1, np.minimum(asked, np.floor(concurrency)), asked)


def _refused_rows(prep: PreparedLayout, grid) -> dict:
    """A layout an engine rule refuses: its rows say why and carry no numbers."""
    import numpy as np

    nan = np.full(len(grid[0]), np.nan)
    return {**_layout_columns(prep, grid), "feasible": np.zeros(len(nan), bool), "reason": "; ".join(prep.reasons),
            "weight_bytes_per_gpu": nan, "kv_cache_bytes_per_gpu": nan, "max_concurrent_sequences": 0,
            "ttft_s": nan, "ttft_under_load_s": nan, "tpot_s": nan, "tpot_under_load_s": nan, "comm_share": nan,
            "output_tokens_per_s": 0.0, "output_tokens_per_s_per_gpu": 0.0}


def _scalar_rows(spec: ModelSpec, profile, w: Workload, prep: PreparedLayout, grid) -> dict:
    """A layout's rows from recommend's own evaluation of each (batch, input, output) (`evaluate_serving`): for the
    few layouts whose memory depends on the batch in a way the vectorised path does not solve."""
    import numpy as np

    from tpplan.planner.candidates import evaluate_serving

    lay = prep.layout
    cands = [evaluate_serving(spec, profile, replace(w, batch=int(b), input_len=int(i), output_len=int(o)), tp=lay.tp,
                              pp=lay.pp, replicas=lay.replicas, ep=lay.ep, dp_attention=lay.dp_attention)
             for b, i, o in zip(*grid, strict=True)]

    def col(name: str, *, latency: bool = False):
        return np.array([getattr(c, name) if c.feasible or not latency else np.nan for c in cands], dtype=float)

    return {**_layout_columns(prep, grid, np.array([c.batch for c in cands])),
            "feasible": np.array([c.feasible for c in cands]), "reason": ["; ".join(c.reasons) for c in cands],
            "weight_bytes_per_gpu": col("weight_bytes_per_gpu"),
            "kv_cache_bytes_per_gpu": col("kv_cache_bytes_per_gpu"),
            "max_concurrent_sequences": np.array([c.max_concurrent_sequences for c in cands]),
            "ttft_s": col("ttft_s", latency=True), "ttft_under_load_s": col("ttft_under_load_s", latency=True),
            "tpot_s": col("tpot_s", latency=True), "tpot_under_load_s": col("tpot_under_load_s", latency=True),
            "comm_share": col("comm_share"), "output_tokens_per_s": col("output_tokens_per_s"),
            "output_tokens_per_s_per_gpu": col("output_tokens_per_s_per_gpu")}


def _evaluate_group(spec: ModelSpec, profile, w: Workload, grid, frames: list, timer: list[float]) -> None:
    import numpy as np

    b, i, o = grid
    limits = engine_limits(profile, w)
    for layout in serving_layouts(spec, w, nvlink_domain_size=profile.nvlink_domain_size,
                                  gpus_per_node=profile.gpus_per_node, pool_gpus=profile.total_gpus):
        prep = prepare_serving(spec, profile, w, layout)
        c, mem = prep.coefficients, prep.memory
        if c is None or mem is None:
            frames.append(_refused_rows(prep, grid))
            continue
        start = time.perf_counter()
        if mem.deepep_ll_tokens_per_rank is not None and w.engine == "sglang":
            # SGLang's DeepEP low-latency buffer is sized for the batch, which is capped by the KV the buffer leaves:
            # recommend's fixed point (candidates._size_ll_buffer), row by row
            frames.append(_scalar_rows(spec, profile, w, prep, grid))
            timer[0] += time.perf_counter() - start
            continue
        # other engines' low-latency buffers (vLLM's chunk of 256 tokens per call) do not depend on the batch
        run_b = _run_batch(prep, b, replica_concurrency(c, limits, kv_cache_tokens=mem.kv_cache_tokens, input_len=i,
                                                        output_len=o))
        perf = serving_performance(c, profile, limits, kv_cache_tokens=mem.kv_cache_tokens, batch=run_b, input_len=i,
                                   output_len=o, sequence_parallel=w.sequence_parallel)
        fits = (perf.max_concurrent_sequences >= 1) & (not prep.reasons)
        per_replica = np.where(fits, perf.output_tokens_per_s_per_replica, 0.0)
        timer[0] += time.perf_counter() - start
        tpot, gpus_used = perf.decode_step.total_s, layout.gpus_used
        why = "the KV cache holds no running request of these lengths"
        latency = np.where(fits, 1.0, np.nan)  # as recommend: a layout that cannot run has no latencies
        frames.append({**_layout_columns(prep, grid, run_b), "feasible": fits,
                       "reason": np.where(fits, "", "; ".join(prep.reasons) or why),
                       "weight_bytes_per_gpu": mem.weight_bytes_per_gpu,
                       "kv_cache_bytes_per_gpu": mem.kv_cache_bytes_per_gpu,
                       "max_concurrent_sequences": perf.max_concurrent_sequences.astype(int),
                       "ttft_s": perf.prefill.total_s * latency, "ttft_under_load_s": perf.ttft_under_load_s * latency,
                       "tpot_s": tpot * latency, "tpot_under_load_s": perf.steady_step.total_s * latency,
                       "comm_share": perf.decode_step.communication_s / tpot,
                       "output_tokens_per_s": per_replica * layout.replicas,
                       "output_tokens_per_s_per_gpu": per_replica * layout.replicas / gpus_used})


def sweep(*, models: Sequence[str], hardware: Sequence[str], gpus: Sequence[int], batches: Sequence[int],
          input_lens: Sequence[int], output_lens: Sequence[int], dtypes: Sequence[str] = (WORKLOAD_DEFAULTS.dtype,),
          engine: str = WORKLOAD_DEFAULTS.engine, kv_cache_dtype: str = WORKLOAD_DEFAULTS.kv_cache_dtype,
          max_model_len: int | None = None, moe_imbalance: float = WORKLOAD_DEFAULTS.moe_imbalance,
          all2all_backend: str = WORKLOAD_DEFAULTS.all2all_backend, deepep_mode: str | None = None,
          nodes: int | None = None, allow_cross_domain_tp: bool = False,
          progress: Callable[[int, int], None] | None = None):
    """Return (DataFrame, SweepStats). One row per model x hardware x gpus x dtype x layout (tp, pp, ep, dp_attention)
    x batch x in x out. `moe_imbalance`: the busiest EP rank's routed tokens / the mean, `all2all_backend` the
    engine's MoE token-movement backend and `deepep_mode` SGLang's DeepEP mode, as in `recommend`; `nodes` lays every
    profile over that many nodes (recommend's --nodes; more than one needs the profile's network section);
    `allow_cross_domain_tp` lets TP groups cross NVLink domains and nodes, as recommend's --allow-cross-domain-tp."""
    import pandas as pd

    from tpplan.errors import TpplanError
    from tpplan.models.dtypes import normalize_dtype, resolve_dtype
    from tpplan.models.engines import check_kv_cache_dtype, check_serving_engine
    from tpplan.models.moe_backends import check_deepep_mode, token_movement
    from tpplan.models.resolve import resolve_model
    from tpplan.planner.checks import (
        check_backend_on_gpu,
        check_batch_value,
        check_moe_imbalance_value,
        check_moe_options,
        check_serving_dtypes,
    )
    from tpplan.planner.plan import profile_for, profile_with_nodes

    check_serving_engine(engine)
    check_kv_cache_dtype(engine, normalize_dtype(kv_cache_dtype, kind="kv"))
    check_moe_imbalance_value(moe_imbalance)
    for b in batches:
        check_batch_value(b)
    for option, values in (("--input-len", input_lens), ("--output-len", output_lens), ("--gpus", gpus)):
        if min(values) < 1:
            raise TpplanError(f"{option} {min(values)} must be at least 1")
    token_movement(engine, all2all_backend)  # before any work
    check_deepep_mode(engine, all2all_backend, deepep_mode)
    start = time.perf_counter()
    specs = [resolve_model(m).spec for m in models]
    check_moe_options(specs, moe_imbalance=moe_imbalance, all2all_backend=all2all_backend, gpus=max(gpus))
    longest = max(input_lens) + max(output_lens)
    # as recommend: the server's --max-model-len holds the longest request of the grid, within the model's context
    lengths = {s.name: max_model_len_for(s, max_model_len, longest, {},
                                         what="the longest --input-len + --output-len") for s in specs}
    profiles = [profile_with_nodes(profile_for(h), nodes) for h in hardware]
    for profile in profiles:  # before any work
        check_backend_on_gpu(profile, engine=engine, backend=all2all_backend)
        if max(gpus) > profile.total_gpus:
            raise TpplanError(_too_many_gpus(max(gpus), profile, nodes_given=nodes is not None))
        for spec in specs:
            for dtype in dtypes:
                check_serving_dtypes(profile, engine=engine, dtype=resolve_dtype(spec, normalize_dtype(dtype)),
                                     kv_cache_dtype=normalize_dtype(kv_cache_dtype, kind="kv"))
    grid = _grid(batches, input_lens, output_lens)
    groups = [(s, p, d, g) for s in specs for p in profiles for d in dtypes for g in gpus]
    frames: list[pd.DataFrame] = []
    timer = [0.0]
    for n, (spec, profile, dtype, g) in enumerate(groups, 1):
        w = Workload(gpus=g, engine=engine, dtype=resolve_dtype(spec, dtype), max_model_len=lengths[spec.name],
                     kv_cache_dtype=normalize_dtype(kv_cache_dtype, kind="kv"),
                     moe_imbalance=moe_imbalance, all2all_backend=all2all_backend,
                     deepep_mode=deepep_mode, allow_cross_domain_tp=allow_cross_domain_tp).for_model(spec)
        cols: list[dict] = []
        _evaluate_group(spec, profile, w, grid, cols, timer)
        for col in cols:
            frame = pd.DataFrame(col)
            frame.insert(0, "dtype", w.dtype)
            frame.insert(0, "gpus", g)
            frame.insert(0, "nodes", profile.nodes)
            frame.insert(0, "hardware", profile.name)
            frame.insert(0, "model", spec.name)
            frames.append(frame)
        if progress:
            progress(n, len(groups))
    df = pd.concat(frames, ignore_index=True)
    return df, SweepStats(rows=len(df), evaluate_s=timer[0], total_s=time.perf_counter() - start)


def _too_many_gpus(gpus: int, profile, *, nodes_given: bool = False) -> str:
    """The refusal of --gpus above a profile's GPUs, with the fix: fewer GPUs, or enough nodes (--nodes where the
    profile has a network; a built-in profile of the same GPU with enough nodes, unless --nodes was given, which
    overrides any profile's node count)."""
    from tpplan.hardware.loader import builtin_names, load_builtin

    bigger = [n for n in builtin_names() if (b := load_builtin(n)).gpu.name == profile.gpu.name
              and b.total_gpus >= gpus]
    nodes = -(-gpus // profile.gpus_per_node)
    if profile.network is not None:
        other = f"pass --nodes {nodes}" + (f" or --hardware {' or '.join(bigger[:2])}" if bigger and not nodes_given
                                           else "")
    else:
        other = (f"use a profile with {nodes} or more nodes: " +
                 (f"--hardware {' or '.join(bigger[:2])}" if bigger else
                  f"a copy of {profile.name!r} with nodes: {nodes} and a network: section"))
    return (f"--gpus {gpus} exceeds profile {profile.name!r} ({profile.gpus_per_node} GPUs per node x {profile.nodes} "
            f"node(s) = {profile.total_gpus}); sweep --gpus {profile.total_gpus} or fewer on it, or {other}")


"""`recommend` and `sweep` share one evaluation (tpplan.planner.candidates.serving_performance): the vectorised
rows must equal the scalar candidates for random workloads, odd lengths included (issue 15: with
--output-len 255 their TPOT used to differ, and their default KV bytes per GPU differed)."""

from __future__ import annotations

import random

import pytest

from tpplan.planner.plan import recommend
from tpplan.planner.sweep import sweep
from tpplan.planner.workload import WORKLOAD_DEFAULTS

FIELDS = ("tpot_s", "ttft_s", "ttft_under_load_s", "kv_cache_bytes_per_gpu", "weight_bytes_per_gpu",
          "max_concurrent_sequences", "output_tokens_per_s")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sweep_rows_equal_recommend_candidates(seed):
    rng = random.Random(seed)
    model, hardware, gpus = rng.choice([("llama-8b", "l40s-pcie", 4), ("qwen-7b", "dgx-h100", 8),
                                        ("mixtral", "hgx-h200", 8), ("llama-70b", "dgx-a100-80g", 8)])
    batch = rng.randrange(1, 200)
    input_len, output_len = rng.randrange(1, 4000) | 1, rng.randrange(1, 1000) | 1  # odd lengths
    df, _ = sweep(models=[model], hardware=[hardware], gpus=[gpus], batches=[batch], input_lens=[input_len],
                  output_lens=[output_len])
    plan = recommend(model, hardware=hardware, gpus=gpus, batch=batch, input_len=input_len, output_len=output_len)
    compared = 0
    for cand in plan.candidates:
        rows = df[(df.tp == cand.tp) & (df.pp == cand.pp) & (df.ep == cand.ep) & (df.dp_attention == cand.dp_attention)]
        if rows.empty or cand.tpot_s is None:
            continue  # layouts the engine rules reject carry no timings
        row = rows.iloc[0]
        assert (int(row["batch_run"]), bool(row["feasible"])) == (cand.batch, cand.feasible)  # capped alike
        for field in FIELDS:
            expected = getattr(cand, field)
            if not cand.feasible and field in ("tpot_s", "ttft_s", "ttft_under_load_s"):
                assert row[field] != row[field]  # NaN: as recommend's JSON, a layout that cannot run has none
                continue
            assert row[field] == pytest.approx(expected, rel=1e-9), (cand.tp, cand.pp, field)
        compared += 1
    assert compared >= 1


def test_defaults_live_in_workload():
    plan = recommend("llama-8b", gpus=1)
    w = plan.workload
    assert (w.engine, w.input_len, w.output_len, w.gpu_memory_utilization) == (
        WORKLOAD_DEFAULTS.engine, WORKLOAD_DEFAULTS.input_len, WORKLOAD_DEFAULTS.output_len,
        WORKLOAD_DEFAULTS.gpu_memory_utilization)
    assert w.max_model_len == 8192  # min(131072, 8192): Workload.for_model

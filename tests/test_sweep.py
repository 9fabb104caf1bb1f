from __future__ import annotations

import json

import pandas as pd
import pytest

from tpplan.planner.plan import recommend
from tpplan.planner.sweep import sweep


def test_sweep_rows_and_agreement_with_recommend():
    df, stats = sweep(models=["llama-70b"], hardware=["dgx-h100"], gpus=[8], batches=[1, 16], input_lens=[1024],
                      output_lens=[256], dtypes=["bf16", "fp8"])
    assert stats.rows == len(df) > 0
    assert set(df["dtype"]) == {"bf16", "fp8"}
    # the vectorised path and the scalar path are the same cost functions
    plan = recommend("llama-70b", gpus=8, batch=16, max_model_len=1280)
    tp8 = next(c for c in plan.candidates if (c.tp, c.pp) == (8, 1))
    row = df[(df.tp == 8) & (df.pp == 1) & (df.batch == 16) & (df.dtype == "bf16")].iloc[0]
    assert row.tpot_s == tp8.tpot_s
    assert bool(row.feasible) and not df[(df.tp == 1) & (df.pp == 1)].feasible.any()


def test_sweep_cli_writes_atomically_and_refuses_overwrite(run_cli, tmp_path):
    out = tmp_path / "s.csv"
    args = ["sweep", "--models", "llama-8b", "--gpus", "2", "--batch", "1,4", "--out", str(out)]
    assert run_cli(*args).code == 0
    assert len(pd.read_csv(out)) == 3 * 2  # layouts (tp1, pp1), (tp1, pp2), (tp2, pp1) x 2 batches
    r = run_cli(*args)
    assert r.code == 1 and r.err == f"Error: {out} exists; pass --force to overwrite it, or choose another --out\n"
    assert run_cli(*args, "--force").code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["s.csv"]  # no temp files left behind


def test_sweep_bad_extension(run_cli, tmp_path):
    r = run_cli("sweep", "--models", "llama-8b", "--gpus", "1", "--out", str(tmp_path / "s.xlsx"))
    assert (r.code, r.out) == (2, "") and "unknown extension '.xlsx'; use .csv or .parquet" in r.err


def test_parquet_without_pyarrow_is_one_clear_line(run_cli, tmp_path):
    import importlib.util

    if importlib.util.find_spec("pyarrow") or importlib.util.find_spec("fastparquet"):
        out = tmp_path / "s.parquet"
        assert run_cli("sweep", "--models", "llama-8b", "--gpus", "1", "--out", str(out)).code == 0
        assert len(pd.read_parquet(out)) > 0
        return
    r = run_cli("sweep", "--models", "llama-8b", "--gpus", "1", "--out", str(tmp_path / "s.parquet"))
    assert r.code == 1 and r.err.strip().splitlines()[-1] == (
        "Error: writing s.parquet needs a Parquet engine: pip install 'tpplan[parquet]' (or write .csv)")
    assert not list(tmp_path.iterdir())  # refused before any work: nothing written


def test_sweep_json_rows_have_exactly_the_schema_columns_and_types(run_cli):
    """`tpplan schema sweep` documents every column a row carries, engine-refused MoE layouts (nulls) included."""
    from tpplan.report.schemas import SWEEP_COLUMNS

    r = run_cli("sweep", "--models", "mixtral", "--hardware", "hgx-h200", "--gpus", "8", "--batch", "8",
                "--input-len", "512", "--output-len", "128", "--engine", "sglang", "-f", "json")
    rows = json.loads(r.out)
    # SGLang refuses PP x DP attention: those rows carry no numbers but throughput 0, as recommend's refused layouts
    assert any(row["weight_bytes_per_gpu"] is None and row["output_tokens_per_s"] == 0 for row in rows)
    kinds = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "null": type(None)}
    for row in rows:
        assert set(row) == set(SWEEP_COLUMNS)
        for key, value in row.items():
            allowed = SWEEP_COLUMNS[key] if isinstance(SWEEP_COLUMNS[key], list) else [SWEEP_COLUMNS[key]]
            assert isinstance(value, tuple(kinds[t] for t in allowed)), (key, value)


def test_sweep_sizes_the_server_for_its_longest_request_within_context(refusal, run_cli):
    """As recommend: --max-model-len holds the grid's longest input + output, and a request beyond the model's context
    is refused before any work (it used to be planned against the 8192-token default)."""
    line = refusal("sweep", "--models", "llama-70b", "--input-len", "200000", "--batch", "1")
    assert line == ("Error: the longest --input-len + --output-len = 200256 exceeds Llama-3.1-70B's context "
                    "(max_position_embeddings 131072); shorten the request")
    r = run_cli("sweep", "--models", "llama-70b", "--input-len", "100000", "--batch", "1", "-f", "json")
    assert r.code == 0
    reasons = " ".join(row["reason"] or "" for row in r.json())
    assert "100256-token sequence" in reasons and "8192-token" not in reasons


def test_sweep_refuses_moe_imbalance_without_an_moe_model(refusal):
    assert refusal("sweep", "--models", "llama-70b", "--moe-imbalance", "2").startswith(
        "Error: --moe-imbalance 2 applies to MoE models")


def test_sweep_nodes_spans_the_profile_as_recommend_does(run_cli):
    """--nodes lays the profile over that many nodes, as recommend's does: 16 GPUs of dgx-h100 over 2 nodes, every row
    saying so, and the row of the layout recommend picks carries recommend's numbers."""
    args = ("--model", "llama-70b", "--gpus", "16", "--nodes", "2", "--batch", "64")
    best = run_cli("recommend", *args, "-f", "json").json()["recommended"]
    r = run_cli("sweep", "--models", "llama-70b", "--gpus", "16", "--nodes", "2", "--batch", "64", "-f", "json")
    assert r.code == 0
    rows = r.json()
    assert {(row["hardware"], row["nodes"], row["gpus"]) for row in rows} == {("dgx-h100", 2, 16)}
    same = [row for row in rows if (row["tp"], row["pp"], row["replicas"], row["ep"], row["dp_attention"]) ==
            (best["tp"], best["pp"], best["replicas"], 1, 1)]
    assert len(same) == 1 and same[0]["feasible"]
    assert same[0]["output_tokens_per_s"] == pytest.approx(best["output_tokens_per_s"], rel=1e-9)
    assert same[0]["tpot_s"] == pytest.approx(best["tpot_s"], rel=1e-9)


@pytest.mark.parametrize("engine,batch", [("vllm", 2000), ("trtllm", 64), ("vllm", 32)])
def test_every_sweep_row_matches_recommend_at_the_same_batch(engine, batch):
    """A batch above what a layout holds is capped as recommend caps --batch (llama-70b TP2 x 4 with TensorRT-LLM
    holds 41 of 64); a layout that does not fit memory is infeasible in both, with no latencies."""
    df, _ = sweep(models=["llama-70b"], hardware=["dgx-h100"], gpus=[8], batches=[batch], input_lens=[1024],
                  output_lens=[256], engine=engine, max_model_len=1280)
    plan = recommend("llama-70b", gpus=8, batch=batch, engine=engine, max_model_len=1280)
    by_layout = {(c.tp, c.pp, c.replicas): c for c in plan.candidates}
    assert len(df) == len(by_layout)
    for row in df.itertuples():
        c = by_layout[(row.tp, row.pp, row.replicas)]
        assert (bool(row.feasible), int(row.batch_run), int(row.batch)) == (c.feasible, c.batch, batch)
        assert row.output_tokens_per_s == pytest.approx(c.output_tokens_per_s, rel=1e-9)
        if c.feasible:
            assert row.tpot_s == pytest.approx(c.tpot_s, rel=1e-9)
        else:
            assert pd.isna(row.tpot_s)


def test_sglang_deepep_low_latency_rows_are_recommends_own():
    """The low-latency buffer is sized for the batch the KV it leaves allows (recommend's fixed point): a sweep row
    runs what recommend --batch runs, whatever batch was asked (DeepSeek-V3 TP2 x EP8 x DP-attention 4 on H200)."""
    df, _ = sweep(models=["deepseek-v3"], hardware=["hgx-h200"], gpus=[8], batches=[1700, 2048], input_lens=[1024],
                  output_lens=[256], engine="sglang", all2all_backend="deepep")
    rows = df[(df.tp == 2) & (df.ep == 8) & (df.dp_attention == 4) & (df.pp == 1)].set_index("batch")
    for asked in (1700, 2048):
        c = recommend("deepseek-v3", hardware="hgx-h200", gpus=8, engine="sglang", all2all_backend="deepep", tp=2,
                      ep=8, dp_attention=4, batch=asked).chosen
        row = rows.loc[asked]
        assert (int(row.batch_run), bool(row.feasible)) == (c.batch, c.feasible)
        assert row.tpot_s == pytest.approx(c.tpot_s, rel=1e-12)
        assert row.output_tokens_per_s == pytest.approx(c.output_tokens_per_s, rel=1e-12)

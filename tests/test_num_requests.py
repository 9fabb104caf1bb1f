"""`--num-requests`: an offline job of N requests queued at once (trtllm-bench / gptManagerBenchmark style runs).
Throughput is over the whole job: full waves at the planned batch, then the last, under-filled wave at its own batch
(tpplan.cost.batching.finite_run_tokens_per_s)."""

from __future__ import annotations

import pytest

from tpplan.errors import TpplanError
from tpplan.planner.plan import recommend

LENGTHS = dict(input_len=128, output_len=2048)


def _layout(plan, c):
    return next(x for x in plan.candidates if (x.tp, x.pp, x.replicas, x.ep, x.dp_attention)
                == (c.tp, c.pp, c.replicas, c.ep, c.dp_attention))


def test_whole_waves_run_at_the_steady_state_and_say_how_long():
    steady = recommend("llama-8b", gpus=1, **LENGTHS).recommended
    n = 3 * steady.batch
    job = _layout(recommend("llama-8b", gpus=1, num_requests=n, **LENGTHS), steady)
    assert job.batch == steady.batch
    assert job.output_tokens_per_s == pytest.approx(steady.output_tokens_per_s)
    assert job.job_s == pytest.approx(n * 2048 / steady.output_tokens_per_s)
    assert steady.job_s is None


def test_an_under_filled_last_wave_lowers_the_job_rate():
    steady = recommend("llama-8b", gpus=1, **LENGTHS).recommended
    n = 2 * steady.batch + 1  # the third wave is one request decoding 2048 steps alone
    job = _layout(recommend("llama-8b", gpus=1, num_requests=n, **LENGTHS), steady)
    alone = _layout(recommend("llama-8b", gpus=1, batch=1, **LENGTHS), steady)
    expected_s = 2 * steady.batch * 2048 / steady.output_tokens_per_s + 2048 / alone.output_tokens_per_s
    assert job.job_s == pytest.approx(expected_s)
    assert job.output_tokens_per_s == pytest.approx(n * 2048 / expected_s)
    assert job.output_tokens_per_s < steady.output_tokens_per_s


def test_a_job_smaller_than_the_kv_cache_caps_the_batch_per_replica():
    plan = recommend("llama-8b", gpus=8, num_requests=40, **LENGTHS)
    for c in plan.candidates:
        if c.feasible:
            assert c.batch <= -(-40 // c.replicas)
    c = next(c for c in plan.candidates if c.feasible and (c.tp, c.pp, c.replicas) == (1, 1, 8))
    assert c.batch == 5
    assert "batch at most 5, the replica's share of --num-requests 40" in c.notes
    assert c.job_s == pytest.approx(40 * 2048 / c.output_tokens_per_s)


def test_num_requests_must_be_positive_and_for_serving():
    with pytest.raises(TpplanError, match=r"^--num-requests 0 plans a serving job of at least 1 request"):
        recommend("llama-8b", gpus=1, num_requests=0)
    with pytest.raises(TpplanError, match=r"--workload serve"):
        recommend("llama-8b", gpus=1, num_requests=10, workload="train")


def test_cli_job_in_json_and_headline(run_cli):
    r = run_cli("recommend", "--model", "llama-8b", "--gpus", "1", "--input-len", "128", "--output-len", "2048",
                "--num-requests", "3000", "-f", "json")
    assert r.code == 0
    d = r.json()
    rec = d["recommended"]
    assert rec["job_s"] == pytest.approx(3000 * 2048 / rec["output_tokens_per_s"])
    assert "a job of 3000 requests" in d["assumptions"]["workload"]
    table = run_cli("recommend", "--model", "llama-8b", "--gpus", "1", "--input-len", "128", "--output-len", "2048",
                    "--num-requests", "3000")
    assert "3,000 requests in" in table.out.replace("\n  ", " ").replace("\u00a0", " ")
    assert run_cli("recommend", "--model", "llama-8b", "--num-requests", "0").code == 2


def test_cli_num_requests_with_training_is_one_error_line(run_cli):
    r = run_cli("recommend", "--model", "llama-8b", "--num-requests", "5", "--workload", "train")
    assert (r.code, r.out) == (1, "")
    assert r.err == ("Error: --num-requests 5 plans a serving job of at least 1 request; give a positive count with "
                     "--workload serve, or leave it out\n")

"""`--num-requests`: an offline job of N requests queued at once (trtllm-bench / gptManagerBenchmark style runs,
batch-inference jobs). Throughput is over the whole job: full waves at the planned batch, then the last,
under-filled wave at its own batch (tpplan.cost.batching.job_makespan_s)."""

from __future__ import annotations

import pytest

from tpplan.cost.batching import job_makespan_s
from tpplan.errors import TpplanError
from tpplan.planner.plan import recommend

LENGTHS = dict(input_len=128, output_len=2048)


def _layout(plan, tp, pp=1, replicas=1, ep=1, dp=1):
    want = (tp, pp, replicas, ep, dp)
    return next(c for c in plan.candidates if (c.tp, c.pp, c.replicas, c.ep, c.dp_attention) == want)


def test_makespan_is_full_waves_then_the_under_filled_last_one():
    # 3000 requests of 2048 output tokens, 1461 at a time: two full waves of 2048 steps of 0.1 s, then 78 requests
    # whose steps take 0.04 s
    assert job_makespan_s(num_requests=3000, concurrency=1461, output_len=2048, step_s=0.1,
                          tail_step_s=0.04) == pytest.approx(2048 * (2 * 0.1 + 0.04))
    assert job_makespan_s(num_requests=3000, concurrency=1000, output_len=128, step_s=0.1,
                          tail_step_s=99.0) == pytest.approx(3 * 128 * 0.1)  # whole waves: no tail
    assert job_makespan_s(num_requests=40, concurrency=100, output_len=10, step_s=99.0,
                          tail_step_s=0.02) == pytest.approx(10 * 0.02)  # one wave at the job's own batch


def test_whole_waves_run_at_the_steady_state():
    steady = recommend("llama-8b", gpus=1, **LENGTHS).recommended
    n = 3 * steady.batch
    job = _layout(recommend("llama-8b", gpus=1, num_requests=n, **LENGTHS), 1)
    assert job.batch == steady.batch
    assert job.output_tokens_per_s == pytest.approx(steady.output_tokens_per_s)
    assert job.job_s == pytest.approx(3 * 2048 * steady.step_time_s)
    assert steady.job_s is None


def test_an_under_filled_last_wave_runs_at_its_own_batch():
    steady = recommend("llama-8b", gpus=1, **LENGTHS).recommended
    alone = _layout(recommend("llama-8b", gpus=1, batch=1, **LENGTHS), 1)
    n = 2 * steady.batch + 1  # the third wave is one request decoding 2048 steps alone
    job = _layout(recommend("llama-8b", gpus=1, num_requests=n, **LENGTHS), 1)
    assert job.job_s == pytest.approx(2048 * (2 * steady.step_time_s + alone.step_time_s))
    assert job.output_tokens_per_s < steady.output_tokens_per_s


def test_a_small_job_caps_the_batch_per_replica_and_says_so():
    plan = recommend("llama-8b", gpus=8, num_requests=40, **LENGTHS)
    for c in plan.candidates:
        if c.feasible:
            assert c.batch <= -(-40 // c.replicas)
    c = _layout(plan, 1, replicas=8)
    five = _layout(recommend("llama-8b", gpus=8, batch=5, **LENGTHS), 1, replicas=8)
    assert c.batch == 5 and c.job_s == pytest.approx(2048 * five.step_time_s)
    assert c.notes[0].startswith("batch at most 5, the replica's share of --num-requests 40 (memory and scheduler "
                                 "allow ")
    # fewer requests than replicas: the busiest replica serves one
    one = _layout(recommend("llama-8b", gpus=8, num_requests=3, **LENGTHS), 1, replicas=8)
    alone = _layout(recommend("llama-8b", gpus=1, batch=1, **LENGTHS), 1)
    assert one.batch == 1 and one.job_s == pytest.approx(2048 * alone.step_time_s, rel=1e-6)


def test_a_latency_limit_and_a_job_name_their_own_caps():
    c = recommend("llama-8b", gpus=1, max_tpot_ms=9, num_requests=100, **LENGTHS).recommended
    assert c.batch < 100
    assert c.notes == ("batch at most 100, the replica's share of --num-requests 100 (memory and scheduler allow "
                       f"{c.max_concurrent_sequences})",
                       f"batch capped at {c.batch} by the latency limits (the job's share allows 100)")


def test_attention_dp_waves_wait_for_the_busiest_rank():
    # DEP8: a wave of 9 requests puts 2 on one rank, and the step waits for it (the step of 16)
    kw = dict(hardware="hgx-h200", gpus=8, engine="sglang", **LENGTHS)
    nine = _layout(recommend("deepseek-v3", num_requests=9, **kw), 1, ep=8, dp=8)
    sixteen = _layout(recommend("deepseek-v3", batch=16, **kw), 1, ep=8, dp=8)
    assert nine.batch == 9
    assert nine.job_s == pytest.approx(2048 * sixteen.step_time_s)


def test_num_requests_errors_name_the_fix():
    with pytest.raises(TpplanError, match=r"^--num-requests 0 must be at least 1$"):
        recommend("llama-8b", gpus=1, num_requests=0)
    with pytest.raises(TpplanError, match=r"^--num-requests applies to --workload serve"):
        recommend("llama-8b", gpus=1, num_requests=10, workload="train")
    with pytest.raises(TpplanError, match=r"--objective latency one request at a time"):
        recommend("llama-8b", gpus=1, num_requests=10, objective="latency")


def test_cli_job_in_json_headline_and_emit(run_cli):
    args = ("recommend", "--model", "llama-8b", "--gpus", "1", "--input-len", "128", "--output-len", "2048")
    d = run_cli(*args, "--num-requests", "3000", "-f", "json").json()
    rec = d["recommended"]
    assert rec["job_s"] > 0 and d["inputs"]["num_requests"] == 3000
    assert "a job of 3000 requests" in d["assumptions"]["workload"]
    table = run_cli(*args, "--num-requests", "3000").out.replace("\n  ", " ").replace("\u00a0", " ")
    assert "3,000 requests in" in table
    assert "1 request in" in run_cli(*args, "--num-requests", "1").out.replace("\n  ", " ").replace("\u00a0", " ")
    # the job's size is not a server limit: --emit does not pin --max-num-seqs to it
    small = run_cli(*args, "--num-requests", "40", "--emit", "vllm", "-f", "json").json()
    assert small["recommended"]["batch"] == 40 and "--max-num-seqs" not in small["serve_command"]
    assert run_cli("recommend", "--model", "llama-8b", "--num-requests", "0").code == 2


def test_cli_num_requests_with_training_is_one_error_line(run_cli):
    r = run_cli("recommend", "--model", "llama-8b", "--num-requests", "5", "--workload", "train")
    assert (r.code, r.out) == (1, "")
    assert r.err == ("Error: --num-requests applies to --workload serve (an offline serving job), not --workload "
                     "train; leave it out\n")

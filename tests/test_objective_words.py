"""What a plan says about its objective: the assumption line names what it ranks by (and, for cost, where the price
comes from), and the runner-up explanation under --objective gpus compares GPUs only when they differ."""

from __future__ import annotations

from tpplan.planner.explain import explain
from tpplan.planner.plan import recommend


def test_each_objective_states_what_it_ranks_by():
    words = {o: recommend("llama-70b", gpus=8, objective=o).assumptions["objective"]
             for o in ("throughput", "latency", "gpus", "cost")}
    assert words["throughput"] == "throughput: most tok/s on the GPUs given (idle GPUs earn nothing)"
    assert words["latency"] == ("latency: lowest TPOT under load (at the plan's batch, prefill chunks mixed in), then "
                                "TTFT under load")
    assert words["gpus"] == "gpus: fewest GPUs per replica, then tok/s per GPU"
    assert words["cost"].endswith("no price given (--price-per-gpu-hour, or price_per_gpu_hour in the profile), "
                                  "so no $ per token")
    priced = recommend("llama-70b", gpus=8, objective="cost", price_per_gpu_hour=2.5).assumptions["objective"]
    assert priced.endswith("at 2.5 $ per GPU-hour")


def test_gpus_objective_explains_a_runner_up_on_the_same_gpus_by_its_throughput():
    plan = recommend("llama-70b", gpus=8, objective="gpus")
    runner = next(c for c in plan.candidates if c.feasible and c is not plan.recommended)
    line = next(x for x in explain(plan) if "Runner-up" in x)
    same = runner.gpus_used // runner.replicas == plan.recommended.gpus_used // plan.recommended.replicas
    assert same  # llama-70b on 8 x H100: TP2 x PP2 and TP4 both use 4 GPUs per replica
    assert f"the same {runner.gpus_used // runner.replicas} GPUs per replica, " in line
    assert "fewer tok/s per GPU" in line and "vs 4\n" not in line


def test_sequence_parallel_serving_is_stated():
    plan = recommend("llama-70b", gpus=8, sequence_parallel=True)
    assert plan.assumptions["sequence_parallel"].startswith("on (--sequence-parallel): each layer's all-reduce")
    assert "sequence_parallel" not in recommend("llama-70b", gpus=8).assumptions


def test_assumptions_name_config_defaults_and_the_matmul_share_used(tmp_path):
    """A config.json that leaves fields out plans on transformers' defaults, and the plan says so; an FP8 model's
    GEMMs run at the FP8 share of the FP8 peak, and the efficiency line says that, with the sustained clock."""
    import json

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32,
                               "intermediate_size": 11008}))
    notes = recommend(str(cfg), gpus=2).assumptions["model_config"]
    assert "num_hidden_layers missing from the config: transformers' llama config default 32" in notes
    assert "model_config" not in recommend("llama-70b", gpus=8).assumptions
    fp8 = recommend("deepseek-v3", gpus=8, hardware="hgx-h200").assumptions["efficiency"]
    assert fp8.startswith("matmul 0.72 of the fp8 peak x 0.80 clock, memory 0.90")
    assert recommend("llama-70b", gpus=8).assumptions["efficiency"].startswith("matmul 0.79 x 0.80 clock, memory")


def test_a_price_that_is_not_positive_says_what_the_option_is(usage_error):
    err = usage_error("recommend", "--model", "llama-70b", "--price-per-gpu-hour", "-1")
    assert ("-1 must be a finite number greater than 0, in $ per GPU-hour (leave the option out to use the profile's "
            "price") in err


def test_models_show_refuses_a_kv_cache_the_engine_has_not(refusal):
    assert refusal("models", "show", "llama-70b", "--engine", "trtllm", "--kv-cache-dtype", "fp8_e5m2") == (
        "Error: --kv-cache-dtype fp8_e5m2: --engine trtllm has no such KV cache (its FP8 cache is E4M3); use "
        "--kv-cache-dtype fp8, or --engine vllm / sglang for E5M2")

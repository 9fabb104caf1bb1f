"""Training plans (`--workload train`): the step and memory figures users compare layouts by."""

from __future__ import annotations

import dataclasses

import pytest

from tpplan.cost.collectives import collective_time_s
from tpplan.hardware.loader import load_builtin
from tpplan.models.spec import ModelSpec
from tpplan.planner.plan import recommend
from tpplan.planner.train import GRAD_BYTES_PER_PARAM, activation_bytes_per_gpu
from tpplan.planner.workload import TRAIN_MICROBATCHES_PER_STAGE

TRAIN = dict(workload="train", engine="megatron", input_len=4096, batch=1, replan_suggestions=False)


def _layout(plan, **key):
    return next(c for c in plan.candidates if all(getattr(c, k) == v for k, v in key.items()))


def test_throughput_counts_every_data_parallel_replica():
    """Each replica runs its own 4 x PP micro-batches per step: TP4 x PP1 x 2 replicas on 8 GPUs processes
    2 x 4 x 1 x 4096 = 32,768 tokens a step."""
    plan = recommend("llama-8b", gpus=8, **TRAIN)
    c = _layout(plan, tp=4, pp=1, replicas=2)
    assert c.feasible
    assert c.output_tokens_per_s == pytest.approx(2 * TRAIN_MICROBATCHES_PER_STAGE * 4096 / c.step_time_s)


def test_activations_without_attention_scores_drop_only_the_score_term():
    """GPT-3 175B shape at TP8, s 2048, b 1 (Korthikanti et al. 2022): s b h = 25,165,824 bytes per unit; without
    sequence parallelism a layer holds s b h (10 + 24/8) = 327,155,712 B without the scores (Megatron's fused /
    flash attention) and s b h (13 + 5 x 96 x 2048 / (12288 x 8)) = 578,813,952 B with them."""
    spec = ModelSpec(name="gpt3-175b-shape", hf_id="test", model_type="llama", hidden_size=12288,
                     num_hidden_layers=96, num_attention_heads=96, num_key_value_heads=96, head_dim=128,
                     tie_word_embeddings=False, intermediate_size=4 * 12288, vocab_size=50257,
                     max_position_embeddings=2048)
    kw = dict(tp=8, pp=1, micro_batch=1, seq_len=2048, sp=False)
    assert activation_bytes_per_gpu(spec, **kw, attention_scores=False) == 96 * 327_155_712
    assert activation_bytes_per_gpu(spec, **kw) == 96 * 578_813_952


def test_data_parallel_all_reduce_is_priced_on_the_network_its_ranks_span():
    """TP8 x 2 replicas on two 8-GPU nodes: Megatron's DP group (ranks 0 and 8, ...) crosses the nodes, so the
    step's fp32 gradient all-reduce is the network's, not NVLink's. It is the only difference in communication
    from one TP8 replica (whose DP group is a single GPU)."""
    two = recommend("llama-8b", gpus=16, nodes=2, tp=8, replicas=2, **TRAIN).chosen
    one = recommend("llama-8b", gpus=8, tp=8, replicas=1, **TRAIN).chosen
    profile2 = dataclasses.replace(load_builtin("dgx-h100"), nodes=2)
    grads = two.communication_time_per_step_s - one.communication_time_per_step_s
    n_bytes = two.weight_bytes_per_gpu // 2 * GRAD_BYTES_PER_PARAM
    network = collective_time_s(profile2, kind="allreduce", group_size=2, n_bytes=n_bytes, span_gpus=16)
    assert grads == pytest.approx(network)
    assert grads > 2 * collective_time_s(profile2, kind="allreduce", group_size=2, n_bytes=n_bytes)

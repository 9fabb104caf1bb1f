"""The collectives of a step outside its decoder layers (DESIGN.md §3): the vocab-parallel embedding's all-reduce
and the logits gather, as each engine runs them (tpplan.cost.kernels.FUSIONS)."""

from __future__ import annotations

import pytest

from tpplan.cost.coefficients import coefficients
from tpplan.cost.collectives import collective_time_s, pipeline_handoffs_s
from tpplan.cost.step import (
    _head_s,
    decode_step,
    decoder_layers,
    edge_collectives_s,
    embedding_collective_s,
    head_collectives_s,
    prefill,
)
from tpplan.hardware.loader import resolve_profile
from tpplan.models.resolve import resolve_model


def _setup(engine: str, tp: int, model: str = "llama-70b"):
    spec = resolve_model(model).spec
    profile = resolve_profile("dgx-h100")[0]
    return spec, profile, coefficients(spec, profile, tp=tp, engine=engine)


def test_vllm_decode_step_adds_the_embedding_allreduce_and_the_logits_allgather():
    spec, profile, c = _setup("vllm", 8)
    batch = 256
    embedding = collective_time_s(profile, kind="allreduce", group_size=8, n_bytes=batch * spec.hidden_size * 2)
    padded_vocab = -(-spec.vocab_size // 8) * 8  # 128,256 for Llama 3.1
    logits = collective_time_s(profile, kind="allgather", group_size=8, n_bytes=batch * padded_vocab * 2)
    assert edge_collectives_s(c, profile, tokens=batch, sampled=batch) == pytest.approx(embedding + logits)
    layers = decoder_layers(c, profile, decode_seqs=batch, context_len=1024)
    step = decode_step(c, profile, batch=batch, context_len=1024)
    assert step.communication_s == pytest.approx(layers.communication_s + embedding + logits)


def test_prefill_gathers_one_row_of_logits_per_prompt():
    spec, profile, c = _setup("vllm", 4)
    edge = edge_collectives_s(c, profile, tokens=2048, sampled=1)
    embedding = collective_time_s(profile, kind="allreduce", group_size=4, n_bytes=2048 * spec.hidden_size * 2)
    logits = collective_time_s(profile, kind="allgather", group_size=4, n_bytes=spec.vocab_size * 2)
    assert edge == pytest.approx(embedding + logits)
    layers = decoder_layers(c, profile, prefill_tokens=2048, prefill_pairs=0)
    assert prefill(c, profile, prompts=1, input_len=2048).communication_s > layers.communication_s


def test_trtllm_replicates_the_embedding_and_gathers_the_logits():
    spec, profile, c = _setup("trtllm", 8)
    logits = collective_time_s(profile, kind="allgather", group_size=8, n_bytes=64 * spec.vocab_size * 2)
    assert edge_collectives_s(c, profile, tokens=64, sampled=64) == pytest.approx(logits)


def test_megatron_keeps_the_logits_sharded_and_under_sp_scatters_the_embedding_and_gathers_the_head_input():
    spec, profile, c = _setup("megatron", 8)
    scatter = collective_time_s(profile, kind="reducescatter", group_size=8, n_bytes=4096 * spec.hidden_size * 2)
    gather = collective_time_s(profile, kind="allgather", group_size=8, n_bytes=4096 * spec.hidden_size * 2)
    assert edge_collectives_s(c, profile, tokens=4096, sampled=4096, sequence_parallel=True) == pytest.approx(
        scatter + gather)
    assert head_collectives_s(c, profile, head_tokens=4096) == 0  # no SP: the input is already whole


def test_with_pp_the_embedding_collective_is_on_the_first_stage_and_the_logits_gather_on_the_last():
    """80 layers over 2 stages: 40 each; the last stage adds the lm_head and its gather, the first the embedding's
    all-reduce. A round of 2 micro-batches is 2 x the slower stage plus the hand-off."""
    spec, profile, c = _setup("vllm", 4)
    c = coefficients(spec, profile, tp=4, pp=2, engine="vllm")
    batch, ctx = 64, 1024
    b = batch / 2
    layers = decoder_layers(c, profile, decode_seqs=b, context_len=ctx)
    body = layers.compute_s + layers.communication_s
    head = _head_s(c, b)
    first = embedding_collective_s(c, profile, tokens=b)
    last = head_collectives_s(c, profile, head_tokens=b)
    assert first > 0 and last > 0
    handoff = pipeline_handoffs_s(profile, tp=4, pp=2, n_bytes=b * spec.hidden_size * 2)
    step = decode_step(c, profile, batch=batch, context_len=ctx)
    expected = 2 * max(body / 2 + first, body / 2 + head + last) + handoff
    assert step.compute_s + step.communication_s == pytest.approx(expected)


def test_a_training_forward_computes_and_gathers_every_positions_logits():
    spec, profile, c = _setup("megatron", 8)
    serve = prefill(c, profile, prompts=2, input_len=4096, sequence_parallel=True)
    train = prefill(c, profile, prompts=2, input_len=4096, sequence_parallel=True, every_position=True)
    assert train.compute_s - serve.compute_s == pytest.approx(_head_s(c, 2 * 4096) - _head_s(c, 2))
    assert train.communication_s - serve.communication_s == pytest.approx(
        head_collectives_s(c, profile, head_tokens=2 * 4096, sequence_parallel=True)
        - head_collectives_s(c, profile, head_tokens=2, sequence_parallel=True))


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm", "megatron"])
def test_one_gpu_has_no_edge_collectives(engine):
    _, profile, c = _setup(engine, 1)
    assert edge_collectives_s(c, profile, tokens=512, sampled=512) == 0

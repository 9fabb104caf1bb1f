"""Invariants over every degree an engine accepts, not only powers of two (hypothesis).

Architectures are drawn with head counts such as 12, 20, 28 or 40 and KV heads such as 3, 5 or 6, so degrees
3, 5, 6, 7, 10, 12 ... occur; TensorRT-LLM's own rounding (ceil(kv / t) KV heads per rank, vocab padded to a
multiple of t) is checked against its definition.
"""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from tpplan.models.engines import kv_heads_per_gpu, padded_vocab, tp_violation, valid_tp_degrees
from tpplan.models.hf_config import spec_from_hf_config
from tpplan.models.kv import kv_cache_bytes_per_token
from tpplan.models.weights import weight_bytes_per_gpu, weight_bytes_total

EXAMPLES = int(os.environ.get("TPPLAN_PROPERTY_EXAMPLES", "200"))
"""~200 per property in `make test`; set TPPLAN_PROPERTY_EXAMPLES=5000 for a long run."""
MAX_DEGREE = 16


@st.composite
def odd_architectures(draw):
    kv = draw(st.integers(1, 12))
    heads = kv * draw(st.integers(1, 10))
    head_dim = draw(st.sampled_from([64, 80, 128]))
    cfg = {"model_type": draw(st.sampled_from(["llama", "qwen2", "mistral"])), "hidden_size": heads * head_dim,
           "head_dim": head_dim, "num_hidden_layers": draw(st.integers(1, 8)), "num_attention_heads": heads,
           "num_key_value_heads": kv, "intermediate_size": draw(st.integers(1, 400)) * 48,
           "vocab_size": draw(st.integers(1000, 160_000)), "max_position_embeddings": 4096,
           "tie_word_embeddings": draw(st.booleans())}
    return spec_from_hf_config(cfg, origin="hypothesis")


ENGINES = st.sampled_from(["vllm", "sglang", "trtllm", "megatron"])


@settings(max_examples=EXAMPLES, deadline=None)
@given(odd_architectures(), ENGINES)
def test_valid_degrees_split_query_heads_exactly(spec, engine):
    for t in valid_tp_degrees(spec, engine=engine, max_tp=MAX_DEGREE):
        assert spec.num_attention_heads % t == 0
        assert tp_violation(spec, t, engine=engine) is None
    assert 1 in valid_tp_degrees(spec, engine=engine, max_tp=MAX_DEGREE)


@settings(max_examples=EXAMPLES, deadline=None)
@given(odd_architectures(), ENGINES)
def test_kv_heads_on_the_ranks_cover_every_head(spec, engine):
    """Every KV head lives on some rank: heads per rank x t >= kv; a split never stores more than it must
    (vLLM: exact when t divides kv; TensorRT-LLM: ceil, so (heads - 1) x t < kv)."""
    kv = spec.num_key_value_heads
    for t in valid_tp_degrees(spec, engine=engine, max_tp=MAX_DEGREE):
        per_rank = kv_heads_per_gpu(kv, tp=t, engine=engine)
        assert per_rank >= 1 and per_rank * t >= kv
        if engine == "trtllm":
            assert (per_rank - 1) * t < kv
        elif t <= kv:
            assert per_rank * t == kv
        else:
            assert per_rank == 1 and t % kv == 0  # replicated t / kv times


@settings(max_examples=EXAMPLES, deadline=None)
@given(odd_architectures(), st.integers(1, 64))
def test_trtllm_vocab_padding_is_the_next_multiple_of_tp(spec, t):
    v = padded_vocab(spec.vocab_size, tp=t, engine="trtllm")
    assert v % t == 0 and spec.vocab_size <= v < spec.vocab_size + t


@settings(max_examples=EXAMPLES, deadline=None)
@given(odd_architectures(), ENGINES)
def test_weights_cover_the_model_and_shrink_over_valid_degrees(spec, engine):
    total = weight_bytes_total(spec)
    previous = None
    for t in valid_tp_degrees(spec, engine=engine, max_tp=MAX_DEGREE):
        per_gpu = weight_bytes_per_gpu(spec, tp=t, engine=engine)
        assert per_gpu * t >= total
        if previous is not None:
            assert per_gpu <= previous, (t, per_gpu, previous)
        previous = per_gpu


@settings(max_examples=EXAMPLES, deadline=None)
@given(odd_architectures(), ENGINES)
def test_kv_bytes_per_gpu_times_tp_never_below_the_model(spec, engine):
    whole = kv_cache_bytes_per_token(spec, tp=1, engine=engine)
    for t in valid_tp_degrees(spec, engine=engine, max_tp=MAX_DEGREE):
        per_gpu = kv_cache_bytes_per_token(spec, tp=t, engine=engine)
        assert per_gpu * t >= whole
        assert per_gpu <= whole

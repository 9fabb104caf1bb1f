"""Invariants over random valid architectures (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tpplan.models.engines import kv_heads_per_gpu
from tpplan.models.hf_config import spec_from_hf_config
from tpplan.models.kv import kv_cache_bytes_per_token
from tpplan.models.params import total_params
from tpplan.models.weights import weight_bytes_per_gpu, weight_bytes_total


@st.composite
def architectures(draw):
    kv = draw(st.sampled_from([1, 2, 4, 8, 16]))
    heads = kv * draw(st.sampled_from([1, 2, 4, 8]))
    head_dim = draw(st.sampled_from([64, 128]))
    cfg = {"model_type": draw(st.sampled_from(["llama", "qwen2", "mixtral", "gemma2", "falcon"])),
           "hidden_size": heads * head_dim, "num_hidden_layers": draw(st.integers(1, 12)),
           "num_attention_heads": heads, "num_key_value_heads": kv,
           "intermediate_size": 64 * draw(st.integers(1, 64)), "vocab_size": draw(st.integers(100, 70_000)),
           "max_position_embeddings": 4096, "tie_word_embeddings": draw(st.booleans())}
    if cfg["model_type"] == "mixtral":
        cfg |= {"num_local_experts": draw(st.sampled_from([4, 8])), "num_experts_per_tok": 2}
    if cfg["model_type"] == "falcon":
        cfg |= {"num_kv_heads": kv, "new_decoder_architecture": True}
    return spec_from_hf_config(cfg, origin="hypothesis")


DEGREES = [1, 2, 4, 8, 16, 32]


@settings(max_examples=200, deadline=None)
@given(architectures())
def test_weights_times_tp_cover_the_model_and_never_grow_with_tp(spec):
    total = weight_bytes_total(spec)
    previous = None
    for t in DEGREES:
        per_gpu = weight_bytes_per_gpu(spec, tp=t)
        assert per_gpu * t >= total
        if previous is not None:
            assert per_gpu <= previous
        previous = per_gpu


@settings(max_examples=200, deadline=None)
@given(architectures())
def test_kv_heads_per_gpu_rule(spec):
    for t in DEGREES:
        heads = kv_heads_per_gpu(spec.num_key_value_heads, tp=t)
        assert heads == max(1, spec.num_key_value_heads // t)
        assert kv_cache_bytes_per_token(spec, tp=t) == spec.num_hidden_layers * 2 * heads * spec.head_dim * 2


@settings(max_examples=100, deadline=None)
@given(architectures())
def test_total_params_positive_and_bytes_consistent(spec):
    assert weight_bytes_total(spec) == 2 * total_params(spec)

"""KV-cache bytes per token: whole model and per GPU under TP (shared/DESIGN.md §3, FACTS.md §2).

Standard attention, per layer per token: 2 (K and V) x kv_heads_per_gpu(t) x head_dim x kv_bytes,
where kv_heads_per_gpu = max(1, kv // t) (vLLM/SGLang) or ceil(kv / t) (TensorRT-LLM).
MLA: one latent of (kv_lora_rank + qk_rope_head_dim) x kv_bytes per layer, replicated on every TP rank.
Sliding-window layers hold at most `window` tokens of a sequence (Llama 4's chunked layers hold the whole context:
ModelSpec.kv_cache_window); mllama's cross-attention layers hold the
image's tokens, none of the text's (images are not planned: text-only requests).
"""

from __future__ import annotations

from functools import lru_cache

from tpplan.models.dtypes import KV_DTYPE_BYTES
from tpplan.models.engines import kv_heads_per_gpu
from tpplan.models.spec import ModelSpec
from tpplan.models.weights import stage_layers


def kv_bytes_per_token_per_layer(s: ModelSpec, *, tp: int = 1, kv_dtype: str = "bf16",
                                 engine: str = "vllm") -> int:
    """Bytes one token adds to one layer's cache on one GPU."""
    b = KV_DTYPE_BYTES[kv_dtype]
    if s.is_mla:
        return (s.kv_lora_rank + s.qk_rope_head_dim) * b
    heads = s.num_key_value_heads if tp == 1 else kv_heads_per_gpu(s.num_key_value_heads, tp=tp, engine=engine)
    return 2 * heads * s.head_dim * b


def kv_cache_bytes_per_token(s: ModelSpec, *, tp: int = 1, kv_dtype: str = "bf16", engine: str = "vllm") -> int:
    """Bytes per token over the layers that cache text tokens (no window cap; cross-attention layers cache the
    image's tokens instead). tp=1: the whole model's figure.

    Llama-3.1-70B bf16: 2 x 80 x 8 x 128 x 2 = 327,680 B.
    """
    layers = s.num_hidden_layers - len(s.cross_attention_layers)
    return layers * kv_bytes_per_token_per_layer(s, tp=tp, kv_dtype=kv_dtype, engine=engine)


@lru_cache(maxsize=64)
def _cache_windows(s: ModelSpec) -> tuple[int | None, ...]:
    """kv_cache_window of every layer, once per model (the planner asks for every candidate and batch)."""
    return tuple(s.kv_cache_window(layer) for layer in range(s.num_hidden_layers))


def kv_cache_bytes_per_sequence(s: ModelSpec, *, context_len: int, tp: int = 1, pp: int = 1,
                                kv_dtype: str = "bf16", engine: str = "vllm") -> int:
    """Bytes one sequence of `context_len` tokens holds on the most loaded GPU of a (tp, pp) replica.

    Sum over the stage's layers of min(context_len, window) x per-layer bytes per token.
    """
    per_layer = kv_bytes_per_token_per_layer(s, tp=tp, kv_dtype=kv_dtype, engine=engine)
    windows = _cache_windows(s)
    best = 0
    for layers in stage_layers(s.num_hidden_layers, pp=pp):
        tokens = 0
        for layer in layers:
            window = windows[layer]
            tokens += context_len if window is None else min(context_len, window)
        best = max(best, tokens * per_layer)
    return best

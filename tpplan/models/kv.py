"""KV-cache bytes per token: whole model and per GPU under TP (shared/DESIGN.md §3, FACTS.md §2).

Standard attention, per layer per token: 2 (K and V) x kv_heads_per_gpu(t) x head_dim x kv_bytes,
where kv_heads_per_gpu = max(1, kv // t) (vLLM/SGLang) or ceil(kv / t) (TensorRT-LLM).
MLA: one latent of (kv_lora_rank + qk_rope_head_dim) x kv_bytes per layer, replicated on every TP rank.
Sliding-window layers hold at most `window` tokens of a sequence (Llama 4's chunked layers hold the whole context:
ModelSpec.kv_cache_window); mllama's cross-attention layers hold the
image's tokens, none of the text's (images are not planned: text-only requests).
Linear-attention (Gated DeltaNet) layers hold no per-token KV: a constant state per running sequence instead
(`linear_state_bytes_per_sequence`).
"""

from __future__ import annotations

from functools import lru_cache

from tpplan.models.dtypes import KV_DTYPE_BYTES
from tpplan.models.engines import kv_heads_per_gpu
from tpplan.models.spec import ModelSpec
from tpplan.models.weights import stage_layers
from tpplan.units import ceil_div


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

    Llama-3.1-70B bf16: 2 x 80 x 8 x 128 x 2 = 327,680 B. Linear-attention layers hold none.
    """
    layers = s.num_hidden_layers - len(s.cross_attention_layers) - s.num_linear_layers
    return layers * kv_bytes_per_token_per_layer(s, tp=tp, kv_dtype=kv_dtype, engine=engine)


@lru_cache(maxsize=64)
def _cache_windows(s: ModelSpec) -> tuple[int | None, ...]:
    """kv_cache_window of every layer, once per model (the planner asks for every candidate and batch)."""
    return tuple(s.kv_cache_window(layer) for layer in range(s.num_hidden_layers))


@lru_cache(maxsize=64)
def kv_window_mix(s: ModelSpec) -> tuple[tuple[int | None, int], ...]:
    """The layers that cache a sequence's tokens, grouped by the tokens their cache keeps: ((None, layers that keep
    the whole context), (window, sliding-window layers), ...). Cross-attention and linear-attention layers, which
    cache none of the text's tokens, are left out. Gemma-2-27B: ((None, 23), (4096, 23))."""
    return kv_window_mix_by_stage(s, pp=1)[0]


@lru_cache(maxsize=256)
def kv_window_mix_by_stage(s: ModelSpec, *, pp: int = 1) -> tuple[tuple[tuple[int | None, int], ...], ...]:
    """`kv_window_mix` of each pipeline stage's layers (`stage_layers`): gpt-oss at PP4 has stages of 5 sliding + 4
    full layers and of 4 sliding + 5 full. Once per model and pp."""
    windows = _cache_windows(s)
    out = []
    for layers in stage_layers(s.num_hidden_layers, pp=pp):
        counts: dict[int | None, int] = {}
        for layer in layers:
            if windows[layer] != 0:
                counts[windows[layer]] = counts.get(windows[layer], 0) + 1
        full = counts.pop(None, 0)
        out.append(((None, full),) * bool(full) + tuple(sorted(counts.items())))
    return tuple(out)


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


SGLANG_SSM_STATE_BYTES = 4
"""SGLang keeps the recurrent (temporal) state of linear-attention layers in fp32 by default (ServerArgs
mamba_ssm_dtype "float32", sgl-project/sglang python/sglang/srt/server_args.py); the conv state in the model dtype."""


def state_bytes_for(engine: str, act_bytes: int) -> tuple[int, int]:
    """(conv state, recurrent state) bytes per element an engine allocates: vLLM the model dtype for both
    (mamba_cache_dtype / mamba_ssm_cache_dtype 'auto'); SGLang fp32 for the recurrent state."""
    return act_bytes, SGLANG_SSM_STATE_BYTES if engine == "sglang" else act_bytes


def linear_state_bytes_per_layer(s: ModelSpec, *, tp: int = 1, state_bytes: int = 2,
                                 recurrent_bytes: int | None = None) -> int:
    """Bytes of one sequence's state in one Gated DeltaNet layer on one GPU, as vLLM allocates it
    (vllm/model_executor/layers/mamba/mamba_utils.py, MambaStateShapeCalculator.gated_delta_net_state_shape):
    a conv state of (kernel - 1) x conv_dim / t, conv_dim = 2 x k heads x k dim + v heads x v dim, and a recurrent
    (temporal) state of v heads / t x v dim x k dim; each element `state_bytes` (MambaStateDtypeCalculator.
    gated_delta_net_state_dtype: mamba_cache_dtype and mamba_ssm_cache_dtype 'auto' = the model dtype, 2 bytes
    for bf16); `recurrent_bytes` for the recurrent state where the engine keeps it wider (`state_bytes_for`). Without
    speculative decoding (num_spec 0).

    Qwen3-Next-80B-A3B at tp 1, bf16: (3 x 8,192 + 32 x 128 x 128) x 2 = 1,097,728 B per layer."""
    conv_dim = 2 * s.linear_num_key_heads * s.linear_key_head_dim + s.linear_num_value_heads * s.linear_value_head_dim
    conv = (s.linear_conv_kernel_dim - 1) * (conv_dim // tp)
    recurrent = s.linear_num_value_heads // tp * s.linear_value_head_dim * s.linear_key_head_dim
    return conv * state_bytes + recurrent * (recurrent_bytes or state_bytes)


def linear_state_bytes_per_sequence(s: ModelSpec, *, tp: int = 1, pp: int = 1, state_bytes: int = 2,
                                    recurrent_bytes: int | None = None) -> int:
    """Bytes one running sequence holds in the linear-attention layers of the most loaded stage of a (tp, pp)
    replica, whatever its length (0 for models without such layers). Counts against memory per sequence, not per
    token: vLLM gives every running request one state slot per such layer (padded up to the attention page size of
    its hybrid KV cache manager; the padding is not modelled)."""
    if not s.num_linear_layers:
        return 0
    per_layer = linear_state_bytes_per_layer(s, tp=tp, state_bytes=state_bytes, recurrent_bytes=recurrent_bytes)
    stages = stage_layers(s.num_hidden_layers, pp=pp)
    return max(sum(s.is_linear_layer(i) for i in layers) for layers in stages) * per_layer


def kv_layers_per_stage(s: ModelSpec, *, pp: int = 1) -> int:
    """Layers with a per-token KV cache on the most loaded pipeline stage: ceil(L / pp) for models without
    linear-attention layers (what the KV token count has always divided by), else the stage's attention layers."""
    if not s.num_linear_layers:
        return ceil_div(s.num_hidden_layers, pp)
    return max(sum(not s.is_linear_layer(i) for i in layers) for layers in stage_layers(s.num_hidden_layers, pp=pp))

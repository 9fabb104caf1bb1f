"""Golden files and training memory anchored to numbers computed independently of the code under test.

The golden JSON files (tests/golden/) were produced by tpplan itself; these tests recompute the parts that
have a closed form from the published config.json (tests/data/models/) by hand-written arithmetic that does
not call tpplan's models layer: weights per GPU as vLLM shards them, KV bytes per token per GPU, all-reduce
bytes per layer. Training memory is checked against Korthikanti et al. 2022 (arXiv:2205.05198) and the
Megatron-LM mixed-precision rule of 18 bytes per parameter.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data" / "models"
GOLDEN = Path(__file__).parent / "golden"
BF16 = 2


def _cfg(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def vllm_dense_weight_bytes_per_gpu(cfg: dict, tp: int) -> int:
    """Per-GPU bf16 weights of a dense Llama/Qwen2 model under vLLM TP `tp`, PP 1, written out by hand.

    q, o, gate, up, down split tp ways; k, v split while kv >= tp, else one head per rank; q/k/v biases
    (Qwen2) follow their matrices; 2 RMSNorm vectors per layer and the final norm replicated; embedding and
    untied lm_head vocab-parallel after padding the vocab to a multiple of 64 (vLLM
    DEFAULT_VOCAB_PADDING_SIZE).
    """
    h, layers, f = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = cfg.get("head_dim") or h // heads
    kv_rank = max(1, kv // tp)
    q_rank = heads // tp
    per_layer = h * q_rank * d + 2 * h * kv_rank * d + q_rank * d * h + 3 * h * f // tp + 2 * h
    if cfg["model_type"] == "qwen2":
        per_layer += q_rank * d + 2 * kv_rank * d
    vocab = -(-cfg["vocab_size"] // 64) * 64
    embeddings = (1 if cfg.get("tie_word_embeddings") else 2) * vocab // tp * h
    return BF16 * (layers * per_layer + embeddings + h)


def kv_bytes_per_token_per_gpu(cfg: dict, tp: int) -> int:
    """2 (K and V) x layers x KV heads on the rank x head_dim x 2 bytes (bf16 cache)."""
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = cfg.get("head_dim") or cfg["hidden_size"] // heads
    return 2 * cfg["num_hidden_layers"] * max(1, kv // tp) * d * BF16


GOLDEN_MODELS = {"llama-70b_dgx-h100_8": "Llama-3.1-70B", "llama-8b_h100-pcie_8": "Llama-3.1-8B",
                 "qwen-7b_l40s_4": "Qwen2.5-7B-Instruct"}


def _golden_pp1(golden: str):
    d = json.loads((GOLDEN / f"{golden}.json").read_text())
    return [c for c in d["candidates"] if c["pp"] == 1]


@pytest.mark.parametrize("golden", sorted(GOLDEN_MODELS))
def test_golden_weights_per_gpu_match_hand_arithmetic(golden):
    cfg = _cfg(GOLDEN_MODELS[golden])
    rows = _golden_pp1(golden)
    assert rows
    for c in rows:
        assert c["weight_bytes_per_gpu"] == vllm_dense_weight_bytes_per_gpu(cfg, c["tp"]), (golden, c["tp"])


def test_llama_70b_tp8_by_hand():
    """Llama-3.1-70B at TP8, every term written out: 80 layers x 106,971,136 params + 2 x 131,334,144
    vocab-parallel rows x ... + 8,192 final norm = 8,820,367,360 params = 17,640,734,720 bytes."""
    per_layer = 8192 * 1024 + 2 * 8192 * 128 + 1024 * 8192 + 3 * 8192 * 28672 // 8 + 2 * 8192
    assert per_layer == 106_971_136
    params = 80 * per_layer + 2 * (128256 // 8) * 8192 + 8192
    assert 2 * params == 17_640_734_720 == vllm_dense_weight_bytes_per_gpu(_cfg("Llama-3.1-70B"), 8)
    tp8 = next(c for c in _golden_pp1("llama-70b_dgx-h100_8") if c["tp"] == 8)
    assert tp8["weight_bytes_per_gpu"] == 17_640_734_720


@pytest.mark.parametrize("golden", sorted(GOLDEN_MODELS))
def test_golden_kv_tokens_follow_bytes_per_token(golden):
    """KV tokens = KV bytes per GPU / (bytes per token per GPU), to within one token (floor)."""
    cfg = _cfg(GOLDEN_MODELS[golden])
    for c in _golden_pp1(golden):
        if not c["feasible"]:
            continue
        per_token = kv_bytes_per_token_per_gpu(cfg, c["tp"])
        assert c["kv_cache_tokens"] == c["kv_cache_bytes_per_gpu"] // per_token, (golden, c["tp"])


def test_llama_70b_kv_bytes_per_token_published():
    """Llama-3.1-70B: 327,680 B/token for the whole model in bf16 (2 x 80 x 8 x 128 x 2); 40,960 per GPU at TP8
    (one KV head per rank)."""
    cfg = _cfg("Llama-3.1-70B")
    assert kv_bytes_per_token_per_gpu(cfg, 1) == 327_680
    assert kv_bytes_per_token_per_gpu(cfg, 8) == 40_960


@pytest.mark.parametrize("golden", sorted(GOLDEN_MODELS))
def test_golden_allreduce_bytes_are_two_per_layer_of_the_decode_batch(golden):
    """DESIGN.md §3: 2 all-reduces per layer of S = tokens x hidden x 2 bytes; 0 at TP1. The decode batch of a
    replica is its concurrency (paged KV, already capped by the scheduler's max_num_seqs)."""
    h = _cfg(GOLDEN_MODELS[golden])["hidden_size"]
    for c in _golden_pp1(golden):
        if not c["feasible"]:
            continue
        expected = 0 if c["tp"] == 1 else 2 * c["max_concurrent_sequences"] * h * BF16
        assert c["allreduce_bytes_per_layer"] == expected, (golden, c["tp"])


# --- training -------------------------------------------------------------------------------------------------

GPT3_175B = {"model_type": "gpt2_like_for_test", "hidden_size": 12288, "num_attention_heads": 96,
             "num_hidden_layers": 96}


def test_korthikanti_activation_memory_by_hand():
    """Korthikanti et al. 2022 (arXiv:2205.05198) §4, 16-bit activations, no recomputation: per layer
    s b h (10 + 24/t + 5 a s / (h t)) bytes with TP; s b h (34/t + 5 a s / (h t)) with sequence parallelism.
    GPT-3 175B (h 12288, a 96), s 2048, b 1, t 8:
      no SP: 2048 x 12288 x (10 + 3 + 10)    = 578,813,952 B per layer
      SP:    2048 x 12288 x (4.25 + 10)      = 358,612,992 B per layer
    and, on the one stage of PP1, the loss's fp32 logits (§4.3): 4 s b V / t = 4 x 2048 x 6283 = 51,470,336 B.
    """
    from tpplan.models.spec import ModelSpec
    from tpplan.planner.train import activation_bytes_per_gpu

    spec = ModelSpec(name="gpt3-175b-shape", hf_id="test", model_type="llama", hidden_size=12288,
                     num_hidden_layers=96, num_attention_heads=96, num_key_value_heads=96, head_dim=128,
                     tie_word_embeddings=False, intermediate_size=4 * 12288, vocab_size=50257,
                     max_position_embeddings=2048)
    no_sp = activation_bytes_per_gpu(spec, tp=8, pp=1, micro_batch=1, seq_len=2048, sp=False)
    sp = activation_bytes_per_gpu(spec, tp=8, pp=1, micro_batch=1, seq_len=2048, sp=True)
    assert no_sp == 96 * 578_813_952 + 51_470_336
    assert sp == 96 * 358_612_992 + 51_470_336


def test_training_state_is_18_bytes_per_parameter():
    """Megatron-LM mixed precision without the distributed optimizer: bf16 weight 2 + fp32 grad 4 + fp32 master 4
    + Adam m, v 8 = 18 B/param. Llama-2-7B (6,738,415,616 params, HF safetensors total) at TP1 x PP1:
    121,291,481,088 bytes."""
    from tpplan.planner.plan import recommend

    plan = recommend("llama-2-7b", gpus=8, hardware="dgx-h100", workload="train")
    tp1 = next(c for c in plan.candidates if c.tp == 1 and c.pp == 1)
    assert tp1.weight_bytes_per_gpu == 6_738_415_616 * 2  # bf16 weights alone
    assert tp1.weight_bytes_per_gpu + tp1.optimizer_state_bytes_per_gpu == 6_738_415_616 * 18 == 121_291_481_088

"""The kernels of an MoE layer beyond the dense roofline: grouped-GEMM per-expert cost and routing kernels."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tpplan.cost.coefficients import coefficients
from tpplan.cost.kernels import KernelRates, matmul_time_s
from tpplan.cost.moe import MOE_KERNELS, grouped_gemm_time_s, routing_time_s
from tpplan.cost.step import decode_step
from tpplan.hardware.loader import kernel_defaults, load_builtin
from tpplan.models.resolve import resolve_model
from tpplan.planner.candidates import activation_reserve_bytes
from tpplan.planner.workload import ACTIVATION_RESERVE_LOGIT_SEQS, Workload
from tpplan.units import GB, TB, TERA, US

RATES = KernelRates(matmul_flops_per_s=1000 * TERA, memory_bytes_per_s=3 * TB, kernel_overhead_s=4 * US,
                    attention_decode_bytes_per_s=2 * TB, attention_prefill_flops_per_s=300 * TERA,
                    moe_expert_fixed_tokens=88)


def test_grouped_gemm_with_few_tokens_per_expert_costs_the_fixed_rows_above_the_dense_roofline():
    flops_per_pair = 2 * 3 * 4096 * 1536  # one token through one Qwen3-235B expert (gate, up, down)
    pairs, experts = 16 * 32, 16  # 32 tokens on each of 16 experts: compute-bound with these rates
    dense = matmul_time_s(RATES, flops=pairs * flops_per_pair, n_bytes=0.0, launches=2)
    grouped = grouped_gemm_time_s(RATES, pairs=pairs, active_experts=experts, flops_per_pair=flops_per_pair,
                                  n_bytes=0.0)
    assert grouped - dense == pytest.approx(experts * 88 * flops_per_pair / (1000 * TERA))
    # memory-bound (weights dominate): the extra rows cost nothing
    big_bytes = 1 * GB
    assert grouped_gemm_time_s(RATES, pairs=pairs, active_experts=experts, flops_per_pair=flops_per_pair,
                               n_bytes=big_bytes) == matmul_time_s(RATES, flops=0, n_bytes=big_bytes, launches=2)


def test_fixed_tokens_default_reproduces_the_published_deepgemm_ratios():
    """DeepGEMM README (H800, FP8): masked grouped GEMM / dense GEMM of the same N, K reached 0.71-0.80 at 256
    tokens per group and 0.90-0.95 at 1024 (cited in hardware_profiles/defaults/kernels.yaml)."""
    m0 = float(kernel_defaults()["moe_expert_fixed_tokens"])
    assert 0.71 <= 256 / (256 + m0) <= 0.80
    assert 0.90 <= 1024 / (1024 + m0) <= 0.95
    assert load_builtin("dgx-h100").efficiency.moe_expert_fixed_tokens == m0


@pytest.mark.parametrize("engine", ["trtllm", "vllm"])
def test_routing_kernels_are_part_of_the_moe_step(engine):
    spec, profile = resolve_model("qwen3-30b-a3b").spec, load_builtin("dgx-h100")
    c = coefficients(spec, profile, tp=1, engine=engine)
    assert c.moe_kernels is MOE_KERNELS[engine]
    batch = 256
    with_routing = decode_step(c, profile, batch=batch, context_len=1024).compute_s
    without = decode_step(replace(c, moe_kernels=None), profile, batch=batch, context_len=1024).compute_s
    one = routing_time_s(c.moe_kernels, c.rates, tokens=batch, pairs=batch * spec.num_experts_per_tok,
                         hidden_size=spec.hidden_size, act_bytes=c.act_bytes)
    assert with_routing - without == pytest.approx(c.num_moe_layers * one)
    k = MOE_KERNELS[engine]
    assert one == pytest.approx((k.token_passes + k.pair_passes * 8) * batch * 2048 * 2 / c.rates.memory_bytes_per_s
                                + k.launches * c.rates.kernel_overhead_s)


def test_trtllm_permutes_rows_that_vllm_gathers_in_its_gemm():
    # TensorRT-LLM's expandInputRows writes one row per (token, expert) pair that vLLM's Triton GEMM gathers itself:
    # at the same tokens and pairs, its routing costs those extra pair rows in bytes and its extra launches in time.
    rates = KernelRates(matmul_flops_per_s=1 * TERA, memory_bytes_per_s=1 * TB, kernel_overhead_s=4 * US,
                        attention_decode_bytes_per_s=1 * TB, attention_prefill_flops_per_s=1 * TERA)
    tokens, pairs, hidden = 256, 2048, 4096
    trt, vllm = (routing_time_s(MOE_KERNELS[e], rates, tokens=tokens, pairs=pairs, hidden_size=hidden, act_bytes=2)
                 for e in ("trtllm", "vllm"))
    t, v = MOE_KERNELS["trtllm"], MOE_KERNELS["vllm"]
    extra_bytes = ((t.token_passes - v.token_passes) * tokens + (t.pair_passes - v.pair_passes) * pairs) * hidden * 2
    assert trt - vllm == pytest.approx(extra_bytes / (1 * TB) + (t.launches - v.launches) * 4 * US)
    assert trt > vllm


def test_dense_models_do_not_see_the_moe_terms():
    spec, profile = resolve_model("llama-3.1-8b").spec, load_builtin("dgx-h100")
    plain = replace(profile, efficiency=replace(profile.efficiency, moe_expert_fixed_tokens=0.0))
    c = coefficients(spec, profile, tp=1)
    assert c.moe_kernels is None
    assert decode_step(c, profile, batch=64, context_len=512).total_s == \
        decode_step(coefficients(spec, plain, tp=1), plain, batch=64, context_len=512).total_s


def test_fixed_tokens_slow_an_moe_step_more_at_few_tokens_per_expert():
    spec, profile = resolve_model("qwen3-30b-a3b").spec, load_builtin("dgx-h100")
    plain = replace(profile, efficiency=replace(profile.efficiency, moe_expert_fixed_tokens=0.0))
    c, c0 = coefficients(spec, profile, tp=1), coefficients(spec, plain, tp=1)

    def ratio(batch):
        return (decode_step(c, profile, batch=batch, context_len=1).compute_s
                / decode_step(c0, plain, batch=batch, context_len=1).compute_s)

    # 4096 tokens x 8 of 128 experts = 256 per expert: compute-bound, the 88 extra rows show; at 65536 they fade
    assert ratio(4096) > ratio(65536) > 1


def test_maverick_dense_layers_and_shared_expert_widths_per_gpu():
    # meta-llama/Llama-4-Maverick-17B-128E-Instruct config.json: intermediate_size_mlp 16384 (the 24 dense layers),
    # intermediate_size 8192 (each routed and the one shared expert), top-1. The dense layers' matmuls carry their
    # own width, the shared expert's matmuls theirs, split routed experts top_k x 8192 / tp
    spec, profile = resolve_model("llama4-maverick").spec, load_builtin("dgx-h100")
    c = coefficients(spec, profile, tp=8, dtype="fp8")
    assert (c.dense_width_per_gpu, c.routed_width_per_gpu, c.shared_width_per_gpu) == (2048, 1024, 1024)
    scout = coefficients(resolve_model("llama4-scout").spec, profile, tp=8, dtype="fp8")
    assert (scout.dense_width_per_gpu, scout.routed_width_per_gpu, scout.shared_width_per_gpu) == (0, 1024, 1024)
    dense = coefficients(resolve_model("llama-3.1-8b").spec, profile, tp=2)
    assert (dense.dense_width_per_gpu, dense.mlp_width_per_gpu, dense.routed_width_per_gpu) == (7168, 7168, 0)


def test_shared_expert_activations_cost_time():
    spec, profile = resolve_model("llama4-scout").spec, load_builtin("dgx-h100")
    c = coefficients(spec, profile, tp=8, dtype="fp8")
    no_shared = replace(c, shared_width_per_gpu=0)
    # 64 tokens: the shared expert's matmuls are memory-bound (15.7 MB of FP8 weights per GPU), so the 64 x 3 x 1024
    # activations they also move show; at thousands of tokens they are FLOP-bound and the bytes are hidden
    assert (decode_step(c, profile, batch=64, context_len=1).compute_s
            > decode_step(no_shared, profile, batch=64, context_len=1).compute_s)


def test_activation_reserve_uses_the_widest_mlp_the_layers_have():
    # an all-MoE config's intermediate_size belongs to no layer (Scout's intermediate_size_mlp): widening it must
    # not move the reserve; the widest MoE layer is top_k routed + shared experts (2 x 8192 for Scout)
    scout, profile = resolve_model("llama4-scout").spec, load_builtin("dgx-h100")
    w = Workload(gpus=4, dtype="fp8", max_model_len=4096)
    c = coefficients(scout, profile, tp=4, dtype="fp8")
    wide = replace(scout, intermediate_size=4 * scout.intermediate_size)
    reserve = activation_reserve_bytes(scout, c, w)
    assert activation_reserve_bytes(wide, c, w) == reserve
    logits = ACTIVATION_RESERVE_LOGIT_SEQS * -(-scout.vocab_size // 4) * 4  # fp32, vocab-parallel
    assert reserve == 4096 * (4 * scout.hidden_size + 2 * (8192 + 8192) // 4) * c.act_bytes + logits

"""DeepEP's normal and low-latency all-to-all kernels as their own physics (issue 14, item 3): the bytes each mode
sends, the README figures they reproduce, which mode each engine runs in which step, and the flags.
Sources and constants: tpplan/cost/deepep.py (DeepEP V1 README, H800 + CX7 400 Gb/s)."""

from __future__ import annotations

import dataclasses

import pytest

from tpplan.cost.coefficients import coefficients
from tpplan.cost.collectives import collective_time_s
from tpplan.cost.deepep import (
    A2aGroup,
    ll_buffer_bytes,
    low_latency_bytes,
    low_latency_time_s,
    normal_bytes,
    normal_nvl_buffer_bytes,
    normal_rdma_buffer_bytes,
    normal_recv_tokens,
)
from tpplan.cost.moe import a2a_group, a2a_kernels, dispatch_bytes_per_gpu, moe_comm_time_s
from tpplan.cost.step import decode_step, mixed_step
from tpplan.errors import TpplanError
from tpplan.hardware.loader import load_builtin
from tpplan.models.dtypes import resolve_dtype
from tpplan.models.moe_backends import a2a_mode
from tpplan.models.resolve import resolve_model
from tpplan.planner.plan import recommend

FP8_MSG = 7168 + 7168 // 128 * 4  # 7,392 bytes: FP8 values + one fp32 scale per 128 channels
LL_FP8_MSG = 16 + FP8_MSG  # 7,408: the low-latency message's int4 header in front (the README test's message size)
BF16_MSG = 7168 * 2  # 14,336: the combine
LL_SLOT = 2 * 256 * (16 + 2 * 7168 + 2 * 7168)  # 14,688,256 bytes of DeepSeek-V3's low-latency buffer per token
# DeepEP's normal buffers for DeepSeek-V3 (hidden_bytes 7168 x 2) on 16 ranks, by hand from csrc/config.hpp with
# Buffer.num_sms 20 (10 channels), 2 RDMA ranks of 8 NVLink ranks, 288 NVLink / 140 RDMA receive tokens; a token slot
# holds 14,336 value bytes + 8 SourceMeta + 128 x 8 top-k indices + 128 x 4 weights + 128 x 4 scales = 16,392 bytes
EP16_NORMAL_NVL = 377_673_984  # 10 x 8 x ((2 x 2 + 3) x 4 + 288 x 16,392) = 377,673,920, up to 128 bytes
EP16_NORMAL_RDMA = 91_887_744  # 10 x 2 x ((8 x 2 + 2) x 2 x 4 + 2 x 140 x (16,392 + 16)) = 91,887,680, up to 128
TWO_NODES = dict(hardware="dgx-h100-2node", gpus=16)


def _ds_layout(profile_name: str, *, g: int, mode: str, engine: str = "sglang", imbalance: float = 1.0):
    """DeepSeek-V3 (FP8 checkpoint), DP-attention g x EP g, attention TP 1, all-to-all with `mode` kernels."""
    spec, profile = resolve_model("deepseek-v3").spec, load_builtin(profile_name)
    c = coefficients(spec, profile, tp=1, ep=g, dp_attention=g, engine=engine, moe_imbalance=imbalance,
                     dtype=resolve_dtype(spec, "auto"), moe_dispatch="all2all", a2a_mode=mode)
    return c, profile


def test_bytes_of_each_mode_deepseek_v3_ep16_over_two_nodes():
    """EP16 over two 8-GPU nodes, top_k 8, 64 tokens per GPU. Low latency: 8 copies of each token, one per expert,
    with no per-rank dedupe: 8 x 8/16 to the other node over RDMA and 8 x 7/16 to the 7 other GPUs of the node over
    NVLink. Normal: one copy per destination node over RDMA (the other node is hit with probability 1 - (1/2)^8)
    and one per destination GPU over NVLink (16 x (1 - (15/16)^8) = 6.45 GPUs, 7/8 of them not the forwarder)."""
    c, profile = _ds_layout("dgx-h100-2node", g=16, mode="low_latency")
    ll = low_latency_bytes(a2a_group(c.moe, profile, "low_latency"), tokens=64, message_bytes=LL_FP8_MSG)
    assert ll.rdma_bytes == pytest.approx(64 * 8 * 8 / 16 * LL_FP8_MSG)
    assert ll.nvlink_bytes == pytest.approx(64 * 8 * 7 / 16 * LL_FP8_MSG)
    assert (ll.rdma_bytes + ll.nvlink_bytes) / LL_FP8_MSG == pytest.approx(64 * 8 * 15 / 16)  # 8 copies, 1/16 local
    normal = normal_bytes(a2a_group(c.moe, profile, "normal"), tokens=64, message_bytes=FP8_MSG)
    assert normal.rdma_bytes == pytest.approx(64 * (1 - 0.5 ** 8) * FP8_MSG)
    assert normal.nvlink_bytes == pytest.approx(64 * 16 * (1 - (15 / 16) ** 8) * 7 / 8 * FP8_MSG)
    assert ll.rdma_bytes / normal.rdma_bytes == pytest.approx(4.02, abs=0.01)  # LL puts 4x the bytes on the NIC


def test_dispatch_carries_fp8_where_the_experts_do_and_sglang_low_latency_always():
    spec, hgx = resolve_model("deepseek-v3").spec, load_builtin("hgx-h200")
    bf16 = coefficients(spec, hgx, tp=1, ep=8, dp_attention=8, engine="vllm", dtype="bf16", moe_dispatch="all2all",
                        a2a_mode="normal").moe
    assert not bf16.dispatch_fp8 and not bf16.ll_dispatch_fp8
    sglang = dataclasses.replace(bf16, ll_dispatch_fp8=True)  # SGLANG_DEEPEP_BF16_DISPATCH defaults to False
    assert coefficients(spec, hgx, tp=1, ep=8, dp_attention=8, engine="sglang", dtype="bf16", moe_dispatch="all2all",
                        a2a_mode="normal").moe == dataclasses.replace(sglang, ll_tokens_per_call=None)
    fp8, _ = _ds_layout("hgx-h200", g=8, mode="normal", engine="vllm")
    assert fp8.moe.dispatch_fp8 and fp8.moe.ll_dispatch_fp8


def test_low_latency_model_reproduces_the_readme_table():
    """DeepEP README, low-latency kernels on H800 + CX7 (50 GB/s), 128 tokens per rank, 7168 hidden, top-8, FP8
    dispatch and BF16 combine: dispatch + combine 155 + 273 us at EP32 (4 nodes), 313 us at EP16 (2 nodes, measured
    before the kernels used NVLink inside a node). The fit (13 us per call, 0.82 x 50 GB/s) is within 6%."""
    for profile, g, measured_s in (("dgx-h100-4node", 32, (155 + 273) * 1e-6), ("dgx-h100-2node", 16, 313e-6)):
        c, p = _ds_layout(profile, g=g, mode="low_latency")
        got = moe_comm_time_s(c.moe, p, 128)
        assert got == pytest.approx(measured_s, rel=0.06)
    # the same in closed form at EP32: RDMA bytes of both calls at 0.82 x 50 GB/s + two 13 us calls
    c, p = _ds_layout("dgx-h100-4node", g=32, mode="low_latency")
    rdma = 128 * 8 * 24 / 32 * (LL_FP8_MSG + BF16_MSG)
    assert moe_comm_time_s(c.moe, p, 128) == pytest.approx(2 * 13e-6 + rdma / (0.82 * 50e9))


def test_normal_model_reproduces_the_readme_intranode_bandwidth():
    """DeepEP README, normal kernels intranode EP8 on H800 (NVLink 200 GB/s per direction): 153 GB/s 'bottleneck
    bandwidth' of FP8 dispatch at 4096 tokens, counting every token a GPU receives, its own included."""
    c, h100 = _ds_layout("dgx-h100", g=8, mode="normal")
    h800 = dataclasses.replace(h100, intra_domain_link=dataclasses.replace(h100.intra_domain_link,
                                                                           bandwidth_bytes_per_s=200e9))
    g = dataclasses.replace(a2a_group(c.moe, h800, "normal"), combine_bytes_per_channel=1 + 4 / 128)  # FP8 both ways
    from tpplan.cost.deepep import normal_time_s

    received = 4096 * 8 * (1 - (7 / 8) ** 8) * FP8_MSG
    assert received / (normal_time_s(h800, g, tokens=4096) / 2) / 1e9 == pytest.approx(153, rel=0.05)


def test_low_latency_beats_normal_at_small_decode_batches_and_normal_beats_it_at_large_prefill():
    """Same fabric (2 x 8 H100, NDR), same tokens: at 4 tokens per GPU the low-latency kernels' 13 us calls beat the
    normal kernels' notify barriers and host handshake; at 4096 the normal kernels' per-rank dedupe (1 copy over the
    NIC instead of 4 of 8) wins by the bytes."""
    low, profile = _ds_layout("dgx-h100-2node", g=16, mode="low_latency")
    normal, _ = _ds_layout("dgx-h100-2node", g=16, mode="normal")
    decode = {k: moe_comm_time_s(c.moe, profile, 4) for k, c in (("ll", low), ("normal", normal))}
    prefill = {k: moe_comm_time_s(c.moe, profile, 4096) for k, c in (("ll", low), ("normal", normal))}
    assert decode["ll"] < decode["normal"] / 2
    assert prefill["normal"] < prefill["ll"] / 2


def test_vllm_chunks_low_latency_calls_and_sglang_dispatches_a_step_at_once():
    """vLLM dispatches a DP rank's tokens in VLLM_MOE_DP_CHUNK_SIZE = 256-token low-latency calls: 1024 tokens are
    4 calls each way; SGLang one call per step (its buffer must hold the step)."""
    g = A2aGroup(group_size=8, domain_gpus=8, experts_per_token=8, hidden_size=7168, dispatch_fp8=True,
                 combine_bytes_per_channel=2)
    h100 = load_builtin("dgx-h100")
    one_call = low_latency_time_s(h100, g, tokens=1024, call_tokens=1024, tokens_per_call=None)
    chunked = low_latency_time_s(h100, g, tokens=1024, call_tokens=1024, tokens_per_call=256)
    assert chunked - one_call == pytest.approx(2 * 3 * 13e-6)  # 3 more calls in each direction
    vllm, _ = _ds_layout("dgx-h100", g=8, mode="low_latency", engine="vllm")
    sglang, _ = _ds_layout("dgx-h100", g=8, mode="low_latency", engine="sglang")
    assert (vllm.moe.ll_tokens_per_call, sglang.moe.ll_tokens_per_call) == (256, None)


def test_sglang_auto_takes_low_latency_in_decode_steps_and_normal_in_prefill_steps():
    """SGLang DeepEPMode.resolve(is_extend_in_batch): auto is normal where the batch carries prefill (extend) tokens,
    low-latency in a decode batch (python/sglang/srt/layers/moe/utils.py)."""
    auto, profile = _ds_layout("dgx-h100-2node", g=16, mode="auto")
    low = dataclasses.replace(auto, moe=dataclasses.replace(auto.moe, a2a_mode="low_latency"))
    normal = dataclasses.replace(auto, moe=dataclasses.replace(auto.moe, a2a_mode="normal"))
    assert (a2a_kernels(auto.moe, extend=False), a2a_kernels(auto.moe, extend=True)) == ("low_latency", "normal")
    step = dict(batch=32, context_len=1152)
    assert decode_step(auto, profile, **step).communication_s == decode_step(low, profile, **step).communication_s
    prefill = dict(batch=0, context_len=1152, prefill_tokens=1024, input_len=1024)
    prefill_comm_s = mixed_step(auto, profile, **prefill).communication_s
    assert prefill_comm_s == mixed_step(normal, profile, **prefill).communication_s
    assert moe_comm_time_s(auto.moe, profile, 8, extend=True) == moe_comm_time_s(normal.moe, profile, 8)


def test_trtllm_mnnvl_and_engine_defaults_keep_their_pricing():
    """TensorRT-LLM's MNNVL all-to-all (its own one-sided NVLink kernels, deduplicated per rank) is priced by the
    fabric's protocols as before; the vLLM and SGLang defaults gather."""
    spec, nvl = resolve_model("deepseek-v3").spec, load_builtin("gb200-nvl72")
    m = coefficients(spec, nvl, tp=1, ep=16, dp_attention=16, engine="trtllm").moe
    assert not m.gather_dispatch and m.a2a_mode == "fabric"
    expected = 2 * collective_time_s(nvl, kind="alltoall", group_size=16, n_bytes=dispatch_bytes_per_gpu(m, 64))
    assert moe_comm_time_s(m, nvl, 64) == pytest.approx(expected)
    assert a2a_mode("vllm", "auto") == a2a_mode("sglang", "auto") == a2a_mode("trtllm", "auto") == "fabric"
    assert a2a_mode("vllm", "deepep_high_throughput") == "normal"
    assert a2a_mode("vllm", "deepep_low_latency") == "low_latency"
    assert a2a_mode("sglang", "deepep") == "auto" and a2a_mode("sglang", "deepep", "normal") == "normal"
    assert a2a_mode("sglang", "mooncake", "low_latency") == "fabric"


def test_low_latency_buffer_matches_deepep_and_enters_the_reserve():
    """Buffer.get_low_latency_rdma_size_hint(128, 7168, ..., 256) = 1,880,096,768 bytes plus signal counters
    ("Allocating buffer size: 1880.098944 MB", DeepEP issue 183); a layout with low-latency kernels reserves it.
    SGLang's auto mode allocates one RDMA buffer for both modes, max(low-latency, normal), so auto reserves the
    low-latency buffer where --deepep-mode normal reserves the normal RDMA buffer (both the same NVLink buffer); here
    for 146 tokens per rank, the planned batch of 2,336 over 16 ranks (above the 128 DeepEP allocates at least)."""
    assert ll_buffer_bytes(num_experts=256, hidden_size=7168, tokens_per_call=128) == 1_880_096_768
    auto = recommend("deepseek-v3", engine="sglang", all2all_backend="deepep", **TWO_NODES)
    normal = recommend("deepseek-v3", engine="sglang", all2all_backend="deepep", deepep_mode="normal", **TWO_NODES)
    dep = {p: next(c for c in plan.candidates if (c.tp, c.dp_attention, c.ep) == (1, 16, 16))
           for p, plan in (("auto", auto), ("normal", normal))}
    assert dep["auto"].runtime_reserve_bytes_per_gpu - dep["normal"].runtime_reserve_bytes_per_gpu == \
        ll_buffer_bytes(num_experts=256, hidden_size=7168, tokens_per_call=146) - EP16_NORMAL_RDMA
    assert dep["auto"].deepep_ll_tokens_per_rank == 146 == dep["auto"].batch // 16
    assert dep["normal"].deepep_ll_tokens_per_rank is None


def test_sglang_low_latency_prefill_sizes_the_buffer_for_the_prefill_batch():
    """--deepep-mode low_latency sends SGLang's prefill batches (min(input, chunked_prefill_size / dp) tokens per
    rank) through one low-latency call each, so the buffer holds them: 1024 tokens at DP8 (8192 / 8)."""
    plan = recommend("deepseek-v3", engine="sglang", all2all_backend="deepep", deepep_mode="low_latency", **TWO_NODES)
    c = next(c for c in plan.candidates if (c.tp, c.dp_attention, c.ep) == (2, 8, 16))
    assert c.deepep_ll_tokens_per_rank == 512  # 1024 per DP rank over its 2 attention-TP GPUs
    assert (c.moe_token_movement_decode, c.moe_token_movement_prefill) == ("low_latency", "low_latency")


def test_deepep_mode_errors_are_one_line_refusals(run_cli, usage_error, refusal):
    """--deepep-mode depends on --engine and --moe-a2a-backend: refused with them (exit 1, one line); a value that is
    no DeepEP mode at all is wrong on its own (a usage error, exit 2)."""
    base = ("recommend", "-m", "deepseek-v3", "--hardware", "hgx-h200", "--gpus", "8")
    refused = {
        ("--deepep-mode", "low_latency"): "'low_latency' applies to --engine sglang only; vLLM picks DeepEP's kernels "
                                          "with --all2all-backend deepep_high_throughput or deepep_low_latency; leave "
                                          "it out",
        ("--engine", "sglang", "--deepep-mode", "normal"): "'normal' selects DeepEP's kernels, which SGLang runs only "
                                                           "with --moe-a2a-backend deepep; add --moe-a2a-backend "
                                                           "deepep or leave --deepep-mode out",
        ("--engine", "trtllm", "--deepep-mode", "auto"): "'auto' applies to --engine sglang only; TensorRT-LLM chooses "
                                                         "its MoE all-to-all itself; leave it out",
    }
    for args, problem in refused.items():
        assert refusal(*base, *args) == f"Error: --deepep-mode {problem}"
    assert refusal("sweep", "--models", "deepseek-v3", "--hardware", "hgx-h200", "--deepep-mode", "normal") == (
        "Error: --deepep-mode 'normal' applies to --engine sglang only; vLLM picks DeepEP's kernels with "
        "--all2all-backend deepep_high_throughput or deepep_low_latency; leave it out")
    assert ("Error: Invalid value for '--deepep-mode': 'fast' is not a DeepEP mode; choose one of: auto, normal, "
            "low_latency (any case)\n") in usage_error(*base, "--engine", "sglang", "--moe-a2a-backend", "deepep",
                                                        "--deepep-mode", "fast")
    assert run_cli(*base, "--engine", "sglang", "--deepep-mode", "auto", "-f", "json").code == 0  # SGLang's default
    with pytest.raises(TpplanError, match=r"^--deepep-mode 'normal' selects DeepEP's kernels"):
        recommend("deepseek-v3", engine="sglang", deepep_mode="normal", hardware="hgx-h200", gpus=8)


def test_emit_prints_the_planned_mode(run_cli):
    base = ("recommend", "-m", "deepseek-v3", "--hardware", "dgx-h100-2node", "--gpus", "16", "--tp", "1",
            "--dp-attention", "16", "--ep", "16", "-f", "json")
    out = run_cli(*base, "--emit", "sglang", "--moe-a2a-backend", "deepep", "--deepep-mode", "low_latency").json()
    assert "--moe-a2a-backend deepep" in out["serve_command"] and "--deepep-mode low_latency" in out["serve_command"]
    assert out["inputs"]["deepep_mode"] == "low_latency"
    assert "DeepEP low-latency kernels in every step" in out["assumptions"]["moe"]
    chosen = out["chosen"]
    assert (chosen["moe_token_movement_decode"], chosen["moe_token_movement_prefill"]) == ("low_latency",) * 2
    # a prefill batch of 8192 / 16 = 512 tokens per rank goes through one low-latency call: the env raises the buffer
    assert "SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK=512 python -m sglang.launch_server" in out["serve_command"]
    out = run_cli(*base, "--emit", "sglang", "--moe-a2a-backend", "deepep").json()
    assert "--deepep-mode auto" in out["serve_command"] and out["inputs"]["deepep_mode"] is None
    assert "normal kernels in steps with prefill, low-latency kernels in decode steps" in out["assumptions"]["moe"]
    assert "EP16 + DP-attention 16 with DeepEP low-latency kernels in decode steps and normal in prefill beats" in \
        " ".join(out["explanation"])
    assert (out["chosen"]["moe_token_movement_decode"], out["chosen"]["moe_token_movement_prefill"]) == (
        "low_latency", "normal")
    out = run_cli(*base, "--emit", "vllm", "--all2all-backend", "deepep_high_throughput").json()
    assert "--all2all-backend deepep_high_throughput" in out["serve_command"]
    assert "--deepep-mode" not in out["serve_command"]
    assert out["chosen"]["moe_token_movement_decode"] == "normal"
    out = run_cli(*base, "--emit", "sglang").json()  # the default gathers: nothing DeepEP in the command
    assert "deepep" not in out["serve_command"] and "SGLANG_DEEPEP" not in out["serve_command"]


def _dep16(**kw):
    """DeepSeek-V3 DP-attention 16 x EP16 on 2 x 8 H100 (attention TP 1, PP 1)."""
    plan = recommend("deepseek-v3", **TWO_NODES, **kw)
    return next(c for c in plan.candidates if (c.tp, c.pp, c.dp_attention, c.ep) == (1, 1, 16, 16)), plan


def test_normal_buffers_match_deepeps_size_hints():
    """Config.get_nvl_buffer_size_hint / get_rdma_buffer_size_hint (csrc/config.hpp) with the default configs
    (deep_ep/buffer.py), by hand (EP16_NORMAL_*); up to 8 ranks the normal kernels are intranode: no RDMA buffer,
    256 NVLink receive tokens; a size DeepEP has no config for takes the next larger size's."""
    assert normal_nvl_buffer_bytes(hidden_bytes=14336, group_size=16) == EP16_NORMAL_NVL
    assert normal_rdma_buffer_bytes(hidden_bytes=14336, group_size=16) == EP16_NORMAL_RDMA
    assert normal_rdma_buffer_bytes(hidden_bytes=14336, group_size=8) == 0
    assert normal_nvl_buffer_bytes(hidden_bytes=14336, group_size=8) == 335_709_824  # 10 x 8 x (5 x 4 + 256 x 16,392)
    assert normal_recv_tokens(12) == normal_recv_tokens(16) == (288, 140)  # EP16: Config(20, 16, 288, 20, 128) ...


def test_each_engine_reserves_the_deepep_buffers_it_allocates():
    """Reserve of DEP16 with DeepEP minus the same layout with a non-DeepEP all-to-all (SGLang mooncake, vLLM pplx),
    at a batch small enough for SGLang's default 128-token low-latency buffer:
    SGLang normal: NVLink + RDMA normal buffers; auto: NVLink + max(low-latency, normal RDMA) (one RDMA buffer);
    low_latency: the low-latency buffer only, sized for a prefill step of 8192 / 16 = 512 tokens per GPU.
    vLLM deepep_high_throughput: 1 GiB NVLink + 1 GiB RDMA (the group spans nodes); deepep_low_latency: 1 GiB NVLink
    + the low-latency buffer of its 256-token chunk (VLLM_DEEPEP_BUFFER_SIZE_MB, all2all.py)."""
    def extra(engine, backend, **kw):
        fabric = {"sglang": "mooncake", "vllm": "pplx"}[engine]
        planned, _ = _dep16(engine=engine, all2all_backend=backend, batch=256, **kw)
        plain, _ = _dep16(engine=engine, all2all_backend=fabric, batch=256)
        return planned.runtime_reserve_bytes_per_gpu - plain.runtime_reserve_bytes_per_gpu

    assert extra("sglang", "deepep", deepep_mode="normal") == EP16_NORMAL_NVL + EP16_NORMAL_RDMA
    assert extra("sglang", "deepep") == EP16_NORMAL_NVL + 128 * LL_SLOT
    assert extra("sglang", "deepep", deepep_mode="low_latency") == 512 * LL_SLOT
    assert extra("vllm", "deepep_high_throughput") == 2 * 2**30
    assert extra("vllm", "deepep_low_latency") == 2**30 + 256 * LL_SLOT
    one_node = recommend("deepseek-v3", engine="vllm", all2all_backend="deepep_high_throughput", hardware="hgx-h200",
                         gpus=8, batch=64)
    plain = recommend("deepseek-v3", engine="vllm", all2all_backend="pplx", hardware="hgx-h200", gpus=8, batch=64)
    dep8 = [next(c for c in p.candidates if (c.tp, c.pp, c.dp_attention, c.ep) == (1, 1, 8, 8)) for p in (one_node,
                                                                                                          plain)]
    assert dep8[0].runtime_reserve_bytes_per_gpu - dep8[1].runtime_reserve_bytes_per_gpu == 2**30  # no RDMA buffer


def test_decode_batch_and_low_latency_buffer_are_sized_together(run_cli):
    """SGLang auto, input 128: the KV cache left beside a 128-token buffer would hold 10,752 sequences, 672 per GPU,
    whose buffer does not fit. The plan sizes the buffer at the fixed point: 428 tokens per GPU leave KV for 6,832
    sequences, 427 per GPU; 427 tokens would leave room for 6,848, 428 per GPU, which it cannot hold. The command sets
    the cap to the reserved buffer and caps the running requests at the planned batch."""
    from tpplan.planner.candidates import engine_limits, layout_memory, replica_concurrency

    c, plan = _dep16(engine="sglang", all2all_backend="deepep", input_len=128)
    assert (c.deepep_ll_tokens_per_rank, c.batch, c.max_concurrent_sequences) == (428, 6832, 6832)
    plain, _ = _dep16(engine="sglang", all2all_backend="mooncake", input_len=128)
    reserved = c.runtime_reserve_bytes_per_gpu - plain.runtime_reserve_bytes_per_gpu
    assert reserved == EP16_NORMAL_NVL + 428 * LL_SLOT  # 6.21 GiB: NVLink + the 428-token low-latency buffer
    assert reserved >= ll_buffer_bytes(num_experts=256, hidden_size=7168, tokens_per_call=c.deepep_ll_tokens_per_rank)
    assert -(-c.batch // 16) <= c.deepep_ll_tokens_per_rank  # every decode step fits one call
    assert c.kv_cache_bytes_per_gpu == c.usable_bytes_per_gpu - c.weight_bytes_per_gpu - c.runtime_reserve_bytes_per_gpu
    spec, profile, w = plan.model, plan.profile, plan.workload
    coeffs = coefficients(spec, profile, tp=1, ep=16, dp_attention=16, engine="sglang", dtype=w.dtype,
                          moe_imbalance=w.moe_imbalance, moe_dispatch="all2all", a2a_mode="auto")
    smaller = layout_memory(spec, profile, coeffs, w, ll_tokens=427)
    assert replica_concurrency(coeffs, engine_limits(profile, w), kv_cache_tokens=smaller.kv_cache_tokens,
                               input_len=128, output_len=256) == 6848  # 428 per GPU: 427 tokens cannot hold it
    assert any("buffer for 428 tokens per GPU" in n for n in c.notes)
    out = run_cli("recommend", "-m", "deepseek-v3", "--hardware", "dgx-h100-2node", "--gpus", "16", "--engine",
                  "sglang", "--moe-a2a-backend", "deepep", "--input-len", "128", "--emit", "sglang",
                  "-f", "json").json()
    assert "SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK=428 python" in out["serve_command"]
    assert "--max-running-requests 6832" in out["serve_command"]


def test_low_latency_prefill_buffer_holds_a_whole_prefill_step():
    """--deepep-mode low_latency, input 128: a prefill step packs prompts up to chunked_prefill_size / dp = 8192 / 16
    = 512 tokens per rank, all in one low-latency call, so the buffer holds 512 tokens per GPU, not one 128-token
    prompt or the 1024 / 16 = 64-sequence decode batch per rank."""
    c, _ = _dep16(engine="sglang", all2all_backend="deepep", deepep_mode="low_latency", input_len=128,
                  output_len=1024, max_num_seqs=1024)
    plain, _ = _dep16(engine="sglang", all2all_backend="mooncake", input_len=128, output_len=1024, max_num_seqs=1024)
    assert c.deepep_ll_tokens_per_rank == 512 >= 8192 // 16
    assert c.runtime_reserve_bytes_per_gpu - plain.runtime_reserve_bytes_per_gpu == 512 * LL_SLOT  # 7.0 GiB
    # --max-running-requests is the server's (SGLang gives each DP worker max_running_requests // dp_size): 1024
    assert (c.batch, c.max_concurrent_sequences) == (1024, 1024)


def test_deepeps_low_latency_limit_caps_the_batch_or_refuses_the_prefill():
    """DeepEP's low-latency calls carry at most 1024 tokens per rank (SGLang asserts
    SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK <= 1024). gpt-oss-20b on 8 H200, 32 in / 64 out: SGLang's own
    running-request limit allows 8 x 4096 = 32,768 sequences on DEP8 (its KV pools hold far more; SGLang decodes apart
    from prefill, so its token budget does not bound the decode batch); the batch is capped at 8 x 1024. Under
    --deepep-mode low_latency DP2 prefills 8192 / 2 = 4096 tokens per GPU in one call: refused, naming the budget
    that fits."""
    kw = dict(engine="sglang", all2all_backend="deepep", hardware="hgx-h200", gpus=8, input_len=32, output_len=64)
    plan = recommend("gpt-oss-20b", **kw)
    c = next(c for c in plan.candidates if (c.tp, c.pp, c.dp_attention, c.ep) == (1, 1, 8, 8))
    assert (c.batch, c.max_concurrent_sequences, c.deepep_ll_tokens_per_rank) == (8192, 32768, 1024)
    assert "batch capped at 8192 (memory allows 32768) by DeepEP's 1024 tokens per GPU in one low-latency call" in \
        c.notes
    plan = recommend("gpt-oss-20b", deepep_mode="low_latency", **kw)
    c = next(c for c in plan.candidates if (c.tp, c.pp, c.dp_attention, c.ep) == (1, 1, 2, 2))
    assert not c.feasible and ("--deepep-mode low_latency dispatches a prefill step of 4096 tokens per GPU in one "
                               "low-latency call, above DeepEP's 1024 (SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK "
                               "<= 1024); set --chunked-prefill-size to at most 2048, or use --deepep-mode auto"
                               ) in c.reasons


def test_sweep_sizes_the_low_latency_buffer_for_each_batch():
    """A sweep row's batch needs the buffer of its decode steps: 6,832 sequences fit beside 427 tokens per GPU,
    6,848 (428 per GPU) do not fit beside the 428-token buffer they need, so that row runs 6,832, as recommend
    --batch 6848 does; the row's step times are recommend's."""
    from tpplan.planner.sweep import sweep

    df, _ = sweep(models=["deepseek-v3"], hardware=["dgx-h100-2node"], gpus=[16], batches=[6832, 6848],
                  input_lens=[128], output_lens=[256], engine="sglang", all2all_backend="deepep")
    rows = df[(df.tp == 1) & (df.dp_attention == 16) & (df.ep == 16) & (df.pp == 1)].set_index("batch")
    assert rows.feasible.all() and list(rows.batch_run) == [6832, 6832]
    assert list(rows.max_concurrent_sequences) == [6848, 6832]  # the larger buffer of 6,848 leaves room for fewer
    c, _ = _dep16(engine="sglang", all2all_backend="deepep", input_len=128)
    assert float(rows.tpot_s[6832]) == float(rows.tpot_s[6848]) == pytest.approx(c.tpot_s)


def test_deepep_mode_in_any_case_is_normalised(run_cli, usage_error):
    """--deepep-mode Normal / LOW_LATENCY / Auto mean SGLang's normal / low_latency / auto: planned and printed so."""
    base = ("recommend", "-m", "deepseek-v3", "--hardware", "hgx-h200", "--nodes", "2", "--engine", "sglang",
            "--tp", "1", "--dp-attention", "16", "--ep", "16", "--moe-a2a-backend", "deepep", "-f", "json")
    for given, mode in (("Normal", "normal"), ("LOW_LATENCY", "low_latency"), ("Auto", "auto")):
        r = run_cli(*base, "--deepep-mode", given, "--emit", "sglang")
        assert r.code == 0, r.err
        out = r.json()
        assert out["inputs"]["deepep_mode"] == mode
        assert f"--deepep-mode {mode}" in out["serve_command"]
        lower = run_cli(*base, "--deepep-mode", mode, "--emit", "sglang").json()
        assert out["chosen"] == lower["chosen"]
    assert ("Error: Invalid value for '--deepep-mode': 'Fast' is not a DeepEP mode; choose one of: auto, normal, "
            "low_latency (any case)\n") in usage_error(*base, "--deepep-mode", "Fast")

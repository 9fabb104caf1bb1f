"""The EP groups DeepEP's kernels run (tpplan.models.deepep_limits): a layout whose group DeepEP asserts against is
refused with one line naming the size, what DeepEP runs, the source file and the fix; the sizes it runs stay feasible.
Sources: deepseek-ai/DeepEP csrc/kernels/legacy/launch.cuh (SWITCH_RANKS 2/4/8, SWITCH_RDMA_RANKS 2..20),
csrc/kernels/legacy/intranode.cu (notify_dispatch), csrc/legacy/buffer.hpp (Buffer, low_latency_dispatch)."""

from __future__ import annotations

import dataclasses

import pytest

from tpplan.hardware.loader import load_builtin
from tpplan.models.deepep_limits import NORMAL_EP_SIZES, deepep_problem
from tpplan.models.resolve import resolve_model
from tpplan.planner.candidates import evaluate_serving
from tpplan.planner.plan import recommend
from tpplan.planner.workload import Workload

NORMAL, LOW, BOTH = {"normal"}, {"low_latency"}, {"normal", "low_latency"}
SIZES_WORDS = "2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 144 or 160"
LAUNCH_CUH = "SWITCH_RANKS / SWITCH_RDMA_RANKS, deepseek-ai/DeepEP csrc/kernels/legacy/launch.cuh"


def test_normal_kernels_run_2_4_8_ranks_and_8_x_the_rdma_ranks_they_are_compiled_for():
    """Intranode SWITCH_RANKS 2, 4, 8; internode 8 x SWITCH_RDMA_RANKS (2, 3, 4, 6, 8, 12, 16, 18, 20): exactly the
    sizes Buffer.get_dispatch_config has a config for (deep_ep/buffers/legacy.py)."""
    assert NORMAL_EP_SIZES == (2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 144, 160)
    for g in range(2, 300):  # 256 experts split evenly only over the power-of-two sizes
        runs = g in NORMAL_EP_SIZES and 256 % g == 0
        assert (deepep_problem(NORMAL, group_size=g, num_experts=256) is None) == runs, g
    assert deepep_problem(NORMAL, group_size=24, num_experts=288) is None
    assert deepep_problem(NORMAL, group_size=256, num_experts=256) == (
        f"DeepEP's normal kernels run EP groups of {SIZES_WORDS} GPUs, not 256 ({LAUNCH_CUH})")


def test_low_latency_kernels_take_any_size_below_8_or_a_multiple_of_8_that_divides_the_experts():
    """Buffer: num_ranks < 8 or num_ranks % 8 == 0 (no upper bound in low-latency mode: the README measures EP 256);
    low_latency_dispatch: num_experts % num_ranks == 0."""
    assert deepep_problem(LOW, group_size=256, num_experts=256) is None
    assert deepep_problem(LOW, group_size=6, num_experts=60) is None
    assert deepep_problem(LOW, group_size=12, num_experts=96) == (
        "DeepEP's low-latency kernels run EP groups of fewer than 8 GPUs or a multiple of 8, not 12 (Buffer and "
        "low_latency_dispatch, deepseek-ai/DeepEP csrc/legacy/buffer.hpp)")
    assert deepep_problem(LOW, group_size=64, num_experts=160) == (  # DeepSeek-V2's 160 routed experts
        "DeepEP's low-latency kernels need the 160 routed experts split evenly over the 64 GPUs (num_experts % "
        "num_ranks == 0; Buffer and low_latency_dispatch, deepseek-ai/DeepEP csrc/legacy/buffer.hpp)")
    assert deepep_problem(LOW, group_size=32, num_experts=160) is None


def test_intranode_normal_kernels_need_the_experts_split_evenly_at_most_128_per_gpu():
    """notify_dispatch (csrc/kernels/legacy/intranode.cu): num_experts % num_ranks == 0 and num_experts / num_ranks
    <= 128 (one thread per local expert). Internode notify_dispatch (csrc/kernels/internode.cu) splits the experts
    by num_experts / kNumRDMARanks, so an uneven split indexes past the last rank: held to the even split too."""
    assert deepep_problem(NORMAL, group_size=2, num_experts=256) is None  # 128 per GPU
    assert "at most 128 per GPU" in deepep_problem(NORMAL, group_size=2, num_experts=384)
    assert "the 60 routed experts split evenly over the 8 GPUs" in deepep_problem(NORMAL, group_size=8,
                                                                                     num_experts=60)
    assert deepep_problem(NORMAL, group_size=16, num_experts=64) is None
    assert deepep_problem(NORMAL, group_size=24, num_experts=256) == (
        "DeepEP's internode normal kernels need the 256 routed experts split evenly over the 24 GPUs (num_experts / "
        "num_rdma_ranks, deepseek-ai/DeepEP csrc/kernels/internode.cu notify_dispatch)")


def _ds(engine: str, backend: str, g: int, *, mode: str | None = None, spec=None):
    """DeepSeek-V3, DP attention g x EP g (attention TP 1) on 32 nodes of 8 H100."""
    profile = dataclasses.replace(load_builtin("dgx-h100-2node"), nodes=32)
    w = Workload(gpus=256, engine=engine, all2all_backend=backend, deepep_mode=mode)
    return evaluate_serving(spec or resolve_model("deepseek-v3").spec, profile, w, tp=1, pp=1, replicas=1, ep=g,
                            dp_attention=g)


def test_sglang_auto_refuses_ep256_naming_the_sizes_the_source_and_the_fixes():
    """SGLang's default --deepep-mode auto runs the normal kernels in prefill steps: 256 GPUs are 32 RDMA ranks, above
    the 20 DeepEP compiles. EP 128 runs, and so does the low-latency mode at 256 (256 experts, 1 per GPU)."""
    c = _ds("sglang", "deepep", 256)
    assert not c.feasible
    assert c.reasons == (
        f"--moe-a2a-backend deepep --deepep-mode auto: DeepEP's normal kernels run EP groups of {SIZES_WORDS} GPUs, "
        f"not 256 ({LAUNCH_CUH}); plan EP 128 (fewer GPUs per pipeline stage), --deepep-mode low_latency or another "
        f"--moe-a2a-backend",)
    assert c.decode_step is not None  # still priced: the refusal is an engine rule, not a missing layout
    for g in (16, 32, 64, 128):
        assert _ds("sglang", "deepep", g).feasible, g
    assert _ds("sglang", "deepep", 256, mode="low_latency").feasible


@pytest.mark.parametrize("backend,ep256", [("deepep_high_throughput", False), ("deepep_low_latency", True)])
def test_vllm_refuses_high_throughput_ep256_and_keeps_low_latency(backend, ep256):
    c = _ds("vllm", backend, 256)
    assert c.feasible is ep256
    if not ep256:
        assert c.reasons == (
            f"--all2all-backend deepep_high_throughput: DeepEP's normal kernels run EP groups of {SIZES_WORDS} GPUs, "
            f"not 256 ({LAUNCH_CUH}); plan EP 128 (fewer GPUs per pipeline stage) or another --all2all-backend",)
    assert _ds("vllm", backend, 128).feasible


def test_low_latency_refuses_an_ep_size_that_does_not_divide_the_experts():
    """160 routed experts (DeepSeek-V2's count) on EP 64: low_latency_dispatch asserts num_experts % num_ranks; EP 32
    divides them. Other all-to-all backends are not DeepEP and keep EP 64."""
    spec = dataclasses.replace(resolve_model("deepseek-v3").spec, num_experts=160)
    c = _ds("vllm", "deepep_low_latency", 64, spec=spec)
    assert c.reasons == (
        "--all2all-backend deepep_low_latency: DeepEP's low-latency kernels need the 160 routed experts split evenly "
        "over the 64 GPUs (num_experts % num_ranks == 0; Buffer and low_latency_dispatch, deepseek-ai/DeepEP "
        "csrc/legacy/buffer.hpp); plan EP 32 (fewer GPUs per pipeline stage) or another --all2all-backend",)
    assert not any("DeepEP" in r for r in _ds("vllm", "pplx", 64, spec=spec).reasons)


def test_recommend_on_256_gpus_lists_the_refused_ep256_layouts_and_picks_a_runnable_one():
    plan = recommend("deepseek-v3", hardware="dgx-h100-2node", gpus=256, nodes=32, engine="vllm",
                     all2all_backend="deepep_high_throughput")
    # ep 1 gathers: no DeepEP; TP over 8 spans nodes and splits the block-fp8 dense MLP into partial blocks (refused
    # before DeepEP's limits are looked at)
    refused = [c for c in plan.candidates if c.dp_attention > 1 and c.ep == 256 and c.tp <= 8]
    assert refused and all(any("not 256 (SWITCH_RANKS" in r for r in c.reasons) for c in refused)
    best = plan.recommended
    assert best is not None and (best.dp_attention == 1 or best.tp * best.dp_attention in NORMAL_EP_SIZES)

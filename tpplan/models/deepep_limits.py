"""The EP groups DeepEP's V1 kernels run (deep_ep.Buffer behind vLLM --all2all-backend deepep_high_throughput /
deepep_low_latency and SGLang --moe-a2a-backend deepep), so that a plan never offers a layout whose DeepEP buffer or
kernel launch fails an EP_HOST_ASSERT at start-up or on the first MoE step.

The group DeepEP sees is the layout's whole EP group, tp x dp_attention GPUs of one pipeline stage: vLLM builds its
DeepEP manager on the EP group (DeepEPHTAll2AllManager / DeepEPLLAll2AllManager(self.cpu_group) in the "ep" group's
CudaCommunicator, vllm-project/vllm vllm/distributed/device_communicators/cuda_communicator.py; EP = DP x TP), SGLang
on its --tp-size group (MaybeTboDeepEPDispatcher(group=get_tp_group().device_group), whose DeepEPBuffer.
get_deepep_buffer sizes the buffer by group.size(): sgl-project/sglang python/sglang/srt/layers/moe/token_dispatcher/
deepep.py).

Limits, from deepseek-ai/DeepEP's V1 kernels as the V2 tree keeps them (csrc/legacy/buffer.hpp, csrc/kernels/legacy/;
V1's csrc/deep_ep.cpp and csrc/kernels/launch.cuh assert the same, with fewer RDMA sizes in older releases, so what is
refused here no release runs):
- normal kernels up to NUM_MAX_NVL_PEERS (8) ranks are intranode: SWITCH_RANKS compiles 2, 4 and 8 ranks
  (csrc/kernels/legacy/launch.cuh), and intranode notify_dispatch asserts num_experts % num_ranks == 0 and
  num_experts / num_ranks <= 128 (csrc/kernels/legacy/intranode.cu);
- normal kernels over more ranks are internode, in RDMA ranks of 8 NVLink ranks: Buffer asserts num_ranks % 8 == 0
  and, outside low-latency mode, num_ranks <= NUM_MAX_NVL_PEERS x NUM_MAX_RDMA_PEERS = 160 (csrc/legacy/buffer.hpp);
  SWITCH_RDMA_RANKS compiles 2, 3, 4, 6, 8, 12, 16, 18 and 20 RDMA ranks (csrc/kernels/legacy/launch.cuh; an earlier
  csrc/kernels/launch.cuh, 2bd56ae1: 2, 4, 8 and 16). Buffer.get_dispatch_config / get_combine_config have a config
  for exactly these sizes and assert "Unsupported number of EP ranks" otherwise (deep_ep/buffers/legacy.py); SGLang
  takes its configs from there unless --deepep-config is given, and vLLM's DeepEPHTPrepareAndFinalize passes None
  outside its own list, so that DeepEP asks get_dispatch_config (vllm/model_executor/layers/fused_moe/
  deepep_ht_prepare_finalize.py);
- low-latency kernels: Buffer's num_ranks < 8 or num_ranks % 8 == 0 (no upper bound in low-latency mode; the README
  measures EP 256), and low_latency_dispatch asserts num_experts % num_ranks == 0 (csrc/legacy/buffer.hpp; SGLang
  asserts it too before allocating the buffer).
Not refused: the low-latency kernels' hidden sizes (SWITCH_HIDDEN, a list that grew from release to release, which
engines pad to: gpt-oss's 2880 is served as 3072) and their top-k cap (kNumMaxTopK: 9 in V1, 16 in the legacy tree).
"""

from __future__ import annotations

from collections.abc import Collection

NUM_MAX_NVL_PEERS = 8
"""GPUs per RDMA rank of DeepEP's kernels (NUM_MAX_NVL_PEERS, csrc/kernels/configs.cuh; LEGACY_NUM_MAX_NVL_PEERS in
csrc/kernels/legacy/compiled.cuh): a group of up to 8 runs the intranode kernels."""
INTRANODE_RANKS = (2, 4, 8)
"""SWITCH_RANKS: the intranode group sizes the normal kernels are compiled for."""
RDMA_RANKS = (2, 3, 4, 6, 8, 12, 16, 18, 20)
"""SWITCH_RDMA_RANKS: the RDMA ranks (groups of 8 GPUs) the internode normal kernels are compiled for, at most
NUM_MAX_RDMA_PEERS = 20."""
NORMAL_EP_SIZES = (*INTRANODE_RANKS, *(NUM_MAX_NVL_PEERS * r for r in RDMA_RANKS))
"""EP groups the normal kernels run: 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 144 and 160 GPUs."""
INTRANODE_MAX_LOCAL_EXPERTS = 128
"""Routed experts per GPU the intranode notify_dispatch handles (one thread each of its 128)."""
SOURCES = {
    "normal": "SWITCH_RANKS / SWITCH_RDMA_RANKS, deepseek-ai/DeepEP csrc/kernels/legacy/launch.cuh",
    "intranode": "notify_dispatch, deepseek-ai/DeepEP csrc/kernels/legacy/intranode.cu",
    "low_latency": "Buffer and low_latency_dispatch, deepseek-ai/DeepEP csrc/legacy/buffer.hpp",
}
"""Where each limit is asserted (module docstring)."""


def _sizes(sizes: Collection[int]) -> str:
    """'2, 4 or 8'."""
    words = [str(s) for s in sizes]
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else words[0]


def deepep_problem(kernels: Collection[str], *, group_size: int, num_experts: int) -> str | None:
    """What stops DeepEP's `kernels` ("normal", "low_latency") from running an EP group of `group_size` GPUs over
    `num_experts` routed experts: the limit, the value and where DeepEP asserts it (module docstring); None when
    they run."""
    g, e = group_size, num_experts
    if "normal" in kernels and g not in NORMAL_EP_SIZES:
        return (f"DeepEP's normal kernels run EP groups of {_sizes(NORMAL_EP_SIZES)} GPUs, not {g} "
                f"({SOURCES['normal']})")
    if "normal" in kernels and g <= NUM_MAX_NVL_PEERS and (e % g or e // g > INTRANODE_MAX_LOCAL_EXPERTS):
        return (f"DeepEP's intranode normal kernels need the {e} routed experts split evenly over the {g} GPUs, at "
                f"most {INTRANODE_MAX_LOCAL_EXPERTS} per GPU ({SOURCES['intranode']})")
    if "normal" in kernels and g > NUM_MAX_NVL_PEERS and e % g:
        # internode notify_dispatch splits the experts over the RDMA ranks (num_experts / kNumRDMARanks) and each
        # rank's share over its NVLink peers: an uneven split indexes past the last rank
        return (f"DeepEP's internode normal kernels need the {e} routed experts split evenly over the {g} GPUs "
                f"(num_experts / num_rdma_ranks, deepseek-ai/DeepEP csrc/kernels/internode.cu notify_dispatch)")
    if "low_latency" in kernels and g > NUM_MAX_NVL_PEERS and g % NUM_MAX_NVL_PEERS:
        return (f"DeepEP's low-latency kernels run EP groups of fewer than {NUM_MAX_NVL_PEERS} GPUs or a multiple of "
                f"{NUM_MAX_NVL_PEERS}, not {g} ({SOURCES['low_latency']})")
    if "low_latency" in kernels and e % g:
        return (f"DeepEP's low-latency kernels need the {e} routed experts split evenly over the {g} GPUs "
                f"(num_experts % num_ranks == 0; {SOURCES['low_latency']})")
    return None


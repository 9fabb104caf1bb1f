"""MoE layers served with expert parallelism (EP) and attention data parallelism (DP attention).

Layout of one replica: G = tp x dp_attention GPUs. Attention, dense MLPs, shared experts, the router and the
lm_head are tensor-parallel over `tp` inside each of the `dp_attention` ranks; each rank schedules its own
sequences (per-rank batch = batch / dp_attention) and holds only their KV cache. The routed experts span all G
GPUs of the replica:
- ep = G: whole experts, ceil(E / ep) per GPU (vLLM --enable-expert-parallel: "EP size = TP x DP"; SGLang
  --ep-size; TensorRT-LLM moe_expert_parallel_size);
- ep = 1: every expert split G ways (vLLM's default: "expert layers form a tensor parallel group of size DP x TP",
  docs.vllm.ai/en/latest/serving/data_parallel_deployment/; SGLang --enable-dp-attention without --ep-size).

Token movement around each MoE layer, per GPU (`tokens` = tokens of one DP rank in the step):
- dp_attention > 1, all-to-all (`gather_dispatch` False): dispatch, then combine, with the kernels `a2a_mode` names
  (tpplan.models.moe_backends.A2aMode). DeepEP's normal and low-latency kernels are priced as their own physics in
  tpplan.cost.deepep (normal: once per destination rank, RDMA then NVLink forwarding, larger fixed time;
  low-latency: top_k copies, small fixed time, calls of at most the engine's tokens per rank); "auto" (SGLang) takes
  the normal kernels in steps that carry prefill tokens and the low-latency ones in decode steps (`extend`).
  "fabric" (every other all-to-all, TensorRT-LLM's MNNVL included): each GPU sends each of its T / G tokens once to
  every GPU that holds one of its top_k experts: expected destinations G x (1 - (1 - 1/G)^top_k). The buffer per GPU
  is S = T / G x destinations x hidden x act_bytes (x imbalance on the busiest rank), of which (G - 1) / G leaves the
  GPU (nccl-tests alltoall busbw factor), priced with the fabric's LL and Simple protocol parameters, the cheaper
  per message size, over NVLink inside a domain and the network beyond.
- dp_attention > 1 with ep = 1, or with ep = G where the engine gathers instead (`gather_dispatch`, the default of
  every engine planned here except TensorRT-LLM on a multi-node NVLink fabric, unless the user forces an all-to-all
  backend: vLLM --all2all-backend deepep_low_latency etc., SGLang --moe-a2a-backend deepep etc.; see
  `gathers_tokens` and tpplan.models.moe_backends. A forced backend changes EP layouts only: vLLM runs its
  all-to-all kernels only with EP, FusedMoEParallelConfig.use_all2all_kernels = dp_size > 1 and use_ep): an
  all-gather of every rank's tokens before the experts and a reduce-scatter after (S = T x hidden x act_bytes, the
  full gathered buffer) over `gather_ranks` GPUs; the routing kernels then run over all T gathered tokens on every
  GPU. SGLang and TensorRT-LLM gather over all G GPUs; vLLM over its DP group only (one GPU per attention-TP rank),
  so with attention TP > 1 the MoE layer keeps its TP all-reduce to sum the partial outputs of the TP ranks.
- dp_attention = 1 (EP inside one TP group): the tokens are already on every rank; each GPU runs its local
  experts and the layer's usual all-reduce combines them (no extra collective). vLLM: FusedMoEParallelConfig
  .use_all2all_kernels is false without DP (vllm/model_executor/layers/fused_moe/config.py); SGLang: no DP gather
  without --enable-dp-attention.
T = tokens x busy_ranks: the tokens of every DP rank that carries work in the step (all of them at steady state,
one for a prompt prefilled alone).

Load imbalance: routing is not uniform, and the step waits for the busiest EP rank; `imbalance` = (routed tokens
on the busiest rank) / (mean per rank), 1.0 = perfectly balanced (EPLB with redundant experts aims there).

Kernels of one MoE layer on one GPU, in every layout (tp-split experts too):
- the grouped GEMMs (gate_up, down): a roofline over the (token, expert) pairs the GPU computes, in which every
  expert that receives tokens costs `moe_expert_fixed_tokens` more tokens of matmul work (profile efficiency:
  tile padding and per-group pipeline fill, fitted to DeepGEMM's published grouped-GEMM tables), so a grouped
  GEMM with m tokens per expert reaches dense FLOP/s x m / (m + m0);
- the routing kernels around them (`MOE_KERNELS`, per engine): top-k, sorting pairs by expert, permuting rows to
  the experts and reducing each token's top_k outputs, each a memory-bound kernel over tokens x hidden and
  pairs x hidden activations plus the per-kernel time.
"""

from __future__ import annotations

from tpplan.cost.collectives import collective_time_s
from tpplan.cost.deepep import A2aGroup, DeepEPKernels, low_latency_time_s, normal_time_s
from tpplan.cost.kernels import KernelRates, elementwise_time_s, matmul_time_s
from tpplan.hardware.profile import HardwareProfile
from tpplan.models.moe_backends import A2aMode, TokenMovement
from tpplan.records import record
from tpplan.units import maximum


@record
class MoeKernels:
    """The kernels around the grouped GEMMs of one MoE layer as an engine runs them (the SwiGLU between the two
    GEMMs is the engine's activation kernel, counted with the elementwise kernels)."""

    launches: int
    """Routing kernels per MoE layer."""
    token_passes: float
    """Bytes they move per token of the layer, in units of hidden_size x activation bytes."""
    pair_passes: float
    """... and per (token, expert) pair the GPU computes, in the same units."""


MOE_KERNELS: dict[str, MoeKernels] = {
    # TensorRT-LLM CUTLASS MoE (cpp/tensorrt_llm/kernels/mixtureOfExperts/moe_kernels.cu): top-k softmax, a sort of
    # the pairs by expert, expandInputRowsKernel (reads each token once, writes one row per pair) and
    # finalizeMoeRoutingKernel (reads each pair's down output, writes the weighted sum per token).
    "trtllm": MoeKernels(launches=4, token_passes=2, pair_passes=2),
    # vLLM fused_moe (model_executor/layers/fused_moe/fused_moe.py): topk_softmax, moe_align_block_size, then the
    # Triton GEMMs gather rows by sorted_token_ids themselves (no permute kernel); moe_sum reads the top_k outputs
    # of each token and writes one row.
    "vllm": MoeKernels(launches=3, token_passes=1, pair_passes=1),
    # SGLang's default Triton MoE runner is vLLM's fused_moe kernel set (sglang/srt/layers/moe/fused_moe_triton).
    "sglang": MoeKernels(launches=3, token_passes=1, pair_passes=1),
    # Megatron-LM MoE (transformer/moe/token_dispatcher.py): router top-k, permute (sort + gather, one row per
    # pair) and unpermute (weighted sum back to one row per token), as TensorRT-LLM's.
    "megatron": MoeKernels(launches=4, token_passes=2, pair_passes=2),
}


def moe_kernels_for(engine: str) -> MoeKernels:
    return MOE_KERNELS.get(engine, MOE_KERNELS["vllm"])


HGX_NVLINK_DOMAIN_GPUS = 8
"""GPUs of one HGX / DGX baseboard's NVLink domain. A profile whose NVLink domain is larger is a multi-node NVLink
system (GB200 / GB300 NVL36 and NVL72), the only kind on which TensorRT-LLM's MNNVL all-to-all runs
(MnnvlMemory.supports_mnnvl() needs NVLink fabric memory handles across nodes)."""


def trtllm_gathers_tokens(*, ep: int, experts_per_token: int, nvlink_domain_gpus: int) -> bool:
    """Whether TensorRT-LLM's MoE (PyTorch backend, 1.0-era CutlassFusedMoE / WideEPMoE) moves an attention-DP
    rank's tokens by all-gather + reduce-scatter rather than all-to-all: its `select_alltoall_method_type` returns
    MNNVL only when moe_ep_size > top_k and MnnvlMemory.supports_mnnvl(), DeepEP only when the user sets
    TRTLLM_CAN_USE_DEEP_EP=1, else NotEnabled, and NotEnabled means "allgather/reducescatter"
    (tensorrt_llm/_torch/modules/fused_moe/fused_moe_cutlass.py, github.com/NVIDIA/TensorRT-LLM; the EP blog,
    docs/source/blogs/tech_blog/blog4_Scaling_Expert_Parallelism_in_TensorRT-LLM.md: "for EP4/EP8
    Reduce/Scatter is used, while for EP>8 All2All is used")."""
    return not (ep > experts_per_token and nvlink_domain_gpus > HGX_NVLINK_DOMAIN_GPUS)


GATHERING_ENGINES = ("vllm", "sglang")
"""Engines whose default token movement under EP + DP attention is all-gather + reduce-scatter on every fabric.

vLLM: `--all2all-backend` (ParallelConfig.all2all_backend, vllm/config/parallel.py; env VLLM_ALL2ALL_BACKEND before
it) defaults to "allgather_reducescatter" since v0.11.0 (docs.vllm.ai/en/v0.11.0/api/vllm/envs.html; v0.9 and v0.10
defaulted to "naive", a broadcast-based gather that vllm-project/vllm PR #33728 removed and maps to it); its
AgRsAll2AllManager all-gathers the hidden states and top-k ids over the DP group and reduce-scatters the output
(vllm/distributed/device_communicators/all2all.py). DeepEP, pplx, MoRI, NIXL-EP and FlashInfer all-to-all run only
when --all2all-backend names them (docs.vllm.ai/en/latest/serving/expert_parallel_deployment/: "allgather_reducescatter
| Default backend"; PR #54268, still open, would default GB200 / GB300 to FlashInfer's one-sided all-to-all).

SGLang: `--moe-a2a-backend` defaults to "none" (python/sglang/srt/server_args.py), which "disables all-to-all for EP
[and] uses All-Reduce or All-Gather for token dispatch" (docs.sglang.io/advanced_features/expert_parallelism.html):
with --enable-dp-attention each MoE layer dp-gathers every DP rank's tokens over the whole TP group
(all_gather_into_tensor when ranks are padded to the longest, the CUDA-graph decode mode) and dp-reduce-scatters
the output (python/sglang/srt/layers/dp_attention.py `_dp_gather`, `dp_reduce_scatter_tensor`). Only
--moe-a2a-backend deepep / mooncake / mori keeps tokens on their rank and dispatches them all-to-all."""


def gathers_tokens(*, engine: str, ep: int, experts_per_token: int, nvlink_domain_gpus: int,
                   forced: TokenMovement | None = None) -> bool:
    """Whether `engine` moves the tokens of an EP (ep > 1) + DP-attention layout by all-gather + reduce-scatter
    (True) or by all-to-all dispatch and combine (False). `forced` (the user's --all2all-backend / --moe-a2a-backend,
    tpplan.models.moe_backends.token_movement) overrides the engine's default; None: the default, always gather for
    vLLM and SGLang (`GATHERING_ENGINES`), TensorRT-LLM except on multi-node NVLink with ep > top_k
    (`trtllm_gathers_tokens`), all-to-all for any other engine."""
    if forced is not None:
        return forced == "gather"
    if engine == "trtllm":
        return trtllm_gathers_tokens(ep=ep, experts_per_token=experts_per_token,
                                     nvlink_domain_gpus=nvlink_domain_gpus)
    return engine in GATHERING_ENGINES


def gather_ranks(*, engine: str, tp: int, dp_attention: int) -> int:
    """GPUs one gather (and its reduce-scatter) spans: vLLM's AgRsAll2AllManager uses the DP group (dp_attention
    ranks, one per attention-TP rank; vllm/distributed/device_communicators/all2all.py `_get_comm_group`), SGLang its
    whole TP group of tp x dp_attention GPUs (dp_attention.py `_dp_gather_via_all_gather`), TensorRT-LLM all ranks of
    the MoE group (attention TP is 1 there, so tp x dp_attention = dp_attention)."""
    return dp_attention if engine == "vllm" else tp * dp_attention


def routing_time_s(k: MoeKernels, rates: KernelRates, *, tokens, pairs, hidden_size: int, act_bytes: int):
    """Routing kernels of one MoE layer on one GPU: `tokens` of the layer, `pairs` (token, expert) pairs computed."""
    return elementwise_time_s(rates, n_bytes=(k.token_passes * tokens + k.pair_passes * pairs) * hidden_size
                              * act_bytes, launches=k.launches)


def grouped_gemm_time_s(rates: KernelRates, *, pairs, active_experts, flops_per_pair: float, n_bytes):
    """gate_up + down grouped GEMMs (two launches) over `pairs` (token, expert) pairs of `active_experts` experts:
    the FLOPs of pairs + active_experts x moe_expert_fixed_tokens rows (see the module docstring)."""
    rows = pairs + active_experts * rates.moe_expert_fixed_tokens
    return matmul_time_s(rates, flops=rows * flops_per_pair, n_bytes=n_bytes, launches=2)


def split_experts_time_s(rates: KernelRates, *, tokens, num_experts: int, experts_per_token: int,
                         expert_bytes: float, expert_flops_per_token: float, hidden_size: int, width_per_gpu: int,
                         act_bytes: int):
    """Routed experts split over the TP group (no EP): every GPU computes all tokens x top_k pairs on its slice of
    each expert hit, E x (1 - (1 - k / E)^T) of them; `width_per_gpu` = top_k x moe_intermediate / tp."""
    e, k = num_experts, experts_per_token
    touched = e * (1 - (1 - k / e) ** tokens)
    return grouped_gemm_time_s(rates, pairs=tokens * k, active_experts=touched, flops_per_pair=expert_flops_per_token,
                               n_bytes=touched * expert_bytes + tokens * (2 * hidden_size + 3 * width_per_gpu)
                               * act_bytes)


@record
class MoeLayout:
    """How one replica's MoE layers are spread over its tp x dp_attention GPUs."""

    ep: int
    """Expert-parallel degree: 1 (experts split G ways) or G (whole experts per GPU)."""
    dp_attention: int
    """Attention data-parallel ranks of the replica, each with its own sequences."""
    group_size: int
    """G = tp x dp_attention: the GPUs one MoE layer spans."""
    imbalance: float
    """Busiest EP rank's routed tokens / the mean (>= 1)."""
    busy_ranks: int
    """DP ranks that carry tokens in the step: dp_attention at steady state, 1 for one prompt prefilled alone."""
    gather_dispatch: bool = False
    """EP with DP attention moves tokens by all-gather + reduce-scatter, not all-to-all (`gathers_tokens`)."""
    gather_ranks: int
    """GPUs a gather spans (`gather_ranks`): group_size, or dp_attention when the engine gathers over its DP group
    only and leaves the sum over attention-TP ranks to the layer's TP all-reduce (vLLM)."""
    num_experts: int
    experts_per_token: int
    local_experts: int
    """Routed experts whose weights one GPU holds: ceil(E / ep)."""
    expert_bytes: float
    """One routed expert's weight bytes on a GPU (whole under EP, 1 / G of it otherwise)."""
    expert_flops_per_token: float
    """FLOPs of one token through one routed expert on a GPU."""
    expert_width_per_gpu: int
    """moe_intermediate_size held per GPU (whole under EP, / G otherwise)."""
    hidden_size: int
    act_bytes: int
    a2a_mode: A2aMode = "fabric"
    """The kernels of an all-to-all (`gather_dispatch` False): DeepEP normal / low_latency, auto, or fabric."""
    dispatch_fp8: bool = False
    """DeepEP's normal dispatch carries FP8 (the experts compute in 8 bits or fewer), else 16-bit values."""
    ll_dispatch_fp8: bool = False
    """... and its low-latency dispatch (SGLang dispatches FP8 there by default even for 16-bit experts)."""
    ll_tokens_per_call: int | None = None
    """Tokens per rank one low-latency call carries where the engine chunks a step into calls (vLLM: 256); None: one
    call per step (SGLang; tpplan.models.moe_backends.LL_TOKENS_PER_CALL)."""


def group_tokens(m: MoeLayout, tokens):
    """Tokens that meet in one MoE layer: every busy DP rank's `tokens`."""
    return tokens * m.busy_ranks


def routing_tokens(m: MoeLayout | None, tokens):
    """Tokens the routing kernels of one MoE layer read on one GPU: all gathered tokens when the layer all-gathers
    them (DP attention with experts split, or `gather_dispatch`), else the GPU's own."""
    if m is None or m.dp_attention == 1 or (m.ep > 1 and not m.gather_dispatch):
        return tokens
    return group_tokens(m, tokens)


def routed_experts_time_s(m: MoeLayout, rates: KernelRates, tokens):
    """Grouped GEMMs (gate_up, down) of the routed experts on the busiest GPU, one MoE layer.

    EP: (token, expert) pairs on the GPU = T x top_k / ep x imbalance; weights read = local experts x P(an
    expert is hit by T tokens) = ceil(E / ep) x (1 - (1 - k / E)^T). Experts split G ways: all T x top_k pairs,
    every expert's 1 / G slice that is hit."""
    t = group_tokens(m, tokens)
    e, k = m.num_experts, m.experts_per_token
    hit = 1 - (1 - k / e) ** t
    active = (m.local_experts if m.ep > 1 else e) * hit
    pairs = pairs_on_gpu(m, tokens)
    if m.ep > 1:
        activations = pairs * (2 * m.hidden_size + 3 * m.expert_width_per_gpu)
    else:
        activations = t * (2 * m.hidden_size + 3 * k * m.expert_width_per_gpu)
    return grouped_gemm_time_s(rates, pairs=pairs, active_experts=active, flops_per_pair=m.expert_flops_per_token,
                               n_bytes=active * m.expert_bytes + activations * m.act_bytes)


def pairs_on_gpu(m: MoeLayout, tokens):
    """(token, expert) pairs the busiest GPU computes: T x top_k / ep x imbalance under EP, all T x top_k when the
    experts are split over the group."""
    t = group_tokens(m, tokens) * m.experts_per_token
    return t / m.ep * m.imbalance if m.ep > 1 else t


def destinations_per_token(m: MoeLayout) -> float:
    """Expected distinct GPUs a token's top_k experts live on: G x (1 - (1 - 1/G)^top_k) (uniform routing)."""
    g = m.group_size
    return g * (1 - (1 - 1 / g) ** m.experts_per_token)


def dispatch_bytes_per_gpu(m: MoeLayout, tokens):
    """All-to-all buffer of one dispatch (or combine) on the busiest GPU: T / G x destinations x hidden x
    act_bytes x imbalance (0 without DP attention or EP, or when the engine gathers instead)."""
    if m.dp_attention == 1 or m.ep == 1 or m.gather_dispatch:
        return tokens * 0.0
    return (group_tokens(m, tokens) / m.group_size * destinations_per_token(m) * m.hidden_size * m.act_bytes
            * m.imbalance)


def a2a_kernels(m: MoeLayout | None, *, extend: bool) -> str | None:
    """What moves an MoE layer's tokens in a step with (`extend`) or without prefill tokens: "gather", "fabric",
    "normal" or "low_latency"; None without DP attention (the layer's TP all-reduce does)."""
    if m is None or m.dp_attention == 1:
        return None
    if m.ep == 1 or m.gather_dispatch:
        return "gather"
    if m.a2a_mode == "auto":
        return "normal" if extend else "low_latency"
    return m.a2a_mode


def a2a_group(m: MoeLayout, profile: HardwareProfile, kernels: DeepEPKernels) -> A2aGroup:
    """The EP group of `m` as DeepEP sees it (tpplan.cost.deepep): G GPUs, min(G, NVLink domain) per domain."""
    return A2aGroup(group_size=m.group_size, domain_gpus=min(m.group_size, profile.nvlink_domain_size),
                    experts_per_token=m.experts_per_token, hidden_size=m.hidden_size,
                    dispatch_fp8=m.ll_dispatch_fp8 if kernels == "low_latency" else m.dispatch_fp8,
                    combine_bytes_per_channel=m.act_bytes)


def a2a_tokens(m: MoeLayout, tokens):
    """(busiest, sent): tokens the busiest GPU exchanges in one DeepEP dispatch, and the tokens one GPU of a busy DP
    rank dispatches itself (its rank's tokens over the rank's attention-TP GPUs). The busiest GPU sends its own and
    receives T / G x imbalance, so busiest = max(sent, T / G x imbalance): the receive side when every rank is busy,
    the sender's own tokens for one prompt prefilled alone."""
    sent = tokens / (m.group_size // m.dp_attention)
    return maximum(sent, group_tokens(m, tokens) / m.group_size * m.imbalance), sent


def _deepep_s(m: MoeLayout, profile: HardwareProfile, tokens, kernels: DeepEPKernels):
    busiest, sent = a2a_tokens(m, tokens)
    g = a2a_group(m, profile, kernels)
    if kernels == "normal":
        return normal_time_s(profile, g, tokens=busiest)
    return low_latency_time_s(profile, g, tokens=busiest, call_tokens=sent, tokens_per_call=m.ll_tokens_per_call)


def all_to_all_time_s(m: MoeLayout, profile: HardwareProfile, tokens, *, extend=False):
    """Dispatch + combine of one MoE layer with the kernels of `m.a2a_mode`; "auto" takes the normal kernels where the
    step carries prefill tokens (`extend`, a bool or a bool array) and the low-latency ones elsewhere."""
    if m.a2a_mode == "fabric":
        return 2 * collective_time_s(profile, kind="alltoall", group_size=m.group_size,
                                     n_bytes=dispatch_bytes_per_gpu(m, tokens))
    if m.a2a_mode == "auto":
        low, normal = (_deepep_s(m, profile, tokens, k) for k in ("low_latency", "normal"))
        return low + extend * (normal - low)
    return _deepep_s(m, profile, tokens, m.a2a_mode)


def moe_comm_time_s(m: MoeLayout, profile: HardwareProfile, tokens, *, extend=False):
    """Token movement around one MoE layer (see the module docstring); 0 when dp_attention = 1. `extend`: the step
    carries prefill tokens (SGLang's DeepEP auto mode picks its kernels by it). A gather over the DP group only
    (gather_ranks < group_size) is strided over the replica's GPUs, so it crosses the fabrics of all group_size of
    them."""
    if m.dp_attention == 1:
        return tokens * 0.0
    g = m.group_size
    if m.ep > 1 and not m.gather_dispatch:
        return all_to_all_time_s(m, profile, tokens, extend=extend)
    full = group_tokens(m, tokens) * m.hidden_size * m.act_bytes
    return (collective_time_s(profile, kind="allgather", group_size=m.gather_ranks, n_bytes=full, span_gpus=g)
            + collective_time_s(profile, kind="reducescatter", group_size=m.gather_ranks, n_bytes=full, span_gpus=g))


def keeps_tp_allreduce(m: MoeLayout) -> bool:
    """Whether the MoE layer still all-reduces over attention TP: its reduce-scatter summed over gather_ranks GPUs
    only, so group_size / gather_ranks = tp partial outputs per token remain (vLLM with attention TP > 1)."""
    gathered = m.ep == 1 or m.gather_dispatch
    return gathered and m.gather_ranks < m.group_size


def layers_comm_time_s(m: MoeLayout, profile: HardwareProfile, tokens, *, tp_collective_s, collectives_per_layer: int,
                       num_layers: int, num_moe_layers: int, extend=False):
    """All layers' collectives of one step: the TP collectives (`tp_collective_s` each, over the attention TP
    group); with DP attention an MoE layer's second all-reduce is replaced by the token movement around it, or
    joined by it (`keeps_tp_allreduce`). `extend`: the step carries prefill tokens (`moe_comm_time_s`)."""
    if m.dp_attention == 1:
        return num_layers * collectives_per_layer * tp_collective_s
    replaced = 0 if keeps_tp_allreduce(m) else num_moe_layers
    return ((num_layers * collectives_per_layer - replaced) * tp_collective_s
            + num_moe_layers * moe_comm_time_s(m, profile, tokens, extend=extend))

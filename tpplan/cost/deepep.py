"""DeepEP's two kinds of MoE all-to-all kernels, dispatch and combine, each as its own physics (issue 14).

An EP group of G GPUs lies in N = G / L NVLink domains of L = min(G, NVLink domain) GPUs. Each GPU exchanges t tokens
in a dispatch (t: the busiest GPU's, `A2aTokens`), each routed to top_k = k experts spread uniformly over the G GPUs;
the combine sends the experts' outputs back the same way, in 16 bits. Per GPU and per call:

Normal (high-throughput) kernels, Buffer.dispatch / Buffer.combine (csrc/kernels/intranode.cu, internode.cu): a token
crosses the network once per destination NVLink domain other than its own, to the GPU of the same local index there,
which forwards it over NVLink once to each destination GPU of its domain ("kernels optimized for asymmetric-domain
bandwidth forwarding, such as forwarding data from NVLink domain to RDMA domain", DeepEP README):
    RDMA   bytes = t x (N - 1) x (1 - (1 - 1/N)^k) x msg
    NVLink bytes = t x G x (1 - (1 - 1/G)^k) x (L - 1) / L x msg    (one domain: t (G - 1) (1 - (1 - 1/G)^k) msg)
    time = fixed + max(NVLink bytes / (e_nvl x NVLink bandwidth), RDMA bytes / (e_rdma x scale-out bandwidth))
The two stages run as one pipeline of chunks over SM channels, so the slower paces it. msg = hidden x bytes per
channel: FP8 (1 + 4/128: an fp32 scale per 128 channels) when the experts compute in 8 bits or fewer, else 16 bits.
fixed (`normal_fixed_s`): the kernel, the notify stage's barriers over the fabric, and for a dispatch the host
handshake: "inside the dispatch function, we may not know how many tokens to receive for the current rank. So an
implicit CPU wait for GPU received count signal will be involved" (README), which also keeps these kernels out of
CUDA graphs (SGLang disables CUDA graphs under --deepep-mode normal; the extra launch cost of an eager decode step is
not modelled beyond this handshake).

Low-latency kernels, Buffer.low_latency_dispatch / low_latency_combine (csrc/kernels/internode_ll.cu): one message
per (token, expert) pair, k per token, no per-rank dedupe, written straight into the expert's GPU: over NVLink P2P
inside the domain (DeepEP PR 173: "low-latency kernels now leverage NVLink as much as possible"), else RDMA (IBGDA):
    RDMA   bytes = t x k x (G - L) / G x msg,      NVLink bytes = t x k x (L - 1) / G x msg
    time = calls x LL_FIXED_S + max(NVLink bytes / (e_nvl x NVLink bandwidth), RDMA bytes / (e_ll x bandwidth))
Dispatch msg = 16-byte header + hidden FP8 bytes + hidden / 128 fp32 scales (or 16 + 2 x hidden in BF16; internode_ll.cu
`num_bytes_per_msg = sizeof(int4) + (kUseFP8 ? (kHidden + num_scales * sizeof(float)) : kHidden * sizeof(bf16))`);
combine msg = 2 x hidden. A call carries at most the engine's tokens per rank (its buffer), so a step of more tokens
makes ceil(t / cap) calls where the engine chunks (vLLM); the buffers are sized by that cap (`ll_buffer_bytes`).

The measured numbers (DeepEP V1 README, github.com/deepseek-ai/DeepEP, now docs/legacy.md; H800 with "~160 GB/s NVLink
maximum bandwidth", 400 GB/s bidirectional = 200 GB/s per direction nominal, one 400 Gb/s CX7 NIC (50 GB/s) per GPU):
- normal, 4096 tokens, hidden 7168, top-8, FP8 dispatch / BF16 combine, "bottleneck bandwidth" (the test counts the
  tokens each GPU receives, its own included, and the tokens sent per destination node, its own node included):
  intranode EP8 153 / 158 GB/s (NVLink); internode EP16 43 / 43, EP32 58 / 57, EP64 51 / 50 GB/s (RDMA);
- low-latency, 128 tokens per rank, same model: dispatch 77 / 118 / 155 / 173 / 192 / 194 us and combine 114 / 195 /
  273 / 314 / 369 / 360 us at EP 8 / 16 / 32 / 64 / 128 / 256 (the README's "pure RDMA" table, measured before PR
  173 with every copy through the NIC; `LL_RDMA_EFFICIENCY` says how the fit splits them).
Efficiencies are the bytes that cross a link over the time, as a share of the link's nominal bandwidth per direction;
they are properties of DeepEP's kernels on Hopper, applied to each profile's own link bandwidths.
"""

from __future__ import annotations

from typing import Literal

from tpplan.hardware.profile import HardwareProfile
from tpplan.models.deepep_limits import NUM_MAX_NVL_PEERS  # normal buffers count a group in blocks of 8 GPUs
from tpplan.records import record
from tpplan.units import ceil_div, maximum

DeepEPKernels = Literal["normal", "low_latency"]

FP8_SCALE_CHANNELS = 128
"""Channels per fp32 scale in DeepEP's FP8 dispatch (kNumPerChannels = 128, internode_ll.cu; the tests' fp8_factor
(1 + 4 / 128) / 2 of the BF16 bytes)."""
FP8_SCALE_BYTES = 4
"""One fp32 scale."""
LL_HEADER_BYTES = 16
"""The int4 ahead of each low-latency dispatch message: the token's index at its source and 3 reserved ints."""
BF16_BYTES = 2
"""Combine, and low-latency dispatch without FP8, carry 16-bit values."""

NORMAL_NVLINK_EFFICIENCY = 0.68
"""NVLink bytes / time of the normal kernels as a share of the link's nominal bandwidth per direction: intranode EP8
on H800, 153 GB/s (dispatch) and 158 GB/s (combine) of received tokens, of which 7/8 come from the other 7 GPUs:
134 / 138 GB/s of 200 GB/s nominal = 0.67 / 0.69. Other Hopper parts measure alike: 8 x H100 329 / 287 GB/s (DeepEP
in tile-ai/tilescale PR 40) = 0.64 / 0.56 of 450 GB/s; 8 x H20 326-344 / 333 GB/s (DeepEP issue 138) = 0.63-0.67 /
0.65. Also used for the low-latency kernels' NVLink copies (the same SM stores over the same link)."""
NORMAL_RDMA_EFFICIENCY = 0.87
"""Network bytes / time of the normal kernels as a share of the NIC's bandwidth: internode EP32 (4 nodes) 58 / 57
GB/s and EP64 (8 nodes) 51 / 50 GB/s of tokens sent per destination node, of which (nodes - 1) / nodes leave the node:
43.5 / 42.8 and 44.6 / 43.8 GB/s of 50 GB/s = 0.86-0.89. (EP16, 2 nodes, is paced by NVLink forwarding instead: its
1.26 ms of NVLink bytes at 0.68 x 200 GB/s match the 1.40 ms measured; DeepEP V2's EP 8 x 2 reaches 90 GB/s
"logical" = 45 GB/s on the wire, 0.90.)"""
LL_RDMA_EFFICIENCY = 0.82
"""Network bytes / time of the low-latency kernels' bandwidth term: least-squares fit of t = LL_FIXED_S + RDMA bytes /
(e x 50 GB/s) to the 8 rows EP32-EP256 (dispatch and combine): 40.9 GB/s, residuals within 5%. The fit counts as RDMA
bytes only the copies bound for other nodes, 128 x 8 x (G - 8) / G x 7,408 or 14,336 bytes, as `low_latency_bytes`
prices them today (the 8 / G copies for the GPU's own node on NVLink), although the README measured these rows with
every copy through the NIC ("pure RDMA", before PR 173): e is the rate of the cross-node bytes with the NIC's
handling of the same-node copies folded into it, not the NIC's efficiency on all the bytes it carried (counting all
(G - 1) / G copies as RDMA gives 45.9 GB/s, 0.92, and a 14.8 us intercept)."""
LL_FIXED_S = 13e-6
"""Fixed time of one low-latency dispatch or combine call: the intercept of the same fit (13.3 us; the kernel launch,
one one-sided write of each message and its count signal through the network, the receiver's poll)."""
NOTIFY_DISPATCH_ROUNDS = 3
"""Round trips over the group's slowest fabric in the normal dispatch's notify stage: internode notify_dispatch runs
3 global barriers, around the exchange of per-rank and per-expert token counts (DeepEP issue 94)."""
NOTIFY_COMBINE_ROUNDS = 1
"""... and before a normal combine: cached_notify clears the buffers behind one barrier."""
HOST_HANDSHAKE_S = 20e-6
"""The normal dispatch's host round trip: the CPU polls the received-token count the notify kernel writes to mapped
host memory, then allocates the receive tensors and launches the dispatch kernel through PyTorch. NVIDIA's Nsight
Systems user guide measures ~20 us from a PyTorch elementwise kernel's launch on the host to its start on the GPU
(V100), as quoted in "Every CUDA Kernel Pays a Launch Tax" (groundy.com). An order-of-magnitude figure, not fitted."""


@record
class A2aGroup:
    """The EP group one DeepEP all-to-all spans, and what its messages carry."""

    group_size: int
    """G: the GPUs of the EP group."""
    domain_gpus: int
    """L: the group's GPUs inside one NVLink domain (G when the group fits one domain)."""
    experts_per_token: int
    hidden_size: int
    dispatch_fp8: bool
    """Dispatch carries FP8 values with per-128-channel scales (else 16-bit values)."""
    combine_bytes_per_channel: int
    """The experts' outputs travel back in the model's activation width (BF16)."""


@record
class A2aBytes:
    """Bytes one GPU sends in one dispatch or combine, by the link they cross (floats or arrays)."""

    nvlink_bytes: object
    rdma_bytes: object


def dispatch_message_bytes(g: A2aGroup, kernels: DeepEPKernels) -> float:
    """Bytes of one dispatched token copy: hidden x (1 + 4/128) in FP8 or 2 x hidden in BF16, plus the 16-byte header
    of a low-latency message."""
    per_channel = 1 + FP8_SCALE_BYTES / FP8_SCALE_CHANNELS if g.dispatch_fp8 else BF16_BYTES
    return g.hidden_size * per_channel + (LL_HEADER_BYTES if kernels == "low_latency" else 0)


def normal_bytes(g: A2aGroup, *, tokens, message_bytes: float) -> A2aBytes:
    """The normal kernels' bytes per GPU for `tokens` tokens (module docstring: once per destination domain over RDMA,
    then once per destination GPU over NVLink)."""
    big, dom, k = g.group_size, g.domain_gpus, g.experts_per_token
    domains = ceil_div(big, dom)
    remote_domains = (domains - 1) * (1 - (1 - 1 / domains) ** k)
    destination_gpus = big * (1 - (1 - 1 / big) ** k)
    return A2aBytes(nvlink_bytes=tokens * destination_gpus * (dom - 1) / dom * message_bytes,
                    rdma_bytes=tokens * remote_domains * message_bytes)


def low_latency_bytes(g: A2aGroup, *, tokens, message_bytes: float) -> A2aBytes:
    """The low-latency kernels' bytes per GPU for `tokens` tokens: top_k copies each, (G - L) / G of them to GPUs of
    other NVLink domains, (L - 1) / G to the other GPUs of its own."""
    big, dom, k = g.group_size, g.domain_gpus, g.experts_per_token
    return A2aBytes(nvlink_bytes=tokens * k * (dom - 1) / big * message_bytes,
                    rdma_bytes=tokens * k * (big - dom) / big * message_bytes)


def scale_out_bytes_per_s(profile: HardwareProfile, group_size: int) -> float:
    """Bandwidth per GPU of the link between the group's NVLink domains: the network when the group spans nodes
    (the inter-domain link of a profile without one), else the inter-domain link inside the node."""
    if group_size > profile.gpus_per_node and profile.network is not None:
        return profile.network.bandwidth_bytes_per_s
    return profile.inter_domain_link.bandwidth_bytes_per_s


def fabric_round_trip_s(profile: HardwareProfile, group_size: int) -> float:
    """One barrier round trip over the slowest fabric the group crosses: 2 x the smallest per-hop latency of that
    tier's protocols (NCCL's LL hop: 0.6 us on NVLink, 2.7 us on the network in the built-in profiles)."""
    protocols = profile.collectives[profile.tier_for_group(group_size)]
    return 2 * min(p.hop_latency_s for p in protocols.values())


def _paced_s(profile: HardwareProfile, g: A2aGroup, b: A2aBytes, *, rdma_efficiency: float):
    """max(NVLink bytes / (e_nvl x NVLink bandwidth), RDMA bytes / (e x scale-out bandwidth)), seconds."""
    nvlink = b.nvlink_bytes / (NORMAL_NVLINK_EFFICIENCY * profile.intra_domain_link.bandwidth_bytes_per_s)
    rdma = b.rdma_bytes / (rdma_efficiency * scale_out_bytes_per_s(profile, g.group_size))
    return maximum(nvlink, rdma)


def normal_fixed_s(profile: HardwareProfile, g: A2aGroup, *, dispatch: bool) -> float:
    """Fixed time of one normal call: LL_FIXED_S (the kernel and its signalled writes) + the notify stage's barrier
    round trips over the group's fabric (NOTIFY_DISPATCH_ROUNDS or NOTIFY_COMBINE_ROUNDS) + for a dispatch the host
    handshake (HOST_HANDSHAKE_S)."""
    rounds = NOTIFY_DISPATCH_ROUNDS if dispatch else NOTIFY_COMBINE_ROUNDS
    return (LL_FIXED_S + rounds * fabric_round_trip_s(profile, g.group_size)
            + (HOST_HANDSHAKE_S if dispatch else 0.0))


def normal_time_s(profile: HardwareProfile, g: A2aGroup, *, tokens):
    """Dispatch + combine of one MoE layer with the normal kernels, `tokens` per GPU (none when 0)."""
    busy = tokens > 0
    total = tokens * 0.0
    for dispatch, message in ((True, dispatch_message_bytes(g, "normal")),
                              (False, g.hidden_size * g.combine_bytes_per_channel)):
        b = normal_bytes(g, tokens=tokens, message_bytes=message)
        total = total + busy * normal_fixed_s(profile, g, dispatch=dispatch) + _paced_s(
            profile, g, b, rdma_efficiency=NORMAL_RDMA_EFFICIENCY)
    return total


def low_latency_time_s(profile: HardwareProfile, g: A2aGroup, *, tokens, call_tokens, tokens_per_call: int | None):
    """Dispatch + combine of one MoE layer with the low-latency kernels, `tokens` per GPU, in ceil(call_tokens /
    tokens_per_call) calls each (one call per step when the engine does not chunk, tokens_per_call None)."""
    calls = (call_tokens > 0) if tokens_per_call is None else ceil_div(call_tokens, tokens_per_call)
    total = tokens * 0.0
    for message in (dispatch_message_bytes(g, "low_latency"), g.hidden_size * g.combine_bytes_per_channel):
        b = low_latency_bytes(g, tokens=tokens, message_bytes=message)
        total = total + calls * LL_FIXED_S + _paced_s(profile, g, b, rdma_efficiency=LL_RDMA_EFFICIENCY)
    return total


def ll_buffer_bytes(*, num_experts: int, hidden_size: int, tokens_per_call: int) -> int:
    """RDMA buffer one GPU allocates for the low-latency kernels (csrc/config.hpp LowLatencyLayout; Buffer.
    get_low_latency_rdma_size_hint): two (odd / even) send and two receive buffers, each receive buffer holding
    num_experts x tokens_per_call messages of the larger kind (a dispatch slot is sized for BF16: 16 + 2 x hidden), each
    send buffer the combine's num_experts x tokens_per_call x 2 x hidden:
        2 x num_experts x tokens_per_call x ((16 + 2 h) + 2 h)     (signal counters are negligible).
    DeepSeek-V3 at 128 tokens: 1.88 GB, the "Allocating buffer size: 1880.1 MB" DeepEP prints (DeepEP issue 183)."""
    dispatch_slot = LL_HEADER_BYTES + BF16_BYTES * hidden_size
    combine_slot = BF16_BYTES * hidden_size
    return 2 * num_experts * tokens_per_call * (dispatch_slot + combine_slot)


NORMAL_NUM_SMS = 20
"""SMs of the normal kernels, Buffer.num_sms (deep_ep/buffer.py), which vLLM (DeepEPAll2AllManagerBase.num_sms = 20,
"the DeepEP default") and SGLang (DeepEPConfig.num_sms = Buffer.num_sms without --deepep-config) keep: num_sms / 2 =
10 channels."""
NORMAL_RECV_TOKENS: dict[int, tuple[int, int]] = {
    2: (256, 132), 4: (256, 132), 8: (256, 132), 16: (288, 140), 24: (288, 140), 32: (288, 140), 64: (288, 140),
    128: (560, 132), 144: (720, 132), 160: (720, 132)}
"""Per EP size, the receive tokens per channel that size the normal buffers: (NVLink, RDMA), the larger of
Buffer.get_dispatch_config and get_combine_config (deep_ep/buffer.py at 04b06f7a; Config(num_sms, NVL send, NVL
receive, RDMA send, RDMA receive)). Both configs receive 256 NVLink tokens up to 8 ranks, 288 at 16-64, 560 at 128,
720 at 144-160; Config's constructor rounds the RDMA receive tokens (128 in every row) up to a multiple of its send
chunk (csrc/config.hpp), e.g. EP16: dispatch Config(20, 16, 288, 20, 128) and combine Config(20, 2, 288, 28, 128)
both give 140. DeepEP has no config for other sizes ("Unsupported number of EP ranks" unless the engine is given
one): the planner refuses them (tpplan.models.deepep_limits), though the V1 kernels kept in DeepEP's V2 tree add 48
(288 NVLink tokens) and 96 (480), which this table prices as 64 and 128."""
TOPK_SLOTS = 128
"""kNumMaxTopK: top-k indices (int64) and weights (fp32) a normal buffer slot holds per token (csrc/config.hpp)."""
SCALE_SLOTS = 128
"""kNumMaxScales: fp32 scales a slot holds per token."""
SOURCE_META_BYTES = 8
"""internode::get_source_meta_bytes(): sizeof(SourceMeta), the source RDMA rank and the NVLink-rank bits (two ints)."""
BUFFER_ALIGN_BYTES = 128
"""The hints round their sum up to 128 bytes."""


def normal_recv_tokens(group_size: int) -> tuple[int, int]:
    """(NVLink, RDMA) receive tokens per channel of DeepEP's configs for `group_size` ranks (`NORMAL_RECV_TOKENS`); a
    size without a config takes the next larger size's, else the largest's."""
    sizes = sorted(NORMAL_RECV_TOKENS)
    return NORMAL_RECV_TOKENS[next((s for s in sizes if s >= group_size), sizes[-1])]


def _slot_bytes(hidden_bytes: int) -> int:
    """One token's slot in a normal buffer: its values, SourceMeta, TOPK_SLOTS int64 indices and fp32 weights,
    SCALE_SLOTS fp32 scales."""
    return hidden_bytes + SOURCE_META_BYTES + TOPK_SLOTS * (8 + 4) + SCALE_SLOTS * 4


def normal_nvl_buffer_bytes(*, hidden_bytes: int, group_size: int) -> int:
    """NVLink buffer of the normal kernels on each GPU, Config.get_nvl_buffer_size_hint (csrc/config.hpp at 3861241a):
    channels x NVLink ranks x ((2 x RDMA ranks + 3) int counters + NVLink receive tokens x slot), rounded up to 128
    bytes; NVLink ranks = min(G, 8), RDMA ranks = max(G / 8, 1). hidden_bytes: hidden x 2 as the engines pass it."""
    channels = NORMAL_NUM_SMS // 2
    rdma_ranks, nvl_ranks = max(group_size // NUM_MAX_NVL_PEERS, 1), min(group_size, NUM_MAX_NVL_PEERS)
    nvl_recv, _ = normal_recv_tokens(group_size)
    n = channels * nvl_ranks * ((2 * rdma_ranks + 3) * 4 + nvl_recv * _slot_bytes(hidden_bytes))
    return ceil_div(n, BUFFER_ALIGN_BYTES) * BUFFER_ALIGN_BYTES


def normal_rdma_buffer_bytes(*, hidden_bytes: int, group_size: int) -> int:
    """RDMA buffer of the normal kernels on each GPU, Config.get_rdma_buffer_size_hint (csrc/config.hpp at 3861241a):
    0 up to 8 ranks (intranode kernels), else channels x RDMA ranks x ((2 x 8 + 2) x 2 int counters + 2 (send and
    receive) x RDMA receive tokens x (slot + a 16-byte int4)), rounded up to 128 bytes."""
    if group_size <= NUM_MAX_NVL_PEERS:
        return 0
    channels, rdma_ranks = NORMAL_NUM_SMS // 2, group_size // NUM_MAX_NVL_PEERS
    _, rdma_recv = normal_recv_tokens(group_size)
    n = channels * rdma_ranks * ((NUM_MAX_NVL_PEERS * 2 + 2) * 2 * 4 + 2 * rdma_recv * (_slot_bytes(hidden_bytes) + 16))
    return ceil_div(n, BUFFER_ALIGN_BYTES) * BUFFER_ALIGN_BYTES

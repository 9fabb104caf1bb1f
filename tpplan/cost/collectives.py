"""Time of one collective over a TP group, from the profile's protocol parameters (DESIGN.md §3).

    T(S, t) = min over protocols p of [ base_p + hops(t) x hop_p + factor(t) x S / busbw_p ]

factor(t) is the nccl-tests bus-bandwidth factor (FACTS.md §3): 2(t-1)/t for all-reduce, (t-1)/t for
all-gather and reduce-scatter (S = the full gathered buffer) and for all-to-all (S = one rank's send buffer, of
which (t-1)/t leaves the GPU; nccl-tests doc/PERFORMANCE.md); hops(t) is the ring's step count: 2(t-1) for
all-reduce, t-1 for the others (all-to-all: t-1 peer exchanges). The group's tier is the slowest fabric it
crosses. Every function accepts floats or numpy arrays for the byte count (no numpy import here: `recommend`
must stay fast).
"""

from __future__ import annotations

from typing import Literal

from tpplan.hardware.profile import HardwareProfile, ProtocolParams
from tpplan.units import minimum

CollectiveKind = Literal["allreduce", "allgather", "reducescatter", "alltoall"]


def bus_factor(kind: CollectiveKind, group_size: int) -> float:
    """nccl-tests busbw / algbw factor."""
    t = group_size
    return 2 * (t - 1) / t if kind == "allreduce" else (t - 1) / t


def ring_hops(kind: CollectiveKind, group_size: int) -> int:
    return 2 * (group_size - 1) if kind == "allreduce" else group_size - 1


def protocol_time_s(p: ProtocolParams, *, kind: CollectiveKind, group_size: int, n_bytes):
    return (p.base_latency_s + ring_hops(kind, group_size) * p.hop_latency_s
            + bus_factor(kind, group_size) * n_bytes / p.busbw_at(group_size))


def collective_time_s(profile: HardwareProfile, *, kind: CollectiveKind, group_size: int, n_bytes,
                      span_gpus: int | None = None):
    """Seconds for one collective of `n_bytes` (per rank; the full buffer for all-gather) over the group, on the
    slowest fabric of the `span_gpus` consecutive GPUs its ranks are spread over (None: group_size, a contiguous
    group; a strided group such as vLLM's DP group of TP ranks spans more)."""
    if group_size <= 1:
        return n_bytes * 0.0
    protocols = profile.collectives[profile.tier_for_group(span_gpus or group_size)]
    best = None
    for p in protocols.values():
        t = protocol_time_s(p, kind=kind, group_size=group_size, n_bytes=n_bytes)
        best = t if best is None else minimum(best, t)
    return best


def p2p_time_s(profile: HardwareProfile, *, n_bytes, crosses_nodes: bool):
    """One pipeline-stage hand-off: the link's latency + bytes / bandwidth of the fabric it crosses."""
    link = profile.network if crosses_nodes and profile.network else profile.inter_domain_link
    tier = "network" if crosses_nodes and "network" in profile.collectives else None
    base = profile.collectives[tier]["simple"].base_latency_s if tier else link.latency_s
    return base + n_bytes / link.bandwidth_bytes_per_s


def pipeline_handoffs_s(profile: HardwareProfile, *, tp: int, pp: int, n_bytes):
    """The pp - 1 hand-offs of one micro-batch through the stages, each over the fabric its boundary crosses.
    Stage k occupies GPUs [k tp, (k + 1) tp); the boundary before stage k crosses a node when k tp is a multiple
    of gpus_per_node, else leaves the NVLink domain when k tp is a multiple of its size, else stays on NVLink
    (sent GPU to GPU: vLLM `send_tensor_dict` and TensorRT-LLM's pipeline NCCL communicator are NCCL send/recv)."""
    total = n_bytes * 0.0
    for k in range(1, pp):
        first_gpu = k * tp
        if first_gpu % profile.gpus_per_node == 0:
            total = total + p2p_time_s(profile, n_bytes=n_bytes, crosses_nodes=True)
        elif first_gpu % profile.nvlink_domain_size == 0:
            total = total + p2p_time_s(profile, n_bytes=n_bytes, crosses_nodes=False)
        else:
            link, simple = profile.intra_domain_link, profile.collectives.get("nvlink", {}).get("simple")
            base = simple.base_latency_s if simple else link.latency_s
            total = total + base + n_bytes / link.bandwidth_bytes_per_s
    return total

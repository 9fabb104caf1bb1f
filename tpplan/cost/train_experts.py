"""Routed experts of one MoE layer in Megatron-Core training with expert parallelism: their kernels, the token
exchange around them, and the (token, expert) pairs a GPU holds.

Layout ("MoE parallel folding", megatron/core/transformer/moe/README.md): attention and dense layers run TP x CP x
DP x PP, the routed experts ETP x EP x EDP x PP over the same GPUs. megatron/core/parallel_state.py
`initialize_model_parallel` builds a second rank generator for them with tp = ETP (--expert-tensor-parallel-size,
default --tensor-model-parallel-size), ep = EP (--expert-model-parallel-size), dp = EDP = world / (ETP x EP x PP),
order tp-ep-dp-pp: one expert group of ETP x EP GPUs is contiguous inside a pipeline stage. Each of the EP ranks
holds num_experts / EP whole experts, each split ETP ways.

Tokens, `--moe-token-dispatcher-type alltoall` (megatron/core/transformer/moe/token_dispatcher.py,
MoEAlltoAllTokenDispatcher): with sequence parallelism each GPU holds n / TP of a micro-batch's n tokens when the
MoE layer starts (Megatron's MoELayer.forward refuses to train with TP > 1 without sequence parallelism,
megatron/core/transformer/moe/moe_layer.py). It permutes them into one row
per (token, expert) pair, top_k rows per token (one per pair, not one per destination rank as DeepEP sends),
sends each row all-to-all over the EP group to the rank that holds its expert, and with ETP > 1 all-gathers the
received rows over the ETP group; after the experts the reverse: reduce-scatter over ETP, all-to-all back
(combine), unpermute. Per GPU and MoE layer, forward:

    rows sent      = n / TP x top_k
    pairs computed = n / TP x top_k x ETP x imbalance          (imbalance only with EP > 1)
    all-to-all     S = rows sent x hidden x act_bytes x imbalance, twice (dispatch, combine), over the EP group
    ETP gather     all-gather + reduce-scatter of pairs computed x hidden x act_bytes over the ETP group

`imbalance` = routed tokens on the busiest EP rank / the mean (tpplan.planner.workload.Workload.moe_imbalance): the
step waits for that rank. Backward moves the same bytes again (the gradients of the combine and of the dispatch).
The kernels are tpplan.cost.moe's: the grouped GEMMs over the pairs (`grouped_gemm_time_s`, every expert that
receives tokens costs its fixed rows) and the routing kernels (`MOE_KERNELS["megatron"]`: router top-k, permute,
unpermute).
"""

from __future__ import annotations

from tpplan.cost.collectives import collective_time_s
from tpplan.cost.kernels import KernelRates
from tpplan.cost.moe import MoeKernels, grouped_gemm_time_s, routing_time_s
from tpplan.hardware.profile import HardwareProfile
from tpplan.records import record


@record
class ExpertParallelLayout:
    """How Megatron-Core spreads one pipeline stage's routed experts (see the module docstring)."""

    tp: int
    """Attention TP (--tensor-model-parallel-size): the MoE layer's input is split tp ways (sequence parallel)."""
    ep: int
    """--expert-model-parallel-size: GPUs the experts are spread over, num_experts / ep whole experts each."""
    etp: int
    """--expert-tensor-parallel-size: GPUs each expert's matrices are split over."""
    imbalance: float = 1.0
    """Busiest EP rank's routed tokens / the mean (>= 1); ignored without EP."""

    def __post_init__(self) -> None:
        if min(self.tp, self.ep, self.etp) < 1 or self.imbalance < 1:
            raise ValueError("tp, ep and etp must be >= 1 and imbalance >= 1")

    @property
    def load(self) -> float:
        """The busiest rank's share of routed work over the mean: imbalance with EP, 1 when every GPU computes
        every pair (experts split, ep = 1)."""
        return self.imbalance if self.ep > 1 else 1.0


def rows_sent_per_gpu(x: ExpertParallelLayout, tokens, *, top_k: int):
    """(token, expert) rows one GPU dispatches for a micro-batch of `tokens` tokens: tokens / tp x top_k."""
    return tokens / x.tp * top_k


def pairs_per_gpu(x: ExpertParallelLayout, tokens, *, top_k: int):
    """(token, expert) pairs the busiest GPU computes: rows sent x etp (the ETP group gathers its EP rank's rows)
    x the load on the busiest rank. TP-split experts (ep 1, etp = tp): every GPU computes all tokens x top_k."""
    return rows_sent_per_gpu(x, tokens, top_k=top_k) * x.etp * x.load


def token_exchange_time_s(x: ExpertParallelLayout, profile: HardwareProfile, tokens, *, top_k: int, hidden_size: int,
                          act_bytes: int):
    """Forward token movement of one MoE layer on one GPU, seconds: dispatch and combine all-to-all over the EP
    group (its ep x etp GPUs are contiguous, so it spans them), plus with ETP > 1 the all-gather and
    reduce-scatter of the pairs over the ETP group. 0 with ep = etp = 1 (the permutation is local)."""
    row_bytes = hidden_size * act_bytes
    sent = rows_sent_per_gpu(x, tokens, top_k=top_k) * row_bytes * x.load
    t = 2 * collective_time_s(profile, kind="alltoall", group_size=x.ep, n_bytes=sent, span_gpus=x.ep * x.etp)
    if x.etp > 1:
        full = pairs_per_gpu(x, tokens, top_k=top_k) * row_bytes
        t = t + (collective_time_s(profile, kind="allgather", group_size=x.etp, n_bytes=full)
                 + collective_time_s(profile, kind="reducescatter", group_size=x.etp, n_bytes=full))
    return t


@record
class RoutedExperts:
    """One MoE layer's routed experts as one GPU holds them under an `ExpertParallelLayout`."""

    num_experts: int
    top_k: int
    expert_bytes: float
    """One expert's weight bytes on a GPU (its 1 / etp share)."""
    expert_flops_per_token: float
    """FLOPs of one token through one expert's share on a GPU (gate_up + down)."""
    width_per_gpu: int
    """moe_intermediate_size / etp."""
    hidden_size: int
    act_bytes: int


def experts_compute_time_s(x: ExpertParallelLayout, e: RoutedExperts, rates: KernelRates, tokens, *,
                           kernels: MoeKernels | None):
    """Forward kernels of one MoE layer's routed experts on the busiest GPU, seconds, as
    tpplan.cost.moe.routed_experts_time_s prices them for serving: grouped GEMMs over the GPU's pairs
    (`pairs_per_gpu`) of its num_experts / ep local experts, each hit with probability 1 - (1 - top_k / E)^T by the
    T = tokens / tp x ep x etp tokens its expert group routes, reading each hit expert's weights once and
    2 hidden + 3 width activation elements per pair; plus the routing `kernels` (router, permute, unpermute) over
    the GPU's tokens / tp tokens and its pairs."""
    pairs = pairs_per_gpu(x, tokens, top_k=e.top_k)
    group_tokens = tokens / x.tp * x.ep * x.etp
    active = e.num_experts // x.ep * (1 - (1 - e.top_k / e.num_experts) ** group_tokens)
    gemms = grouped_gemm_time_s(rates, pairs=pairs, active_experts=active, flops_per_pair=e.expert_flops_per_token,
                                n_bytes=active * e.expert_bytes
                                + pairs * (2 * e.hidden_size + 3 * e.width_per_gpu) * e.act_bytes)
    if kernels is None:
        return gemms
    return gemms + routing_time_s(kernels, rates, tokens=tokens / x.tp, pairs=pairs, hidden_size=e.hidden_size,
                                  act_bytes=e.act_bytes)

"""DeepEP's low-latency buffers in a layout's memory (tpplan.cost.deepep.ll_buffer_bytes): sized by the tokens per
rank one call carries, which the engine fixes (tpplan.models.moe_backends.ll_buffer_tokens), and counted in the runtime
reserve of every layout that runs those kernels."""

from __future__ import annotations

from tpplan.cost.batching import SchedulerLimits
from tpplan.cost.coefficients import Coefficients
from tpplan.cost.deepep import ll_buffer_bytes
from tpplan.cost.moe import a2a_kernels
from tpplan.models.moe_backends import LL_TOKENS_ENV, ll_buffer_tokens
from tpplan.models.spec import ModelSpec
from tpplan.planner.workload import Workload
from tpplan.units import bytes_to_gib, ceil_div


def deepep_ll_tokens(c: Coefficients, w: Workload, *, limits: SchedulerLimits) -> int | None:
    """Tokens per rank the layout's DeepEP low-latency buffer holds (tpplan.models.moe_backends.ll_buffer_tokens);
    None when it runs no low-latency kernels. A GPU's prefill batch is min(input, the rank's token budget) / tp."""
    m = c.moe
    if m is None or a2a_kernels(m, extend=False) != "low_latency" and a2a_kernels(m, extend=True) != "low_latency":
        return None
    budget = limits.max_num_batched_tokens // m.dp_attention if limits.budget_per_dp_rank else \
        limits.max_num_batched_tokens
    return ll_buffer_tokens(w.engine, m.a2a_mode, prefill_tokens_per_gpu=ceil_div(min(w.input_len, budget), c.tp))


def deepep_ll_buffer_bytes(spec: ModelSpec, c: Coefficients, w: Workload, *, limits: SchedulerLimits) -> int:
    """The RDMA buffer of DeepEP's low-latency kernels on each GPU (tpplan.cost.deepep.ll_buffer_bytes), 0 without
    them: part of the runtime reserve."""
    tokens = deepep_ll_tokens(c, w, limits=limits)
    return 0 if tokens is None else ll_buffer_bytes(num_experts=spec.num_experts, hidden_size=spec.hidden_size,
                                                    tokens_per_call=tokens)


def ll_tokens_needed(c: Coefficients, w: Workload, *, limits: SchedulerLimits, batch: int) -> int | None:
    """Tokens per rank the low-latency buffer must hold for the plan to run: the planned buffer (`deepep_ll_tokens`),
    or under SGLang, which dispatches a decode step in one call, a rank's decode batch per GPU when that is more;
    None without low-latency kernels."""
    held = deepep_ll_tokens(c, w, limits=limits)
    if w.engine != "sglang" or held is None or a2a_kernels(c.moe, extend=False) != "low_latency":
        return held
    return max(held, ceil_div(ceil_div(batch, c.moe.dp_attention), c.tp))


def ll_decode_note(spec: ModelSpec, c: Coefficients, w: Workload, *, limits: SchedulerLimits, batch: int) -> list[str]:
    """A rank's SGLang decode batch above the planned buffer needs SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK
    raised, and its buffer grows beyond the planned reserve (not in the KV budget, which the batch follows from)."""
    held, need = deepep_ll_tokens(c, w, limits=limits), ll_tokens_needed(c, w, limits=limits, batch=batch)
    if need is None or need <= held:
        return []
    extra = ll_buffer_bytes(num_experts=spec.num_experts, hidden_size=spec.hidden_size, tokens_per_call=need - held)
    return [f"DeepEP low-latency decode of {need} tokens per rank: {LL_TOKENS_ENV}={need} (--emit sets it) grows its "
            f"buffer by {bytes_to_gib(extra):.1f} GiB per GPU beyond the planned reserve"]

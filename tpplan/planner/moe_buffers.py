"""DeepEP's buffers in a layout's memory: what each engine allocates for the kernels it runs, counted in the runtime
reserve of every layout that runs them, and the low-latency buffer sized for the tokens the plan puts through it.

What each engine allocates per GPU (one deep_ep.Buffer per process):
- SGLang (DeepEPBuffer.get_deepep_buffer, python/sglang/srt/layers/moe/token_dispatcher/deepep.py, sgl-project/sglang at
  003a81bf): with normal kernels (--deepep-mode normal or auto) an NVLink buffer of the larger of DeepEP's dispatch
  and combine get_nvl_buffer_size_hint(hidden x 2 bytes, G) and an RDMA buffer of their get_rdma_buffer_size_hint;
  with low-latency kernels (auto or low_latency) the RDMA buffer is max(that, get_low_latency_rdma_size_hint(tokens,
  hidden, G, E)): one RDMA buffer shared by both modes, not two.
- vLLM (vllm/distributed/device_communicators/all2all.py at 00143004): deepep_high_throughput an NVLink buffer of
  VLLM_DEEPEP_BUFFER_SIZE_MB (1 GiB) and, when the EP group spans nodes, an RDMA buffer of the same size;
  deepep_low_latency the same 1 GiB NVLink buffer and the low-latency RDMA buffer of its 256-token chunk.

The low-latency buffer holds SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK tokens per GPU, and SGLang dispatches a
step in one call, so it must hold the step's tokens: a GPU's decode batch, which follows from the KV cache that the
buffer shrinks. `solve_ll_tokens` sizes it at the fixed point (buffer -> KV budget -> batch -> tokens per GPU ->
buffer), so the reserve always holds the buffer of the cap the command sets. SGLang itself does neither: it sizes
the buffer by the environment variable alone and, without --max-running-requests, admits what the KV cache holds
("at high concurrency the per-rank decode batch exceeds 128 and trips the DeepEP dispatch assertion ... recipes
hand-tune this per hardware (raise the value / cap --max-running-requests)", sgl-project/sglang PR 28985, closed; PR
28994, open, would cap the running requests at the buffer), so --emit sets both the variable and the running limit.

A layout whose EP group DeepEP's kernels cannot run at all is refused (`deepep_group_reasons`,
tpplan.models.deepep_limits).
"""

from __future__ import annotations

from collections.abc import Callable

from tpplan.cost.batching import SchedulerLimits, rank_limits
from tpplan.cost.coefficients import Coefficients
from tpplan.cost.deepep import ll_buffer_bytes, normal_nvl_buffer_bytes, normal_rdma_buffer_bytes
from tpplan.cost.moe import a2a_kernels
from tpplan.hardware.profile import HardwareProfile
from tpplan.models.deepep_limits import deepep_problem
from tpplan.models.moe_backends import (
    LL_MAX_TOKENS_PER_RANK,
    LL_TOKENS_ENV,
    LL_TOKENS_PER_CALL,
    OPTION_NAMES,
    VLLM_DEEPEP_BUFFER_BYTES,
    ll_buffer_tokens,
)
from tpplan.models.spec import ModelSpec
from tpplan.planner.layouts import powers_of_two
from tpplan.planner.workload import Workload
from tpplan.records import record
from tpplan.units import bytes_to_gib, ceil_div

NORMAL_HIDDEN_BYTES_PER_CHANNEL = 2
"""Bytes per hidden channel the engines pass to DeepEP's normal buffer hints: SGLang params_bytes = 2, DeepEP's README
get_hidden_bytes = hidden x max(element size, 2)."""


@record
class DeepEPBuffers:
    """DeepEP's buffers on one GPU."""

    nvl_bytes: int
    """The normal kernels' NVLink buffer (vLLM allocates one for its low-latency kernels too)."""
    rdma_bytes: int
    """The RDMA buffer: normal kernels', low-latency kernels', or (SGLang auto) the larger of the two."""

    @property
    def total_bytes(self) -> int:
        return self.nvl_bytes + self.rdma_bytes


def _kernels(c: Coefficients) -> set[str]:
    """DeepEP's kernel families the layout runs in some step ("normal", "low_latency"); empty without them."""
    return {a2a_kernels(c.moe, extend=e) for e in (False, True)} & {"normal", "low_latency"}


def ll_tokens_at(c: Coefficients, w: Workload, *, limits: SchedulerLimits, batch: int | None) -> int | None:
    """Tokens per GPU one low-latency call carries at `batch` sequences per replica (tpplan.models.moe_backends.
    ll_buffer_tokens): a GPU's share of a decode batch, ceil(ceil(batch / dp) / tp), and under SGLang's --deepep-mode
    low_latency a GPU's share of the largest prefill step, the rank's token budget (chunked_prefill_size / dp) / tp,
    which may pack several prompts. batch None: before the batch is known (no decode share). None without
    low-latency kernels."""
    m = c.moe
    if "low_latency" not in _kernels(c):
        return None
    budget = rank_limits(limits, m.dp_attention).max_num_batched_tokens
    decode = 0 if batch is None else ceil_div(ceil_div(batch, m.dp_attention), c.tp)
    return ll_buffer_tokens(w.engine, m.a2a_mode, prefill_tokens_per_gpu=ceil_div(budget, c.tp),
                            decode_tokens_per_gpu=decode)


def ll_batch_limit(c: Coefficients, tokens: int | None) -> int | None:
    """The largest batch whose decode steps fit a low-latency buffer of `tokens` per GPU where the engine dispatches a
    step in one call (SGLang): dp x tp x tokens; None where it chunks a step into calls (vLLM) or runs no
    low-latency kernels."""
    if tokens is None or c.moe.ll_tokens_per_call is not None:
        return None
    return c.moe.dp_attention * c.tp * tokens


def deepep_buffers(spec: ModelSpec, profile: HardwareProfile, c: Coefficients, w: Workload, *,
                   ll_tokens: int | None) -> DeepEPBuffers:
    """The DeepEP buffers of the layout on one GPU (module docstring), the low-latency one holding `ll_tokens` per GPU;
    zero without DeepEP kernels."""
    kernels = _kernels(c)
    if not kernels:
        return DeepEPBuffers(nvl_bytes=0, rdma_bytes=0)
    g = c.moe.group_size
    low = 0 if ll_tokens is None else ll_buffer_bytes(num_experts=spec.num_experts, hidden_size=spec.hidden_size,
                                                      tokens_per_call=ll_tokens)
    if w.engine != "sglang":
        spans_nodes = g > profile.gpus_per_node
        rdma = low if "low_latency" in kernels else VLLM_DEEPEP_BUFFER_BYTES * spans_nodes
        return DeepEPBuffers(nvl_bytes=VLLM_DEEPEP_BUFFER_BYTES, rdma_bytes=rdma)
    if "normal" not in kernels:
        return DeepEPBuffers(nvl_bytes=0, rdma_bytes=low)
    hidden_bytes = spec.hidden_size * NORMAL_HIDDEN_BYTES_PER_CHANNEL
    return DeepEPBuffers(nvl_bytes=normal_nvl_buffer_bytes(hidden_bytes=hidden_bytes, group_size=g),
                         rdma_bytes=max(low, normal_rdma_buffer_bytes(hidden_bytes=hidden_bytes, group_size=g)))


def solve_ll_tokens(c: Coefficients, w: Workload, *, limits: SchedulerLimits, batch: int,
                    batch_at: Callable[[int], int]) -> int | None:
    """Tokens per GPU to size the low-latency buffer for, given the batch `batch` chosen with the smallest buffer
    (`ll_tokens_at` without a batch) and `batch_at(t)`, the batch the plan runs with a buffer of t tokens (its KV cache
    shrinks as t grows, so batch_at never grows with t). The answer is the smallest t with ll_tokens_at(batch_at(t))
    <= t: the buffer holds every step of the batch it leaves room for, and no larger buffer takes KV memory for
    nothing. ll_tokens_at(batch_at(t)) - t falls as t grows, so bisection finds it. At most LL_MAX_TOKENS_PER_RANK:
    a batch that needs more is capped instead (`ll_batch_limit`). None without low-latency kernels."""
    base = ll_tokens_at(c, w, limits=limits, batch=None)
    if base is None:
        return None
    need = ll_tokens_at(c, w, limits=limits, batch=batch)
    if need <= base or base >= LL_MAX_TOKENS_PER_RANK:  # above the limit: refused by `ll_reasons`
        return base

    def holds(t: int) -> bool:
        return ll_tokens_at(c, w, limits=limits, batch=batch_at(t)) <= t

    lo, hi = base, min(need, LL_MAX_TOKENS_PER_RANK)  # holds(need): batch_at(need) <= batch
    if not holds(hi):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if holds(mid) else (mid, hi)
    return hi


def deepep_group_reasons(spec: ModelSpec, c: Coefficients, w: Workload) -> list[str]:
    """One line when the layout's EP group (tp x dp_attention GPUs) is one DeepEP's kernels cannot run
    (tpplan.models.deepep_limits): the backend, the size, what DeepEP runs and where it asserts it, and the fix: the
    largest EP size of the planned layouts (powers of two) DeepEP runs, SGLang's low-latency mode where only the
    normal kernels fail, or another backend."""
    kernels, e = _kernels(c), spec.num_experts
    problem = deepep_problem(kernels, group_size=c.moe.group_size, num_experts=e) if kernels else None
    if problem is None:
        return []
    option, g = OPTION_NAMES[w.engine], c.moe.group_size
    runs = [s for s in powers_of_two(g - 1)[1:] if deepep_problem(kernels, group_size=s, num_experts=e) is None]
    fixes = [f"plan EP {runs[-1]} (fewer GPUs per pipeline stage)"] if runs else []
    mode = f" --deepep-mode {w.deepep_mode or 'auto'}" if w.engine == "sglang" else ""
    if mode and "normal" in kernels and deepep_problem({"low_latency"}, group_size=g, num_experts=e) is None:
        fixes.append("--deepep-mode low_latency")
    fix = f"{', '.join(fixes)} or another {option}" if fixes else f"use another {option}"
    return [f"{option} {w.all2all_backend}{mode}: {problem}; {fix}"]


def ll_reasons(c: Coefficients, w: Workload, *, limits: SchedulerLimits) -> list[str]:
    """A low-latency prefill step larger than DeepEP allows in one call (SGLang --deepep-mode low_latency)."""
    base = ll_tokens_at(c, w, limits=limits, batch=None)
    if base is None or base <= LL_MAX_TOKENS_PER_RANK:
        return []
    most = LL_MAX_TOKENS_PER_RANK * c.tp * c.moe.dp_attention
    return [f"--deepep-mode low_latency dispatches a prefill step of {base} tokens per GPU in one low-latency call, "
            f"above DeepEP's {LL_MAX_TOKENS_PER_RANK} ({LL_TOKENS_ENV} <= {LL_MAX_TOKENS_PER_RANK}); set "
            f"--chunked-prefill-size to at most {most}, or use --deepep-mode auto"]


LL_LIMIT_WORDS = f"DeepEP's {LL_MAX_TOKENS_PER_RANK} tokens per GPU in one low-latency call"
"""Why a batch stops there (SGLang asserts SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK <= 1024)."""


def ll_notes(spec: ModelSpec, c: Coefficients, *, tokens: int | None, batch: int, memory_batch: int,
             asked: int | None = None) -> list[str]:
    """What the plan did about SGLang's low-latency buffer: raised it above the default (`tokens` per GPU, in the
    reserve) and, where DeepEP's limit stops it short of the batch memory allows (`memory_batch`), capped the batch
    (said by the batch note itself when --batch was `asked`)."""
    if tokens is None or tokens <= LL_TOKENS_PER_CALL["sglang"] or c.moe.ll_tokens_per_call is not None:
        return []
    size = ll_buffer_bytes(num_experts=spec.num_experts, hidden_size=spec.hidden_size, tokens_per_call=tokens)
    notes = [f"DeepEP low-latency buffer for {tokens} tokens per GPU ({LL_TOKENS_ENV}={tokens}, --emit sets it with "
             f"--max-running-requests): {bytes_to_gib(size):.1f} GiB per GPU in the runtime reserve, the KV cache and "
             f"batch sized after it"]
    limit = ll_batch_limit(c, tokens)
    if batch == limit < memory_batch and asked is None:
        notes.append(f"batch capped at {batch} (memory allows {memory_batch}) by {LL_LIMIT_WORDS}")
    return notes

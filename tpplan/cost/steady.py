"""The steady state of continuous batching: how prefill enters the steps (DESIGN.md §3 "Latency and throughput").

A replica that keeps `batch` sequences of input_len + output_len tokens running must take in P = batch x input /
output prefill tokens per step on average (cost.batching.prefill_tokens_per_step). Schedulers do not spread P over
every step; they admit prompts in units:
- vLLM V1 `Scheduler.schedule` (vllm/v1/core/sched/scheduler.py) schedules the running requests' decode tokens,
  then admits waiting requests with min(remaining prompt, token budget left) tokens each
  (long_prefill_token_threshold off by default): a prompt enters whole when it fits, else as a chunk of the room.
- TensorRT-LLM's MicroBatchScheduler (cpp/tensorrt_llm/batch_manager/microBatchScheduler.cpp) takes a context
  request whole when it fits maxNumTokens beside the generation tokens; with chunked context enabled (off by default
  in the LLM API) it shrinks chunks to the capacity left. A prompt larger than the room is modelled as room-sized
  chunks either way.
- SGLang does not mix by default (`enable_mixed_chunk` False, python/sglang/srt/server_args.py): its scheduler runs a
  prefill-only batch whenever a waiting request can be admitted and a decode step otherwise
  (Scheduler.get_next_batch_to_run), in chunks of at most chunked_prefill_size.
Steps max(compute, memory) per kernel, so the time of a step is convex in its tokens: steps that carry a prompt and
steps that stream the weights for their decode tokens alone take longer on average than P spread evenly
(`mixed_step` at P) wherever less than one unit enters a step. The split below is the smoothest arrival the units
allow (floor and ceil units per step); arrivals of an online service are lumpier, so this is a lower bound.
"""

from __future__ import annotations

from dataclasses import replace

from tpplan.cost.coefficients import Coefficients
from tpplan.cost.step import (
    StepTime,
    decode_step,
    micro_batches,
    mixed_step,
    mixed_step_terms,
    step_time,
)
from tpplan.hardware.profile import HardwareProfile
from tpplan.records import record
from tpplan.units import maximum, minimum

_EPS_TOKENS = 1e-9


@record
class PrefillUnits:
    """Two kinds of step of one replica whose mean prefill is P: a share `high_share` of the steps carries
    `high_tokens` prefill tokens, the others `low_tokens` (whole units of min(input, room) each, the higher at most
    the room). Tokens per replica step; with PP each micro-batch carries 1 / micro_batches of them."""

    low_tokens: object
    high_tokens: object
    high_share: object


@record
class SteadyState:
    mean: StepTime
    """The mean step: throughput = batch / mean.total_s."""
    with_prompt: StepTime
    """A step that carries a prompt (or a chunk of one): what a new prompt waits for, round after round."""


def prefill_room_tokens(c: Coefficients, *, batch, token_budget: int):
    """Prefill tokens one micro-batch step can take: the engine's token budget (max_num_batched_tokens,
    max_num_tokens) less the micro-batch's decode tokens, at least 1."""
    return maximum(token_budget - batch / micro_batches(c, batch), 1)


def prefill_units(*, prefill_tokens, input_len, room_tokens, micro_batch_count=1) -> PrefillUnits:
    """Whole units u = min(input_len, room) per micro-batch step: n = P / (micro_batch_count x u) of them on
    average, so steps carry floor(n) or floor(n) + 1 units (capped at the room), in the shares that keep the mean
    at P. (P above the room, which the scheduler limits' token-budget cap prevents, leaves every step at P.)"""
    unit = minimum(input_len, room_tokens)
    per_micro_batch = prefill_tokens / micro_batch_count
    n = per_micro_batch / unit
    low = (n - n % 1) * unit
    high = maximum(minimum(low + unit, room_tokens), per_micro_batch)  # P above the room: every step is full
    share = (per_micro_batch - low) / maximum(high - low, _EPS_TOKENS)
    return PrefillUnits(low_tokens=low * micro_batch_count, high_tokens=high * micro_batch_count, high_share=share)


def steady_state(c: Coefficients, profile: HardwareProfile, *, batch, context_len, prefill_tokens, input_len,
                 token_budget: int, mixes_prefill: bool = True, lockstep_ranks: int = 1,
                 sequence_parallel=False) -> SteadyState:
    """The steady state of `batch` decode tokens per step and `prefill_tokens` per step on average, in the units the
    scheduler admits (module docstring). Mixing engines: the mean of the two kinds of step of `prefill_units`
    (`_mean`; with `lockstep_ranks` attention-DP ranks of an MoE model, which wait for each other at every MoE
    layer, a rank's extra unit holds up all of them). Engines that run prefill alone (SGLang): a decode step plus
    P / u prefill-only batches of u = min(input, budget) tokens. `with_prompt` is the step a new prompt's unit rides
    in.

    With PP, SGLang's pipeline loop (Scheduler.event_loop_pp) fills each micro-batch slot from the same
    get_next_batch_to_run, so a prefill-only batch takes a slot of every stage in turn: it adds its pass through
    the stages / pp (the slowest stage's share, stages assumed even) of compute and communication to a round, and
    one scheduler pass; a prompt still waits for its batch's whole pass."""
    if not mixes_prefill:
        unit = minimum(input_len, token_budget)
        chunk = mixed_step(c, profile, batch=0, context_len=context_len, prefill_tokens=unit, input_len=input_len,
                           sequence_parallel=sequence_parallel)
        decode = decode_step(c, profile, batch=batch, context_len=context_len, sequence_parallel=sequence_parallel)
        batches = prefill_tokens / unit  # prefill-only batches per decode step (round)
        share = {"compute_s": 1 / c.pp, "communication_s": 1 / c.pp, "overhead_s": 1.0}
        mean = step_time(**{f: getattr(decode, f) + batches * share[f] * getattr(chunk, f) for f in share})
        return SteadyState(mean=mean, with_prompt=chunk)
    units = prefill_units(prefill_tokens=prefill_tokens, input_len=input_len, micro_batch_count=micro_batches(c, batch),
                          room_tokens=prefill_room_tokens(c, batch=batch, token_budget=token_budget))

    def steps(coef):
        return tuple(mixed_step(coef, profile, batch=batch, context_len=context_len, prefill_tokens=p,
                                input_len=input_len, sequence_parallel=sequence_parallel)
                     for p in (units.low_tokens, units.high_tokens))

    kinds = steps(c)
    lockstep = _lockstep(c, lockstep_ranks)
    one = steps(_one_busy_rank(c)) if lockstep else kinds
    mean = step_time(**{f: _mean(*(getattr(k, f) for k in (*kinds, *one)), share=units.high_share,
                                 ranks=lockstep_ranks if lockstep else 1)
                        for f in ("compute_s", "communication_s", "overhead_s")})
    return SteadyState(mean=mean, with_prompt=kinds[1])


def steady_state_terms(c: Coefficients, profile: HardwareProfile, *, batch, context_len, prefill_tokens, input_len,
                       token_budget: int, lockstep_ranks: int = 1) -> dict[str, object]:
    """`steady_state(...).mean` of a mixing engine without PP split into the terms of `mixed_step_terms`, each the
    same weighted mean of the two kinds of step; they sum to its total_s (tested)."""
    units = prefill_units(prefill_tokens=prefill_tokens, input_len=input_len,
                          room_tokens=prefill_room_tokens(c, batch=batch, token_budget=token_budget))

    def terms(coef):
        return tuple(mixed_step_terms(coef, profile, batch=batch, context_len=context_len, prefill_tokens=p,
                                      input_len=input_len) for p in (units.low_tokens, units.high_tokens))

    kinds = terms(c)
    lockstep = _lockstep(c, lockstep_ranks)
    one = terms(_one_busy_rank(c)) if lockstep else kinds
    return {k: _mean(kinds[0][k], kinds[1][k], one[0][k], one[1][k], share=units.high_share,
                     ranks=lockstep_ranks if lockstep else 1) for k in kinds[0]}


def _lockstep(c: Coefficients, ranks: int) -> bool:
    return ranks > 1 and c.moe is not None


def _one_busy_rank(c: Coefficients) -> Coefficients:
    return replace(c, moe=replace(c.moe, busy_ranks=1))


def _mean(low, high, low_one, high_one, *, share, ranks: int):
    """The mean of one quantity (seconds) over the two kinds of step. One replica (ranks = 1): (1 - s) low + s high.
    Attention-DP ranks that carry the extra unit independently (share s each) and wait for each other at every MoE
    layer: the per-rank part of the unit's time (its attention and dense layers, D) is paid whenever any rank
    carries one, share 1 - (1 - s)^ranks; the MoE layers' part (M per rank's unit, over the gathered tokens) once
    per rank that does, ranks x s. high - low is the unit on every rank (D + ranks x M); high_one - low_one the
    same with one busy rank (D + M)."""
    if ranks == 1:
        return (1 - share) * low + share * high
    moe = ((high - low) - (high_one - low_one)) / (ranks - 1)
    per_rank = (high_one - low_one) - moe
    return low + (1 - (1 - share) ** ranks) * per_rank + ranks * share * moe

"""Paged-KV concurrency and continuous-batching steady state (DESIGN.md §3 "Latency and throughput").

Engines page the KV cache in blocks, so a replica runs as many sequences as the tokens they actually hold
allow, capped by the engine's scheduler limits. Defaults are each engine's own (sources inline); the Workload
overrides them. Functions accept floats or numpy arrays for lengths (no numpy import).
"""

from __future__ import annotations

from dataclasses import replace

from tpplan.records import record
from tpplan.units import GiB, ceil_div, maximum, minimum

SGLANG_STATE_RATIO = 0.9
"""SGLang's mamba_full_memory_ratio: linear-attention state pool / full-attention KV pool (ServerArgs default)."""
SGLANG_STATE_SLOTS_PER_REQUEST = 3
"""SGLang's MAMBA_CACHE_SIZE_MAX_RUNNING_REQUESTS_RATIO (the radix cache keeps a request's own, matched-prefix and
donated state slots)."""
LARGE_GPU_BYTES = 70 * GiB
"""vLLM picks larger scheduler defaults on GPUs with at least 70 GiB that are not A100s."""


@record
class SchedulerLimits:
    max_num_seqs: int | None
    """Running sequences per replica (None: bounded by KV memory only)."""
    max_num_batched_tokens: int
    """Tokens (decode + prefill chunk) per step."""
    block_size_tokens: int
    """KV-cache page size."""
    limits_per_micro_batch: bool
    """True: max_num_seqs bounds each of the pp micro-batches (TensorRT-LLM: capacity scheduler sized
    max_batch_size x numMicroBatches, numMicroBatches = pp; cpp/tensorrt_llm/batch_manager/
    trtGptModelInflightBatching.cpp); False: it bounds the whole replica (vLLM V1: one scheduler whose running
    set is capped by max_num_seqs feeds a batch queue of pp micro-batches, v1/engine/core.py
    step_with_batch_queue). The token budget is per forward step, so per micro-batch, in both."""
    reserve_full_sequence: bool
    """True: a request is admitted only with blocks for input + output (TensorRT-LLM GUARANTEED_NO_EVICT);
    False: it holds what it has generated so far (vLLM / SGLang allocate on demand and preempt)."""
    mixes_prefill: bool = True
    """True: a step carries decode tokens and prefill together (vLLM chunked prefill, TensorRT-LLM in-flight
    batching); False: prefill batches run alone (SGLang without --enable-mixed-chunk). tpplan.cost.steady."""
    running_cap_context_len: int | None = None
    """SGLang without --max-running-requests: each worker's running-request limit follows from its KV pool and the
    context length (`sglang_running_requests`); None: max_num_seqs (or the KV cache alone) bounds it."""
    budget_per_dp_rank: bool = False
    """True: the limits are the server's, and with DP attention each rank gets max_num_batched_tokens / dp and
    max_num_seqs / dp (SGLang divides chunked_prefill_size by dp_size when --enable-dp-attention,
    python/sglang/srt/server_args.py, and max_running_requests // dp_size per DP worker, scheduler
    max_running_requests / requested_per_worker); False: each rank has the whole of both (vLLM runs one engine core
    with its own scheduler per DP rank; TensorRT-LLM one executor per attention-DP rank)."""
    state_pool_share: float = 0.0
    """> 0: linear-attention state lives in its own pool, this share of the KV budget, and the rest holds the KV
    cache (SGLang: mamba_full_memory_ratio r = 0.9 of the full pool, share r / (1 + r); ServerArgs,
    sgl-project/sglang python/sglang/srt/server_args.py); 0: states and KV share one paged cache (vLLM)."""
    state_slots_per_request: int = 1
    """State slots the engine keeps per running request (SGLang with its radix cache:
    MAMBA_CACHE_SIZE_MAX_RUNNING_REQUESTS_RATIO = 3, running requests capped at pool slots // 3; model_runner
    kv-cache mixin)."""
    frees_window_blocks: bool = False
    """True: a sliding-window layer holds only the blocks of a sequence's last `window` tokens, the rest of one
    shared block pool going to other sequences (vLLM's hybrid KV cache manager, default since v0.10: "Sliding window
    layers: reserve slots only for the most recent sliding_window_size tokens", docs/design/hybrid_kv_cache_manager.md;
    gpt-oss, Gemma 2/3, Mistral). False: every layer holds the whole context. TensorRT-LLM sizes its per-window pools
    as if every layer were full attention (kvCacheManager.cpp: calculateWindowSizeToShare "is not used for
    BaseKVCacheManager::calculateMaxNumBlocks because we want to first achieve identical performance as assuming all
    layers as full attention"); SGLang turns its hybrid SWA memory off for Gemma 2/3 and sizes gpt-oss's window pool
    at swa_full_tokens_ratio 0.8 of the full pool (not modelled: counted as full attention)."""


def sglang_running_requests(kv_cache_tokens, context_len: int):
    """SGLang's default running-request limit of one worker (its req_to_token_pool rows): kv_tokens / context_len x
    512 clamped to [2048, 4096], and at most kv_tokens / 2 (ModelRunner._resolve_max_num_reqs; the same clamp in
    every release since model_runner.init_memory_pool first had it, the kv_tokens // 2 bound in later ones)."""
    estimated = maximum(minimum(kv_cache_tokens * 512 // context_len, 4096), 2048)
    return minimum(estimated, kv_cache_tokens // 2)


def scheduler_limits(engine: str, *, gpu_name: str, gpu_memory_bytes: int, max_num_seqs: int | None = None,
                     max_num_batched_tokens: int | None = None, max_model_len: int | None = None) -> SchedulerLimits:
    """The engine's defaults, overridden where the caller gives a value (`max_model_len`: the context length the
    server is started with, which SGLang's default running-request limit depends on)."""
    if engine == "trtllm":
        # TensorRT-LLM LLM API / trtllm-serve: max_batch_size 2048, max_num_tokens 8192, tokens_per_block 32,
        # capacity scheduler GUARANTEED_NO_EVICT (docs: performance-tuning-guide/tuning-max-batch-size-and-
        # max-num-tokens; llmapi BuildConfig / KvCacheConfig / SchedulerConfig defaults).
        seqs, tokens, block, full = 2048, 8192, 32, True
    elif engine == "sglang":
        # SGLang: chunked_prefill_size by GPU memory, 2048 below 35 GiB (A10, L40, 4090), 8192 below 160 GiB (H100,
        # H200, A100), 16384 above (B200, MI300) (python/sglang/srt/server_args.py, _handle_chunked_prefill_size);
        # page_size 1; its running-request limit depends on the KV pool (`sglang_running_requests`).
        mib = gpu_memory_bytes / 2**20
        seqs, tokens, block, full = None, 2048 if mib < 35 * 1024 else 8192 if mib < 160 * 1024 else 16384, 1, False
    else:
        # vLLM V1 `vllm serve` (vllm/engine/arg_utils.py get_batch_defaults, OPENAI_API_SERVER): max_num_seqs 1024
        # and max_num_batched_tokens 8192 on GPUs with >= 70 GiB that are not A100, else 256 and 2048; block 16.
        large = gpu_memory_bytes >= LARGE_GPU_BYTES and "a100" not in gpu_name.lower()
        seqs, tokens, block, full = (1024, 8192, 16, False) if large else (256, 2048, 16, False)
    sglang = engine == "sglang"
    return SchedulerLimits(max_num_seqs=max_num_seqs or seqs, max_num_batched_tokens=max_num_batched_tokens or tokens,
                           state_pool_share=SGLANG_STATE_RATIO / (1 + SGLANG_STATE_RATIO) if sglang else 0.0,
                           state_slots_per_request=SGLANG_STATE_SLOTS_PER_REQUEST if sglang else 1,
                           block_size_tokens=block, reserve_full_sequence=full,
                           limits_per_micro_batch=engine == "trtllm", mixes_prefill=engine != "sglang",
                           frees_window_blocks=engine == "vllm",
                           budget_per_dp_rank=engine == "sglang",
                           running_cap_context_len=max_model_len if engine == "sglang" and not max_num_seqs else None)


def rank_limits(limits: SchedulerLimits, dp: int) -> SchedulerLimits:
    """The limits one of `dp` attention-DP ranks schedules under (`budget_per_dp_rank`)."""
    if dp == 1 or not limits.budget_per_dp_rank:
        return limits
    seqs = None if limits.max_num_seqs is None else max(limits.max_num_seqs // dp, 1)
    return replace(limits, max_num_seqs=seqs, max_num_batched_tokens=max(limits.max_num_batched_tokens // dp, 1))


def tokens_held_per_sequence(limits: SchedulerLimits, *, input_len, output_len):
    """KV tokens one running sequence holds, rounded up to whole blocks: input + output when the scheduler
    reserves the whole sequence, else the average over its life, input + output / 2."""
    held = input_len + (output_len if limits.reserve_full_sequence else output_len / 2)
    return ceil_div(held, limits.block_size_tokens) * limits.block_size_tokens


def window_tokens_held(limits: SchedulerLimits, *, window: int, input_len, output_len):
    """KV tokens one running sequence holds in one sliding-window layer of an engine that frees the blocks behind
    the window (`frees_window_blocks`), in whole blocks. The layer keeps the blocks that touch the last `window`
    tokens, kept = (ceil((window - 1) / block) + 1) x block at most (gpt-oss, window 128 in blocks of 16: 144). Over
    a sequence's life its context c runs from a = input to b = input + output, and the layer holds min(c, kept):
    on average [(m^2 - a^2) / 2 + kept x (b - m)] / (b - a) with m = kept clamped to [a, b] (kept >= b: (a + b) / 2,
    as a full-attention layer; kept <= a: kept). A scheduler that reserves the whole sequence holds min(b, kept)."""
    block = limits.block_size_tokens
    kept = (ceil_div(window - 1, block) + 1) * block
    a, b = input_len, input_len + output_len
    if limits.reserve_full_sequence:
        return ceil_div(minimum(b, kept), block) * block
    m = minimum(maximum(kept, a), b)
    return ceil_div(m * m - a * a + 2 * kept * (b - m), 2 * output_len * block) * block


def layer_tokens_held(limits: SchedulerLimits, *, windows, input_len, output_len):
    """KV tokens one running sequence holds summed over the layers that cache it: `windows` is ((window, layers),
    ...) with window None for layers that keep the whole context (tpplan.models.kv.kv_window_mix)."""
    full = tokens_held_per_sequence(limits, input_len=input_len, output_len=output_len)
    total = 0
    for window, layers in windows:
        if window is None or not limits.frees_window_blocks:
            total = total + layers * full
        else:
            total = total + layers * window_tokens_held(limits, window=window, input_len=input_len,
                                                        output_len=output_len)
    return total


def max_concurrency(limits: SchedulerLimits, *, kv_cache_tokens, input_len, output_len, micro_batches: int = 1,
                    state_tokens_per_sequence: int = 0, stage_windows: tuple = ()):
    """Sequences a replica runs at once: KV tokens / tokens held, capped by max_num_seqs (per micro-batch or per
    replica, see `limits_per_micro_batch`) and, where prefill rides in the decode steps (`mixes_prefill`), by the
    token budget of a steady state (each forward step of a micro-batch carries its B decode tokens plus B x input /
    output prefill tokens); an engine that runs prefill batches alone (SGLang) decodes any batch its KV cache and
    running-request limit hold. `state_tokens_per_sequence`: a constant state each running sequence holds besides its
    KV tokens (linear-attention layers), in KV-token equivalents of the same memory: held beside its KV in one cache,
    or, with `state_pool_share`, in a pool of that share whose slots cap the running requests (slots //
    state_slots_per_request) while the rest of the budget holds the KV. `stage_windows`: each pipeline stage's layers
    by the tokens their cache keeps (`layer_tokens_held`; tpplan.models.kv.kv_window_mix_by_stage); where the engine
    frees the blocks behind a sliding window, a sequence holds the layer-tokens of the stage that needs most, out of
    `kv_cache_tokens` x the most caching layers a stage has (`kv_cache_tokens` counts tokens of such a stage)."""
    held = tokens_held_per_sequence(limits, input_len=input_len, output_len=output_len)
    layers = 1
    if limits.frees_window_blocks and any(w is not None for mix in stage_windows for w, _ in mix):
        layers = max(sum(n for _, n in mix) for mix in stage_windows)
        held = None
        for mix in stage_windows:
            need = layer_tokens_held(limits, windows=mix, input_len=input_len, output_len=output_len)
            held = need if held is None else maximum(held, need)
    state_cap = None
    if state_tokens_per_sequence and limits.state_pool_share:
        pool = kv_cache_tokens * limits.state_pool_share
        state_cap = pool // state_tokens_per_sequence // limits.state_slots_per_request
        kv_cache_tokens = kv_cache_tokens - pool
    else:
        held = held + state_tokens_per_sequence * layers
    by_kv = kv_cache_tokens * layers // held
    if state_cap is not None:
        by_kv = minimum(by_kv, state_cap)
    if limits.mixes_prefill:
        by_budget = micro_batches * (limits.max_num_batched_tokens * output_len // (output_len + input_len))
        cap = minimum(by_kv, maximum(by_budget, 1))
    else:
        cap = by_kv
    if limits.max_num_seqs is None and limits.running_cap_context_len:
        cap = minimum(cap, sglang_running_requests(kv_cache_tokens, limits.running_cap_context_len))
    if limits.max_num_seqs is None:
        return cap
    return minimum(cap, limits.max_num_seqs * (micro_batches if limits.limits_per_micro_batch else 1))


def prefill_tokens_per_step(*, batch, input_len, output_len):
    """Prefill tokens a steady-state step carries: every step finishes batch / output requests on average, and
    as many new prompts of input_len tokens must enter."""
    return batch * input_len / output_len


def job_makespan_s(*, num_requests: int, concurrency: int, output_len: int, step_s: float,
                   tail_step_s: float) -> float:
    """Seconds one replica takes for an offline job: `num_requests` requests of one length, all queued at t=0 and
    served `concurrency` at a time (trtllm-bench / gptManagerBenchmark max-throughput runs with uniform synthetic
    lengths, batch-inference jobs). Requests admitted together decode in step and finish together, so the job is
    waves: W = num_requests // concurrency full waves of output_len steady steps of `step_s` each (every step
    carries the wave's decode tokens and the prefill chunk of its share of prompts), then, when R = num_requests -
    W x concurrency > 0, one last wave of R requests whose steps take `tail_step_s` (the step at R's own, smaller
    batch): makespan = output_len x (W x step_s + tail_step_s). Admission staggered by chunked prefill smooths the
    boundaries between waves; the work is the same, so the model keeps only the under-filled last wave."""
    full_waves, tail = divmod(num_requests, concurrency)
    return output_len * (full_waves * step_s + (tail_step_s if tail else 0.0))

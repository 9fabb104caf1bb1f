"""The kernels one GPU launches in a forward step, each a roofline plus a fixed per-kernel time (DESIGN.md §3).

    time(kernel) = max(FLOPs / achieved FLOP/s, bytes / achieved bytes/s) + kernel_overhead

Achieved rates and the per-kernel time come from the profile (`efficiency`: matmul, memory, kernel_overhead,
attention_decode_memory, attention_prefill_matmul). Which non-matmul kernels run, and how many bytes per token
they move, is a property of the engine (what it fuses), not of the GPU: `FUSIONS` below, with sources.
Every function accepts floats or numpy arrays for token counts (no numpy import: `recommend` stays fast).
"""

from __future__ import annotations

from tpplan.hardware.profile import Efficiency, HardwareProfile
from tpplan.models.formats import LOW_PRECISION_COMPUTE
from tpplan.records import record
from tpplan.units import maximum

FLOPS_PER_MAC = 2
ATTENTION_PREFILL_DTYPE = "bf16"
"""Flash attention computes QK^T and PV in 16 bits even when weights are fp8/int4, unless the engine runs FP8
attention over an FP8 KV cache (`Fusion.fp8_prefill_attention`, `prefill_attention_dtype`)."""
FP8_ATTENTION_ALWAYS, FP8_ATTENTION_NATIVE, FP8_ATTENTION_NEVER = "always", "native", "never"
"""When an engine's prefill attention computes in FP8 over an FP8 KV cache: on every GPU with FP8 tensor cores,
only in its kernel written for the GPU's own pipeline (FlashAttention-3 on Hopper), or never."""
FP8_ATTENTION_KV_DTYPE = "fp8"
"""The FP8 KV-cache format FP8 prefill attention runs over: E4M3 ("fp8", tpplan.models.dtypes), not fp8_e5m2.
FlashAttention-3's FP8 path takes E4M3 only. vLLM hands it float8_e4m3fn for "fp8" / "fp8_e4m3" and raises
"Unrecognized FP8 dtype" for anything else (FlashAttentionBackend.get_fp8_dtype_for_flashattn, vllm-project/vllm
vllm/v1/attention/backends/flash_attn.py), and its later flash_attn_supports_kv_cache_dtype reports fp8_e5m2 for
FlashAttention-4 only (vllm-project/vllm PR 42569), not for Hopper's FlashAttention-3. SGLang moves --attention-backend
fa3 with --kv-cache-dtype fp8_e5m2 to its triton backend ("FlashAttention3 only supports fp8_e4m3 if using FP8;
Setting attention backend to triton.", ServerArgs, sgl-project/sglang python/sglang/srt/server_args.py). tpplan knows
no E5M2 KV cache of TensorRT-LLM: its FP8 context FMHA is planned over "fp8" only."""


@record
class KernelRates:
    """What kernels of one dtype achieve on one GPU: the profile's constants, resolved once per candidate."""

    matmul_flops_per_s: float
    """Dense peak of the matmul dtype x efficiency.matmul (16-bit), matmul_fp8 (fp8, int8) or matmul_fp4 (fp4)."""
    memory_bytes_per_s: float
    """HBM bandwidth x efficiency.memory (weights and activations streamed by matmuls and elementwise kernels)."""
    kernel_overhead_s: float
    attention_decode_bytes_per_s: float
    """HBM bandwidth x efficiency.attention_decode_memory (KV-cache reads), or x attention_decode_memory_fused for an
    engine's fused paged-decode kernel (`kernel_rates(fused_attention=True)`)."""
    attention_prefill_flops_per_s: float
    """Dense peak of the attention dtype (16-bit, or fp8: `prefill_attention_dtype`) x
    efficiency.attention_prefill_matmul (causal flash attention)."""
    moe_expert_fixed_tokens: float = 0.0
    """efficiency.moe_expert_fixed_tokens: tokens of work each expert with tokens adds to a grouped GEMM."""
    matmul_epilogue_k: float = 0.0
    """K-steps each output element of a GEMM of this dtype costs beyond its own K (`matmul_epilogue_k`)."""
    decode_sequence_overhead_s: float = 0.0
    """efficiency.decode_sequence_overhead: seconds per running sequence per decoder layer of a decode step."""


def kernel_rates(profile: HardwareProfile, dtype: str, *, sustained: bool = True,
                 native_attention: bool = False, attention_dtype: str = ATTENTION_PREFILL_DTYPE,
                 fused_attention: bool = False) -> KernelRates:
    """Achieved rates of this profile. A measured kernel table (written by `tpplan measure --out`) carries the
    per-kernel fixed time fitted on the user's own GPU; it replaces the profile's default when present.
    `sustained`: FLOP rates at the clock held under continuous load (efficiency.sustained_clock), as in serving or
    training; False: at the clock of a short measurement (the GPU reference rows, `tpplan measure`).
    `native_attention`: the engine's prefill attention is written for this GPU's own tensor-core pipeline
    (efficiency.attention_prefill_matmul_native; Fusion.native_prefill_attention). `attention_dtype`: the dtype
    its tensor cores run attention in (`prefill_attention_dtype`); a GPU without an FP8 rate computes it in 16 bits
    (GpuSpec.peak_flops_for). `fused_attention`: the engine reads the KV cache with a fused paged-decode kernel
    (Fusion.fused_decode_attention), at efficiency.attention_decode_memory_fused where the profile has one."""
    e, gpu = profile.efficiency, profile.gpu
    table = profile.kernel_table
    fixed_s = table.kernel_fixed_time_s if table is not None and table.kernel_fixed_time_s > 0 else e.kernel_overhead_s
    clock = e.sustained_clock if sustained else 1.0
    matmul_eff = matmul_share(e, dtype) * clock
    decode_share = (e.attention_decode_memory_fused if fused_attention and e.attention_decode_memory_fused is not None
                    else e.attention_decode_memory)
    return KernelRates(matmul_flops_per_s=gpu.peak_flops_for(dtype) * matmul_eff,
                       memory_bytes_per_s=gpu.memory_bandwidth_bytes_per_s * e.memory,
                       kernel_overhead_s=fixed_s,
                       attention_decode_bytes_per_s=gpu.memory_bandwidth_bytes_per_s * decode_share,
                       attention_prefill_flops_per_s=gpu.peak_flops_for(attention_dtype)
                       * prefill_attention_share(e, native=native_attention) * clock,
                       moe_expert_fixed_tokens=e.moe_expert_fixed_tokens,
                       matmul_epilogue_k=matmul_epilogue_k(e, dtype),
                       decode_sequence_overhead_s=e.decode_sequence_overhead_s)


def prefill_attention_share(e: Efficiency, *, native: bool) -> float:
    """Achieved / dense 16-bit peak FLOP/s of causal flash attention: attention_prefill_matmul_native for a kernel
    written for this GPU's tensor-core pipeline (where the profile states one), else attention_prefill_matmul."""
    if native and e.attention_prefill_matmul_native is not None:
        return e.attention_prefill_matmul_native
    return e.attention_prefill_matmul


def prefill_attention_dtype(fusion: Fusion, e: Efficiency, *, kv_cache_dtype: str) -> str:
    """The dtype prefill attention's matmuls run in: fp8 when the KV cache is E4M3 (`FP8_ATTENTION_KV_DTYPE`; an
    fp8_e5m2 cache computes in 16 bits) and the engine then feeds FP8 Q, K and V to its context attention
    (`Fusion.fp8_prefill_attention`; "native": only where its kernel for this GPU's own pipeline runs, i.e. the
    profile states attention_prefill_matmul_native), else 16-bit. The rate is the same share of the FP8 peak as of
    the 16-bit one: FlashAttention-3 on H100 reaches "close to 1.2 PFLOP/s" in FP8 against up to 740 TFLOP/s in FP16
    (arXiv:2407.08608, abstract), and 0.60 x 1,979 = 1,187 TFLOP/s."""
    if kv_cache_dtype != FP8_ATTENTION_KV_DTYPE:
        return ATTENTION_PREFILL_DTYPE
    mode = fusion.fp8_prefill_attention
    native = mode == FP8_ATTENTION_NATIVE and fusion.native_prefill_attention \
        and e.attention_prefill_matmul_native is not None
    return "fp8" if mode == FP8_ATTENTION_ALWAYS or native else ATTENTION_PREFILL_DTYPE


def prefill_attention_native(fusion: Fusion, *, kv_cache_dtype: str) -> bool:
    """Prefill attention runs the engine's kernel for the GPU's own pipeline (`Fusion.native_prefill_attention`),
    except over an FP8 cache that kernel does not take: an engine whose native kernel is FlashAttention-3
    (FP8_ATTENTION_NATIVE: vLLM, SGLang) serves an fp8_e5m2 cache with another backend (SGLang its triton one; vLLM's
    FlashAttention-3 path refuses it: `FP8_ATTENTION_KV_DTYPE`)."""
    other_fp8 = kv_cache_dtype.startswith("fp8") and kv_cache_dtype != FP8_ATTENTION_KV_DTYPE
    return fusion.native_prefill_attention and not (other_fp8 and fusion.fp8_prefill_attention == FP8_ATTENTION_NATIVE)


def matmul_share(e: Efficiency, dtype: str) -> float:
    """Achieved / dense peak FLOP/s of large GEMMs in `dtype`: efficiency.matmul (16-bit), matmul_fp4 (block-scaled
    FP4, where the profile states it), else matmul_fp8 (fp8, int8, fp4)."""
    if dtype == "fp4" and e.matmul_fp4 is not None:
        return e.matmul_fp4
    return e.matmul_fp8 if dtype in LOW_PRECISION_COMPUTE else e.matmul


def matmul_epilogue_k(e: Efficiency, dtype: str) -> float:
    """K-steps of tensor-core time each output element costs beyond its own K (a tile's pipeline fill and epilogue):
    efficiency.matmul_epilogue_k for 16-bit GEMMs, matmul_epilogue_k_fp8 for fp8, int8 and fp4 ones. A GEMM of
    [M, K] x [K, N] is then worth 2 x M x N x (K + this) FLOPs at the matmul rate: the achieved share of a large
    GEMM's rate falls as K / (K + this) on thin-K shards. Fit on one H100 (benchmarks/data/h100_gemm.csv, sources in
    hardware_profiles/defaults/kernels.yaml). 0 for fp4 where the profile states matmul_fp4: that share was read
    off NVFP4 GEMMs of model shapes (K = 4096-4608, dgx-b200's sources) with their epilogue in it, and no thin-K FP4
    measurement separates the two."""
    if dtype == "fp4" and e.matmul_fp4 is not None:
        return 0.0
    return e.matmul_epilogue_k_fp8 if dtype in LOW_PRECISION_COMPUTE else e.matmul_epilogue_k


def epilogue_flops(r: KernelRates, outputs):
    """FLOPs' worth of tensor-core time that `outputs` output elements cost beyond their own K:
    2 x outputs x matmul_epilogue_k."""
    return FLOPS_PER_MAC * outputs * r.matmul_epilogue_k


def matmul_time_s(r: KernelRates, *, flops, n_bytes, launches: int = 1):
    """Matmul kernels moving `n_bytes` (weights + activations in and out) for `flops` FLOPs, in `launches`
    launches: max(FLOPs / F, bytes / B) + launches x kernel_overhead. Measured on one H100 (h100_gemm.csv) this
    form fits 252 bf16 shapes from M = 1 to 8192 with a median |error| of 4%."""
    return maximum(flops / r.matmul_flops_per_s, n_bytes / r.memory_bytes_per_s) + launches * r.kernel_overhead_s


def gemm_time_s(r: KernelRates, *, m_tokens, n: int, k: int, bytes_per_param: float, act_bytes: int):
    """One [m, k] x [k, n] matmul by shape (the form a measured per-kernel table is keyed by), each of its m x n
    outputs also paying the epilogue (`epilogue_flops`)."""
    return matmul_time_s(r, flops=FLOPS_PER_MAC * m_tokens * n * k + epilogue_flops(r, m_tokens * n),
                         n_bytes=n * k * bytes_per_param + m_tokens * (n + k) * act_bytes)


def elementwise_time_s(r: KernelRates, *, n_bytes, launches: int):
    """Norms, rotary, KV-cache writes, activations, residual adds: memory-bound, launches x kernel_overhead."""
    return n_bytes / r.memory_bytes_per_s + launches * r.kernel_overhead_s


def decode_attention_time_s(r: KernelRates, *, kv_bytes, flops, launches: int):
    """Paged decode attention: each active sequence's KV blocks read once at the decode-attention rate."""
    return maximum(flops / r.attention_prefill_flops_per_s, kv_bytes / r.attention_decode_bytes_per_s) \
        + launches * r.kernel_overhead_s


def prefill_attention_time_s(r: KernelRates, *, flops, n_bytes, launches: int):
    """Causal flash attention: the quadratic FLOPs at flash-attention efficiency, Q/K/V/O streamed once."""
    return maximum(flops / r.attention_prefill_flops_per_s, n_bytes / r.memory_bytes_per_s) \
        + launches * r.kernel_overhead_s


@record
class Fusion:
    """Non-matmul kernels of one decoder layer as an engine runs them."""

    elementwise_launches: int
    """Kernels per layer besides matmuls and attention."""
    hidden_passes: float
    """Bytes those kernels move per token, in units of hidden_size x activation bytes."""
    mlp_passes: float
    """... and in units of the per-GPU MLP width (intermediate / tp) x activation bytes (the activation kernel)."""
    kv_passes: float
    """... and in units of the per-GPU KV width (2 x kv heads x head_dim) x activation bytes (cache write)."""
    attention_launches: int
    """Kernels of the attention itself (1 for a fused flash/paged kernel)."""
    fused_decode_attention: bool = True
    """Decode attention is an engine's fused paged kernel (efficiency.attention_decode_memory_fused, plus
    efficiency.decode_sequence_overhead per sequence per layer); False: a measurement harness's attention, priced at
    efficiency.attention_decode_memory alone (shared/reference/gpu: unfused matmul, softmax, matmul; `tpplan
    measure`: PyTorch SDPA over a dense cache), whose fit already holds the per-sequence time."""
    native_prefill_attention: bool = False
    """Prefill attention runs kernels written for the GPU's own tensor-core pipeline (efficiency.
    attention_prefill_matmul_native), not FlashAttention-2-style ones."""
    fp8_prefill_attention: str = FP8_ATTENTION_NEVER
    """With an FP8 KV cache, prefill attention computes in FP8 (`prefill_attention_dtype`): FP8_ATTENTION_ALWAYS,
    FP8_ATTENTION_NATIVE or FP8_ATTENTION_NEVER."""
    embedding_allreduce: bool = False
    """At tp > 1 the input embedding is vocab-parallel: each rank looks up the tokens of its vocabulary slice and
    one all-reduce of tokens x hidden per forward step sums them (with sequence parallelism a reduce-scatter).
    False: the embedding is replicated on every rank (no collective)."""
    logits_gather: bool = False
    """At tp > 1 the lm_head is column-parallel over the vocabulary and the [sampled tokens, vocab / tp] slices are
    gathered for sampling every step (an all-gather of sampled x padded vocab x activation bytes). False: the
    logits stay sharded (training's vocab-parallel cross entropy)."""


FUSIONS: dict[str, Fusion] = {
    # vLLM (vllm/model_executor/models/llama.py, layers/layernorm.py, layers/activation.py): fused_add_rms_norm x 2
    # (reads x and residual, writes both: 4 passes each), rotary_embedding in place on q/k, reshape_and_cache_flash
    # (reads k/v, writes the cache: 2 passes), silu_and_mul (reads 2 f/t, writes f/t); one flash-attention call.
    # On Hopper that call is FlashAttention-3 (vllm/attention/utils/fa_utils.py: FA3 by default on compute capability
    # 9.x), the kernel attention_prefill_matmul_native describes; with an FP8 KV cache FA3 quantizes the query too and
    # runs attention in FP8 (vllm/v1/attention/backends/flash_attn.py, scaled_fp8_quant of the query; docs "Quantized
    # KV Cache": "attention operations are also performed in the quantized (FP8) domain"). Elsewhere (FlashInfer or
    # FlashAttention-2) prefill dequantizes the cache and runs 16-bit attention.
    # Outside the layers: VocabParallelEmbedding all-reduces its output (vllm/model_executor/layers/
    # vocab_parallel_embedding.py, tensor_model_parallel_all_reduce) and LogitsProcessor._gather_logits gathers the
    # lm_head's vocabulary slices (vllm/model_executor/layers/logits_processor.py: tensor_model_parallel_gather, or
    # all_gather where gather is unsupported).
    "vllm": Fusion(elementwise_launches=5, hidden_passes=8, mlp_passes=3, kv_passes=2, attention_launches=1,
                   native_prefill_attention=True, fp8_prefill_attention=FP8_ATTENTION_NATIVE,
                   embedding_allreduce=True, logits_gather=True),
    # SGLang runs the same kernel set (sgl-kernel fused_add_rmsnorm, silu_and_mul, FlashInfer/FA3 attention); its
    # server_args picks the fa3 backend on Hopper, whose forward_extend casts q to the FP8 cache dtype
    # (python/sglang/srt/layers/attention/flashattention_backend.py).
    # Its VocabParallelEmbedding and LogitsProcessor are vLLM's (python/sglang/srt/layers/vocab_parallel_embedding.py,
    # logits_processor.py): the same all-reduce and logits gather.
    "sglang": Fusion(elementwise_launches=5, hidden_passes=8, mlp_passes=3, kv_passes=2, attention_launches=1,
                     native_prefill_attention=True, fp8_prefill_attention=FP8_ATTENTION_NATIVE,
                     embedding_allreduce=True, logits_gather=True),
    # TensorRT-LLM: the attention plugin applies rotary and writes the KV cache inside the attention kernel;
    # residual add is fused into RMSNorm; SwiGLU is one kernel. Context attention is its own fused MHA (fmha_v2),
    # with Hopper kernels built on TMA and warp-specialized wgmma (cpp/kernels/fmha_v2, e.g.
    # fmha_v2_flash_attention_bf16_64_128_S_qkv_128_causal_tma_ws_sm90_kernel), the FlashAttention-3 design.
    # With an FP8 KV cache it runs "FP8 context FMHA" on every GPU with FP8 tensor cores: trtllm-bench enables it for
    # FP8 and NVFP4 checkpoints (tensorrt_llm/bench/build/build.py: use_fp8_context_fmha = True for QuantAlgo.FP8 and
    # NVFP4, KV cache FP8); the PyTorch backend whenever the checkpoint is FP8 / NVFP4 with an FP8 KV cache (and,
    # in later releases, for any FP8 KV cache: tensorrt_llm/_torch/attention_backend/trtllm.py); the kernels exist
    # for sm_89, sm_90, sm_100, sm_103, sm_120 and sm_121 (cpp/tensorrt_llm/common/attentionOp.cpp: "FP8 FMHA can
    # only be enabled on sm_89, sm_90, sm_100f, sm_120 or sm_121"), i.e. where the profile lists an FP8 rate.
    # Outside the layers: the lm_head is ColumnLinear(hidden, padded vocab, gather_output=True) (tensorrt_llm/models/
    # *: the last PP rank's lm_head), an all-gather of the logits every step; the embedding is replicated unless a
    # checkpoint is converted with use_parallel_embedding (default False), so no embedding collective.
    "trtllm": Fusion(elementwise_launches=3, hidden_passes=8, mlp_passes=3, kv_passes=0, attention_launches=1,
                     native_prefill_attention=True, fp8_prefill_attention=FP8_ATTENTION_ALWAYS, logits_gather=True),
    # Megatron-LM (training, TransformerEngine): fused RMSNorm+linear, fused bias-SwiGLU, fused attention. On Hopper
    # TransformerEngine's fused attention is cuDNN's, which the FA3 paper's H100 figure puts beside FlashAttention-3
    # (cuDNN 595-609 TFLOP/s forward, head dim 128, 4k-16k tokens): the native share.
    # Megatron's VocabParallelEmbedding all-reduces its output (megatron/core/tensor_parallel/layers.py:
    # reduce_from_tensor_model_parallel_region; reduce_scatter_to_sequence_parallel_region with sequence parallelism);
    # the logits stay sharded into vocab_parallel_cross_entropy.
    "megatron": Fusion(elementwise_launches=4, hidden_passes=8, mlp_passes=3, kv_passes=0, attention_launches=1,
                       native_prefill_attention=True, embedding_allreduce=True),
    # The measurement harness of shared/reference/gpu (and `tpplan measure`): unfused PyTorch in a CUDA graph.
    # RMSNorm, K and V cache writes, residual add, RMSNorm, SiLU, multiply, residual add = 8 kernels; attention as
    # batched matmul, softmax, batched matmul = 3 (README of h100_decode_prefill.csv: "about 15 kernels"). `tpplan
    # measure`'s layer (kernels/tp_layer.py) runs attention through PyTorch SDPA instead, one kernel over a dense
    # cache; both are priced at attention_decode_memory, which each fits on its own machine.
    "torch": Fusion(elementwise_launches=8, hidden_passes=10, mlp_passes=5, kv_passes=2, attention_launches=3,
                     fused_decode_attention=False),
}


def fusion_for(engine: str) -> Fusion:
    return FUSIONS.get(engine, FUSIONS["vllm"])

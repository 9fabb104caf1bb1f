"""Which TP degrees each serving/training engine accepts, and how each pads and shards.

Rules (shared/reference/FACTS.md §5):
- vLLM / SGLang: heads % t == 0; kv heads split (kv % t == 0) or replicated (t % kv == 0);
  every MLP width % t == 0; vocab padded to a multiple of 64, then divided by t.
  vLLM's own wording: "Total number of attention heads (40) must be divisible by tensor parallel size (3)."
- TensorRT-LLM: heads % t == 0; KV heads per rank ceil(kv / t); replication needs t % kv == 0; vocab padded
  to a multiple of t.
- Megatron-Core: heads % t == 0; kv a multiple or a divisor of t (Megatron-Core 0.16+: 0.15 refuses t > kv with
  "num_query_groups (2) must be a multiple of tensor_model_parallel_size (8)", ms-swift issue 8219); every parallel
  linear divides exactly; vocab padded to a multiple of 128 x t. At t > kv it keeps the fused QKV weight in plain
  t-way row shards (no replicated KV weights) and all-gathers the QKV activation in each layer, each rank then
  taking its KV group and query heads (FACTS.md §4; ISEEKYAN/Megatron-LM PR 91 describes the mechanism).
"""

from __future__ import annotations

from typing import Literal

from tpplan.errors import ModelSpecError
from tpplan.models.formats import WeightFormat
from tpplan.models.spec import ModelSpec
from tpplan.records import record
from tpplan.units import ceil_div

Engine = Literal["vllm", "sglang", "trtllm", "megatron"]
ENGINES: tuple[Engine, ...] = ("vllm", "sglang", "trtllm", "megatron")
EmitEngine = Literal["vllm", "sglang", "trtllm"]
"""The serving engines whose launch command `--emit` writes (tpplan.planner.emit); here, not there, so that the
CLI can list them without importing the emitters."""
EMITTERS: tuple[EmitEngine, ...] = ("vllm", "sglang", "trtllm")
TRAINING_ONLY_ENGINES: tuple[Engine, ...] = ("megatron",)
"""Engines tpplan plans training with, never serving."""


def check_serving_engine(engine: str) -> None:
    """A serving plan names a serving engine: one error line for a training engine."""
    if engine in TRAINING_ONLY_ENGINES:
        raise ModelSpecError(f"--engine {engine} plans training; add --workload train, or choose a serving engine "
                             f"({', '.join(EMITTERS)}) for --workload serve")


KV_DTYPES_REFUSED: dict[str, tuple[str, ...]] = {"trtllm": ("fp8_e5m2",)}
"""KV-cache dtypes an engine has no cache for. TensorRT-LLM quantizes its KV cache to FP8 E4M3 only
(kv_cache_quant_algo FP8, QuantAlgo in tensorrt_llm/quantization/mode.py; its FP8 context FMHA reads E4M3)."""


def check_kv_cache_dtype(engine: str, kv_cache_dtype: str) -> None:
    """One error line for a KV-cache dtype the engine cannot hold (`KV_DTYPES_REFUSED`)."""
    if kv_cache_dtype in KV_DTYPES_REFUSED.get(engine, ()):
        raise ModelSpecError(f"--kv-cache-dtype {kv_cache_dtype}: --engine {engine} has no such KV cache (its FP8 "
                             f"cache is E4M3); use --kv-cache-dtype fp8, or --engine vllm / sglang for E5M2")


AMD_NAME_MARKS = ("AMD", "INSTINCT", "MI2", "MI3")
"""Markers of an AMD GPU in a profile's gpu.name (MI250X, MI300X, MI325X, "AMD Instinct ...")."""


def check_engine_on_gpu(engine: str, *, gpu_name: str, profile_name: str, gpu_has_fp8: bool, dtype: str,
                        kv_cache_dtype: str, link_kind: str = "", gpu_has_fp4: bool = True) -> None:
    """One error line where TensorRT-LLM cannot run what was asked on the profile's GPU. TensorRT-LLM runs on
    NVIDIA GPUs only (docs: "Supported Hardware", NVIDIA Blackwell / Hopper / Ada Lovelace / Ampere): an AMD GPU is
    known by its name (`AMD_NAME_MARKS`) or by its Infinity Fabric link (`link_kind` xgmi). It computes in FP8 only
    on Ada Lovelace (SM89) and later: its support matrix lists "Ampere (SM80, SM86) - FP32, FP16, BF16, INT8, INT4"
    (nvidia.github.io/TensorRT-LLM/0.18.2/reference/support-matrix.html); tpplan knows a GPU's FP8 tensor cores by
    the fp8 peak its profile lists (`gpu_has_fp8`). vLLM and SGLang keep FP8 weights on older GPUs and compute in 16
    bits (Marlin), which tpplan plans. NVFP4 likewise needs FP4 tensor cores (Blackwell): the same matrix lists
    no FP4 before it ("Hopper (SM90) - FP32, FP16, BF16, FP8, INT8, INT4"), and TensorRT-LLM has no weight-only NVFP4
    path (`gpu_has_fp4`: the profile lists gpu.peak_flops.fp4). gpt-oss's MXFP4 experts do run on Hopper (W4A16
    MoE kernels) and are not refused."""
    if engine != "trtllm":
        return
    if any(mark in gpu_name.upper() for mark in AMD_NAME_MARKS) or link_kind == "xgmi":
        raise ModelSpecError(f"--engine trtllm: TensorRT-LLM runs on NVIDIA GPUs only, and {profile_name!r} has "
                             f"{gpu_name} (an AMD GPU); use --engine vllm or --engine sglang (both have ROCm builds)")
    if "nvfp4" in dtype and not gpu_has_fp4:  # --dtype nvfp4, or a checkpoint's own (modelopt-nvfp4-g16, ...)
        raise ModelSpecError(f"NVFP4 weights with --engine trtllm: TensorRT-LLM computes NVFP4 on Blackwell only, "
                             f"and profile {profile_name!r} lists no gpu.peak_flops.fp4 for {gpu_name} (no FP4 tensor "
                             f"cores); use an FP8 or 16-bit checkpoint (--dtype fp8 / bf16), or --engine vllm or "
                             f"sglang, which run NVFP4 weights weight-only there")
    weights, kv = dtype.startswith("fp8"), kv_cache_dtype.startswith("fp8")
    if (weights or kv) and not gpu_has_fp8:
        what = " and ".join(w for w, on in (("FP8 weights", weights), ("an FP8 KV cache", kv)) if on)
        fix = " and ".join(f for f, on in (("--dtype bf16", weights), ("--kv-cache-dtype bf16", kv)) if on)
        raise ModelSpecError(f"{what} with --engine trtllm: TensorRT-LLM computes in FP8 on Ada Lovelace and later, "
                             f"and profile {profile_name!r} lists no gpu.peak_flops.fp8 for {gpu_name} (no FP8 tensor "
                             f"cores); add that peak if the GPU has them, else use {fix}, or --engine vllm or sglang, "
                             f"which keep FP8 weights and caches there and compute in 16 bits")


GROUP_QUANT_METHODS = ("awq", "gptq", "compressed-tensors", "dtype")
"""quant_method values of weight-only integer checkpoints with group scales (and --dtype int4)."""


def group_quant_violation(spec: ModelSpec, fmt: WeightFormat, *, tp: int, engine: str, dense_tp: int = 0,
                          shared_tp: int = 0) -> str | None:
    """Why a weight-only integer checkpoint with group scales (GPTQ / AWQ / W4A16, `--dtype int4`: g128) does not
    load at TP `tp`, or None.

    vLLM and SGLang split a row-parallel layer's input features over TP, and each shard must hold whole quantization
    groups: AWQ's kernels raise "The input size is not aligned with the quantized weight shape" and the Marlin ones
    "Weight input_size_per_partition = ... is not divisible by min_thread_k = 128" (vllm/model_executor/layers/
    quantization/awq.py, utils/marlin_utils.py; vllm-project/vllm#13640: Qwen2.5-72B's 29,568-wide MLP at TP2,
    14,784 per GPU, 115.5 groups of 128; Qwen's own AWQ / GPTQ releases pad the MLP to 29,696 for that reason). A
    shard of whole groups that is not a multiple of 128 (a g32 / g64 checkpoint) loads on slower non-Marlin kernels
    (recent vLLM falls back layer by layer) and is not refused. Checked: the dense MLP's down_proj (intermediate_size
    / tp), the shared experts' (n_shared x moe_intermediate_size / tp) and the attention output (heads x head_dim /
    tp). Routed experts fall back to another MoE kernel (vLLM's MoeWNA16) rather than refuse; TensorRT-LLM's own
    kernels are not checked. Channel-wise scales (no groups) are not checked. `dense_tp` / `shared_tp`: as in
    `block_quant_reasons`."""
    if engine not in ("vllm", "sglang") or not fmt.weight_only or fmt.weight_bits not in (4, 8) \
            or fmt.method not in GROUP_QUANT_METHODS or fmt.elems_per_scale <= 0 or max(tp, dense_tp, shared_tp) == 1:
        return None
    group = fmt.elems_per_scale
    o_dim = spec.num_attention_heads * (spec.v_head_dim if spec.is_mla and spec.v_head_dim else spec.head_dim)
    shards = [("attention output (heads x head_dim)", o_dim, tp)]
    if spec.is_moe and spec.n_shared_experts:
        shards.insert(0, ("shared experts' width", spec.n_shared_experts * spec.moe_intermediate_size,
                          shared_tp or dense_tp or tp))
    if not spec.is_moe or spec.num_dense_layers:
        shards.insert(0, ("intermediate_size", spec.intermediate_size, dense_tp or tp))
    for name, width, n in shards:
        per = width / n
        if width % n or per % group:
            return (f"{engine}: the {fmt.name} weights' {name} {width} split over {n} GPUs is {per:g} input features "
                    f"per GPU, not whole groups of {group} (the engine refuses to load it: \"The input size is not "
                    f"aligned with the quantized weight shape\"); use a TP degree that leaves whole groups, or a "
                    f"16-bit / FP8 checkpoint")
    return None


def block_quant_reasons(spec: ModelSpec, fmt: WeightFormat, *, tp: int, ep: int, dp_attention: int,
                        engine: str, dense_tp: int = 0, shared_tp: int = 0) -> list[str]:
    """A block-scaled checkpoint (weight_block_size [n, k]: DeepSeek-V3, MiniMax-M2, Kimi K2, Qwen3 FP8) loads only
    when each TP shard of an MLP holds whole blocks: vLLM's Fp8MoEMethod.create_weights raises "The output_size of
    gate's and up's weight = W is not divisible by weight quantization block_n = n" (and Fp8LinearMethod the same for a
    dense MLP's shard; vllm/model_executor/layers/quantization/fp8.py; SGLang's fp8.py is the same code). Dense
    layers are split over the attention TP group (tp), routed experts over tp x dp_attention / ep GPUs (whole experts
    under full EP). MiniMax-M2 (1536 wide) at TP8 without EP: 192 per GPU, refused; with --enable-expert-parallel it
    runs (the fix its deployment guides give). `dense_tp` / `shared_tp` (0: tp): the GPUs the dense MLP and the
    shared experts split over where the engine splits them wider than attention (SGLang under DP attention:
    tpplan.planner.candidates.sglang_dp_attention_splits)."""
    if fmt.block is None or engine not in ("vllm", "sglang"):
        return []
    block_n, out = fmt.block[0], []
    dense = [("intermediate_size", spec.intermediate_size, dense_tp or tp)]
    shards = dense if not spec.is_moe or spec.num_dense_layers else []
    if spec.is_moe:
        shards.append(("moe_intermediate_size", spec.moe_intermediate_size, max(tp * dp_attention // ep, 1)))
    if spec.is_moe and spec.n_shared_experts:
        shards.append(("shared experts' width", spec.n_shared_experts * spec.moe_intermediate_size,
                       shared_tp or dense_tp or tp))
    for name, width, n in shards:
        if n > 1 and (width % n or (width // n) % block_n):
            fix = "use expert parallelism (--ep), " if name == "moe_intermediate_size" and ep == 1 else \
                "use --moe-a2a-backend deepep (SGLang then keeps the shared experts whole on each GPU), or " \
                if name.startswith("shared") and engine == "sglang" else ""
            out.append(f"{engine}: the {fmt.name} checkpoint's {name} {width} split over {n} GPUs is "
                       f"{width / n:g} per GPU, not a multiple of its block_n {block_n} (the engine refuses to load "
                       f"it); {fix}split it over fewer GPUs")
    return out


MAX_TP_DEGREE = 64
"""Degrees 1..64 are considered (DESIGN.md §6)."""


@record(kw_only=False)
class EngineRules:
    vocab_pad_multiple: int
    """Vocab is padded up to a multiple of this (times t when `pad_times_tp`)."""
    pad_times_tp: bool
    kv_ceil: bool
    """True: KV heads per rank = ceil(kv / t) (TensorRT-LLM); False: max(1, kv // t)."""
    qkv_gather: bool = False
    """True: at t > kv heads the engine splits the fused QKV weight t ways like any column-parallel weight and
    all-gathers the QKV activation per layer instead of replicating KV heads (Megatron-Core 0.16+)."""


RULES: dict[str, EngineRules] = {
    # vLLM DEFAULT_VOCAB_PADDING_SIZE = 64 (vllm/model_executor/layers/vocab_parallel_embedding.py)
    "vllm": EngineRules(vocab_pad_multiple=64, pad_times_tp=False, kv_ceil=False),
    "sglang": EngineRules(vocab_pad_multiple=64, pad_times_tp=False, kv_ceil=False),
    # TensorRT-LLM pads the vocab to a multiple of tp_size (pad_vocab_size(vocab, tp)).
    "trtllm": EngineRules(vocab_pad_multiple=1, pad_times_tp=True, kv_ceil=True),
    # Megatron: --make-vocab-size-divisible-by 128, multiplied by the TP size.
    "megatron": EngineRules(vocab_pad_multiple=128, pad_times_tp=True, kv_ceil=False, qkv_gather=True),
}


def rules_for(engine: str) -> EngineRules:
    try:
        return RULES[engine]
    except KeyError:
        raise ModelSpecError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}") from None


def padded_vocab(vocab_size: int, *, tp: int, engine: str = "vllm") -> int:
    """Vocab rows after the engine's padding (whole model, all ranks together)."""
    r = rules_for(engine)
    multiple = r.vocab_pad_multiple * (tp if r.pad_times_tp else 1)
    return ceil_div(vocab_size, multiple) * multiple


def kv_heads_per_gpu(num_kv_heads: int, *, tp: int, engine: str = "vllm") -> int:
    """KV heads each rank stores: max(1, kv // t) in vLLM/SGLang/Megatron; ceil(kv / t) in TensorRT-LLM.

    When t > kv heads every rank keeps one head: each head is replicated t / kv times.
    """
    if rules_for(engine).kv_ceil:
        return ceil_div(num_kv_heads, tp)
    return max(1, num_kv_heads // tp)


def gathers_qkv(s: ModelSpec, *, tp: int, engine: str) -> bool:
    """True when `engine` runs degree `tp` of `s` by all-gathering the QKV activation (`EngineRules.qkv_gather`):
    standard attention with fewer KV heads than ranks."""
    return rules_for(engine).qkv_gather and not s.is_mla and tp > s.num_key_value_heads


def _mlp_widths(s: ModelSpec) -> list[tuple[str, int]]:
    widths: list[tuple[str, int]] = []
    if not s.is_moe or s.num_dense_layers:
        widths.append(("intermediate_size", s.intermediate_size))
    if s.is_moe:
        widths.append(("moe_intermediate_size", s.moe_intermediate_size))
    return widths


def _linear_heads(s: ModelSpec) -> list[tuple[str, int]]:
    """Head counts of the linear-attention layers that TP splits: vLLM's Qwen3NextGatedDeltaNet shards
    num_k_heads // tp_size and num_v_heads // tp_size, and its state shapes use divide(), which asserts
    (vllm/model_executor/models/qwen3_next.py, layers/mamba/mamba_utils.py gated_delta_net_state_shape)."""
    if not s.num_linear_layers:
        return []
    return [("linear_num_key_heads", s.linear_num_key_heads), ("linear_num_value_heads", s.linear_num_value_heads)]


def tp_violation(s: ModelSpec, tp: int, *, engine: str = "vllm") -> str | None:
    """The first rule degree `tp` breaks for `engine`, in the engine's words; None when it is valid."""
    rules_for(engine)
    a, k = s.num_attention_heads, s.num_key_value_heads
    if tp < 1:
        return f"tensor parallel size must be at least 1 (got {tp})"
    if a % tp:
        if engine in ("vllm", "sglang"):
            return (f"Total number of attention heads ({a}) must be divisible by tensor parallel size "
                    f"({tp}).")
        return f"num_attention_heads ({a}) must be divisible by tp_size ({tp})"
    if engine == "trtllm" and not s.is_mla and tp > k and tp % k:
        # TensorRT-LLM shards ceil(kv / tp) heads per rank; only replication (tp > kv) needs tp % kv == 0.
        return f"tp_size ({tp}) must be a multiple of num_key_value_heads ({k}) to replicate KV heads"
    if engine != "trtllm" and not s.is_mla and k % tp and tp % k:
        return (f"Total number of KV heads ({k}) must be divisible by tensor parallel size ({tp}), or "
                f"tensor parallel size by it (KV heads are then replicated).")
    for name, heads in _linear_heads(s):
        if heads % tp:
            return (f"{name} ({heads}) is not divisible by tensor parallel size ({tp}) (the Gated DeltaNet layers "
                    f"split their heads over TP).")
    if engine != "trtllm":
        for name, width in _mlp_widths(s):
            if width % tp:
                return f"{name} ({width}) is not divisible by tensor parallel size ({tp})"
    vocab = padded_vocab(s.vocab_size, tp=tp, engine=engine)
    if vocab % tp:
        return f"padded vocab size ({vocab}) is not divisible by tensor parallel size ({tp})"
    return None


def valid_tp_degrees(s: ModelSpec, *, engine: str = "vllm", max_tp: int = MAX_TP_DEGREE) -> list[int]:
    return [t for t in range(1, max_tp + 1) if tp_violation(s, t, engine=engine) is None]

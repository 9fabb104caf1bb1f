"""WeightFormat: how a checkpoint stores its linear weights, and the bytes one parameter costs in GPU memory.

Bytes per parameter of a quantized linear weight (a K x N matrix, K = in_features):
    weight_bits / 8 + (scale_bytes + zero_bytes) / elems_per_scale
where elems_per_scale is the group (AWQ/GPTQ 128, NVFP4 16, MXFP4 32), the 2-D block (DeepSeek-V3 128 x 128 =
16,384), K for per-output-channel scales (elems_per_scale = 0), or none for one scale per tensor
(elems_per_scale = -1; 4 bytes per matrix, left out). The layouts behind each format are cited where
tpplan.models.quant_config builds it. Embeddings, norms, biases and routers are never quantized
(ParamGroup.quantizable); `keep_16bit` adds the modules the checkpoint leaves in 16 bits (AWQ/bnb
`modules_to_not_convert`, compressed-tensors `ignore`, ModelOpt `exclude_modules`). A pattern may name one layer
('language_model.model.layers.47.feed_forward', Meta's Llama 4 FP8 checkpoints): bytes_per_param(g, layer=i) reads
layer i, and `layer_mean_bytes` holds the mean over the layers a group sits in (tpplan.models.weights sums the
exact per-layer bytes).

Sizes are what the serving engine holds in memory, which is the checkpoint's own layout for these formats.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Protocol

from tpplan.records import record


class GroupLike(Protocol):
    """What a format needs of a tpplan.models.params.ParamGroup (not imported: params imports spec imports this)."""

    name: str
    quantizable: bool
    in_features: int

SIXTEEN_BIT = ("bf16", "fp16")
LOW_PRECISION_COMPUTE = ("fp8", "int8", "fp4")
"""Matmul dtypes that need dedicated tensor cores (the GPU profile lists a peak for them or it lacks them)."""


@record
class WeightFormat:
    name: str
    """Short id shown to users and accepted by --dtype: 'bf16', 'fp8', 'awq-int4-g128', 'fp8-block128x128', ..."""
    method: str
    """The checkpoint's quant_method ('awq', 'gptq', 'compressed-tensors', 'fp8', 'mxfp4', 'modelopt',
    'bitsandbytes') or 'dtype' for a plain or --dtype format."""
    weight_bits: float
    """Bits of one stored weight element (16 or 32 for unquantized formats)."""
    scale_bytes: float = 0.0
    """Bytes of one scale: 2 (fp16/bf16), 4 (fp32), 1 (FP8 E4M3 or E8M0)."""
    elems_per_scale: int = -1
    """Weights sharing one scale: > 0 a group or block, 0 one per output channel (in_features), -1 per tensor."""
    zero_bytes: float = 0.0
    """Bytes of one zero point (asymmetric integer formats), stored per scale."""
    compute: str = "bf16"
    """Matmul dtype where the GPU has it: 'fp8' / 'int8' (W8A8), 'fp4' (W4A4); 16-bit for weight-only formats."""
    unquantized_bytes: int = 2
    """Bytes of every parameter left unquantized (embeddings, norms, biases, routers, `keep_16bit` modules)."""
    keep_16bit: tuple[str, ...] = ()
    """Module-name patterns left in 16 bits ('lm_head', 'model.layers.*.self_attn', 're:.*mlp.gate$')."""
    description: str = ""
    source: str = ""
    """Where the layout comes from (engine source file, format spec)."""
    block: tuple[int, int] | None = None
    """(block_n, block_k) of a block-scaled format (weight_block_size, e.g. (128, 128)); None otherwise. A TP shard of
    a linear layer must hold whole blocks (`tpplan.models.engines.block_quant_reasons`)."""
    quantizes_head: bool = False
    """The lm_head is quantized like the linear layers (GPTQ `lm_head: true`, which vLLM honours); False: 16-bit."""
    kv_cache_dtype: str | None = None
    """'fp8' when the checkpoint ships FP8 KV-cache scales (ModelOpt kv_cache_quant_algo FP8, compressed-tensors
    kv_cache_scheme of 8-bit floats), which an engine may use for its KV cache; None otherwise."""
    layer_mean_bytes: tuple[tuple[str, float], ...] = ()
    """(group name, mean bytes per parameter over the layers the group sits in) for the groups that `keep_16bit`
    keeps in 16 bits in some layers only; filled against a ModelSpec by tpplan.models.weights.resolve_layer_formats.
    bytes_per_param(g) without a layer returns this mean, so occurrences x mean is the group's exact total."""

    @property
    def quantized(self) -> bool:
        return self.weight_bits < 16

    @property
    def weight_only(self) -> bool:
        """True when matmuls run in 16 bits after dequantizing the weights (AWQ, GPTQ, bnb, W4A16)."""
        return self.compute not in LOW_PRECISION_COMPUTE

    @property
    def activation_bytes(self) -> int:
        """Activations (and all-reduced tensors) stay 16-bit unless the whole model runs in fp32."""
        return 4 if self.compute == "fp32" else 2

    def linear_bytes_per_param(self, in_features: int) -> float:
        """Bytes of one quantized linear-weight element, scales and zero points included."""
        per = self.weight_bits / 8
        n = self.elems_per_scale if self.elems_per_scale > 0 else in_features if self.elems_per_scale == 0 else 0
        if n > 0:
            per += (self.scale_bytes + self.zero_bytes) / n
        return per

    def keeps_16bit(self, group_name: str, layer: int = 0) -> bool:
        """True when a `keep_16bit` pattern names one of the HF modules behind parameter group `group_name` in
        layer `layer`."""
        return _keeps(self.keep_16bit, group_name, layer)

    def varies_by_layer(self, group_name: str) -> bool:
        """True when the group's bytes per parameter differ between the layers it sits in."""
        return any(name == group_name for name, _ in self.layer_mean_bytes)

    def bytes_per_param(self, g: GroupLike, layer: int | None = None) -> float:
        """Bytes of one parameter of group `g` in layer `layer`; without a layer, the mean over its layers
        (`layer_mean_bytes`), or layer 0's when the layers do not differ."""
        if not self.quantized:
            return self.weight_bits / 8
        if layer is None:
            mean = next((b for name, b in self.layer_mean_bytes if name == g.name), None)
            if mean is not None:
                return mean
        quantized_head = self.quantizes_head and g.name == "lm_head"
        if (not g.quantizable and not quantized_head) or self.keeps_16bit(g.name, layer or 0):
            return self.unquantized_bytes
        return self.linear_bytes_per_param(g.in_features)


@lru_cache(maxsize=4096)
def _keeps(patterns: tuple[str, ...], group_name: str, layer: int) -> bool:
    """Cached: a per-layer weight sum asks once per group and layer, with up to a few hundred patterns."""
    return any(_matches(p, path) for p in patterns for path in module_paths(group_name, layer))


_MLP_MODULES = {"mlp": ("mlp", "feed_forward"),
                "shared_experts": ("mlp.shared_experts", "mlp.shared_expert", "feed_forward.shared_expert"),
                "experts": ("mlp.experts.0", "feed_forward.experts.0")}
"""HF spellings of each MLP kind: Llama/DeepSeek/Qwen `mlp.*` (Qwen2-MoE `mlp.shared_expert`) and Llama 4's
`feed_forward.*` (transformers modeling_llama4.py: Llama4TextMLP, Llama4TextMoe.experts / shared_expert / router)."""


def module_paths(group_name: str, layer: int = 0) -> tuple[str, ...]:
    """HF module names (in layer `layer`) behind a tpplan parameter group, as ignore lists spell them."""
    prefix, _, leaf = group_name.partition(".")
    base = f"model.layers.{layer}."
    if prefix == "attention":
        leaves = ("k_proj", "v_proj") if leaf == "kv_proj" else (leaf,)
        return tuple(f"{base}self_attn.{x}" for x in leaves)
    if prefix in _MLP_MODULES:
        leaves = ("gate_proj", "up_proj") if leaf == "gate_up_proj" else (leaf,)
        paths = [f"{base}{kind}.{x}" for kind in _MLP_MODULES[prefix] for x in leaves]
        if prefix == "experts":  # gpt-oss and Llama 4 fuse all experts in one module: mlp.experts.gate_up_proj
            paths += [f"{base}mlp.experts.{leaf}", f"{base}feed_forward.experts.{leaf}"]
        return tuple(paths)
    if group_name == "router":
        return (f"{base}mlp.gate", f"{base}mlp.router", f"{base}block_sparse_moe.gate", f"{base}feed_forward.router")
    if group_name == "embed_tokens":
        return ("model.embed_tokens",)
    if prefix == "linear_attn":  # Qwen3NextGatedDeltaNet's modules (tpplan.models.params groups dt_bias and A_log)
        leaves = {"dt_bias_A_log": ("dt_bias", "A_log")}
        return tuple(f"{base}linear_attn.{x}" for x in leaves.get(leaf, (leaf,)))
    return (group_name,)


_WRAPPERS = ("model.language_model.", "language_model.")
"""Where Llama4ForConditionalGeneration (and llava, mllama) keep the decoder: transformers < 4.52 and the Hub's Llama 4
config.json spell `language_model.model.layers.N`, later transformers `model.language_model.layers.N`."""


def _matches(pattern: str, path: str) -> bool:
    """compressed-tensors semantics for 're:' patterns (re.match on the module name); otherwise a module name,
    a dotted suffix or prefix of one ('lm_head', 'mlp.gate'), or a glob ('model.layers.*.self_attn')."""
    if pattern.startswith("re:"):
        return re.match(pattern[3:], path) is not None
    for wrapper in _WRAPPERS:  # vision-language checkpoints name the decoder inside a wrapper
        if pattern.startswith(wrapper):
            pattern = pattern[len(wrapper):]
            break
    wrapped = f".{path}."
    return (f".{pattern}." in wrapped or path.startswith(f"{pattern}.") or fnmatchcase(path, pattern)
            or fnmatchcase(path, f"{pattern}.*"))


PLAIN: dict[str, WeightFormat] = {
    "bf16": WeightFormat(name="bf16", method="dtype", weight_bits=16, compute="bf16"),
    "fp16": WeightFormat(name="fp16", method="dtype", weight_bits=16, compute="fp16"),
    "fp32": WeightFormat(name="fp32", method="dtype", weight_bits=32, compute="fp32", unquantized_bytes=4),
}
OVERRIDES: dict[str, WeightFormat] = {
    **PLAIN,
    # vLLM --quantization fp8 (online, vllm/model_executor/layers/quantization/fp8.py): fp8 E4M3 weights, one
    # fp32 scale per tensor, dynamic per-token activation scales: W8A8 on GPUs with FP8 tensor cores.
    "fp8": WeightFormat(name="fp8", method="dtype", weight_bits=8, scale_bytes=4, elems_per_scale=-1, compute="fp8",
                        description="fp8 E4M3 weights, per-tensor scale (W8A8)"),
    # SmoothQuant-style W8A8 int8 (compressed-tensors int8, strategy channel): fp32 scale per output channel.
    "int8": WeightFormat(name="int8", method="dtype", weight_bits=8, scale_bytes=4, elems_per_scale=0, compute="int8",
                         description="int8 weights, per-channel fp32 scale (W8A8)"),
    # AWQ GEMM layout, group 128 (vllm .../quantization/awq.py): qweight int32 (K/8, N), scales fp16 (K/128, N),
    # qzeros int32 (K/128, N/8): 0.5 + (2 + 0.5) / 128 bytes per weight; weight-only (W4A16).
    "int4": WeightFormat(name="int4", method="dtype", weight_bits=4, scale_bytes=2, elems_per_scale=128,
                         zero_bytes=0.5, compute="bf16",
                         description="int4 weights, group 128, fp16 scale + 4-bit zero"),
    # NVFP4 (llm-compressor examples/quantization_w4a4_fp4): E2M1 weights, one FP8 E4M3 scale per 16 elements and an
    # fp32 global scale per tensor: 0.5 + 1/16 bytes per weight; W4A4 on GPUs with FP4 tensor cores.
    "nvfp4": WeightFormat(name="nvfp4", method="dtype", weight_bits=4, scale_bytes=1, elems_per_scale=16,
                          compute="fp4", description="NVFP4: E2M1 weights, E4M3 scale per 16"),
    # OCP Microscaling MXFP4 (OCP MX spec v1.0): blocks of 32 E2M1 elements share one E8M0 scale: 0.5 + 1/32.
    "mxfp4": WeightFormat(name="mxfp4", method="dtype", weight_bits=4, scale_bytes=1, elems_per_scale=32,
                          compute="fp4", description="MXFP4: E2M1 weights, E8M0 scale per 32"),
}
ALIASES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32",
           "float8": "fp8", "fp8_e4m3": "fp8", "e4m3": "fp8", "w8a8": "fp8", "w8a16": "int8", "awq": "int4",
           "gptq": "int4", "w4a16": "int4", "fp4": "nvfp4", "nvfp4a16": "nvfp4"}


def sixteen_bit_dtype(available: dict[str, float] | tuple[str, ...]) -> str:
    """The peak-FLOP/s key 16-bit (weight-only, or kept-in-16-bit) matmuls run at: bf16, fp16, else fp32."""
    keys = tuple(available)
    return next((d for d in (*SIXTEEN_BIT, "fp32") if d in keys), keys[0] if keys else "bf16")


def compute_dtype(fmt: WeightFormat, available: dict[str, float] | tuple[str, ...]) -> tuple[str, str | None]:
    """(peak-FLOP/s key, note). A W8A8/W4A4 format on a GPU without that tensor-core dtype (fp8 on A100 or A10G,
    fp4 before Blackwell) runs weight-only: weights are dequantized to 16 bits and matmuls use the 16-bit peak;
    the note says so. Weight-only formats use bf16 (fp16, fp32) as the profile lists them."""
    keys = tuple(available)
    if fmt.compute in keys:
        return fmt.compute, None
    fallback = sixteen_bit_dtype(keys)
    if fmt.compute in LOW_PRECISION_COMPUTE:
        return fallback, (f"{fmt.name}: this GPU has no {fmt.compute} tensor cores; the weights run weight-only, "
                          f"dequantized to 16 bits, at the {fallback} peak")
    return fallback, None

"""Weight formats and KV-cache dtypes by name: `--dtype auto` (the checkpoint's own format) or an override.

`weight_format(spec, dtype)` is the one place the cost model and the memory model learn what a weight costs:
bytes per parameter group (tpplan.models.formats.WeightFormat.bytes_per_param), the matmul dtype
(`compute_dtype`) and the activation width.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tpplan.errors import TpplanError
from tpplan.models.formats import ALIASES, OVERRIDES, PLAIN, WeightFormat, compute_dtype

if TYPE_CHECKING:
    from tpplan.models.spec import ModelSpec

__all__ = ["KV_DTYPE_BYTES", "MEASURE_DTYPE_BYTES", "WEIGHT_DTYPES", "compute_dtype", "normalize_dtype",
           "resolve_dtype", "weight_format"]

AUTO = "auto"
WEIGHT_DTYPES = (AUTO, *OVERRIDES)
"""What --dtype accepts (plus ALIASES and the checkpoint's own format name)."""
KV_DTYPE_BYTES: dict[str, int] = {"bf16": 2, "fp16": 2, "fp32": 4, "fp8": 1, "fp8_e5m2": 1}
"""KV-cache dtypes and their bytes per element. "fp8" is E4M3: vLLM's --kv-cache-dtype fp8 ("CUDA 11.8+ supports fp8
(=fp8_e4m3) and fp8_e5m2", CacheConfig.cache_dtype, vllm/config/cache.py), SGLang's fp8_e4m3. "fp8_e5m2" is the
other FP8 format both offer: the same size, not the same attention kernels (tpplan.cost.kernels.
prefill_attention_dtype)."""
MEASURE_DTYPE_BYTES: dict[str, int] = {"bf16": 2, "fp16": 2, "fp32": 4}
"""Element sizes of the tensors `tpplan measure` runs."""
_KV_ALIASES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32",
               "float8": "fp8", "fp8_e4m3": "fp8", "e4m3": "fp8", "e5m2": "fp8_e5m2", "auto": "bf16"}


def normalize_dtype(name: str, *, kind: str = "weight") -> str:
    """Canonical name ('auto', 'bf16', 'fp8', 'nvfp4', ...) or a TpplanError listing the choices.

    A weight name with a '-' ('awq-int4-g128') is a checkpoint format name: `weight_format` checks it
    against the model."""
    if kind != "weight":
        key = _KV_ALIASES.get(name.lower(), name.lower())
        if key not in KV_DTYPE_BYTES:
            raise TpplanError(f"--kv-cache-dtype {name!r} is not known; choose one of: {', '.join(KV_DTYPE_BYTES)}")
        return key
    key = ALIASES.get(name.lower(), name.lower())
    if key in WEIGHT_DTYPES or "-" in key:
        return key
    raise TpplanError(f"--dtype {name!r} is not known; choose one of: {', '.join(WEIGHT_DTYPES)}")


AUTO_PLAIN = {"fp16": "fp16", "bf16": "bf16", "fp32": "bf16"}
"""The plain format `--dtype auto` serves an unquantized checkpoint in, by the dtype its config names: its own 16-bit
one, and bf16 for a float32 checkpoint (vLLM's ModelConfig dtype "auto": "Following common practice, we use
float16 for float32 models" until v0.10.1, bf16 since, where the GPU supports it). A config naming no dtype is
planned in bf16."""


def weight_format(spec: ModelSpec, dtype: str = AUTO) -> WeightFormat:
    """The format a plan uses: the checkpoint's (auto, or its own name), else a --dtype override."""
    q = spec.quantization
    key = normalize_dtype(dtype)
    if q is not None and key in (AUTO, q.name):
        return q
    if key == AUTO:
        return PLAIN[AUTO_PLAIN.get(spec.checkpoint_dtype, "bf16")]
    if key in OVERRIDES:
        return OVERRIDES[key]
    own = f"; {spec.name}'s checkpoint is {q.name}" if q else ""
    raise TpplanError(f"--dtype {dtype!r} is not known{own}; choose one of: {', '.join(WEIGHT_DTYPES)}")


def resolve_dtype(spec: ModelSpec, dtype: str = AUTO) -> str:
    """The format's name for `dtype` on this model ('auto' becomes 'bf16' or the checkpoint's format)."""
    return weight_format(spec, dtype).name


def override_note(spec: ModelSpec, dtype: str) -> str | None:
    """Says when --dtype replaces the checkpoint's own quantized format."""
    q, fmt = spec.quantization, weight_format(spec, dtype)
    if q is None or fmt is q:
        return None
    return f"--dtype {fmt.name} overrides the checkpoint's own format ({q.name}): planned as if re-quantized"


__all__ += ["AUTO", "override_note", "weights_assumption"]


def weights_assumption(spec: ModelSpec, dtype: str, kv_cache_dtype: str | None, peaks: dict[str, float]) -> str:
    """One line for a plan's assumptions: the weight format, where it came from, the KV cache's dtype (None: no KV
    cache, a training plan) and the matmul dtype on this GPU (with the weight-only note when the GPU lacks the
    format's tensor cores)."""
    fmt = weight_format(spec, dtype)
    line = f"weights {fmt.name}" + (f", KV cache {kv_cache_dtype}" if kv_cache_dtype is not None else "")
    if not fmt.quantized:
        return line
    origin = "the checkpoint's quantization_config" if fmt is spec.quantization else "--dtype"
    compute, note = compute_dtype(fmt, peaks)
    return f"{line}; {fmt.description} (from {origin}); matmuls at the {compute} peak" + (f"; {note}" if note else "")

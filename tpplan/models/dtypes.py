"""Bytes per element of the weight and KV-cache dtypes tpplan understands."""

from __future__ import annotations

from tpplan.errors import TpplanError

INT4_GROUP_SIZE = 128
"""AWQ/GPTQ default group size: one fp16 scale and one 4-bit zero point per 128 weights."""
INT4_BYTES_PER_PARAM = 0.5 + (2 + 0.5) / INT4_GROUP_SIZE

WEIGHT_DTYPE_BYTES: dict[str, float] = {"bf16": 2, "fp16": 2, "fp32": 4, "fp8": 1, "int8": 1,
                                        "int4": INT4_BYTES_PER_PARAM}
"""Bytes per linear-layer weight. fp8/int8 per-channel scales are < 0.1% and left out."""
KV_DTYPE_BYTES: dict[str, int] = {"bf16": 2, "fp16": 2, "fp32": 4, "fp8": 1}
ACTIVATION_BYTES: dict[str, int] = {"bf16": 2, "fp16": 2, "fp32": 4, "fp8": 2, "int8": 2, "int4": 2}
"""Activations stay 16-bit when weights are quantized (weight-only or W8A16 kernels); fp8 W8A8 still
all-reduces in bf16 in vLLM."""
MEASURE_DTYPE_BYTES: dict[str, int] = {"bf16": 2, "fp16": 2, "fp32": 4}
"""Element sizes of the tensors `tpplan measure` runs."""
UNQUANTIZED_BYTES = 2
"""Embeddings, norms, biases and routers stay bf16 when linear weights are quantized."""

_ALIASES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32",
            "float8": "fp8", "fp8_e4m3": "fp8", "fp8_e5m2": "fp8", "e4m3": "fp8", "awq": "int4",
            "gptq": "int4", "w4a16": "int4", "w8a16": "int8"}


def normalize_dtype(name: str, *, kind: str = "weight") -> str:
    """Canonical dtype name ('bf16', 'fp8', ...) or a TpplanError listing the choices."""
    table = WEIGHT_DTYPE_BYTES if kind == "weight" else KV_DTYPE_BYTES
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in table:
        option = "--dtype" if kind == "weight" else "--kv-cache-dtype"
        raise TpplanError(f"{option} {name!r} is not known; choose one of: {', '.join(table)}")
    return key


def weight_bytes_per_param(dtype: str, *, quantizable: bool) -> float:
    if not quantizable:
        return WEIGHT_DTYPE_BYTES[dtype] if dtype == "fp32" else UNQUANTIZED_BYTES
    return WEIGHT_DTYPE_BYTES[dtype]

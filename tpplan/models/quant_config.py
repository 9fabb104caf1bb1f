"""Read a config.json `quantization_config` into a WeightFormat (the checkpoint's own format, vLLM `--dtype auto`).

Layouts, as vLLM holds them in GPU memory (vllm/model_executor/layers/quantization/*):
- awq (awq.py, AutoAWQ GEMM): qweight int32 (K/8, N), scales fp16 (K/g, N), qzeros int32 (K/g, N/8):
  bits/8 + (2 + bits/8) / g per weight. `zero_point: false` drops the zeros.
- gptq (gptq.py, AutoGPTQ): qweight int32 (K/8, N), qzeros int32 (K/g, N/8) stored even when sym, scales fp16
  (K/g, N), g_idx int32 (K) (4 / N bytes per weight, < 0.05%, left out). group_size -1 = one group per column
  (per-channel). desc_act (act-order) changes the order of groups, not their size.
- compressed-tensors (compressed_tensors/schemes): config_groups[*].weights {num_bits, type int|float, strategy
  tensor|channel|group|block|tensor_group, group_size, block_structure, symmetric}; input_activations null =
  weight-only. Scales: group scales in the 16-bit dtype; channel/tensor/block scales fp32; NVFP4 (float, 4 bits,
  group 16) FP8 E4M3 scales; MXFP4 (group 32) E8M0 scales. Asymmetric int groups add a packed zero point.
- fp8 (fp8.py, DeepSeek-V3 config.json): fp8 E4M3 weights; `weight_block_size` [128, 128] adds one fp32
  `weight_scale_inv` per 128 x 128 block, else one fp32 scale per tensor. W8A8.
- mxfp4 (mxfp4.py, openai/gpt-oss config.json): MoE expert weights in MXFP4 (E2M1 + one E8M0 scale per 32);
  `modules_to_not_convert` keeps attention, router, embedding and lm_head in bf16.
- modelopt (modelopt.py, hf_quant_config.json): quant_algo FP8 (per-tensor fp32 scales) or NVFP4 (group 16,
  E4M3 scales); `exclude_modules` stay 16-bit.
- fbgemm_fp8 (fbgemm_fp8.py FBGEMMFp8Config; transformers integrations/fbgemm_fp8.py FbgemmFp8Linear and
  FbgemmFp8Llama4TextExperts; Meta's Llama-3.1-405B-FP8 and Llama-4-Maverick-FP8): fp8 E4M3 weights with one fp32
  `weight_scale` per output row ((N, 1); Llama 4 experts gate_up_proj_scale (E, 1, 2I), down_proj_scale (E, H, 1)),
  activations quantized per token at run time with the upper bound `activation_scale_ub` (W8A8; weight-only Marlin on
  GPUs without fp8). `modules_to_not_convert` stay bf16.
- bitsandbytes (bitsandbytes.py, bitsandbytes functional.py): 4-bit nf4/fp4 packs 2 weights per byte with one fp32
  absmax per 64 weights; with bnb_4bit_use_double_quant the absmax is 8-bit plus one fp32 per 256 blocks.
  8-bit (LLM.int8): int8 weight and one fp32 scale (SCB) per output row.
"""

from __future__ import annotations

import math
import re
from typing import Any

from tpplan.errors import ModelSpecError
from tpplan.models.formats import WeightFormat

KNOWN_METHODS = ("awq", "gptq", "compressed-tensors", "fp8", "fbgemm_fp8", "mxfp4", "modelopt", "modelopt_fp4",
                 "bitsandbytes")


class _Q:
    """Typed reads from one quantization_config dict; every error names the field."""

    def __init__(self, cfg: dict[str, Any], origin: str, prefix: str = "quantization_config") -> None:
        self.cfg, self.origin, self.prefix = cfg, origin, prefix

    def fail(self, key: str, problem: str) -> ModelSpecError:
        return ModelSpecError(f"{self.origin}: field '{self.prefix}.{key}' {problem}")

    def int(self, key: str, default: int, *, allowed: tuple[int, ...] = ()) -> int:
        v = self.cfg.get(key, default)
        if v is None:
            v = default
        if isinstance(v, bool) or not isinstance(v, int) or (allowed and v not in allowed) or (not allowed and v < -1):
            choices = f"one of {', '.join(map(str, allowed))}" if allowed else "an integer >= -1"
            raise self.fail(key, f"must be {choices}, got {v!r}")
        return v

    def names(self, *keys: str) -> tuple[str, ...]:
        out: list[str] = []
        for key in keys:
            v = self.cfg.get(key)
            if v is None:
                continue
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise self.fail(key, f"must be a list of module names, got {v!r}")
            for x in v:
                if x.startswith("re:"):
                    try:
                        re.compile(x[3:])
                    except re.error as exc:
                        raise self.fail(key, f"has an invalid regular expression {x!r} ({exc})") from exc
            out += v
        return tuple(out)


def _group_size(q: _Q, key: str, default: int) -> int:
    g = q.int(key, default)
    if g == 0 or g < -1:
        raise q.fail(key, f"must be a positive group size or -1 (per channel), got {g}")
    return g if g > 0 else 0  # 0: one scale per output channel


def _awq(q: _Q) -> WeightFormat:
    # HF config.json spells them bits / group_size; AutoAWQ's quant_config.json w_bit / q_group_size.
    bits = q.int("w_bit" if "bits" not in q.cfg and "w_bit" in q.cfg else "bits", 4, allowed=(4, 8))
    g = _group_size(q, "q_group_size" if "group_size" not in q.cfg and "q_group_size" in q.cfg else "group_size", 128)
    zero = bool(q.cfg.get("zero_point", True))
    return WeightFormat(name=f"awq-int{bits}-g{g or 'channel'}", method="awq", weight_bits=bits, scale_bytes=2,
                        elems_per_scale=g, zero_bytes=bits / 8 if zero else 0, compute="fp16",
                        keep_16bit=q.names("modules_to_not_convert"),
                        description=f"AWQ int{bits}, group {g or 'per-channel'}, fp16 scales"
                                    f"{' + packed zero points' if zero else ''}; weight-only (W{bits}A16)",
                        source="vllm quantization/awq.py: qweight (K/8,N) int32, scales (K/g,N) fp16, "
                               "qzeros (K/g,N/8) int32")


def _gptq_dynamic(q: _Q, bits: int, g: int) -> tuple[int, int, tuple[str, ...], str]:
    """GPTQModel's `dynamic` per-module overrides (vLLM gptq_utils.get_dynamic_override: re.match of each key on the
    module name; "-:" keys leave those modules unquantized, others override bits / group_size): (bits, group, keep
    patterns, note). The skipped modules stay 16-bit exactly; overridden ones are planned at the widest bits and
    smallest group of any rule for every quantized layer, an upper bound that the note states."""
    dyn = q.cfg.get("dynamic")
    if dyn is None or dyn == {}:
        return bits, g, (), ""
    if not isinstance(dyn, dict) or not all(isinstance(v, dict) for v in dyn.values()):
        raise q.fail("dynamic", f"must be an object of module-name patterns to override objects, got {dyn!r}")
    keep, widest, smallest = [], bits, g
    for key, override in dyn.items():
        pattern = key[2:] if key.startswith(("-:", "+:")) else key
        try:
            re.compile(pattern)
        except re.error as exc:
            raise q.fail("dynamic", f"has an invalid regular expression {key!r} ({exc})") from exc
        if key.startswith("-:"):
            keep.append(f"re:{pattern}")
            continue
        oq = _Q(override, q.origin, f"{q.prefix}.dynamic.{key}")
        widest = max(widest, oq.int("bits", bits, allowed=(2, 3, 4, 8)))
        og = _group_size(oq, "group_size", g or -1)
        smallest = min(x for x in (smallest, og) if x) if (smallest or og) else 0
    note = (f"; dynamic overrides planned at int{widest} g{smallest or 'channel'} for every quantized layer, an "
            f"upper bound" if (widest, smallest) != (bits, g) else "")
    return widest, smallest, tuple(keep), note


def _gptq(q: _Q) -> WeightFormat:
    bits = q.int("bits", 4, allowed=(2, 3, 4, 8))
    g = _group_size(q, "group_size", 128)
    act = bool(q.cfg.get("desc_act", False))
    bits, g, skipped, note = _gptq_dynamic(q, bits, g)
    head = bool(q.cfg.get("lm_head", False))
    name = f"gptq-int{bits}-g{g or 'channel'}{'-actorder' if act else ''}"
    return WeightFormat(name=name, method="gptq", weight_bits=bits, scale_bytes=2, elems_per_scale=g,
                        zero_bytes=bits / 8, compute="fp16", keep_16bit=(*q.names("modules_to_not_convert"), *skipped),
                        quantizes_head=head,
                        description=f"GPTQ int{bits}, group {g or 'per-channel'}{', act-order' if act else ''}, "
                                    f"fp16 scales + packed zero points{', quantized lm_head' if head else ''}; "
                                    f"weight-only (W{bits}A16){note}",
                        source="vllm quantization/gptq.py: qweight (K/8,N), qzeros (K/g,N/8) int32, scales (K/g,N) "
                               "fp16, g_idx (K) int32")


def _fp8(q: _Q) -> WeightFormat:
    block = q.cfg.get("weight_block_size")
    keep = q.names("modules_to_not_convert", "ignored_layers")
    if block is None:
        return WeightFormat(name="fp8", method="fp8", weight_bits=8, scale_bytes=4, elems_per_scale=-1,
                            compute="fp8", keep_16bit=keep, description="fp8 E4M3, per-tensor fp32 scale (W8A8)",
                            source="vllm quantization/fp8.py")
    if (not isinstance(block, list) or len(block) != 2
            or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in block)):
        raise q.fail("weight_block_size", f"must be two positive integers like [128, 128], got {block!r}")
    return WeightFormat(name=f"fp8-block{block[0]}x{block[1]}", method="fp8", weight_bits=8, scale_bytes=4,
                        elems_per_scale=block[0] * block[1], compute="fp8", keep_16bit=keep,
                        description=f"fp8 E4M3, one fp32 scale per {block[0]}x{block[1]} block (W8A8)",
                        source="vllm quantization/fp8.py (block-wise weight_scale_inv fp32); DeepSeek-V3 config.json",
                        block=(block[0], block[1]))


def _fbgemm_fp8(q: _Q) -> WeightFormat:
    ub = q.cfg.get("activation_scale_ub", 1200.0)  # transformers FbgemmFp8Config's default
    if isinstance(ub, bool) or not isinstance(ub, (int, float)) or not math.isfinite(ub) or ub <= 0:
        raise q.fail("activation_scale_ub", f"must be a positive number (the upper bound of the dynamic activation "
                                            f"scale, 1200.0 in Meta's checkpoints), got {ub!r}")
    return WeightFormat(name="fbgemm-fp8", method="fbgemm_fp8", weight_bits=8, scale_bytes=4, elems_per_scale=0,
                        compute="fp8", keep_16bit=q.names("modules_to_not_convert"),
                        description="FBGEMM fp8 E4M3, one fp32 scale per output row, activations quantized per token "
                                    "at run time (W8A8)",
                        source="vllm quantization/fbgemm_fp8.py (weight fp8 (N,K), weight_scale fp32 (N,1)); "
                               "transformers integrations/fbgemm_fp8.py")


MXFP4_ONLY_EXPERTS = r"re:^(?!.*\.experts\.)"
"""vLLM's Mxfp4Config quantizes the routed experts (FusedMoE) only and leaves every Linear layer unquantized
(quantization/mxfp4.py get_quant_method: UnquantizedLinearMethod for LinearBase), whatever modules_to_not_convert
says: a keep-16-bit pattern for every module outside `.experts.`."""


def _mxfp4(q: _Q) -> WeightFormat:
    return WeightFormat(name="mxfp4", method="mxfp4", weight_bits=4, scale_bytes=1, elems_per_scale=32, compute="fp4",
                        keep_16bit=(*q.names("modules_to_not_convert"), MXFP4_ONLY_EXPERTS),
                        description="MXFP4: E2M1 weights, one E8M0 scale per 32 (OCP MX v1.0)",
                        source="vllm quantization/mxfp4.py; openai/gpt-oss config.json quantization_config")


def _fp8_kv_cache(*cfgs: dict[str, Any]) -> str | None:
    """'fp8' when a quantization_config ships FP8 KV-cache scales: ModelOpt's kv_cache_quant_algo "FP8" (older
    hf_quant_config style) or a kv_cache_scheme of 8-bit floats (newer ModelOpt and compressed-tensors)."""
    for cfg in cfgs:
        scheme = cfg.get("kv_cache_scheme")
        if str(cfg.get("kv_cache_quant_algo") or "").upper() == "FP8" or (
                isinstance(scheme, dict) and scheme.get("num_bits") == 8 and scheme.get("type") == "float"):
            return "fp8"
    return None


def _modelopt(q: _Q) -> WeightFormat:
    inner = q.cfg.get("quantization") if isinstance(q.cfg.get("quantization"), dict) else q.cfg
    qi = _Q(inner, q.origin, q.prefix + (".quantization" if inner is not q.cfg else ""))
    algo = str(inner.get("quant_algo", "")).upper()
    keep = qi.names("exclude_modules", "ignore")
    kv = _fp8_kv_cache(inner, q.cfg)
    if algo == "FP8":
        return WeightFormat(name="modelopt-fp8", method="modelopt", weight_bits=8, scale_bytes=4,
                            elems_per_scale=-1, compute="fp8", keep_16bit=keep, kv_cache_dtype=kv,
                            description="ModelOpt FP8: E4M3 weights, per-tensor fp32 scale (W8A8)",
                            source="vllm quantization/modelopt.py ModelOptFp8Config")
    if algo == "NVFP4":
        g = _group_size(qi, "group_size", 16)
        return WeightFormat(name=f"modelopt-nvfp4-g{g}", method="modelopt", weight_bits=4, scale_bytes=1,
                            elems_per_scale=g, compute="fp4", keep_16bit=keep, kv_cache_dtype=kv,
                            description=f"ModelOpt NVFP4: E2M1 weights, E4M3 scale per {g} (W4A4)",
                            source="vllm quantization/modelopt.py ModelOptNvFp4Config")
    raise qi.fail("quant_algo", f"{inner.get('quant_algo')!r} is not supported; tpplan reads FP8 and NVFP4")


def _bnb(q: _Q) -> WeightFormat:
    keep = q.names("llm_int8_skip_modules")
    if q.cfg.get("load_in_4bit"):
        kind = str(q.cfg.get("bnb_4bit_quant_type", "fp4"))
        double = bool(q.cfg.get("bnb_4bit_use_double_quant", False))
        scale = 1 + 4 / 256 if double else 4  # absmax per 64: 8-bit + fp32 per 256 blocks, or fp32
        return WeightFormat(name=f"bnb-{kind}{'-dq' if double else ''}", method="bitsandbytes", weight_bits=4,
                            scale_bytes=scale, elems_per_scale=64, compute="bf16", keep_16bit=keep,
                            description=f"bitsandbytes 4-bit {kind}, absmax per 64"
                                        f"{' (double-quantized)' if double else ' (fp32)'}; weight-only",
                            source="bitsandbytes functional.quantize_4bit (blocksize 64); vllm bitsandbytes.py")
    if q.cfg.get("load_in_8bit"):
        return WeightFormat(name="bnb-int8", method="bitsandbytes", weight_bits=8, scale_bytes=4, elems_per_scale=0,
                            compute="int8", keep_16bit=keep, description="bitsandbytes LLM.int8(): int8 weights, "
                            "fp32 scale per output row", source="bitsandbytes Int8Params (SCB per row)")
    raise q.fail("load_in_4bit", "and load_in_8bit are both false; nothing is quantized")


def _ct_weights(q: _Q) -> tuple[dict[str, Any], dict[str, Any] | None, str, str]:
    """(weights scheme, input-activation scheme, its group's key, a note): the scheme of the group that targets
    Linear layers; when several groups quantize weights differently (a mixed-precision recipe, e.g. int4 MLPs and
    fp8 attention), the widest one, planned for every layer, an upper bound on the weights that the note states."""
    groups = q.cfg.get("config_groups")
    if not isinstance(groups, dict) or not groups:
        raise q.fail("config_groups", "must be a non-empty object of quantization schemes")
    for key, scheme in groups.items():
        if not isinstance(scheme, dict) or not isinstance(scheme.get("weights", {}), dict | None):
            raise q.fail(f"config_groups.{key}.weights", "must be an object with num_bits, type and strategy")
    groups = {k: v for k, v in groups.items() if v.get("weights")}  # an activation-only group quantizes no weight
    if not groups:
        raise q.fail("config_groups", "has no group with a weights scheme")
    linear = [(k, v) for k, v in groups.items() if "Linear" in (v.get("targets") or [])]
    key, scheme = linear[0] if linear else next(iter(groups.items()))
    note = ""
    if len({repr(sorted(v["weights"].items())) for v in groups.values()}) > 1:
        def width(item: tuple[str, dict[str, Any]]) -> float:  # bytes per weight, scales included
            w = item[1]["weights"]
            bits = w.get("num_bits", 8) if isinstance(w.get("num_bits"), int) else 8
            grouped = w.get("strategy") in ("group", "tensor_group") and isinstance(w.get("group_size"), int)
            group = w["group_size"] if grouped else 0
            scale = 1 if w.get("type") == "float" and bits == 4 else 2  # FP4 formats keep 8-bit scales
            return bits / 8 + (scale / group if group and group > 0 else 0)
        key, scheme = max(groups.items(), key=width)
        note = (f"; config_groups mix {len(groups)} weight schemes ({', '.join(groups)}): planned as {key}'s for "
                f"every layer, an upper bound")
    acts = scheme.get("input_activations")
    return scheme["weights"], acts if isinstance(acts, dict) else None, key, note


def _compressed_tensors(q: _Q) -> WeightFormat:
    w, acts, key, note = _ct_weights(q)
    wq = _Q(w, q.origin, f"{q.prefix}.config_groups.{key}.weights")
    bits = wq.int("num_bits", 8, allowed=(4, 8))
    kind = str(w.get("type", "int"))
    strategy = str(w.get("strategy", "tensor"))
    keep = q.names("ignore")
    if kind == "float" and bits == 4:  # NVFP4 (tensor_group, 16) or MXFP4 (group 32)
        g = _group_size(wq, "group_size", 16)
        name = "nvfp4" if g == 16 else "mxfp4" if g == 32 else f"fp4-g{g}"
        return WeightFormat(name=f"ct-{name}{'' if acts else 'a16'}", method="compressed-tensors", weight_bits=4,
                            scale_bytes=1, elems_per_scale=g, compute="fp4" if acts else "bf16", keep_16bit=keep,
                            kv_cache_dtype=_fp8_kv_cache(q.cfg),
                            description=f"compressed-tensors {name}: E2M1 weights, 8-bit scale per {g}"
                                        f"{'' if acts else '; weight-only'}{note}",
                            source="vllm compressed_tensors/schemes compressed_tensors_w4a4_nvfp4.py / _mxfp4.py")
    if strategy == "block":
        bs = w.get("block_structure")
        if not isinstance(bs, list) or len(bs) != 2 or not all(isinstance(b, int) and b > 0 for b in bs):
            raise wq.fail("block_structure", f"must be two positive integers like [128, 128], got {bs!r}")
        elems, scale = bs[0] * bs[1], 4.0
    elif strategy == "group":
        elems, scale = _group_size(wq, "group_size", 128), 2.0
    elif strategy in ("channel", "tensor"):
        elems, scale = (0 if strategy == "channel" else -1), 4.0
    else:
        raise wq.fail("strategy", f"{strategy!r} is not known; expected tensor, channel, group or block")
    zero = bits / 8 if kind == "int" and not w.get("symmetric", True) else 0.0
    compute = ("fp8" if kind == "float" else "int8") if acts and bits == 8 else "bf16"
    label = f"{'fp' if kind == 'float' else 'int'}{bits}"
    return WeightFormat(name=f"ct-{label}-{strategy}{'' if acts else '-a16'}", method="compressed-tensors",
                        weight_bits=bits, scale_bytes=scale, elems_per_scale=elems, zero_bytes=zero, compute=compute,
                        keep_16bit=keep, kv_cache_dtype=_fp8_kv_cache(q.cfg),
                        description=f"compressed-tensors {label}, {strategy} scales"
                                    f"{'' if acts else ', weight-only'}{note}",
                        source="vllm compressed_tensors/schemes (W8A8Fp8, W8A8Int8, WNA16)")


_PARSERS = {"awq": _awq, "gptq": _gptq, "fp8": _fp8, "fbgemm_fp8": _fbgemm_fp8, "mxfp4": _mxfp4,
            "modelopt": _modelopt, "modelopt_fp4": _modelopt, "bitsandbytes": _bnb,
            "compressed-tensors": _compressed_tensors}


def parse_quantization_config(qc: Any, *, origin: str) -> WeightFormat:
    """The WeightFormat a `quantization_config` describes, or a ModelSpecError naming the field or method."""
    if not isinstance(qc, dict):
        raise ModelSpecError(f"{origin}: field 'quantization_config' must be an object, got {type(qc).__name__}")
    method = qc.get("quant_method")
    if method == "modelopt_fp4":
        qc = {**qc, "quant_algo": qc.get("quant_algo", "NVFP4")}
    parser = _PARSERS.get(str(method).lower() if isinstance(method, str) else "")
    if parser is None:
        raise ModelSpecError(f"{origin}: quantization_config.quant_method {method!r} is not supported; tpplan reads "
                             f"{', '.join(KNOWN_METHODS)}; or plan another format with --dtype (bf16, fp8, int8, "
                             f"int4, nvfp4, mxfp4)")
    fmt = parser(_Q(qc, origin))
    if not math.isfinite(fmt.linear_bytes_per_param(1)):
        raise ModelSpecError(f"{origin}: quantization_config describes no finite size")
    return fmt

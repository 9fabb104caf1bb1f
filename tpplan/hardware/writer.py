"""Write a HardwareProfile back to YAML (schema_version 1) with units, so `recommend` can read it."""

from __future__ import annotations

from typing import Any

from tpplan.hardware.kernel_table import KernelTable
from tpplan.hardware.profile import HardwareProfile, LinkSpec, ProtocolParams
from tpplan.units import GB, TERA, US, MiB


def _bw(x: float) -> str:
    return f"{x / GB:.6g} GB/s"


def _us(x: float) -> str:
    return f"{x / US:.6g} us"


def _link(link: LinkSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": link.kind, "bandwidth": _bw(link.bandwidth_bytes_per_s)}
    if link.latency_s:
        out["latency"] = _us(link.latency_s)
    return out


def _protocol(p: ProtocolParams) -> dict[str, Any]:
    out: dict[str, Any] = {"base_latency": _us(p.base_latency_s), "hop_latency": _us(p.hop_latency_s),
                           "busbw": _bw(p.busbw_bytes_per_s)}
    if p.busbw_by_group_size:
        out["busbw_by_group_size"] = {t: _bw(b) for t, b in p.busbw_by_group_size}
    return out


def profile_to_dict(p: HardwareProfile, *, name: str | None = None, omit_defaulted: bool = False) -> dict[str, Any]:
    """The profile as YAML states it. `omit_defaulted`: leave out the values `HardwareProfile.defaulted` says came
    from the defaults files, so reading it back takes them from those files again (for a profile whose `defaulted`
    is kept true to its values, as tpplan.measure.compare.calibrated_profile does)."""
    d: dict[str, Any] = {
        "schema_version": 1, "name": name or p.name, "description": p.description,
        "gpu": {"name": p.gpu.name, "memory": f"{p.gpu.memory_bytes / MiB:.6g} MiB",
                "memory_bandwidth": _bw(p.gpu.memory_bandwidth_bytes_per_s),
                "peak_flops": {k: f"{v / TERA:.6g} TFLOP/s" for k, v in p.gpu.peak_flops_per_s.items()}},
        "node": {"gpus_per_node": p.gpus_per_node, "nvlink_domain_size": p.nvlink_domain_size,
                 **({"gpus_per_host": p.gpus_per_host} if p.gpus_per_host else {}),
                 "intra_domain_link": _link(p.intra_domain_link), "inter_domain_link": _link(p.inter_domain_link)}}
    if p.nodes > 1:
        d["nodes"] = p.nodes
    if p.network:
        d["network"] = {"kind": p.network.kind, "bandwidth_per_gpu": _bw(p.network.bandwidth_bytes_per_s),
                        "latency": _us(p.network.latency_s)}
    omitted = p.defaulted if omit_defaulted else {}
    omit_tiers, omit_keys = omitted.get("collectives", ()), omitted.get("kernels", ())
    d["collectives"] = {tier: {name: _protocol(pp) for name, pp in protos.items()}
                        for tier, protos in p.collectives.items() if tier not in omit_tiers}
    if not d["collectives"]:
        del d["collectives"]
    e = p.efficiency
    d["efficiency"] = {"matmul": round(e.matmul, 6), "matmul_fp8": round(e.matmul_fp8, 6), "memory": round(e.memory, 6),
                       "runtime_reserve": f"{e.runtime_reserve_bytes / MiB:.6g} MiB",
                       "step_overhead": _us(e.step_overhead_s), "kernel_overhead": _us(e.kernel_overhead_s),
                       "attention_decode_memory": round(e.attention_decode_memory, 6),
                       "decode_sequence_overhead": _us(e.decode_sequence_overhead_s),
                       "attention_prefill_matmul": round(e.attention_prefill_matmul, 6),
                       "matmul_epilogue_k": round(e.matmul_epilogue_k, 6),
                       "matmul_epilogue_k_fp8": round(e.matmul_epilogue_k_fp8, 6),
                       "moe_expert_fixed_tokens": round(e.moe_expert_fixed_tokens, 6),
                       "sustained_clock": round(e.sustained_clock, 6),
                       "pipeline_sequence_overhead": _us(e.pipeline_sequence_overhead_s)}
    if e.matmul_fp4 is not None:
        d["efficiency"]["matmul_fp4"] = round(e.matmul_fp4, 6)
    for key in omit_keys:  # taken from hardware_profiles/defaults/kernels.yaml: read from there again
        d["efficiency"].pop(key, None)
    if e.attention_decode_memory_fused is not None:
        d["efficiency"]["attention_decode_memory_fused"] = round(e.attention_decode_memory_fused, 6)
    if e.attention_prefill_matmul_native is not None:  # stated, even when equal: it marks a native kernel
        d["efficiency"]["attention_prefill_matmul_native"] = round(e.attention_prefill_matmul_native, 6)
    if p.price_per_gpu_hour:
        d["price_per_gpu_hour"] = p.price_per_gpu_hour
    d["source"] = dict(p.sources)
    if p.kernel_table is not None:
        d["kernel_table"] = _kernel_table(p.kernel_table)
    return d


def _kernel_table(t: KernelTable) -> dict[str, Any]:
    return {"source": t.source, "kernel_fixed_time": _us(t.kernel_fixed_time_s),
            "layer_overhead": {mode: _us(v) for mode, v in t.layer_overhead_s.items()},
            "matmul": [{"n": c.n, "k": c.k, "dtype": c.dtype, "tokens": list(c.tokens),
                        "time": [_us(x) for x in c.time_s]} for c in t.matmul],
            "attention": [{"mode": c.mode, "heads": c.heads, "kv_heads": c.kv_heads, "head_dim": c.head_dim,
                           "batch": c.batch, "dtype": c.dtype, "length": list(c.lengths),
                           "time": [_us(x) for x in c.time_s]} for c in t.attention]}


def profile_to_yaml(p: HardwareProfile, *, name: str | None = None, omit_defaulted: bool = False) -> str:
    import yaml

    return yaml.safe_dump(profile_to_dict(p, name=name, omit_defaulted=omit_defaulted), sort_keys=False, width=110,
                          allow_unicode=True)

"""Serving inputs refused before any work, shared by `recommend` (tpplan.planner.plan) and `sweep`
(tpplan.planner.sweep), so that a grid never plans what a single plan refuses. Each check raises TpplanError with one
line naming the input, the problem and the fix."""

from __future__ import annotations

import math

from tpplan.errors import TpplanError
from tpplan.hardware.profile import HardwareProfile
from tpplan.models.engines import check_engine_on_gpu
from tpplan.models.spec import ModelSpec
from tpplan.planner.workload import MAX_BATCH, WORKLOAD_DEFAULTS

D = WORKLOAD_DEFAULTS


def check_moe_imbalance_value(moe_imbalance: float) -> None:
    """A finite imbalance of at least 1.0 (False comparisons let NaN through a plain range check)."""
    if not (math.isfinite(moe_imbalance) and moe_imbalance >= 1):
        raise TpplanError(f"--moe-imbalance {moe_imbalance} must be a finite number of at least 1.0 (1.0 = experts "
                          f"perfectly balanced)")


def check_batch_value(batch: int, *, option: str = "--batch") -> None:
    if batch < 1:
        raise TpplanError(f"{option} {batch} must be at least 1")
    if batch > MAX_BATCH:
        raise TpplanError(f"{option} {batch} exceeds {MAX_BATCH:,} sequences per replica, beyond any engine's "
                          f"scheduler; leave {option} out for the largest batch that fits")


def check_moe_options(specs: ModelSpec | list[ModelSpec], *, moe_imbalance: float, all2all_backend: str,
                      gpus: int) -> None:
    """MoE-only options where no model (`specs`: one, or a sweep's) has routed experts, and an imbalance no
    expert-parallel group of `gpus` GPUs can reach (the busiest of n ranks holds at most all the routed tokens: n x
    the mean). Only values the user changed."""
    specs = [specs] if isinstance(specs, ModelSpec) else specs
    dense = None if any(s.is_moe for s in specs) else (f"{specs[0].name} has no routed experts" if len(specs) == 1
                                                       else "none of --models has routed experts")
    if moe_imbalance != D.moe_imbalance and dense:
        raise TpplanError(f"--moe-imbalance {moe_imbalance:g} applies to MoE models (the busiest expert-parallel "
                          f"rank's routed tokens / mean); {dense}; leave --moe-imbalance out")
    if all2all_backend != D.all2all_backend and dense:
        raise TpplanError(f"--all2all-backend {all2all_backend} applies to MoE models (how routed tokens move under "
                          f"expert parallelism); {dense}; leave --all2all-backend out")
    if moe_imbalance != D.moe_imbalance and moe_imbalance > gpus:
        fix = "leave --moe-imbalance out (one GPU runs no expert parallelism)" if gpus == 1 else \
            f"give a value from 1.0 to {gpus}"
        raise TpplanError(f"--moe-imbalance {moe_imbalance:g} exceeds {gpus}: on {gpus} GPU{'s' * (gpus != 1)} no "
                          f"expert-parallel rank can hold more than {gpus}x the mean of the routed tokens (all of "
                          f"them); {fix}")


def check_serving_dtypes(profile: HardwareProfile, *, engine: str, dtype: str, kv_cache_dtype: str) -> None:
    """The weight and KV formats (resolved: `dtype` is the checkpoint's when --dtype auto) the engine can serve on
    the profile's GPU: an fp32 KV cache only beside fp32 weights, TensorRT-LLM on NVIDIA GPUs and FP8 where the
    GPU computes it (tpplan.models.engines.check_engine_on_gpu)."""
    if kv_cache_dtype == "fp32" and dtype != "fp32":
        raise TpplanError(f"--kv-cache-dtype fp32 with {dtype} weights: engines keep the KV cache in the model's "
                          f"dtype or in FP8 (vLLM --kv-cache-dtype auto / fp8, SGLang the same, TensorRT-LLM "
                          f"kv_cache_config.dtype auto / fp8), so an fp32 cache needs --dtype fp32; leave "
                          f"--kv-cache-dtype out for a 16-bit cache")
    check_engine_on_gpu(engine, gpu_name=profile.gpu.name, profile_name=profile.name,
                        gpu_has_fp8="fp8" in profile.gpu.peak_flops_per_s, dtype=dtype, kv_cache_dtype=kv_cache_dtype,
                        link_kind=profile.intra_domain_link.kind, gpu_has_fp4="fp4" in profile.gpu.peak_flops_per_s)


BACKEND_VENDOR = (("mori", "AMD"), ("deepep", "NVIDIA"), ("pplx", "NVIDIA"), ("flashinfer", "NVIDIA"))
"""MoE all-to-all backends (by name prefix) that run on one vendor's GPUs only: MoRI is AMD's ROCm EP library
(github.com/ROCm/mori); DeepEP and pplx-kernels are built on NVSHMEM for NVIDIA GPUs (deepseek-ai/DeepEP README,
perplexityai/pplx-kernels README) and FlashInfer's all-to-all kernels on CUDA."""


def check_backend_on_gpu(profile: HardwareProfile, *, engine: str, backend: str) -> None:
    """One error line for an MoE all-to-all backend (--all2all-backend / --moe-a2a-backend) that does not run on the
    profile's GPU vendor (`BACKEND_VENDOR`)."""
    from tpplan.models.engines import AMD_NAME_MARKS

    vendor = next((v for prefix, v in BACKEND_VENDOR if backend.startswith(prefix)), None)
    if vendor is None:
        return
    amd = any(mark in profile.gpu.name.upper() for mark in AMD_NAME_MARKS) or profile.intra_domain_link.kind == "xgmi"
    if (vendor == "AMD") != amd:
        from tpplan.models.moe_backends import ALL2ALL_BACKENDS

        here = "AMD" if amd else "NVIDIA"
        fits = [b for b in ALL2ALL_BACKENDS.get(engine, {})
                if next((v for prefix, v in BACKEND_VENDOR if b.startswith(prefix)), here) == here]
        raise TpplanError(f"--all2all-backend {backend}: it runs on {vendor} GPUs only, and profile {profile.name!r} "
                          f"has {profile.gpu.name}; leave it out (auto: {engine}'s default) or choose one for "
                          f"{here} GPUs: {', '.join(fits)}")

"""Which kind of device a run measured, which built-in profile describes it, and whether a profile may be
calibrated from it.

A kind is the exact model and form factor: an H100 SXM (NVLink, 3.35 TB/s), an H100 PCIe (2.0 TB/s) and an
H100 NVL (94 GB, 3.9 TB/s) are three kinds, never one by substring. Names are what
`torch.cuda.get_device_name()` reports (nvidia-smi's product name, e.g. "NVIDIA H100 80GB HBM3" for the SXM
part: shared/reference/gpu/README.md) and what the built-in profiles' `gpu.name` says.
"""

from __future__ import annotations

import re

from tpplan.errors import MeasurementError

CPU_KIND = "cpu"

KIND_RULES: tuple[tuple[str, str], ...] = (
    # (regex on the lower-cased name, kind); the first match wins, so specific patterns come first
    (r"\bcpu\b", CPU_KIND),
    (r"gh200.*(144|hbm3e)", "gh200-144gb"),
    (r"gh200", "gh200"),  # "GH200 120GB" and "GH200 480GB" (nvidia-smi names): 96 GB HBM3 with 120 / 480 GB LPDDR5X
    (r"gb200", "gb200"),
    (r"\bb200\b", "b200"),
    (r"h200 nvl", "h200-nvl"),
    (r"\bh200\b", "h200-sxm"),
    (r"h100.*\bnvl\b", "h100-nvl"),
    (r"h100.*\bpcie\b", "h100-pcie"),
    (r"h100.*(\bsxm|hbm3\b)", "h100-sxm"),
    (r"a100.*sxm4?.*80\s?gb|a100.*80\s?gb.*sxm", "a100-sxm-80gb"),
    (r"a100.*sxm4?.*40\s?gb|a100.*40\s?gb.*sxm", "a100-sxm-40gb"),
    (r"a100.*80\s?gb.*pcie|a100.*pcie.*80\s?gb", "a100-pcie-80gb"),
    (r"\bl40s\b", "l40s"),
    (r"\bl4\b", "l4"),
    (r"\ba10g\b", "a10g"),
    (r"rtx 4090", "rtx-4090"),
    (r"rtx pro 6000.*server", "rtx-pro-6000-server"),
    (r"mi300x", "mi300x"),
)

PROFILE_FOR_KIND: dict[str, str] = {
    "h100-sxm": "dgx-h100", "h100-pcie": "h100-pcie", "h100-nvl": "h100-nvl", "h200-sxm": "hgx-h200",
    "b200": "dgx-b200", "gb200": "gb200-nvl72", "a100-sxm-80gb": "dgx-a100-80g", "a100-sxm-40gb": "dgx-a100-40g",
    "a100-pcie-80gb": "a100-pcie", "l40s": "l40s-pcie", "l4": "l4", "a10g": "a10g", "rtx-4090": "rtx-4090",
    "mi300x": "mi300x", "gh200": "gh200-96gb", "gh200-144gb": "gh200-144gb",
    "rtx-pro-6000-server": "rtx-pro-6000-server", CPU_KIND: "cpu-gloo",
}
"""The single-node built-in profile of each kind (a test checks every built-in profile's GPU has its kind)."""


def device_kind(name: str) -> str | None:
    """The kind of a device or profile GPU name; None when no rule knows it."""
    low = name.lower()
    return next((kind for pattern, kind in KIND_RULES if re.search(pattern, low)), None)


def measured_kind(*, backend: str, device_names: list[str], on_gpu: bool) -> str | None:
    """The kind a run measured: CPU when its tensors stayed on the CPU (gloo), else its first GPU's."""
    if not on_gpu:
        return CPU_KIND
    return device_kind(device_names[0]) if device_names else None


def default_profile_for(kind: str | None, device_name: str) -> str:
    """The built-in profile for a measured kind; an unknown GPU is an error that names --hardware."""
    if kind is None or kind not in PROFILE_FOR_KIND:
        raise MeasurementError(f"GPU {device_name!r} matches no built-in profile; pass --hardware NAME (see "
                               f"`tpplan profiles list`) or --hardware FILE.yaml describing this GPU")
    return PROFILE_FOR_KIND[kind]


def check_calibration_target(*, measured: str | None, profile_gpu: str, profile_name: str, force: bool) -> None:
    """A profile is calibrated only from a run on its own kind of device (DESIGN.md §5). A CPU run calibrates
    a CPU profile only, even with --force; a GPU run of another kind needs --force."""
    target = device_kind(profile_gpu)
    if measured == target and measured is not None:
        return
    what = "a CPU" if measured == CPU_KIND else f"a {measured or 'unrecognised'} GPU"
    if measured == CPU_KIND or target == CPU_KIND:
        raise MeasurementError(f"--hardware {profile_name} describes {profile_gpu!r} but this run measured {what}; "
                               f"a CPU run calibrates a CPU profile only: use --hardware cpu-gloo, or drop --out")
    if not force:
        raise MeasurementError(f"--hardware {profile_name} describes {profile_gpu!r} ({target or 'unknown kind'}) "
                               f"but this run measured {what}; nothing written: calibrate the profile of the "
                               f"measured GPU, or pass --force to write it anyway")

"""Warnings for profiles that validate but are probably wrong: the classic datasheet mistakes.

- a link bandwidth that is the bidirectional marketing figure (NVLink4 "900 GB/s" = 2 x 450 GB/s per direction);
- sparse TFLOP/s (datasheets print "with sparsity" = 2 x dense);
- a bare number for a time, which the format reads as microseconds (`step_overhead: 0.5` is 0.5 us, not 0.5 ms);
- a unit slip: memory, memory bandwidth or a peak 10x or more away from the built-in profile of the same GPU model
  (`3350 TB/s` for 3350 GB/s), and, for any GPU, an HBM bandwidth outside what a memory system delivers;
- a kernel time (kernel_overhead, decode_sequence_overhead, pipeline_sequence_overhead) 10x or more away from
  tpplan's default in hardware_profiles/defaults/kernels.yaml (`100 ms` for 0.1 us);
- a network bandwidth in bits written as bytes (`400 GB/s` for a 400 Gb/s NIC), a network latency in ms, a
  collective busbw far above its tier's link, and a GPU memory written as the datasheet's round GB figure.

The first two compare with the built-in profile of the same GPU model: a value about twice the built-in's
(which are checked against datasheets) is the doubled figure. No hardware numbers live here.
"""

from __future__ import annotations

from typing import Any

from tpplan.hardware.profile import HardwareProfile
from tpplan.units import BITS_PER_BYTE, GB, TB, US, MiB, parse_quantity

DOUBLED_RATIO = 1.9
"""A value >= 1.9 x the built-in's is the 2x (bidirectional or sparse) figure; real generations differ by less
within one GPU model."""
_TIME_KEYS = ("latency", "base_latency", "hop_latency", "step_overhead", "kernel_overhead",
              "pipeline_sequence_overhead", "decode_sequence_overhead")
UNIT_SLIP_RATIO = 10.0
"""A value 10x or more above or below the built-in's is a unit slip (GB vs TB, TFLOP vs GFLOP), not another SKU."""
HBM_BANDWIDTH_RANGE = (10e9, 50e12)
"""Bytes/s an accelerator's memory system delivers: from a few tens of GB/s (LPDDR edge parts) to the ~8 TB/s of
B200's HBM3e (NVIDIA datasheet), with room for two generations; outside it, the unit is wrong."""


def _model_token(gpu_name: str) -> str:
    """'H100 SXM5 80GB' -> 'H100', 'RTX PRO 6000 Blackwell' -> '6000': the first word with a digit, i.e. the GPU
    model without brand, form factor or memory ('RTX 4090' and 'RTX PRO 6000' are different GPUs)."""
    words = gpu_name.upper().split()
    return next((w for w in words if any(c.isdigit() for c in w)), words[0] if words else "")


def _reference(profile: HardwareProfile, builtins: list[HardwareProfile]) -> HardwareProfile | None:
    exact = [b for b in builtins if b.gpu.name == profile.gpu.name and b.name != profile.name]
    same = [b for b in builtins if _model_token(b.gpu.name) == _model_token(profile.gpu.name)
            and b.name != profile.name]
    return (exact or same or [None])[0]


def _bare_times(d: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], float]]:
    out = []
    if isinstance(d, dict):
        for k, v in d.items():
            if k in _TIME_KEYS and isinstance(v, int | float) and not isinstance(v, bool) and v != 0:
                out.append(((*path, str(k)), float(v)))
            else:
                out += _bare_times(v, (*path, str(k)))
    return out


def lint(profile: HardwareProfile, data: dict[str, Any], builtins: list[HardwareProfile], *,
         kernel_defaults: tuple[dict[str, Any], str] | None = None) -> list[tuple[tuple, str]]:
    """(key path, warning) pairs; empty when nothing looks wrong. `kernel_defaults`: (the defaults file's kernel
    constants, its name) to compare stated kernel times with."""
    out: list[tuple[tuple, str]] = []
    ref = _reference(profile, builtins)
    if ref is not None:
        mine, theirs = profile.intra_domain_link.bandwidth_bytes_per_s, ref.intra_domain_link.bandwidth_bytes_per_s
        nvlink = ("nvlink", "nvswitch")
        if (profile.intra_domain_link.kind in nvlink and ref.intra_domain_link.kind in nvlink
                and mine >= DOUBLED_RATIO * theirs):
            out.append((("node", "intra_domain_link", "bandwidth"),
                        f"{data['node']['intra_domain_link']['bandwidth']} looks like the bidirectional figure "
                        f"({mine / theirs:.1f} x built-in {ref.name}'s); profiles take one direction per GPU"))
        for dtype, flops in profile.gpu.peak_flops_per_s.items():
            dense = ref.gpu.peak_flops_per_s.get(dtype)
            if dense and flops >= DOUBLED_RATIO * dense:
                out.append((("gpu", "peak_flops", dtype),
                            f"{data['gpu']['peak_flops'][dtype]} looks like the sparse figure ({flops / dense:.1f} x "
                            f"built-in {ref.name}'s dense); datasheets print 'with sparsity' = 2 x dense"))
    if ref is not None:
        pairs = [(("gpu", "memory"), profile.gpu.memory_bytes, ref.gpu.memory_bytes),
                 (("gpu", "memory_bandwidth"), profile.gpu.memory_bandwidth_bytes_per_s,
                  ref.gpu.memory_bandwidth_bytes_per_s)]
        pairs += [(("gpu", "peak_flops", d), f, ref.gpu.peak_flops_per_s[d])
                  for d, f in profile.gpu.peak_flops_per_s.items() if d in ref.gpu.peak_flops_per_s]
        for path, mine, theirs in pairs:
            ratio = mine / theirs
            if ratio >= UNIT_SLIP_RATIO or ratio <= 1 / UNIT_SLIP_RATIO:
                out.append((path, f"{_raw(data, path)} is {ratio:.3g} x built-in {ref.name}'s; check the unit"))
    low, high = HBM_BANDWIDTH_RANGE
    bandwidth = profile.gpu.memory_bandwidth_bytes_per_s
    if not low <= bandwidth <= high and not any(p == ("gpu", "memory_bandwidth") for p, _ in out):
        out.append((("gpu", "memory_bandwidth"), f"{_raw(data, ('gpu', 'memory_bandwidth'))} is outside what a GPU's "
                                                 f"memory delivers (10 GB/s to 50 TB/s); check the unit"))
    if kernel_defaults is not None:
        out += _kernel_time_slips(data, *kernel_defaults)
    out += _network_slips(profile, data) + _busbw_above_link(profile, data) + _rounded_memory(profile, data, ref)
    for path, value in _bare_times(data):
        seconds = parse_quantity(value, kind="time", default_unit="us")
        out.append((path, f"bare number {value:g} is read as {value:g} us ({seconds:.1e} s); write it with a unit, "
                          f"e.g. '{value:g} us' or '{value:g} ms'"))
    return out


NIC_BANDWIDTH_MAX = 200 * GB
"""Bytes/s per GPU above which a network bandwidth is a bits-for-bytes slip: today's fastest NICs are 800 Gb/s
(ConnectX-8, 100 GB/s) per GPU; twice that leaves room for a generation. `400 GB/s` is a 400 Gb/s NIC misspelled."""
NETWORK_LATENCY_MAX = 100 * US
"""Seconds: InfiniBand and RoCE latencies are 1-10 us; a stated 2.7 ms is 2.7 us in the wrong unit."""
BUSBW_OVER_LINK = 2.0
"""A collective's bus bandwidth this many times its tier's link bandwidth is a unit slip: busbw is at most about
the per-direction link rate (NVLink SHARP's in-switch reduction reaches ~1.1x on H100, nccl-tests)."""


def _network_slips(profile: HardwareProfile, data: dict[str, Any]) -> list[tuple[tuple, str]]:
    """A network bandwidth in Gb/s written as GB/s, or a latency in ms written for us."""
    net, out = profile.network, []
    if net is None:
        return out
    if net.bandwidth_bytes_per_s > NIC_BANDWIDTH_MAX:
        tbit = net.bandwidth_bytes_per_s * BITS_PER_BYTE / TB
        out.append((("network", "bandwidth_per_gpu"),
                    f"{_raw(data, ('network', 'bandwidth_per_gpu'))} per GPU is {tbit:.3g} Tb/s; NICs are 400-800 "
                    f"Gb/s (50-100 GB/s): if it is a NIC's Gb/s, write it as '... Gb/s'"))
    if net.latency_s > NETWORK_LATENCY_MAX:
        out.append((("network", "latency"), f"{_raw(data, ('network', 'latency'))} is {net.latency_s / US:.3g} us; "
                                            f"InfiniBand and RoCE take 1-10 us: check the unit"))
    return out


def _busbw_above_link(profile: HardwareProfile, data: dict[str, Any]) -> list[tuple[tuple, str]]:
    """A stated collective busbw far above the bandwidth of the link its tier runs over."""
    links = {"nvlink": profile.intra_domain_link, "pcie": profile.inter_domain_link, "network": profile.network}
    stated, out = data.get("collectives") or {}, []
    for tier, protocols in stated.items():
        link = links.get(tier)
        if link is None or not isinstance(protocols, dict):
            continue
        for name, p in profile.collectives.get(tier, {}).items():
            if name in protocols and p.busbw_bytes_per_s > BUSBW_OVER_LINK * link.bandwidth_bytes_per_s:
                out.append((("collectives", tier, name, "busbw"),
                            f"{_raw(data, ('collectives', tier, name, 'busbw'))} is "
                            f"{p.busbw_bytes_per_s / link.bandwidth_bytes_per_s:.3g} x the {tier} link's "
                            f"{link.bandwidth_bytes_per_s / GB:.4g} GB/s; a bus bandwidth is at most about the "
                            f"link's: check the unit"))
    return out


ROUNDED_MEMORY_RATIO = (0.90, 0.98)
"""A stated memory this share of the driver's total is the datasheet's round GB figure: 80 GB of an H100's 81559 MiB
is 0.935, 141 GB of an H200's 143771 MiB 0.935, 192 GB of an MI300X's 196288 MiB 0.933."""


def _rounded_memory(profile: HardwareProfile, data: dict[str, Any],
                    ref: HardwareProfile | None) -> list[tuple[tuple, str]]:
    """gpu.memory as a datasheet's round decimal figure ('80 GB' is 74.5 GiB) where the built-in profile of the same
    GPU (same name) holds nvidia-smi's total, at ROUNDED_MEMORY_RATIO of it (0.90-0.98: GB read as GiB's share)."""
    raw = data["gpu"]["memory"]
    if ref is None or ref.gpu.name != profile.gpu.name or not isinstance(raw, str) or \
            not raw.strip().upper().endswith(("GB", "TB")):
        return []  # only the same GPU (not another memory size of the model) tells what the driver reports
    ratio = profile.gpu.memory_bytes / ref.gpu.memory_bytes
    if not ROUNDED_MEMORY_RATIO[0] <= ratio <= ROUNDED_MEMORY_RATIO[1]:
        return []  # the driver's total, or a size picked on purpose
    return [(("gpu", "memory"), f"{raw} is {ratio:.3g} x built-in {ref.name}'s {ref.gpu.memory_bytes / MiB:.0f} MiB "
                                f"(nvidia-smi's total); a datasheet's round GB figure is not what the GPU reports: "
                                f"write nvidia-smi's MiB")]


_KERNEL_TIME_KEYS = ("kernel_overhead", "decode_sequence_overhead", "pipeline_sequence_overhead")
"""Efficiency times with a value in hardware_profiles/defaults/kernels.yaml to compare a stated one with."""


def _kernel_time_slips(data: dict[str, Any], defaults: dict[str, Any], file: str) -> list[tuple[tuple, str]]:
    """A kernel time stated 10x or more above or below tpplan's default (`defaults`, from `file`): ms for us, us for
    ns. A bare number is left to the bare-number warning."""
    e, out = data.get("efficiency") or {}, []
    for key in _KERNEL_TIME_KEYS:
        value = e.get(key) if isinstance(e, dict) else None
        if not isinstance(value, str) or not defaults.get(key):
            continue
        mine = parse_quantity(value, kind="time", default_unit="us")
        theirs = parse_quantity(defaults[key], kind="time", default_unit="us")
        ratio = mine / theirs if mine and theirs else 1.0
        if ratio >= UNIT_SLIP_RATIO or ratio <= 1 / UNIT_SLIP_RATIO:
            out.append((("efficiency", key), f"{value} is {ratio:.3g} x tpplan's default {defaults[key]} "
                                             f"({file}); check the unit"))
    return out


def _raw(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value as written in the YAML at `path`."""
    for key in path:
        data = data[key]
    return data

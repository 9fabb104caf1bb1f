"""`--hardware auto`: a profile for the GPUs of this machine, read through NVML, else nvidia-smi (no torch, no CUDA
context).

NVML (the library under nvidia-smi, through its Python binding `pynvml` from the nvidia-ml-py package, when that
imports) gives the model (nvmlDeviceGetName), memory (nvmlDeviceGetMemoryInfo().total), count
(nvmlDeviceGetCount) and the NVLink topology: for each link up to NVML_NVLINK_MAX_LINKS, nvmlDeviceGetNvLinkState
says whether it is active and nvmlDeviceGetNvLinkRemotePciInfo names the PCI bus id at its far end, a GPU of this
machine or else an NVSwitch (NCCL's topology detection tells the two apart the same way). API reference:
https://docs.nvidia.com/deploy/nvml-api/group__nvmlDeviceQueries.html and
https://docs.nvidia.com/deploy/nvml-api/group__NvLink.html. The NVML module is a parameter, so tests pass a fake.

Without the binding, or when NVML does not initialise, nvidia-smi gives the same facts:
`--query-gpu=name,memory.total --format=csv,noheader,nounits` and `topo -m` (`NV<n>` between two GPUs = n NVLink
links). Peak FLOP/s, HBM and link bandwidths and efficiencies come from the built-in profile of the same GPU model
and form factor; what was detected (memory, GPUs per node, NVLink domain) replaces the built-in's values.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from collections.abc import Callable
from types import ModuleType
from typing import Any

from tpplan.errors import ProfileError
from tpplan.hardware.profile import HardwareProfile
from tpplan.records import record
from tpplan.units import MiB

QUERY = ["--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]
TOPOLOGY = ["topo", "-m"]
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# nvidia-smi's product name -> built-in profile: (tokens that must appear, tokens that must not), most specific
# first. Names as nvidia-smi prints them, e.g. "NVIDIA H100 80GB HBM3" (SXM), "NVIDIA H100 PCIe", "NVIDIA H100 NVL",
# "NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe".
GPU_PROFILES: tuple[tuple[frozenset[str], frozenset[str], str], ...] = (
    (frozenset({"H100", "PCIE"}), frozenset(), "h100-pcie"),
    (frozenset({"H100", "NVL"}), frozenset(), "h100-nvl"),
    (frozenset({"H100"}), frozenset({"PCIE", "NVL"}), "dgx-h100"),
    (frozenset({"H200"}), frozenset({"NVL"}), "hgx-h200"),
    (frozenset({"B200"}), frozenset(), "dgx-b200"),
    (frozenset({"A100", "SXM4", "80GB"}), frozenset(), "dgx-a100-80g"),
    (frozenset({"A100", "SXM4", "40GB"}), frozenset(), "dgx-a100-40g"),
    (frozenset({"A100", "PCIE"}), frozenset(), "a100-pcie"),
    (frozenset({"L40S"}), frozenset(), "l40s-pcie"),
    (frozenset({"L4"}), frozenset(), "l4"),
    (frozenset({"A10G"}), frozenset(), "a10g"),
    (frozenset({"RTX", "4090"}), frozenset(), "rtx-4090"),
    (frozenset({"RTX", "PRO", "6000", "SERVER"}), frozenset(), "rtx-pro-6000-server"),
    (frozenset({"GH200", "HBM3E"}), frozenset(), "gh200-144gb"),
    (frozenset({"GH200", "144G"}), frozenset(), "gh200-144gb"),
    (frozenset({"GH200"}), frozenset(), "gh200-quad"),  # "GH200 120GB" / "GH200 480GB": 96 GB HBM3; NVLink peers
)


def _tokens(name: str) -> set[str]:
    return {t for t in re.split(r"[\s\-_]+", name.upper()) if t}


def builtin_for(gpu_name: str) -> str:
    """The built-in profile for an nvidia-smi product name; ProfileError for a GPU tpplan has no profile of."""
    tokens = _tokens(gpu_name)
    for need, forbid, profile in GPU_PROFILES:
        if need <= tokens and not forbid & tokens:
            return profile
    raise ProfileError([f"--hardware auto: no built-in profile for GPU {gpu_name!r}; pass --hardware with a profile "
                        f"name or YAML file (see `tpplan profiles list`)"])


def parse_gpus(text: str) -> list[tuple[str, int]]:
    """(name, memory bytes) per GPU from `nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits`."""
    gpus = []
    for line in text.strip().splitlines():
        name, _, mib = line.rpartition(",")
        if not name or not mib.strip().isdigit():
            raise ProfileError([f"--hardware auto: cannot read nvidia-smi line {line!r}; expected 'name, MiB'"])
        gpus.append((name.strip(), int(mib.strip()) * MiB))
    return gpus


def parse_nvlink_domain(text: str, gpus: int) -> int:
    """GPUs per NVLink domain from `nvidia-smi topo -m` (the rule of `domain_from_peers`)."""
    peers = []
    for line in _ANSI.sub("", text).splitlines():
        cells = line.split()
        if cells and re.fullmatch(r"GPU\d+", cells[0]) and line.startswith("GPU"):  # rows; the header is indented
            peers.append(sum(1 for c in cells[1:1 + gpus] if re.fullmatch(r"NV\d+", c)))
    return domain_from_peers(peers, gpus)


def domain_from_peers(peers: list[int], gpus: int) -> int:
    """GPUs per NVLink domain: 1 + the fewest NVLink peers any GPU has, when that divides the GPU count
    (all-to-all NVSwitch: n; bridged pairs: 2); 1 when a GPU has no NVLink peer or the list is incomplete."""
    if len(peers) != gpus or gpus == 0:
        return 1
    domain = 1 + min(peers)
    return domain if gpus % domain == 0 else 1


@record
class GpuInventory:
    """The local GPUs as NVML or nvidia-smi reports them, in the order of their indices."""

    names: tuple[str, ...]
    memory_bytes: tuple[int, ...]
    """Total framebuffer per GPU, bytes (NVML's nvmlMemory_t.total; nvidia-smi's memory.total in MiB)."""
    nvlink_domain_size: int
    source: str
    """"NVML" or "nvidia-smi"."""


def _text(value: bytes | str) -> str:
    """NVML strings: bytes from older pynvml releases, str from newer ones."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _bus_id(value: bytes | str) -> str:
    """A PCI bus id in one spelling: NVML writes a 32-bit domain ("00000000:18:00.0"), others a 16-bit one."""
    text = _text(value).strip().lower()
    domain, _, rest = text.partition(":")
    try:
        return f"{int(domain, 16):04x}:{rest}" if rest.count(":") == 1 else text
    except ValueError:
        return text


def _active_link_ends(nvml: Any, handle: Any) -> list[str]:
    """Bus ids at the far end of the device's active NVLinks. A link number the device does not have raises
    NVMLError (NOT_SUPPORTED / INVALID_ARGUMENT): it counts as inactive."""
    ends = []
    for link in range(getattr(nvml, "NVML_NVLINK_MAX_LINKS", 18)):
        try:
            if nvml.nvmlDeviceGetNvLinkState(handle, link) != nvml.NVML_FEATURE_ENABLED:
                continue
            ends.append(_bus_id(nvml.nvmlDeviceGetNvLinkRemotePciInfo(handle, link).busId))
        except nvml.NVMLError:
            continue
    return ends


def nvlink_peers(link_ends: list[list[str]], bus_ids: list[str]) -> list[int]:
    """NVLink peers per GPU: GPUs its links reach directly, plus, when a link ends at a device that is not one of
    the GPUs (an NVSwitch), every other GPU attached to a switch."""
    own = set(bus_ids)
    on_switch = {i for i, ends in enumerate(link_ends) if any(e not in own for e in ends)}
    peers = []
    for i, ends in enumerate(link_ends):
        direct = {bus_ids.index(e) for e in ends if e in own} - {i}
        peers.append(len(direct | (on_switch - {i} if i in on_switch else set())))
    return peers


def nvml_inventory(nvml: Any) -> GpuInventory:
    """Query the GPUs through an NVML binding (the `pynvml` module, or a fake with the same functions)."""
    nvml.nvmlInit()
    try:
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        names = tuple(_text(nvml.nvmlDeviceGetName(h)).strip() for h in handles)
        memory = tuple(int(nvml.nvmlDeviceGetMemoryInfo(h).total) for h in handles)
        bus_ids = [_bus_id(nvml.nvmlDeviceGetPciInfo(h).busId) for h in handles]
        peers = nvlink_peers([_active_link_ends(nvml, h) for h in handles], bus_ids)
    finally:
        nvml.nvmlShutdown()
    return GpuInventory(names=names, memory_bytes=memory, nvlink_domain_size=domain_from_peers(peers, len(names)),
                        source="NVML")


def smi_inventory(run: Callable[[list[str]], str]) -> GpuInventory:
    """Query the GPUs through nvidia-smi; `run(args)` returns its stdout (tests pass a fake)."""
    gpus = parse_gpus(run(QUERY))
    domain = parse_nvlink_domain(run(TOPOLOGY), len(gpus)) if gpus else 1
    return GpuInventory(names=tuple(n for n, _ in gpus), memory_bytes=tuple(m for _, m in gpus),
                        nvlink_domain_size=domain, source="nvidia-smi")


def _import_nvml() -> ModuleType | None:
    try:
        import pynvml  # nvidia-ml-py; optional, never required
    except ImportError:
        return None
    return pynvml


_FIND_NVML = object()


def detect_gpus(*, nvml: Any = _FIND_NVML, run: Callable[[list[str]], str] | None = None) -> GpuInventory:
    """NVML when a binding imports and NVML initialises, else nvidia-smi. `nvml=None` skips NVML."""
    api = _import_nvml() if nvml is _FIND_NVML else nvml
    nvml_problem = ("and NVML is not used: its Python binding is not installed, "
                    "pip install 'tpplan[nvml]' (nvidia-ml-py)")
    if api is not None:
        try:
            return nvml_inventory(api)
        except api.NVMLError as exc:
            nvml_problem = f"and NVML failed: {exc}"
    try:
        return smi_inventory(run or _run)
    except ProfileError as exc:
        raise ProfileError([f"{p}; {nvml_problem}" for p in exc.problems]) from exc


def _run(args: list[str]) -> str:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        raise ProfileError(["--hardware auto needs nvidia-smi on PATH (NVIDIA driver); on other machines pass "
                            "--hardware with a profile name or YAML file"])
    try:
        return subprocess.run([exe, *args], capture_output=True, text=True, check=True, timeout=30).stdout
    except (subprocess.SubprocessError, OSError) as exc:
        raise ProfileError([f"--hardware auto: `nvidia-smi {' '.join(args)}` failed ({exc}); pass --hardware "
                            f"instead"]) from exc


def detect_profile(*, nvml: Any = _FIND_NVML, run: Callable[[list[str]], str] | None = None) -> HardwareProfile:
    """A profile for this machine's GPUs (see the module docstring); `nvml` and `run` as in `detect_gpus`."""
    from tpplan.hardware.loader import load_builtin

    found = detect_gpus(nvml=nvml, run=run)
    if not found.names:
        raise ProfileError([f"--hardware auto: {found.source} lists no GPU; pass --hardware instead"])
    names = set(found.names)
    if len(names) > 1:
        raise ProfileError([f"--hardware auto: mixed GPUs ({', '.join(sorted(names))}); pass --hardware"])
    name, count, domain = found.names[0], len(found.names), found.nvlink_domain_size
    base = load_builtin(builtin_for(name))
    intra = base.intra_domain_link if domain > 1 else base.inter_domain_link
    return dataclasses.replace(
        base, name=f"auto-{base.name}", description=f"{count} x {name} detected by {found.source} (from {base.name})",
        gpu=dataclasses.replace(base.gpu, memory_bytes=min(found.memory_bytes)), gpus_per_node=count,
        nvlink_domain_size=domain, intra_domain_link=intra, nodes=1, origin=f"{found.source} + built-in:{base.name}")

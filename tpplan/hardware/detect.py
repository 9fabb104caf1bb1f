"""`--hardware auto`: a profile for the GPUs of this machine, read from nvidia-smi (no torch, no CUDA context).

nvidia-smi gives the model, memory and count (`--query-gpu=name,memory.total --format=csv,noheader,nounits`) and
the NVLink topology (`topo -m`: `NV<n>` between two GPUs = n NVLink links). Peak FLOP/s, HBM and link bandwidths
and efficiencies come from the built-in profile of the same GPU model and form factor; what nvidia-smi measured
(memory, GPUs per node, NVLink domain) replaces the built-in's values.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess

from tpplan.errors import ProfileError
from tpplan.hardware.profile import HardwareProfile
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
    """GPUs per NVLink domain from `nvidia-smi topo -m`: 1 + the fewest NVLink peers any GPU has, when that
    divides the GPU count (all-to-all NVSwitch: n; bridged pairs: 2); 1 when a GPU has no NVLink peer."""
    peers = []
    for line in _ANSI.sub("", text).splitlines():
        cells = line.split()
        if cells and re.fullmatch(r"GPU\d+", cells[0]) and line.startswith("GPU"):  # rows; the header is indented
            peers.append(sum(1 for c in cells[1:1 + gpus] if re.fullmatch(r"NV\d+", c)))
    if len(peers) != gpus or gpus == 0:
        return 1
    domain = 1 + min(peers)
    return domain if gpus % domain == 0 else 1


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


def detect_profile() -> HardwareProfile:
    """A profile for this machine's GPUs (see the module docstring)."""
    from tpplan.hardware.loader import load_builtin

    gpus = parse_gpus(_run(QUERY))
    if not gpus:
        raise ProfileError(["--hardware auto: nvidia-smi lists no GPU; pass --hardware instead"])
    names = {n for n, _ in gpus}
    if len(names) > 1:
        raise ProfileError([f"--hardware auto: mixed GPUs ({', '.join(sorted(names))}); pass --hardware"])
    name, memory = gpus[0][0], min(m for _, m in gpus)
    base = load_builtin(builtin_for(name))
    domain = parse_nvlink_domain(_run(TOPOLOGY), len(gpus))
    intra = base.intra_domain_link if domain > 1 else base.inter_domain_link
    return dataclasses.replace(
        base, name=f"auto-{base.name}", description=f"{len(gpus)} x {name} detected by nvidia-smi (from {base.name})",
        gpu=dataclasses.replace(base.gpu, memory_bytes=memory), gpus_per_node=len(gpus), nvlink_domain_size=domain,
        intra_domain_link=intra, nodes=1, origin=f"nvidia-smi + built-in:{base.name}")

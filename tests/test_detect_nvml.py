"""`--hardware auto` through NVML, tested with a fake `pynvml` module (this machine has no NVIDIA driver).

The fake implements the pynvml functions detect.py calls, with their documented behaviour
(https://docs.nvidia.com/deploy/nvml-api/group__NvLink.html): nvmlDeviceGetNvLinkState returns
NVML_FEATURE_ENABLED (1) for an active link and raises NVMLError for a link number the device does not have;
nvmlDeviceGetNvLinkRemotePciInfo(...).busId names the device at the far end. Bus ids below are illustrative.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from test_hardware_cli import H100_SMI, H100_TOPO

from tpplan.errors import ProfileError
from tpplan.hardware import detect
from tpplan.hardware.detect import detect_gpus, detect_profile, nvlink_peers
from tpplan.hardware.loader import load_builtin
from tpplan.units import MiB

H100_MEMORY_BYTES = 81559 * MiB  # nvidia-smi / NVML total of an H100 80GB HBM3 (hardware_profiles/dgx-h100.yaml)
H100_SXM_NVLINKS = 18  # NVLink4 links per H100 SXM5 (NVIDIA H100 datasheet: 18 links, 900 GB/s bidirectional)
GPU_BUS = ["00000000:18:00.0", "00000000:2A:00.0", "00000000:3A:00.0", "00000000:5D:00.0",
           "00000000:9A:00.0", "00000000:AB:00.0", "00000000:BA:00.0", "00000000:DB:00.0"]
SWITCH_BUS = ["00000000:05:00.0", "00000000:06:00.0", "00000000:07:00.0", "00000000:08:00.0"]


class FakeNvmlError(Exception):
    pass


class FakeNvml:
    """The slice of pynvml that detect.py uses; `links[i]` lists the far-end bus id of each active link of GPU i."""

    NVML_FEATURE_ENABLED = 1
    NVML_NVLINK_MAX_LINKS = 18
    NVMLError = FakeNvmlError

    def __init__(self, name: str, bus: list[str], links: list[list[str]], *, as_bytes: bool = False,
                 fail: str | None = None) -> None:
        self.name, self.bus, self.links, self.as_bytes, self.fail = name, bus, links, as_bytes, fail
        self.calls: list[str] = []

    def _out(self, text: str):
        return text.encode() if self.as_bytes else text

    def _call(self, fn: str) -> None:
        self.calls.append(fn)
        if fn == self.fail:
            raise FakeNvmlError(f"{fn}: Driver Not Loaded")

    def nvmlInit(self):
        self._call("nvmlInit")

    def nvmlShutdown(self):
        self._call("nvmlShutdown")

    def nvmlDeviceGetCount(self):
        return len(self.bus)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return self._out(self.name)

    def nvmlDeviceGetMemoryInfo(self, h):
        self._call("nvmlDeviceGetMemoryInfo")
        return SimpleNamespace(total=H100_MEMORY_BYTES, free=H100_MEMORY_BYTES, used=0)

    def nvmlDeviceGetPciInfo(self, h):
        return SimpleNamespace(busId=self._out(self.bus[h]))

    def nvmlDeviceGetNvLinkState(self, h, link):
        if link >= H100_SXM_NVLINKS:
            raise FakeNvmlError("Not Supported")
        return 1 if link < len(self.links[h]) else 0

    def nvmlDeviceGetNvLinkRemotePciInfo(self, h, link):
        return SimpleNamespace(busId=self._out(self.links[h][link]))


def _dgx_h100(**kw) -> FakeNvml:
    # every GPU: 18 links spread over the 4 NVSwitch chips (5 + 4 + 4 + 5 on a DGX H100)
    spread = [SWITCH_BUS[0]] * 5 + [SWITCH_BUS[1]] * 4 + [SWITCH_BUS[2]] * 4 + [SWITCH_BUS[3]] * 5
    return FakeNvml("NVIDIA H100 80GB HBM3", GPU_BUS, [spread] * 8, **kw)


def _nvl_pairs() -> FakeNvml:
    # 4 x H100 NVL, bridged as pairs (0-1, 2-3): each link ends at the partner GPU
    bus = GPU_BUS[:4]
    partner = [bus[1], bus[0], bus[3], bus[2]]
    return FakeNvml("NVIDIA H100 NVL", bus, [[p] * 12 for p in partner])


def test_nvml_reads_an_nvswitch_node_as_one_domain_of_eight():
    nvml = _dgx_h100()
    p = detect_profile(nvml=nvml, run=_no_smi)
    assert p.name == "auto-dgx-h100" and p.origin == "NVML + built-in:dgx-h100"
    assert (p.gpus_per_node, p.nvlink_domain_size, p.nodes) == (8, 8, 1)
    assert p.gpu.memory_bytes == H100_MEMORY_BYTES and p.intra_domain_link == load_builtin("dgx-h100").intra_domain_link
    assert nvml.calls[0] == "nvmlInit" and nvml.calls[-1] == "nvmlShutdown"


def test_nvml_reads_bridged_pairs_as_domains_of_two_and_older_bytes_strings():
    p = detect_profile(nvml=_nvl_pairs(), run=_no_smi)
    assert p.name == "auto-h100-nvl" and (p.gpus_per_node, p.nvlink_domain_size) == (4, 2)
    old = _dgx_h100(as_bytes=True)  # pynvml before 11.5 returned bytes for names and bus ids
    assert detect_gpus(nvml=old, run=_no_smi).names == ("NVIDIA H100 80GB HBM3",) * 8
    assert detect_gpus(nvml=old, run=_no_smi).nvlink_domain_size == 8


def test_nvml_without_active_links_is_a_domain_of_one_on_the_pcie_link():
    nvml = FakeNvml("NVIDIA H100 PCIe", GPU_BUS[:2], [[], []])
    p = detect_profile(nvml=nvml, run=_no_smi)
    assert (p.name, p.nvlink_domain_size) == ("auto-h100-pcie", 1)
    assert p.intra_domain_link == load_builtin("h100-pcie").inter_domain_link


def test_nvlink_peers_counts_direct_gpu_links_and_switch_reach():
    bus = ["0000:01:00.0", "0000:02:00.0", "0000:03:00.0", "0000:04:00.0"]
    # GPUs 0-2 on a switch, GPU 3 bridged to GPU 2 only
    ends = [["0000:99:00.0"], ["0000:99:00.0"], ["0000:99:00.0", bus[3]], [bus[2]]]
    assert nvlink_peers(ends, bus) == [2, 2, 3, 1]
    assert nvlink_peers([[], []], bus[:2]) == [0, 0]


def _fake_smi(args: list[str]) -> str:
    return H100_TOPO if args == detect.TOPOLOGY else H100_SMI


def _no_smi(args: list[str]) -> str:
    raise AssertionError("nvidia-smi must not run when NVML answers")


@pytest.mark.parametrize("fail", ["nvmlInit", "nvmlDeviceGetMemoryInfo"])
def test_nvml_failure_falls_back_to_nvidia_smi(fail):
    nvml = _dgx_h100(fail=fail)
    found = detect_gpus(nvml=nvml, run=_fake_smi)
    assert found.source == "nvidia-smi" and found.nvlink_domain_size == 8 and len(found.names) == 8
    assert nvml.calls.count("nvmlShutdown") == (0 if fail == "nvmlInit" else 1)  # initialised -> shut down


def test_neither_nvml_nor_nvidia_smi_names_both(monkeypatch, tmp_path, run_cli):
    monkeypatch.setattr(detect, "_import_nvml", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    r = run_cli("recommend", "--model", "llama-8b", "--hardware", "auto")
    assert r.code == 1 and r.err.count("\n") == 1
    assert "needs nvidia-smi on PATH" in r.err and "nvidia-ml-py" in r.err
    with pytest.raises(ProfileError, match=r"NVML failed: nvmlInit: Driver Not Loaded"):
        detect_gpus(nvml=_dgx_h100(fail="nvmlInit"))


def test_cli_hardware_auto_uses_nvml_when_the_binding_imports(monkeypatch, tmp_path, run_cli):
    monkeypatch.setattr(detect, "_import_nvml", _dgx_h100)
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi: the answer must come from NVML
    d = run_cli("recommend", "--model", "llama-70b", "--hardware", "auto", "--objective", "latency",
                "-f", "json").json()
    assert d["hardware"] == "auto-dgx-h100" and d["gpus"] == 8 and d["recommended"]["tp"] == 8

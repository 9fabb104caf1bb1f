"""GH200 and RTX PRO 6000 Blackwell Server Edition profiles: they load and validate, carry the datasheet numbers
their `source` cites, and plan the published layouts (issue 10, item 8)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tpplan.cost.collectives import collective_time_s
from tpplan.hardware.detect import builtin_for
from tpplan.hardware.loader import load_builtin, validate_files
from tpplan.measure.devices import PROFILE_FOR_KIND, device_kind
from tpplan.units import GB

ROOT = Path(__file__).resolve().parents[1]
NEW = ("gh200-quad", "gh200-96gb", "gh200-144gb", "rtx-pro-6000-server")
GH200_PAGE = "https://www.nvidia.com/en-us/data-center/grace-hopper-superchip/"
JUPITER_PAGE = "https://apps.fz-juelich.de/jsc/hps/jupiter/configuration.html"
RTX_PAGE = "https://www.nvidia.com/en-us/data-center/rtx-pro-6000-blackwell-server-edition/"


def _yaml(name: str) -> dict:
    return yaml.safe_load((ROOT / "hardware_profiles" / f"{name}.yaml").read_text())


def test_new_profiles_validate_without_warnings():
    assert validate_files([ROOT / "hardware_profiles" / f"{n}.yaml" for n in NEW]) == ([], [])
    for name in NEW:
        assert load_builtin(name).name == name


@pytest.mark.parametrize("name", ["gh200-quad", "gh200-96gb", "gh200-144gb"])
def test_gh200_yaml_carries_the_datasheet_numbers(name):
    """GH200 datasheet: FP8 3,958 / BF16 1,979 TFLOPS with sparsity (dense = half); 96 GB HBM3 at 4 TB/s or
    144 GB HBM3e at 4.9 TB/s."""
    d = _yaml(name)
    assert d["gpu"]["peak_flops"] == {"bf16": "989.5 TFLOP/s", "fp16": "989.5 TFLOP/s", "fp8": "1979 TFLOP/s",
                                      "int8": "1979 TFLOP/s"}
    hbm3e = name == "gh200-144gb"
    assert d["gpu"]["memory_bandwidth"] == ("4900 GB/s" if hbm3e else "4000 GB/s")
    assert d["gpu"]["memory"] == ("144 GB" if hbm3e else "97871 MiB")  # nvidia-smi's figure for the 96 GB parts
    assert GH200_PAGE in d["source"]["gpu"]


def test_gh200_quad_fabric_is_the_jupiter_node():
    """JUPITER Booster node: 4 GH200, NVLink 150 GB/s per direction between each pair, NDR200 per GPU."""
    d = _yaml("gh200-quad")
    assert (d["node"]["gpus_per_node"], d["node"]["nvlink_domain_size"]) == (4, 4)
    assert d["node"]["intra_domain_link"] == {"kind": "nvlink", "bandwidth": "150 GB/s"}
    assert d["network"]["bandwidth_per_gpu"] == "200 Gb/s"
    assert JUPITER_PAGE in d["source"]["node"] and JUPITER_PAGE in d["source"]["network"]
    p = load_builtin("gh200-quad")  # collectives derived from the link: 0.82 x 150 GB/s (defaults/collectives.yaml)
    assert p.collectives["nvlink"]["simple"].busbw_bytes_per_s == pytest.approx(0.82 * 150 * GB)


def test_rtx_pro_6000_yaml_carries_the_datasheet_numbers():
    """Server Edition page: 96 GB GDDR7 (nvidia-smi 97887 MiB), 1597 GB/s, FP4 4 PFLOPS and FP16/BF16 1 PFLOPS
    with sparsity (dense = half), PCIe Gen5 x16, no NVLink."""
    d = _yaml("rtx-pro-6000-server")
    assert d["gpu"]["memory"] == "97887 MiB" and d["gpu"]["memory_bandwidth"] == "1597 GB/s"
    assert d["gpu"]["peak_flops"] == {"bf16": "500 TFLOP/s", "fp16": "500 TFLOP/s", "fp8": "1000 TFLOP/s",
                                      "fp4": "2000 TFLOP/s"}
    assert (d["node"]["gpus_per_node"], d["node"]["nvlink_domain_size"]) == (8, 1)
    assert d["node"]["intra_domain_link"] == {"kind": "pcie", "bandwidth": "64 GB/s"}
    assert RTX_PAGE in d["source"]["gpu"] and "https://github.com/NVIDIA/nccl/issues/1639" in d["source"]["collectives"]


def test_pcie_all_reduce_of_eight_gpus_is_slower_than_of_four():
    """The physics behind TP8 < TP4 on PCIe: the same per-rank buffer takes longer across 8 GPUs (28 GB/s busbw)
    than across 4 (35 GB/s), while on NVLink (dgx-h100) more GPUs cost little."""
    p = load_builtin("rtx-pro-6000-server")
    n_bytes = 256 * 8192 * 2  # one decode all-reduce: 256 tokens x hidden 8192 x 2 bytes
    t4, t8 = (collective_time_s(p, kind="allreduce", group_size=g, n_bytes=n_bytes) for g in (4, 8))
    assert t8 > 1.3 * t4


@pytest.mark.parametrize("name,nodes", [("gh200-quad", "2"), ("gh200-96gb", "8"), ("gh200-144gb", "8"),
                                        ("rtx-pro-6000-server", None)])
def test_recommend_llama_70b_on_8_gpus(run_cli, name, nodes):
    args = ["recommend", "--model", "llama-70b", "--gpus", "8", "--hardware", name, "--format", "json"]
    r = run_cli(*args, *(["--nodes", nodes] if nodes else []))
    assert r.code == 0, r.err
    out = r.json()
    assert out["recommended"] is not None and any(c["feasible"] for c in out["candidates"])


def test_nvidia_smi_names_map_to_the_new_profiles():
    assert builtin_for("NVIDIA GH200 120GB") == "gh200-quad"
    assert builtin_for("NVIDIA GH200 144G HBM3e") == "gh200-144gb"
    assert builtin_for("NVIDIA RTX PRO 6000 Blackwell Server Edition") == "rtx-pro-6000-server"
    assert builtin_for("NVIDIA GeForce RTX 4090") == "rtx-4090"
    assert PROFILE_FOR_KIND[device_kind("NVIDIA GH200 480GB")] == "gh200-96gb"
    assert device_kind("NVIDIA RTX PRO 6000 Blackwell Server Edition") == "rtx-pro-6000-server"

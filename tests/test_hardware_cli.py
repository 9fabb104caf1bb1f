"""Hardware profiles as a user meets them: --nodes on DGX profiles, --hardware auto, user profiles by name,
broken files on TPPLAN_PROFILE_PATH, the JSON Schema, and warnings on the classic datasheet mistakes."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import jsonschema
import pytest
import yaml

from tpplan.hardware.detect import builtin_for, parse_gpus, parse_nvlink_domain
from tpplan.hardware.loader import load_builtin, resolve_profile
from tpplan.planner.plan import recommend
from tpplan.units import MiB

ROOT = Path(__file__).resolve().parents[1]
H100_SMI = "\n".join(["NVIDIA H100 80GB HBM3, 81559"] * 8) + "\n"
# `nvidia-smi topo -m` on an 8 x H100 SXM node: every pair joined by 18 NVLink4 links through NVSwitch
H100_TOPO = "\tGPU0\tGPU1\tGPU2\tGPU3\tGPU4\tGPU5\tGPU6\tGPU7\tCPU Affinity\tNUMA Affinity\n" + "".join(
    f"GPU{i}\t" + "\t".join(" X " if j == i else "NV18" for j in range(8)) + "\t0-55\t0\n" for i in range(8))
PCIE_TOPO = "\tGPU0\tGPU1\tCPU Affinity\nGPU0\t X \tPHB\t0-31\nGPU1\tPHB\t X \t0-31\n"


@pytest.mark.parametrize("name", ["dgx-h100", "hgx-h200", "dgx-b200", "dgx-a100-80g", "dgx-a100-40g"])
def test_dgx_profiles_carry_their_infiniband(name):
    net = load_builtin(name).network
    # DGX H100/H200/B200: 8 x ConnectX-7 NDR 400 Gb/s; DGX A100: 8 x ConnectX-6 HDR 200 Gb/s (DGX user guides)
    expected = 25e9 if "a100" in name else 50e9
    assert net.kind == "infiniband" and net.bandwidth_bytes_per_s == expected


def test_nodes_on_a_single_node_dgx_profile():
    plan = recommend("llama-405b", hardware="dgx-h100", nodes=2, objective="latency")
    assert plan.workload.gpus == 16 and (plan.recommended.tp, plan.recommended.pp) == (8, 2)


def test_detect_parses_nvidia_smi():
    gpus = parse_gpus(H100_SMI)
    assert len(gpus) == 8 and gpus[0] == ("NVIDIA H100 80GB HBM3", 81559 * MiB)
    assert parse_nvlink_domain(H100_TOPO, 8) == 8
    assert parse_nvlink_domain(PCIE_TOPO, 2) == 1
    assert builtin_for("NVIDIA H100 80GB HBM3") == "dgx-h100"
    assert builtin_for("NVIDIA H100 PCIe") == "h100-pcie" and builtin_for("NVIDIA H100 NVL") == "h100-nvl"
    assert builtin_for("NVIDIA L4") == "l4" and builtin_for("NVIDIA L40S") == "l40s-pcie"


def _fake_smi(tmp_path: Path, query: str, topo: str) -> Path:
    (tmp_path / "q.txt").write_text(query)
    (tmp_path / "t.txt").write_text(topo)
    exe = tmp_path / "nvidia-smi"
    exe.write_text(f'#!/bin/sh\nif [ "$1" = topo ]; then /bin/cat {tmp_path}/t.txt\n'
                   f'else /bin/cat {tmp_path}/q.txt; fi\n')
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return tmp_path


def test_hardware_auto_with_a_fake_nvidia_smi(tmp_path, monkeypatch, run_cli):
    monkeypatch.setenv("PATH", str(_fake_smi(tmp_path, H100_SMI, H100_TOPO)))
    d = run_cli("recommend", "--model", "llama-70b", "--hardware", "auto", "--objective", "latency",
                "-f", "json").json()
    assert d["hardware"] == "auto-dgx-h100" and d["gpus"] == 8 and d["recommended"]["tp"] == 8
    pcie = _fake_smi(tmp_path / "p", "NVIDIA H100 PCIe, 81559\nNVIDIA H100 PCIe, 81559\n", PCIE_TOPO) \
        if (tmp_path / "p").mkdir() is None else None
    monkeypatch.setenv("PATH", str(pcie))
    d = run_cli("recommend", "--model", "llama-8b", "--hardware", "auto", "-f", "json").json()
    assert d["hardware"] == "auto-h100-pcie" and d["gpus"] == 2


def test_hardware_auto_unknown_gpu_and_no_nvidia_smi(tmp_path, monkeypatch, run_cli):
    monkeypatch.setenv("PATH", str(_fake_smi(tmp_path, "Some GPU 9000, 1000\n", PCIE_TOPO)))
    r = run_cli("recommend", "--model", "llama-8b", "--hardware", "auto")
    assert r.code == 1 and r.err.startswith("Error: --hardware auto: no built-in profile for GPU 'Some GPU 9000'")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    r = run_cli("recommend", "--model", "llama-8b", "--hardware", "auto")
    assert r.code == 1 and "needs nvidia-smi on PATH" in r.err


def _readme_profile() -> str:
    text = (ROOT / "README.md").read_text()
    return re.search(r"```yaml\n(schema_version: 1\n.*?)```", text, re.S).group(1)


def test_user_profile_resolves_by_declared_name_and_by_stem(tmp_path, monkeypatch):
    (tmp_path / "rack7.yaml").write_text(_readme_profile())  # declares name: our-h100
    monkeypatch.setenv("TPPLAN_PROFILE_PATH", str(tmp_path))
    assert resolve_profile("our-h100")[0].name == "our-h100"
    assert resolve_profile("rack7")[0].name == "our-h100"


def test_broken_file_on_profile_path_is_a_warning_row(tmp_path, monkeypatch, run_cli):
    (tmp_path / "broken.yaml").write_text("schema_version: 1\nname: broken\ngpu: [\n")
    monkeypatch.setenv("TPPLAN_PROFILE_PATH", str(tmp_path))
    r = run_cli("profiles", "list", "-f", "json")
    assert r.code == 0
    rows = {row["name"]: row for row in r.json()}
    assert rows["broken"]["valid"] is False and rows["dgx-h100"]["valid"] is True
    assert "warning:" in r.err and "broken.yaml" in r.err


def test_schema_accepts_unit_strings_readme_example_and_every_builtin(run_cli):
    validator = jsonschema.Draft202012Validator(run_cli("profiles", "schema").json())
    docs = [yaml.safe_load(_readme_profile())] + [yaml.safe_load(p.read_text())
                                                  for p in sorted((ROOT / "hardware_profiles").glob("*.yaml"))]
    for doc in docs:
        assert not list(validator.iter_errors(doc)), doc["name"]
    bad = yaml.safe_load(_readme_profile())
    bad["gpu"]["memory"] = "lots"
    assert list(validator.iter_errors(bad))


@pytest.mark.parametrize("change, key, words", [
    ("  intra_domain_link: {kind: nvswitch, bandwidth: 900 GB/s}", "node.intra_domain_link.bandwidth",
     "bidirectional"),
    ("  peak_flops: {bf16: 1979 TFLOP/s, fp8: 1978.9 TFLOP/s}", "gpu.peak_flops.bf16", "sparse"),
    ("efficiency: {matmul: 0.75, memory: 0.8, runtime_reserve: 4 GiB, step_overhead: 0.5}",
     "efficiency.step_overhead", "read as 0.5 us"),
    ("  memory_bandwidth: 3350 TB/s", "gpu.memory_bandwidth", "3350 TB/s is 1e+03 x built-in"),
    ("  memory: 81559 GiB", "gpu.memory", "81559 GiB is 1.02e+03 x built-in"),
    ("efficiency: {matmul: 0.75, memory: 0.8, runtime_reserve: 4 GiB, step_overhead: 0.5 ms, "
     "decode_sequence_overhead: 100 ms}", "efficiency.decode_sequence_overhead",
     "100 ms is 1e+06 x tpplan's default 0.1 us (hardware_profiles/defaults/kernels.yaml); check the unit"),
    ("efficiency: {matmul: 0.75, memory: 0.8, runtime_reserve: 4 GiB, step_overhead: 0.5 ms, "
     "kernel_overhead: 4 ns}", "efficiency.kernel_overhead", "4 ns is 0.001 x tpplan's default 4 us"),
    ("efficiency: {matmul: 0.75, memory: 0.8, runtime_reserve: 4 GiB, step_overhead: 0.5 ms, "
     "kernel_overhead: 4000}", "efficiency.kernel_overhead", "bare number 4000 is read as 4000 us"),
    ("  memory: 80 GB", "gpu.memory", "80 GB is 0.935 x built-in dgx-h100's 81559 MiB (nvidia-smi's total)"),
])
def test_validate_warns_on_classic_mistakes(tmp_path, run_cli, change, key, words):
    text = _readme_profile()
    field = change.strip().split(":")[0]
    text = "\n".join(change if ln.strip().startswith(field + ":") else ln for ln in text.splitlines())
    path = tmp_path / "p.yaml"
    path.write_text(text)
    r = run_cli("profiles", "validate", str(path))
    assert r.code == 0 and "1 warning(s)" in r.out
    assert f": {key}: warning:" in r.err and words in r.err


def test_profile_sources_cite_public_documents_not_files_that_do_not_ship():
    for path in sorted((ROOT / "hardware_profiles").glob("*.yaml")):
        sources = load_builtin(path.stem).sources
        assert sources, path.name
        for key, text in sources.items():
            assert not re.search(r"FACTS\.md|hardware\.csv|shared/|this workplace", text), (path.name, key, text)


@pytest.mark.parametrize("network, collectives, key, words", [
    ("{kind: infiniband, bandwidth_per_gpu: 400 GB/s, latency: 2.7 us}", None, "network.bandwidth_per_gpu",
     "400 GB/s per GPU is 3.2 Tb/s; NICs are 400-800 Gb/s (50-100 GB/s)"),
    ("{kind: infiniband, bandwidth_per_gpu: 400 Gb/s, latency: 2.7 ms}", None, "network.latency",
     "2.7 ms is 2.7e+03 us; InfiniBand and RoCE take 1-10 us"),
    ("{kind: infiniband, bandwidth_per_gpu: 400 Gb/s, latency: 2.7 us}",
     {"simple": {"base_latency": "20 us", "hop_latency": "2 us", "busbw": "460 GB/s"}}, "collectives.network.simple"
     ".busbw", "460 GB/s is 9.2 x the network link's 50 GB/s"),
])
def test_validate_warns_on_network_unit_slips(tmp_path, run_cli, network, collectives, key, words):
    """Bits for bytes on the NIC, ms for us, a bus bandwidth ten times its link: warnings, exit 0."""
    d = yaml.safe_load(_readme_profile())
    d["nodes"], d["network"] = 2, yaml.safe_load(network)
    if collectives:
        d["collectives"]["network"] = collectives
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    r = run_cli("profiles", "validate", str(path))
    assert r.code == 0 and "1 warning(s)" in r.out, r.err
    assert f": {key}: warning: " in r.err and words in r.err


def test_a_memory_size_picked_on_purpose_draws_no_rounding_warning(tmp_path, run_cli):
    """60 GB is 0.70 of an H100's 81559 MiB: not the datasheet's 80 GB read as GiB, so no warning."""
    text = "\n".join("  memory: 60 GB" if ln.strip().startswith("memory:") and ln.startswith("  ") else ln
                     for ln in _readme_profile().splitlines())
    path = tmp_path / "p.yaml"
    path.write_text(text)
    r = run_cli("profiles", "validate", str(path))
    assert r.code == 0 and "warning" not in r.err, r.err

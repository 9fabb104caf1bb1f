"""The assumptions credit hardware_profiles/defaults/*.yaml for what a profile leaves out: the kernel constants
(with the file's `source`) and the collective model of the tiers it gives no parameters for."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = ROOT / "hardware_profiles" / "defaults"


def _profile(tmp_path: Path, *, collectives: bool, kernel_overhead: bool) -> Path:
    """dgx-h100 as a user file, without its collectives section and/or its kernel_overhead."""
    d = yaml.safe_load((ROOT / "hardware_profiles" / "dgx-h100.yaml").read_text())
    d["name"] = "mine"
    if not collectives:
        d.pop("collectives")
    if not kernel_overhead:
        d["efficiency"].pop("kernel_overhead")
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


def test_kernel_constants_from_defaults_are_credited_with_the_file_and_its_source(run_cli, tmp_path):
    path = _profile(tmp_path, collectives=True, kernel_overhead=False)
    a = run_cli("recommend", "-m", "llama-8b", "--hardware", str(path), "--gpus", "8", "-f", "json").json()[
        "assumptions"]
    source = yaml.safe_load((DEFAULTS / "kernels.yaml").read_text())["source"]
    assert a["efficiency"].endswith(f"(from {path}; kernel_overhead, decode_sequence_overhead, "
                                    f"pipeline_sequence_overhead: hardware_profiles/defaults/kernels.yaml)")
    assert a["efficiency_defaults"] == (f"kernel_overhead 4 us, decode_sequence_overhead 0.1 us, "
                                        f"pipeline_sequence_overhead 50 us: not stated in {path}, so tpplan's "
                                        f"defaults (hardware_profiles/defaults/kernels.yaml, source: {source})")
    assert "collectives" not in a  # nvlink, the only tier 8 GPUs of one HGX node cross, is in the profile


def test_unused_defaults_are_not_named(run_cli):
    """llama-8b in bf16 on one GPU: no fp8 GEMM, no experts, no PP; dgx-h100 states the rest but the engines'
    per-sequence decode time (fitted across GPUs, kept in the defaults file)."""
    a = run_cli("recommend", "-m", "llama-8b", "--gpus", "1", "-f", "json").json()["assumptions"]
    assert a["efficiency"].endswith("(from built-in:dgx-h100; decode_sequence_overhead: "
                                    "hardware_profiles/defaults/kernels.yaml)")
    assert "pipeline_sequence_overhead" not in a["efficiency_defaults"] and "matmul_fp8" not in a["efficiency_defaults"]
    fp8 = run_cli("recommend", "-m", "llama-8b", "--gpus", "1", "--dtype", "fp8", "-f", "json").json()["assumptions"]
    assert fp8["efficiency_defaults"].startswith("matmul_fp8 0.72, decode_sequence_overhead 0.1 us: not stated in "
                                                 "built-in:dgx-h100")


def test_default_collectives_are_named_when_the_profile_gives_none(run_cli, tmp_path, monkeypatch):
    path = _profile(tmp_path, collectives=False, kernel_overhead=True)
    source = yaml.safe_load((DEFAULTS / "collectives.yaml").read_text())["source"]
    line = (f"no nvlink collectives in {path}: the default NCCL model (ll / ll128 / simple bus bandwidth = 0.41 / "
            f"0.77 / 0.82 x the link's, NCCL's base + per-hop latencies; hardware_profiles/defaults/collectives.yaml, "
            f"source: {source})")
    r = run_cli("recommend", "-m", "llama-8b", "--hardware", str(path), "--gpus", "8", "-f", "json")
    assert r.json()["assumptions"]["collectives"] == line
    monkeypatch.setenv("COLUMNS", "1000")
    text = run_cli("recommend", "-m", "llama-8b", "--hardware", str(path), "--gpus", "8").out
    assert f"  - collectives: {line}" in text.splitlines()
    assert "pipeline_sequence_overhead: hardware_profiles/defaults/kernels.yaml)" in text  # the compact view's credit
    assert "efficiency_defaults" in run_cli("recommend", "-m", "llama-8b", "--hardware", str(path), "--gpus", "8",
                                            "--wide").out

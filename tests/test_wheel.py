"""Build the wheel, install it into a fresh virtualenv, run the CLI from outside the repo.

Proves that package data (catalogue JSON, hardware_profiles YAML) and tpplan.kernels ship. The fresh venv
reuses the test venv's already-installed dependencies through a .pth line (no network, no torch download).
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_wheel_installs_and_runs(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(ROOT)], check=True, capture_output=True, text=True)
    wheel = next(dist.glob("tpplan-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "tpplan/kernels/__init__.py" in names
    assert any(n.startswith("tpplan/models/catalogue/") and n.endswith(".json") for n in names)
    assert "tpplan/hardware_profiles/dgx-h100.yaml" in names
    assert "tpplan/hardware_profiles/defaults/collectives.yaml" in names
    assert not any(n.startswith("kernels/") for n in names), "a top-level kernels package must not ship"

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # Dependencies come from the test environment's site-packages (a plain path entry: its .pth files,
    # including the editable tpplan finder, are not executed).
    Path(site, "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, text=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = subprocess.run([py, "-c", "import tpplan; print(tpplan.__file__)"], cwd=outside, capture_output=True,
                           text=True, check=True).stdout
    assert str(env_dir) in where, where
    tpplan = env_dir / "bin" / "tpplan"
    version = subprocess.run([tpplan, "--version"], cwd=outside, capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("tpplan ")
    models = subprocess.run([tpplan, "models", "show", "llama-70b", "--format", "json"], cwd=outside,
                            capture_output=True, text=True)
    assert models.returncode == 0, models.stderr
    assert '"total_params": 70553706496' in models.stdout
    profiles = subprocess.run([tpplan, "profiles", "list", "--format", "json"], cwd=outside, capture_output=True,
                              text=True)
    assert profiles.returncode == 0, profiles.stderr
    assert '"name": "dgx-h100"' in profiles.stdout
    imports = "import tpplan.kernels.collectives, tpplan.kernels.tp_layer, tpplan.measure.run"
    kernels = subprocess.run([py, "-c", imports], cwd=outside, capture_output=True, text=True)
    assert kernels.returncode == 0, kernels.stderr

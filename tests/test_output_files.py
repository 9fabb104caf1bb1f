"""Output files: written atomically with the mode a plain open() would give (or the replaced file's), and named for
what they hold."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it after."""
    old = os.umask(0o022)
    os.umask(old)

    def _set(mask: int) -> None:
        os.umask(mask)

    yield _set
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _sweep(run_cli, out: Path, *extra: str):
    r = run_cli("sweep", "--models", "llama-8b", "--hardware", "dgx-h100", "--gpus", "2", "-o", str(out), *extra)
    assert r.code == 0, r.err
    return r


def _gloo_results() -> list[dict]:
    """Saved 2-rank gloo all-reduces: enough for `measure --from` to compare and calibrate cpu-gloo."""
    items = [{"kind": "allreduce", "tp": 2, "bytes": 4096 * 4 ** i, "measured_s": 4e-4 + 4096 * 4 ** i / 1.8e9}
             for i in range(6)]
    return [{"workload": "collectives", "environment": {"backend": "gloo", "world_size": 2, "device_names": []},
             "items": items}]


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_a_new_output_file_gets_the_mode_open_would_give(run_cli, tmp_path, umask, mask):
    """Not mkstemp's 0600: a sweep or a calibrated profile shared with a team must be readable as a plain write's."""
    umask(mask)
    _sweep(run_cli, tmp_path / "new.csv")
    raw = tmp_path / "raw.json"
    raw.write_text(json.dumps(_gloo_results()))
    r = run_cli("measure", "--from", str(raw), "-o", str(tmp_path / "cal.yaml"), "-f", "json")
    assert r.code == 0, r.err
    assert _mode(tmp_path / "new.csv") == _mode(tmp_path / "cal.yaml") == 0o666 & ~mask


def test_force_keeps_the_mode_of_the_file_it_replaces(run_cli, tmp_path, umask):
    umask(0o022)
    out = tmp_path / "sweep.csv"
    out.write_text("old\n")
    out.chmod(0o640)
    _sweep(run_cli, out, "--force")
    assert _mode(out) == 0o640 and out.read_text() != "old\n"


def test_no_temporary_file_is_left_beside_the_output(run_cli, tmp_path):
    _sweep(run_cli, tmp_path / "s.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv"]


@pytest.mark.parametrize(("name", "got"), [("cal.csv", "'.csv'"), ("cal", "no extension")])
def test_measure_out_must_be_named_yaml(usage_error, tmp_path, name, got):
    """The calibrated profile is YAML: a .csv name would hold YAML; a value wrong on its own, so a usage error (exit
    2, as sweep's --out extension), before anything runs or is written."""
    out = tmp_path / name
    assert usage_error("measure", "--quick", "-o", str(out)) == (
        f"Error: Invalid value for '--out' / '-o': the calibrated profile is YAML; use a name ending in .yaml or .yml "
        f"(got {got})\n")
    assert not out.exists()

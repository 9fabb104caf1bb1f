"""Outputs and sweep / measure options refused before any work, each with one line naming the input, the problem and
the fix: output paths that cannot be written, --out and --save-raw on one file, empty list items, a missing Parquet
engine, more GPUs than a profile has."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
as_root = os.geteuid() == 0


def _gloo_raw(tmp_path: Path) -> Path:
    """Saved 2-rank gloo all-reduces: enough for `measure --from` to compare and calibrate cpu-gloo."""
    items = [{"kind": "allreduce", "tp": 2, "bytes": 4096 * 4 ** i, "measured_s": 4e-4 + 4096 * 4 ** i / 1.8e9}
             for i in range(6)]
    raw = tmp_path / "raw.json"
    raw.write_text(json.dumps([{"workload": "collectives", "environment": {"backend": "gloo", "world_size": 2,
                                                                          "device_names": []}, "items": items}]))
    return raw


def _sweep(*extra: str) -> tuple[str, ...]:
    return ("sweep", "--models", "llama-8b", "--gpus", "1", "--batch", "1", *extra)


def _measure(raw: Path, *extra: str) -> tuple[str, ...]:
    return ("measure", "--from", str(raw), "--hardware", "cpu-gloo", *extra)


# --- 1. output paths that cannot be written -------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["sweep", "measure-out", "measure-save-raw"])
def test_an_output_under_a_file_is_one_line_before_any_work(refusal, tmp_path, command):
    """s.csv/x.csv where s.csv is a file (NotADirectoryError before): refused by name, nothing written."""
    (tmp_path / "s.csv").write_text("kept\n")
    raw = _gloo_raw(tmp_path)
    args, option, out = {
        "sweep": (_sweep("--out", str(tmp_path / "s.csv" / "x.csv")), "--out", tmp_path / "s.csv" / "x.csv"),
        "measure-out": (_measure(raw, "--out", str(tmp_path / "s.csv" / "c.yaml")), "--out",
                        tmp_path / "s.csv" / "c.yaml"),
        "measure-save-raw": (_measure(raw, "--save-raw", str(tmp_path / "s.csv" / "c.json")), "--save-raw",
                             tmp_path / "s.csv" / "c.json"),
    }[command]
    assert refusal(*args) == (f"Error: cannot write {out}: {tmp_path / 's.csv'} is a file, not a directory; choose "
                              f"another {option}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw.json", "s.csv"]
    assert (tmp_path / "s.csv").read_text() == "kept\n"


def test_an_output_in_proc_is_one_line(refusal):
    """/proc takes no new files, even as root (FileNotFoundError from mkstemp before)."""
    if not Path("/proc/self").exists():
        pytest.skip("no /proc here")
    assert refusal(*_sweep("--out", "/proc/nope.csv")) == (
        "Error: cannot write /proc/nope.csv: no such file or directory; choose another --out")


@pytest.mark.skipif(as_root, reason="root ignores permissions")
@pytest.mark.parametrize("command", ["sweep", "measure-out", "measure-save-raw"])
def test_an_output_in_a_read_only_folder_is_one_line_before_any_work(refusal, tmp_path, command):
    ro = tmp_path / "ro"
    ro.mkdir()
    raw = _gloo_raw(tmp_path)
    args, option, out = {
        "sweep": (_sweep("--out", str(ro / "x.csv")), "--out", ro / "x.csv"),
        "measure-out": (_measure(raw, "--out", str(ro / "c.yaml")), "--out", ro / "c.yaml"),
        "measure-save-raw": (_measure(raw, "--save-raw", str(ro / "c.json")), "--save-raw", ro / "c.json"),
    }[command]
    ro.chmod(0o555)
    try:
        assert refusal(*args) == f"Error: cannot write {out}: permission denied; choose another {option}"
        assert not list(ro.iterdir())
    finally:
        ro.chmod(0o755)


def test_a_permission_error_is_one_line_even_as_root(refusal, tmp_path, monkeypatch):
    """What a read-only folder gives a non-root user, simulated where the suite runs as root."""
    import tempfile

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    assert refusal(*_sweep("--out", str(tmp_path / "x.csv"))) == (
        f"Error: cannot write {tmp_path / 'x.csv'}: permission denied; choose another --out")


def test_write_atomic_turns_an_os_error_into_one_line(tmp_path):
    """The folder can vanish (or fill up) between the check and the write: still one TpplanError naming the option."""
    from tpplan.errors import TpplanError
    from tpplan.files import write_atomic

    def fail(tmp: Path) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(TpplanError, match=r"^cannot write .*x\.json: no space left on device; choose another "
                                          r"--save-raw$"):
        write_atomic(tmp_path / "x.json", fail, force=False, option="--save-raw")
    assert not list(tmp_path.iterdir())


def test_an_output_that_is_a_directory_is_refused(refusal, tmp_path):
    (tmp_path / "d.csv").mkdir()
    assert refusal(*_sweep("--out", str(tmp_path / "d.csv"), "--force")) == (
        f"Error: cannot write {tmp_path / 'd.csv'}: it is a directory; choose another --out (a file name)")


# --- 2. --out and --save-raw ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("absolute", [False, True])
def test_measure_refuses_one_file_for_out_and_save_raw_before_any_work(usage_error, tmp_path, monkeypatch, absolute):
    """The same file however spelled (x.yaml and /abs/x.yaml); before this the run wrote the raw JSON into x.yaml."""
    monkeypatch.chdir(tmp_path)
    save_raw = str(tmp_path / "x.yaml") if absolute else "x.yaml"
    err = usage_error("measure", "--quick", "--nproc", "2", "--out", "x.yaml", "--save-raw", save_raw)
    assert err.splitlines()[-1] == (
        f"Error: Invalid value for '--save-raw': {save_raw} is also --out: the raw JSON and the calibrated profile "
        f"need two files; choose another --save-raw (e.g. x.json)")
    assert not list(tmp_path.iterdir())


def test_an_existing_save_raw_file_is_named_as_save_raw(refusal, tmp_path):
    raw = _gloo_raw(tmp_path)
    kept = tmp_path / "kept.json"
    kept.write_text("{}")
    assert refusal(*_measure(raw, "--save-raw", str(kept))) == (
        f"Error: {kept} exists; pass --force to overwrite it, or choose another --save-raw")
    assert kept.read_text() == "{}"


# --- 5. sweep -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("option", "value", "example"), [("--batch", "1,,2", "1,2"), ("--gpus", "8,", "8"),
                                                          ("--models", "llama-8b,,mixtral", "llama-8b,mixtral")])
def test_sweep_refuses_an_empty_list_item(usage_error, option, value, example):
    args = {"--models": "llama-8b", "--gpus": "1", "--batch": "1", option: value}
    err = usage_error("sweep", *[x for kv in args.items() for x in kv])
    assert err.splitlines()[-1] == (f"Error: Invalid value for '{option}': {value!r} has an empty item; separate the "
                                    f"values with single commas, e.g. {example}")


def test_sweep_checks_the_parquet_engine_before_any_work(refusal, tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("pyarrow", "fastparquet") else find_spec(name, *a))
    assert "parquet = " in (ROOT / "pyproject.toml").read_text()  # the extra the message names
    assert refusal(*_sweep("--out", str(tmp_path / "s.parquet"))) == (
        "Error: writing s.parquet needs a Parquet engine: pip install 'tpplan[parquet]' (or write .csv)")
    assert not list(tmp_path.iterdir())


def test_sweep_gpus_above_the_profile_name_the_fix(refusal):
    assert refusal("sweep", "--models", "llama-70b", "--gpus", "16") == (
        "Error: --gpus 16 exceeds profile 'dgx-h100' (8 GPUs per node x 1 node(s) = 8); sweep --gpus 8 or fewer on "
        "it, or pass --nodes 2 or --hardware dgx-h100-2node or dgx-h100-4node")
    assert refusal("sweep", "--models", "llama-70b", "--gpus", "8,16", "--hardware", "a10g") == (
        "Error: --gpus 16 exceeds profile 'a10g' (8 GPUs per node x 1 node(s) = 8); sweep --gpus 8 or fewer on it, or "
        "use a profile with 2 or more nodes: a copy of 'a10g' with nodes: 2 and a network: section")
    four = ("--hardware", "dgx-h100-4node")
    assert refusal("sweep", "--models", "llama-70b", "--gpus", "32", "--nodes", "2", *four) == (
        "Error: --gpus 32 exceeds profile 'dgx-h100-4node' (8 GPUs per node x 2 node(s) = 16); sweep --gpus 16 or "
        "fewer on it, or pass --nodes 4")
    assert refusal("sweep", "--models", "llama-70b", "--gpus", "16", "--hardware", "a10g", "--nodes", "2") == (
        "Error: --nodes 2: profile 'a10g' has no network section; use a multi-node profile (e.g. dgx-h100-2node) or "
        "add network: to yours")


def test_a_long_file_name_that_open_accepts_is_written(run_cli, tmp_path):
    """The hidden temp file beside it takes a short stem of the name, so a 249-byte name still fits the 255-byte
    limit of the folder's file system."""
    out = tmp_path / ("a" * 245 + ".csv")
    r = run_cli("sweep", "--models", "llama-8b", "--batch", "8", "--out", str(out))
    assert r.code == 0 and out.exists() and [p.name for p in tmp_path.iterdir()] == [out.name]


def test_a_dangling_symbolic_link_is_not_replaced_without_force(run_cli, tmp_path):
    link = tmp_path / "rows.csv"
    link.symlink_to(tmp_path / "missing.csv")
    args = ("sweep", "--models", "llama-8b", "--gpus", "1", "--batch", "1", "--out", str(link))
    r = run_cli(*args)
    assert r.code == 1 and r.err.strip() == (f"Error: {link} exists (a symbolic link to {tmp_path / 'missing.csv'}, "
                                             f"which does not exist); pass --force to replace the link with the "
                                             f"file, or choose another --out")
    assert link.is_symlink()
    assert run_cli(*args, "--force").code == 0 and link.is_file() and not link.is_symlink()

"""Hardware profiles: two files of one name on TPPLAN_PROFILE_PATH (refused, both listed), impossible values (refused on
load), the lint warnings a user profile draws in recommend / compare / sweep (built-ins draw none), and each collective
tier's own note in `profiles show`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tpplan.hardware.loader import load_builtin

ROOT = Path(__file__).resolve().parents[1]


# --- 3. two profiles of one name ------------------------------------------------------------------------------------

def _profile_file(path: Path, *, name: str, description: str, base: str = "dgx-h100", **gpu: str) -> Path:
    d = yaml.safe_load((ROOT / "hardware_profiles" / f"{base}.yaml").read_text())
    d["name"], d["description"] = name, description
    d["gpu"].update(gpu)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


@pytest.fixture
def two_of_one_name(tmp_path, monkeypatch):
    """`ours` declared by a file in each of two folders on TPPLAN_PROFILE_PATH; the first one is invalid."""
    first = _profile_file(tmp_path / "a" / "ours.yaml", name="ours", description="first", memory="80 GHz")
    second = _profile_file(tmp_path / "b" / "cluster.yaml", name="ours", description="second")
    monkeypatch.setenv("TPPLAN_PROFILE_PATH", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    return first, second


@pytest.mark.parametrize("args", [("profiles", "show", "ours"),
                                  ("recommend", "-m", "llama-8b", "--hardware", "ours"),
                                  ("sweep", "--models", "llama-8b", "--hardware", "ours")])
def test_a_name_two_files_declare_is_refused_naming_both(refusal, two_of_one_name, args):
    first, second = two_of_one_name
    assert refusal(*args) == (
        f"Error: hardware profile 'ours' is ambiguous: {first} and {second} on TPPLAN_PROFILE_PATH both answer to "
        f"that name; give one of them another `name:` (and file name), take it off TPPLAN_PROFILE_PATH, or pass the "
        f"file's path to --hardware")


def test_profiles_list_shows_every_file_of_a_duplicate_name(run_cli, two_of_one_name, monkeypatch):
    first, second = two_of_one_name
    monkeypatch.setenv("COLUMNS", "250")  # the source column, which marks them, is the first to go at 80
    r = run_cli("profiles", "list", "-f", "json")
    rows = [row for row in r.json() if row["name"] == "ours"]
    assert r.code == 0 and [(x["location"], x["duplicate_of"]) for x in rows] == [(str(first), [str(second)]),
                                                                                  (str(second), [str(first)])]
    assert (f"warning: {second}: profile name 'ours' is also declared by {first}; `--hardware ours` is refused until "
            f"one is renamed") in r.err.splitlines()
    table = run_cli("profiles", "list").out
    assert table.count("DUPLICATE") == 2


def test_a_file_path_still_picks_one_of_two_files_of_one_name(run_cli, two_of_one_name):
    _, second = two_of_one_name
    r = run_cli("profiles", "show", str(second), "-f", "json")
    assert r.code == 0 and r.json()["description"] == "second"


def test_one_folder_given_twice_is_no_duplicate(run_cli, tmp_path, monkeypatch):
    _profile_file(tmp_path / "ours.yaml", name="ours", description="only")
    monkeypatch.setenv("TPPLAN_PROFILE_PATH", os.pathsep.join([str(tmp_path), str(tmp_path)]))
    r = run_cli("profiles", "show", "ours", "-f", "json")
    assert r.code == 0 and r.json()["description"] == "only"


# --- 4. impossible values and unit slips ----------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "got"), [("1e30 GiB", "'1e30 GiB'"), ("0.5 GiB", "'0.5 GiB'")])
def test_an_impossible_gpu_memory_is_refused_on_load(refusal, tmp_path, value, got):
    path = _profile_file(tmp_path / "p.yaml", name="p", description="x", memory=value)
    assert refusal("recommend", "-m", "llama-70b", "--hardware", str(path)) == (
        f"Error: {path}:6: gpu.memory: impossible for one GPU (got {got}); expected 1 GiB to 100 TiB: check the "
        f"number and its unit")


def test_unit_slips_are_warnings_when_recommend_compare_or_sweep_load_a_user_profile(run_cli, tmp_path):
    d = yaml.safe_load((ROOT / "hardware_profiles" / "dgx-h100.yaml").read_text())
    d["name"], d["efficiency"]["step_overhead"] = "slip", 0.5
    path = tmp_path / "slip.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    line = next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if "step_overhead" in ln)
    warning = (f"warning: {path}:{line}: efficiency.step_overhead: bare number 0.5 is read as 0.5 us (5.0e-07 s); "
               f"write it with a unit, e.g. '0.5 us' or '0.5 ms'")
    for args in (("recommend", "-m", "llama-8b", "--hardware", str(path)),
                 ("compare", "1", "2", "-m", "llama-8b", "--gpus", "2", "--hardware", str(path)),
                 ("sweep", "--models", "llama-8b", "--gpus", "1", "--batch", "1", "--hardware", str(path))):
        r = run_cli(*args)
        assert r.code == 0, r.err
        assert [ln for ln in r.err.splitlines() if ln.startswith("warning:")] == [warning], args  # once per run


@pytest.mark.parametrize("name", ["dgx-h100", "cpu-gloo", "gb200-nvl72", "mi300x"])
def test_built_in_profiles_draw_no_warning(run_cli, name):
    gpus = str(min(8, load_builtin(name).total_gpus))
    r = run_cli("recommend", "-m", "llama-8b", "--hardware", name, "--gpus", gpus)
    assert "warning" not in r.err.lower()


def test_no_built_in_profile_file_draws_a_warning_as_a_user_file():
    from tpplan.hardware.loader import builtin_names, lint_warnings, load_profile_file

    for name in builtin_names():
        path = ROOT / "hardware_profiles" / f"{name}.yaml"
        assert lint_warnings(path, load_profile_file(path)) == [], name


# --- 6. profiles show -----------------------------------------------------------------------------------------------

def test_profiles_show_puts_each_collective_note_on_its_own_tier(run_cli):
    import csv
    import io

    rows = {r["key"]: r["source"] for r in csv.DictReader(io.StringIO(run_cli("profiles", "show", "dgx-h100",
                                                                                "-f", "csv").out))}
    assert rows["collectives.nvlink.simple"].startswith("simple busbw 370 GB/s: ring all-reduce on 8x H100")
    derived = "derived from the link with hardware_profiles/defaults/collectives.yaml"
    assert rows["collectives.pcie.simple"] == rows["collectives.network.simple"] == derived
    assert not any("370 GB/s" in s for k, s in rows.items() if not k.startswith("collectives.nvlink"))


def test_a_folder_given_again_keeps_its_first_place(tmp_path, monkeypatch, refusal):
    first = _profile_file(tmp_path / "a" / "x.yaml", name="ours", description="first")
    second = _profile_file(tmp_path / "b" / "y.yaml", name="ours", description="second")
    monkeypatch.setenv("TPPLAN_PROFILE_PATH", os.pathsep.join(str(tmp_path / d) for d in ("a", "b", "a")))
    assert f"is ambiguous: {first} and {second} on TPPLAN_PROFILE_PATH" in refusal("profiles", "show", "ours")


def test_an_empty_value_says_so_and_what_goes_there(run_cli, tmp_path):
    text = (ROOT / "hardware_profiles/dgx-h100.yaml").read_text().replace("name: dgx-h100", "name: emptied", 1)
    lines = text.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("  memory: "))
    lines[at] = "  memory:"
    path = tmp_path / "emptied.yaml"
    path.write_text("\n".join(lines) + "\n")
    r = run_cli("profiles", "validate", str(path))
    assert r.code == 1 and r.err.strip() == (f"{path}:{at + 1}: gpu.memory: empty value; expected a number or a "
                                             f"string with a unit")

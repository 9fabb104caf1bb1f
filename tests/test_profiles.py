"""Hardware profiles: built-ins validate and match hardware.csv; bad profiles give file:line:key lines."""

from __future__ import annotations

import copy
import json
import os
import re
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tpplan.errors import UnitError
from tpplan.hardware.loader import builtin_names, load_builtin, load_profile_text, resolve_profile, validate_files
from tpplan.units import GB, GiB, MiB, parse_quantity

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = {"dgx-h100", "hgx-h200", "dgx-b200", "dgx-a100-80g", "dgx-a100-40g", "h100-pcie", "h100-nvl", "a100-pcie",
            "l40s-pcie", "l4", "a10g", "rtx-4090", "mi300x", "gb200-nvl72", "dgx-h100-2node", "dgx-h100-4node",
            "cpu-gloo"}


def test_every_required_builtin_exists_and_validates():
    assert REQUIRED <= set(builtin_names())
    assert validate_files(sorted((ROOT / "hardware_profiles").glob("*.yaml"))) == ([], [])  # no problem, no warning


def test_link_bandwidths_are_unidirectional_per_gpu():
    assert load_builtin("dgx-h100").intra_domain_link.bandwidth_bytes_per_s == 450 * GB  # NVLink4, not 900
    assert load_builtin("dgx-h100-2node").network.bandwidth_bytes_per_s == 50 * GB  # NDR 400 Gb/s
    assert load_builtin("dgx-a100-80g").intra_domain_link.bandwidth_bytes_per_s == 300 * GB
    assert load_builtin("dgx-b200").intra_domain_link.bandwidth_bytes_per_s == 900 * GB


def test_numbers_match_hardware_csv():
    """Built-in profiles carry the datasheet numbers of tests/data/hardware.csv (sources in that file)."""
    import csv

    with open(ROOT / "tests" / "data" / "hardware.csv", newline="") as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh) if r["kind"] == "gpu"}
    pairs = {"dgx-h100": "H100 SXM5 80GB", "hgx-h200": "H200 SXM 141GB", "dgx-a100-80g": "A100 SXM4 80GB",
             "dgx-a100-40g": "A100 SXM4 40GB", "l40s-pcie": "L40S", "mi300x": "MI300X", "rtx-4090": "RTX 4090",
             "h100-pcie": "H100 PCIe 80GB", "h100-nvl": "H100 NVL 94GB", "dgx-b200": "B200 (HGX/DGX) 180GB"}
    for profile, gpu in pairs.items():
        p, r = load_builtin(profile), rows[gpu]
        assert p.gpu.memory_bandwidth_bytes_per_s == float(r["mem_bw_GBps"]) * GB, profile
        assert p.gpu.peak_flops_per_s["bf16"] == pytest.approx(float(r["bf16_dense_tflops"]) * 1e12), profile
        if r["scaleup_unidir_GBps_per_gpu"] not in ("", "0") and p.nvlink_domain_size > 1:
            assert p.intra_domain_link.bandwidth_bytes_per_s == float(r["scaleup_unidir_GBps_per_gpu"]) * GB


def test_h100_capacity_is_nvidia_smi_not_round():
    assert load_builtin("dgx-h100").gpu.memory_bytes == 81559 * MiB


@pytest.mark.parametrize("text,expected", [
    ("400 Gb/s", 50 * GB), ("450 GB/s", 450 * GB), ("80 GiB", 80 * GiB), ("6 us", 6e-6), ("2 TB/s", 2000 * GB)])
def test_units(text, expected):
    kind = "bandwidth" if "/s" in text else "bytes" if "B" in text else "time"
    assert parse_quantity(text, kind=kind, default_unit="GB/s") == pytest.approx(expected)


@pytest.mark.parametrize("text", ["80 Gb", "80 Gib", "512 Mb", "1 Tb"])
def test_a_memory_size_in_bits_is_refused_not_read_as_bytes(text):
    """Lowercase b is bits in a link speed ('400 Gb/s'); a memory size written so is a slip, not 80 GB."""
    with pytest.raises(UnitError, match=rf"unit '{text.split()[1]}' in '{text}' is bits .*expected a size in bytes"):
        parse_quantity(text, kind="bytes", default_unit="GiB")
    assert parse_quantity("80 gb", kind="bytes", default_unit="GiB") == 80 * GB  # all lowercase: bytes, as before


def test_round_trip_through_json_dump_keeps_values():
    from tpplan.report.profiles import profile_json

    for name in builtin_names():
        p = load_builtin(name)
        assert json.loads(json.dumps(profile_json(p)))["gpu"]["memory_bytes"] == p.gpu.memory_bytes


def _base() -> dict:
    return yaml.safe_load((ROOT / "hardware_profiles" / "dgx-h100.yaml").read_text())


def test_error_lines_name_file_line_key(tmp_path):
    d = _base()
    d["gpu"]["memory"] = "80 GHz"
    d["node"]["colour"] = "red"
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    problems, _ = validate_files([path])
    assert len(problems) == 2
    assert re.match(rf"{re.escape(str(path))}:\d+: gpu\.memory: unknown unit 'GHz' in '80 GHz' \(got '80 GHz'\); "
                    r"expected bytes", problems[0])
    assert re.match(rf"{re.escape(str(path))}:\d+: node\.colour: unknown key \(got 'red'\); expected one of: "
                    r"gpus_per_node", problems[1])
    line = int(problems[0].split(":")[1])
    assert "memory: 80 GHz" in path.read_text().splitlines()[line - 1]


def test_validate_cli_exit_codes(run_cli, tmp_path):
    good = ROOT / "hardware_profiles" / "dgx-h100.yaml"
    assert run_cli("profiles", "validate", str(good)).code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nname: x\n")
    r = run_cli("profiles", "validate", str(good), str(bad))
    assert r.code == 1
    assert r.err.splitlines()[0] == (f"{bad}:1: gpu: missing required key; expected a 'gpu' key at the top level "
                                     f"(see `tpplan profiles schema`)")


def test_a_misspelt_required_key_is_named_as_the_first_problem(run_cli, tmp_path):
    """`memory_bandwith` for `memory_bandwidth`: one problem on the misspelt key's line naming the key it stands for
    (not a missing key elsewhere), first, in `recommend`'s one-line refusal as in `profiles validate`."""
    text = (ROOT / "hardware_profiles" / "dgx-h100.yaml").read_text()
    assert "  memory_bandwidth: " in text
    path = tmp_path / "typo.yaml"
    path.write_text(text.replace("  memory_bandwidth: ", "  memory_bandwith: ", 1))
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "memory_bandwith" in t)
    expected = (f"{path}:{line}: gpu.memory_bandwith: unknown key (got '3350 GB/s'); expected 'memory_bandwidth', a "
                f"required key this mapping lacks: fix the spelling")
    r = run_cli("profiles", "validate", str(path))
    assert r.code == 1 and r.err.splitlines() == [expected]
    r = run_cli("recommend", "--model", "llama-8b", "--hardware", str(path))
    assert r.code == 1 and r.err == f"Error: {expected}\n"


def test_an_unknown_optional_key_gets_a_did_you_mean(run_cli, tmp_path):
    text = (ROOT / "hardware_profiles" / "dgx-h100.yaml").read_text()
    path = tmp_path / "typo.yaml"
    path.write_text(text.replace("  sustained_clock: ", "  sustained_clok: ", 1))
    r = run_cli("profiles", "validate", str(path))
    assert r.code == 1
    assert "efficiency.sustained_clok: unknown key (did you mean 'sustained_clock'?) (got 0.8)" in r.err


def test_schema_command(run_cli):
    schema = run_cli("profiles", "schema").json()
    assert schema["additionalProperties"] is False and "gpu" in schema["properties"]


def test_show_and_list(run_cli):
    d = run_cli("profiles", "show", "dgx-h100", "-f", "json").json()
    assert d["intra_domain_link"]["bandwidth_bytes_per_s"] == 450e9
    rows = run_cli("profiles", "list", "-f", "json").json()
    assert REQUIRED <= {r["name"] for r in rows}


def test_show_lists_every_kernel_constant_and_which_come_from_the_defaults_file(run_cli):
    import csv
    import io

    r = run_cli("profiles", "show", "dgx-h100", "-f", "csv")
    rows = {row["key"]: row for row in csv.DictReader(io.StringIO(r.out))}
    assert rows["efficiency.matmul_epilogue_k"]["value"] == "96 K-steps per output (16-bit GEMMs)"
    assert rows["efficiency.matmul_epilogue_k"]["source"] == ""  # stated by the profile
    assert rows["efficiency.matmul_fp8"]["value"] == "0.72 of the 8-bit peak"
    assert rows["efficiency.matmul_fp8"]["source"] == "hardware_profiles/defaults/kernels.yaml"
    assert {"efficiency.kernel_overhead", "efficiency.attention_decode_memory", "efficiency.sustained_clock",
            "efficiency.moe_expert_fixed_tokens", "efficiency.pipeline_sequence_overhead"} <= set(rows)
    a100 = {row["key"]: row for row in csv.DictReader(io.StringIO(run_cli("profiles", "show", "a100-pcie", "-f",
                                                                           "csv").out))}
    assert a100["efficiency.matmul_epilogue_k"]["source"] == "hardware_profiles/defaults/kernels.yaml"
    assert "efficiency.matmul_fp4" not in a100


def test_profile_path_env_shadows_builtins(tmp_path, monkeypatch, run_cli):
    d = _base()
    d["description"] = "our cluster"
    (tmp_path / "dgx-h100.yaml").write_text(yaml.safe_dump(d))
    monkeypatch.setenv("TPPLAN_PROFILE_PATH", str(tmp_path))
    profile, assumed = resolve_profile("dgx-h100")
    assert profile.description == "our cluster" and not assumed
    assert resolve_profile(None)[1] is True


def test_unknown_profile_error(run_cli):
    r = run_cli("profiles", "show", "dgx-h1000")
    assert r.code == 1 and r.err.startswith("Error: unknown hardware profile 'dgx-h1000'; closest: dgx-h100")


def test_load_time_under_20ms():
    text = (ROOT / "hardware_profiles" / "dgx-h100.yaml").read_text()
    load_profile_text(text, origin="warm")  # first call builds pydantic validators
    start = time.perf_counter()
    for _ in range(20):
        load_profile_text(text, origin="t")
    per_load_s = (time.perf_counter() - start) / 20
    print(f"profile load: {per_load_s * 1e3:.2f} ms")
    assert per_load_s < 0.2  # loose here (shared CI); the 20 ms target is reported by benchmarks/


# --- the fuzzer ------------------------------------------------------------------------------------------------
def _paths(d, prefix=()):
    if isinstance(d, dict):
        for k, v in d.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))


BASE = _base()
ALL_PATHS = list(_paths(BASE))
BAD_VALUES = st.one_of(st.just(None), st.just(-1), st.just(0), st.just("fast"), st.just("80 GHz"), st.just("1e999"),
                       st.just(10**400), st.just([1, 2]), st.just({"x": 1}), st.just(True), st.just("400 Gb/s"),
                       st.text(max_size=8), st.floats(allow_nan=True, allow_infinity=True), st.integers())


@st.composite
def mutated_profiles(draw):
    kind = draw(st.sampled_from(["set", "delete", "add", "syntax", "empty", "scalar"]))
    if kind == "syntax":
        text = yaml.safe_dump(BASE)
        cut = draw(st.integers(1, len(text) - 1))
        return text[:cut] + draw(st.sampled_from([": [", "\t", "{", "- - :", "!!python/object:os.system {}"]))
    if kind == "empty":
        return draw(st.sampled_from(["", "\n", "# only a comment\n"]))
    if kind == "scalar":
        return draw(st.sampled_from(["42", "[1, 2]", "just text"]))
    d = copy.deepcopy(BASE)
    path = draw(st.sampled_from(ALL_PATHS))
    parent = d
    for k in path[:-1]:
        parent = parent[k]
    if kind == "set":
        parent[path[-1]] = draw(BAD_VALUES)
    elif kind == "delete":
        del parent[path[-1]]
    else:
        parent[draw(st.sampled_from(["colour", "bandwith", "memory_gb"]))] = 1
    return yaml.safe_dump(d, sort_keys=False)


@settings(max_examples=int(os.environ.get("TPPLAN_FUZZ_EXAMPLES", "200")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(mutated_profiles())
def test_fuzzed_profiles_never_traceback(text):
    from tpplan.errors import ProfileError

    try:
        load_profile_text(text, origin="fuzz.yaml")
    except ProfileError as exc:
        assert exc.problems
        for line in exc.problems:
            assert re.match(r"fuzz\.yaml:\d+: .+?: .+; expected .+", line), line
            assert "\n" not in line


def test_every_builtin_round_trips_through_yaml():
    """profile -> YAML (the writer `tpplan measure --out` uses) -> validated load -> the same profile."""
    import dataclasses

    from tpplan.hardware.writer import profile_to_yaml

    for name in builtin_names():
        p = load_builtin(name)
        again = load_profile_text(profile_to_yaml(p), origin="round-trip")
        a, b = dataclasses.asdict(p), dataclasses.asdict(again)
        # provenance, not values: the writer states every value, so nothing is left to the defaults files after it
        for d in (a, b):
            d.pop("origin"), d.pop("defaulted")
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) or _close(a, b), name


def _close(a, b) -> bool:
    """Equal up to the 6 significant digits the writer prints."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float | int) and not isinstance(a, bool):
        return a == pytest.approx(b, rel=1e-5)
    return a == b


def test_price_gives_cost_per_million_tokens(tmp_path):
    from tpplan.planner.plan import recommend

    d = _base()
    d["price_per_gpu_hour"] = 2.0
    path = tmp_path / "priced.yaml"
    path.write_text(yaml.safe_dump(d))
    best = recommend("llama-8b", gpus=8, hardware=str(path)).recommended
    expected = 2.0 * best.gpus_used / 3600 / best.output_tokens_per_s * 1e6
    assert best.cost_per_million_output_tokens == pytest.approx(expected)


def test_every_builtin_states_its_16bit_peak():
    """DESIGN §2, "never a guess": 16-bit kernels and dtypes without their own rate run at the bf16/fp16 peak."""
    for name in builtin_names():
        assert {"bf16", "fp16"} & set(load_builtin(name).gpu.peak_flops_per_s), name


def test_a_profile_without_a_16bit_peak_is_refused_naming_file_line_and_key(tmp_path, refusal):
    d = _base()
    d["gpu"]["peak_flops"] = {"fp8": "1978.9 TFLOP/s"}
    path = tmp_path / "fp8only.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if t.strip() == "peak_flops:")
    assert refusal("recommend", "-m", "llama-8b", "--hardware", str(path)) == (
        f"Error: {path}:{line}: gpu.peak_flops: no 16-bit peak (got ['fp8']); expected a bf16 (or fp16) key: the "
        f"dense 16-bit matmul peak from the datasheet (never taken from another dtype)")


def test_peak_for_a_dtype_never_falls_back_to_another_dtypes_peak():
    from tpplan.errors import ProfileError
    from tpplan.hardware.profile import GpuSpec

    gpu = GpuSpec(name="X", memory_bytes=GiB, memory_bandwidth_bytes_per_s=1e12, peak_flops_per_s={"fp8": 2e15})
    assert gpu.peak_flops_for("fp8") == 2e15
    with pytest.raises(ProfileError, match=r"^gpu 'X' lists no 16-bit peak \(peak_flops has fp8\) and none for bf16; "
                                           r"add gpu\.peak_flops\.bf16"):
        gpu.peak_flops_for("bf16")


def _with_duplicate(tmp_path, name: str = "dup.yaml") -> tuple[Path, int, int]:
    """dgx-h100.yaml with `matmul: 0.2` added above its own `matmul: 0.79` under efficiency; (path, lines)."""
    text = (ROOT / "hardware_profiles" / "dgx-h100.yaml").read_text()
    path = tmp_path / name
    path.write_text(text.replace("efficiency:\n", "efficiency:\n  matmul: 0.2\n", 1))
    first = path.read_text().splitlines().index("  matmul: 0.2") + 1
    return path, first, first + 1


def test_a_key_given_twice_is_refused_with_file_line_and_key(tmp_path, refusal, run_cli):
    """PyYAML keeps the last of two equal keys in silence; tpplan names both lines instead."""
    path, first, again = _with_duplicate(tmp_path)
    line = (f"{path}:{again}: efficiency.matmul: duplicate key (first on line {first}); expected each key once in a "
            f"mapping: keep one of the two (YAML would silently use the last)")
    assert refusal("recommend", "-m", "llama-8b", "--hardware", str(path)) == f"Error: {line}"
    r = run_cli("profiles", "validate", str(path))
    assert (r.code, r.err) == (1, line + "\n")


def test_duplicate_keys_are_found_in_the_measured_kernel_table_too():
    from tpplan.errors import ProfileError
    from tpplan.hardware.writer import profile_to_yaml

    text = profile_to_yaml(load_builtin("dgx-h100")) + (
        "kernel_table:\n  source: x\n  matmul:\n  - {n: 8, k: 8, dtype: bf16, tokens: [1], time: [3], k: 16}\n")
    line = len(text.splitlines())
    with pytest.raises(ProfileError, match=rf"^t\.yaml:{line}: kernel_table\.matmul\.0\.k: duplicate key \(first on "
                                           rf"line {line}\)"):
        load_profile_text(text, origin="t.yaml")


def test_a_listed_profile_with_a_duplicate_key_is_a_warning_row_not_a_crash(tmp_path, monkeypatch, run_cli):
    path, _, again = _with_duplicate(tmp_path, "ours.yaml")
    monkeypatch.setenv("TPPLAN_PROFILE_PATH", str(tmp_path))
    r = run_cli("profiles", "list", "-f", "json")
    row = next(x for x in r.json() if x["location"] == str(path))
    assert r.code == 0 and row["valid"] is False and f"{path}:{again}: efficiency.matmul: duplicate key" in r.err


def _five_problems(path: Path) -> Path:
    d = _base()
    d["gpu"]["memory"] = "80 GHz"
    d["gpu"]["memory_bandwidth"] = -1
    d["node"]["colour"] = "red"
    d["efficiency"]["matmul"] = 2
    d["nodes"] = 0
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


@pytest.mark.parametrize("name", ["bad.yaml", "our profiles/bad.yaml"])
def test_a_profile_with_several_problems_is_one_line_naming_the_command_that_lists_all(tmp_path, refusal, run_cli,
                                                                                       name):
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    _five_problems(path)
    r = run_cli("profiles", "validate", str(path))
    every = r.err.splitlines()
    assert r.code == 1 and len(every) == 5
    quoted = f"'{path}'" if " " in name else str(path)
    assert refusal("recommend", "-m", "llama-8b", "--hardware", str(path)) == (
        f"Error: {every[0]} (and 4 more; run `tpplan profiles validate {quoted}` for all)")


def test_one_problem_is_the_whole_message_and_text_without_a_file_names_no_command():
    from tpplan.errors import ProfileError

    assert str(ProfileError(["a.yaml:1: x: bad"])) == "a.yaml:1: x: bad"
    assert str(ProfileError(["p:1: x: bad", "p:2: y: bad"])) == "p:1: x: bad (and 1 more)"
    assert ProfileError(["p:1: x: bad", "p:2: y: bad"], path="p").problems == ["p:1: x: bad", "p:2: y: bad"]


def test_validate_json_lists_each_problem_with_file_line_key_and_ok(run_cli, tmp_path):
    """-f json: {"ok", "files": [{file, ok}], "problems": [{file, line, key, severity, message, ok}]} on stdout, the
    exit code as in text (1 when a profile is invalid); the text default is unchanged."""
    good = ROOT / "hardware_profiles" / "dgx-h100.yaml"
    bad = _five_problems(tmp_path / "bad.yaml")
    text = run_cli("profiles", "validate", str(good), str(bad))
    r = run_cli("profiles", "validate", str(good), str(bad), "--format", "json")
    assert (r.code, r.err) == (1, "")
    d = r.json()
    assert d["ok"] is False and d["files"] == [{"file": str(good), "ok": True}, {"file": str(bad), "ok": False}]
    assert len(d["problems"]) == 5 and {p["file"] for p in d["problems"]} == {str(bad)}
    first = d["problems"][0]
    assert first["severity"] == "error" and first["ok"] is False and first["key"] == "gpu.memory"
    assert f"{bad}:{first['line']}: gpu.memory: {first['message']}" == text.err.splitlines()[0]
    assert "memory: 80 GHz" in bad.read_text().splitlines()[first["line"] - 1]
    ok = run_cli("profiles", "validate", str(good), "-f", "json")
    assert ok.code == 0 and ok.json() == {"ok": True, "files": [{"file": str(good), "ok": True}], "problems": []}
    assert run_cli("profiles", "validate", str(good)).out == "1 profile(s) valid\n"


def test_validate_json_carries_warnings_as_ok_problems(run_cli, tmp_path):
    text = (ROOT / "hardware_profiles" / "dgx-h100.yaml").read_text()
    path = tmp_path / "w.yaml"
    path.write_text(re.sub(r"step_overhead: [^\n]*", "step_overhead: 0.5", text, count=1))
    r = run_cli("profiles", "validate", str(path), "-f", "json")
    assert r.code == 0, r.out
    (warning,) = r.json()["problems"]
    assert (warning["key"], warning["severity"], warning["ok"]) == ("efficiency.step_overhead", "warning", True)
    assert r.json()["ok"] is True


@pytest.mark.parametrize("args", [("profiles", "schema"), ("schema", "recommend"), ("schema", "measure")])
def test_schema_commands_take_format(run_cli, args, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert run_cli(*args).json() == run_cli(*args, "-f", "json").json()  # JSON stays the default
    rows = run_cli(*args, "-f", "csv").out.splitlines()
    assert rows[0] == "key,type,required,description" and len(rows) > 5
    table = run_cli(*args, "-f", "table")
    assert table.code == 0 and table.out.splitlines()[1].split() == ["key", "type", "required", "description"]


def test_a_runtime_reserve_not_below_the_gpu_memory_is_refused(run_cli, tmp_path):
    path = tmp_path / "big-reserve.yaml"
    path.write_text((ROOT / "hardware_profiles" / "dgx-h100.yaml").read_text().replace(
        "  runtime_reserve: 4 GiB", "  runtime_reserve: 200 GiB").replace("name: dgx-h100", "name: big-reserve", 1))
    r = run_cli("profiles", "validate", str(path))
    assert r.code == 1 and r.err.splitlines()[0].endswith(
        "efficiency.runtime_reserve: not below gpu.memory (got '200 GiB'); expected the runtime buffers' size, a few "
        "GiB and well below the GPU's 80 GiB")


def test_a_user_file_that_shadows_the_default_profile_is_the_default_too(run_cli, tmp_path, monkeypatch):
    """A file on TPPLAN_PROFILE_PATH named dgx-h100.yaml answers to `--hardware dgx-h100`; with no --hardware the
    default name resolves the same way, and `profiles list` no longer lists the built-in it shadows."""
    (tmp_path / "dgx-h100.yaml").write_text((ROOT / "hardware_profiles" / "dgx-h100.yaml").read_text().replace(
        "name: dgx-h100", "name: my-h20", 1).replace("  name: H100 SXM5 80GB", "  name: H20 96GB", 1))
    monkeypatch.setenv("TPPLAN_PROFILE_PATH", str(tmp_path))
    named = run_cli("recommend", "--model", "llama-8b", "--hardware", "dgx-h100", "-f", "json").json()
    default = run_cli("recommend", "--model", "llama-8b", "-f", "json").json()
    assert named["inputs"]["gpu"] == default["inputs"]["gpu"] == "H20 96GB"
    listed = {row["name"]: row for row in run_cli("profiles", "list", "-f", "json").json()}
    assert "my-h20" in listed and "dgx-h100" not in listed


def test_hardware_auto_is_one_line_for_every_command_without_a_gpu(run_cli, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    for args in (("recommend", "--model", "llama-8b"), ("sweep", "--models", "llama-8b"), ("profiles", "show")):
        r = run_cli(*args, *(["--hardware"] if args[0] != "profiles" else []), "auto")
        assert r.code == 1 and r.err.startswith("Error: --hardware auto needs nvidia-smi on PATH"), (args, r.err)

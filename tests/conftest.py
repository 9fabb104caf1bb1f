from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tpplan.cli import main


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def run_cli(capsys):
    """Run `tpplan ARGS` in-process through main(); returns exit code, stdout, stderr."""

    def _run(*args: str) -> Result:
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return _run


@pytest.fixture
def usage_error(run_cli):
    """Run `tpplan ARGS` that must be refused as a usage error: exit 2, nothing on stdout, no traceback; returns
    stderr (whose `Error: ...` line the test pins)."""

    def _refused(*args: str) -> str:
        r = run_cli(*args)
        assert (r.code, r.out) == (2, ""), (r.code, r.out, r.err)
        assert "Traceback" not in r.err
        return r.err

    return _refused


@pytest.fixture
def refusal(run_cli):
    """Run `tpplan ARGS` that tpplan must refuse (a well-formed command line it will not plan): exit 1, nothing on
    stdout, one line `Error: ...` on stderr and no traceback; returns that line without its newline."""

    def _refused(*args: str) -> str:
        r = run_cli(*args)
        assert (r.code, r.out) == (1, ""), (r.code, r.out, r.err)
        assert r.err.startswith("Error: ") and r.err.count("\n") == 1 and r.err.endswith("\n"), r.err
        return r.err.rstrip("\n")

    return _refused


@pytest.fixture
def edited_profile(tmp_path):
    """dgx-h100 written to tmp_path under `name` with efficiency keys set: returns (path, line of the first key)."""

    def _write(name: str, **efficiency) -> tuple[Path, int]:
        d = yaml.safe_load((Path(__file__).resolve().parents[1] / "hardware_profiles/dgx-h100.yaml").read_text())
        d["name"] = name
        d["efficiency"] |= efficiency
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(d, sort_keys=False))
        first = next(iter(efficiency))
        line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if t.strip().startswith(f"{first}:"))
        return path, line

    return _write


# CI runs the property tests and fuzzers with a fixed seed so a green main stays green; locally each run explores
# new examples (and TPPLAN_FUZZ_EXAMPLES / TPPLAN_PROPERTY_EXAMPLES raise the counts).
def _hypothesis_profile() -> None:
    import os

    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI"):
        settings.load_profile("ci")


_hypothesis_profile()

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tpplan import __version__
from tpplan.cli import app

ROOT = Path(__file__).resolve().parents[1]


def test_version(run_cli):
    r = run_cli("--version")
    assert r.code == 0 and r.out.strip() == f"tpplan {__version__}"


def test_usage_error_exits_2(run_cli):
    r = run_cli("no-such-command")
    assert r.code == 2
    assert "No such command" in r.err


@pytest.mark.parametrize("args", [
    ("recommend", "--model", "llama-8b", "--gpus", "x"),  # not a number
    ("recommend", "--model", "llama-8b", "--dtype", "fp6"),  # not a weight format
    ("compare", "-m", "llama-8b", "8", "8+xp8"),  # not a layout
    ("sweep", "--models", "llama-8b", "--gpus", "8,0"),  # a list with a number below 1 (was a traceback)
    ("sweep", "--models", "llama-8b", "--dtype", "bf16,fp6"),
    ("sweep", "--models", "llama-8b", "--out", "rows.txt"),
    ("measure", "--backend", "mpi"),
    ("models", "show", "llama-8b", "--tp", "0"),
])
def test_a_value_wrong_on_its_own_exits_2_in_one_line(usage_error, args):
    """tpplan.cli's rule: what is wrong with one value alone is a usage error, found before any work."""
    err = usage_error(*args)
    assert err.startswith("Error: Invalid value for '") and err.count("\n") == 1  # one line, no usage block


@pytest.mark.parametrize("args", [
    ("models", "show", "no-such-model"),
    ("recommend", "-m", "llama-8b", "--workload", "train", "--engine", "vllm"),  # was exit 2
    ("recommend", "-m", "llama-8b", "--workload", "train", "--kv-cache-dtype", "fp8"),
    ("recommend", "-m", "llama-8b", "--gpus", "8", "--tp", "1", "--ep", "8"),
    ("recommend", "-m", "llama-8b", "--num-requests", "10", "--objective", "latency"),
    ("compare", "-m", "llama-8b", "-g", "8", "8", "8+ep8"),
    ("sweep", "--models", "llama-8b", "--engine", "sglang", "--all2all-backend", "deepep_low_latency"),  # was exit 2
])
def test_a_refusal_of_a_well_formed_command_line_exits_1_with_one_line(refusal, args):
    assert refusal(*args)


def test_debug_shows_the_traceback_of_a_refusal_the_cli_makes():
    proc = subprocess.run([sys.executable, "-m", "tpplan", "recommend", "-m", "llama-8b", "--pp", "2", "--debug"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "TpplanError" in proc.stderr


def test_python_dash_m_works():
    proc = subprocess.run([sys.executable, "-m", "tpplan", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"tpplan {__version__}"


def test_error_is_one_line_and_no_traceback(run_cli):
    r = run_cli("models", "show", "no-such-model")
    assert r.code == 1
    assert r.err.count("\n") == 1 and r.err.startswith("Error: unknown model 'no-such-model'")
    assert "Traceback" not in r.err


def test_debug_env_shows_traceback():
    proc = subprocess.run([sys.executable, "-m", "tpplan", "models", "show", "no-such-model"], capture_output=True,
                          text=True, env={"TPPLAN_DEBUG": "1", "PATH": "/usr/bin"})
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "ModelSpecError" in proc.stderr


def _all_commands():
    names = []
    for cmd in app.registered_commands:
        names.append(cmd.name or cmd.callback.__name__)
    for group in app.registered_groups:
        for cmd in group.typer_instance.registered_commands:
            names.append(f"{group.name} {cmd.name or cmd.callback.__name__}")
    return names


def test_every_command_is_documented_in_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [c for c in _all_commands() if not re.search(rf"tpplan {re.escape(c)}\b", readme)]
    assert not missing, f"commands missing from README.md: {missing}"


def _registered(typer_app) -> tuple[list[str], list[str]]:
    return ([c.name or c.callback.__name__ for c in typer_app.registered_commands],
            [g.name for g in typer_app.registered_groups])


def test_a_run_builds_only_the_invoked_command():
    from tpplan.cli import _app_for

    assert _registered(_app_for(["recommend", "--model", "llama-70b"])) == (["recommend"], [])
    assert _registered(_app_for(["--debug", "models", "show", "llama-70b"])) == ([], ["models"])
    assert _registered(_app_for(["profiles", "list"])) == ([], ["profiles"])
    for args in ([], ["--help"], ["--version"], ["recomend"]):  # listings and typo suggestions need every command
        assert _app_for(args) is app
    assert len(_registered(app)[0]) >= 5 and _registered(app)[1] == ["models", "profiles"]


def test_the_slim_app_prints_the_same_help_and_usage_errors_as_the_whole_app(run_cli, monkeypatch):
    import tpplan.cli

    cases = (["recommend", "--help"], ["models", "show", "--help"], ["recommend"], ["models", "nope"],
             ["recommend", "--model", "llama-70b", "--engine", "tgi"])
    slim = [run_cli(*args) for args in cases]
    monkeypatch.setattr(tpplan.cli, "_app_for", lambda args: app)
    full = [run_cli(*args) for args in cases]
    for args, s, f in zip(cases, slim, full, strict=True):
        assert (s.code, s.out, s.err) == (f.code, f.out, f.err), args
        assert s.code in (0, 2) and (s.out or s.err)

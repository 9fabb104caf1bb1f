"""Malformed config.json files never crash: hypothesis mutates real configs (deleted keys, wrong types, zero,
negative, huge, NaN) and runs `models show` and `recommend`: exit 0, or exit 1 with one `Error:` line.

TPPLAN_FUZZ_EXAMPLES raises the example count (default 200)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tpplan.models.resolve import catalogue

CONFIGS = Path(__file__).parent / "data" / "configs"
EXAMPLES = int(os.environ.get("TPPLAN_FUZZ_EXAMPLES", "200"))


def _bases() -> list[dict]:
    files = [json.loads(p.read_text()) for p in sorted(CONFIGS.glob("*.json"))]
    wanted = ("DeepSeek-V3", "gpt-oss-20b", "Mixtral-8x7B-v0.1", "Gemma-2-9B")
    return files + [dict(raw) for _, raw in _catalogue_configs(wanted)]


def _catalogue_configs(names):
    from importlib import resources
    folder = resources.files("tpplan.models.catalogue")
    by_name = {e.spec.name: e for e in catalogue()}
    for f in folder.iterdir():
        if f.name.endswith(".json"):
            data = json.loads(f.read_text())
            if data["name"] in names:
                yield by_name[data["name"]], data["config"]


BASES = _bases()
BAD_VALUES = st.sampled_from([None, 0, -1, -(10**6), 10**12, 10**30, float("nan"), float("inf"), 1.5, "32", "",
                              [], {}, True, [1, 2], {"a": 1}])


@st.composite
def mutated(draw):
    cfg = json.loads(json.dumps(draw(st.sampled_from(BASES))))
    for _ in range(draw(st.integers(1, 3))):
        target = cfg
        nested = [k for k, v in cfg.items() if isinstance(v, dict)]
        if nested and draw(st.booleans()):
            target = cfg[draw(st.sampled_from(sorted(nested)))]
        if not target:
            continue
        key = draw(st.sampled_from(sorted(target)))
        if draw(st.integers(0, 4)) == 0:
            del target[key]
        else:
            target[key] = copy.deepcopy(draw(BAD_VALUES))  # never share a dict between examples
    return cfg


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutated())
def test_mutated_configs_exit_cleanly(run_cli, tmp_path, cfg):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    for args in (("models", "show", str(path), "-f", "json"),
                 ("recommend", "-m", str(path), "--hardware", "dgx-h100", "--gpus", "8", "-f", "json")):
        r = run_cli(*args)
        assert r.code in (0, 1), (args, r.err)
        if r.code == 1 and not r.err and args[0] == "recommend":
            assert json.loads(r.out)["recommended"] is None  # a valid plan in which nothing fits (exit 1)
        elif r.code == 1:
            assert r.err.startswith("Error: ") and r.err.count("\n") == 1, r.err
            assert "Traceback" not in r.err


def test_zero_layers_and_nan_are_one_line_errors(run_cli, tmp_path):
    """Both ended in a ValueError traceback before (issue 12)."""
    base = json.loads((CONFIGS / "falcon-40b.json").read_text())
    for key, value in (("num_hidden_layers", 0), ("hidden_size", float("nan"))):
        path = tmp_path / "config.json"
        path.write_text(json.dumps({**base, key: value}))
        r = run_cli("models", "show", str(path))
        assert r.code == 1 and r.err.startswith(f"Error: {path}: field '{key}' must be a positive integer")

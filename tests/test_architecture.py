"""The layering of shared/DESIGN.md §1, enforced by parsing imports."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from layering import (
    CORE_FOLDERS,
    find_cycles,
    import_graph,
    layer_of,
    upward_imports,
)

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_CORE = {"torch", "typer", "rich"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_cli_has_no_module_level_heavy_imports():
    tree = ast.parse((ROOT / "tpplan" / "cli.py").read_text())
    top = {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(m.split(".")[0] in {"torch", "pandas", "pydantic", "numpy"} for m in top)


def test_import_and_help_do_not_import_torch_pandas_or_pydantic():
    code = ("import sys\nfrom tpplan.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'pandas', 'pydantic', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


UNIT_LITERAL = re.compile(r"1024\s*\*\*\s*[34]|2\s*\*\*\s*30|\b1e9\b|10\s*\*\*\s*9|\b1e12\b")


def test_no_unit_literals_outside_units_py():
    offenders = []
    for folder in ("tpplan", "kernels"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "units.py":
                continue
            for i, line in enumerate(path.read_text().splitlines(), 1):
                if UNIT_LITERAL.search(line.split("#")[0]):
                    offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_top_level_kernels_is_not_importable(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import kernels"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0
    proc = subprocess.run([sys.executable, "-c", "import tpplan.kernels, tpplan.hardware_profiles"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_kernels_import_only_torch_and_tpplan_units():
    for path in (ROOT / "kernels").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tpplan."):
                ok = node.module == "tpplan.units" or node.module.startswith("tpplan.kernels.")
                assert ok, f"{path.name}: {node.module}"


GRAPH = import_graph()


def test_every_module_has_a_layer():
    missing = sorted(m for m in GRAPH if m.split(".")[1:2] and m.split(".")[1] not in
                     {"errors", "units", "files", "records", "_version", "models", "hardware", "cost", "planner",
                      "measure", "report", "cli", "__init__", "__main__"})
    assert not missing, f"add these to tests/layering.py LAYER_BY_TOP: {missing}"
    assert len(GRAPH) > 40, "module discovery found too few modules"


def test_no_import_cycles():
    assert find_cycles(GRAPH) == []


def test_nothing_imports_a_higher_layer():
    assert upward_imports(GRAPH) == []


def test_at_most_eight_modules_loose_in_tpplan():
    loose = sorted(p.name for p in (ROOT / "tpplan").glob("*.py"))
    assert len(loose) <= 8, loose


def test_core_never_imports_torch_typer_or_rich():
    offenders = []
    for folder in CORE_FOLDERS:
        for path in (ROOT / "tpplan" / folder).rglob("*.py"):
            bad = {n.split(".")[0] for n in _all_imports(path)} & FORBIDDEN_IN_CORE
            if bad:
                offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, offenders


def test_torch_only_in_measure_and_kernels():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "tpplan").rglob("*.py")
                 if "measure" not in p.relative_to(ROOT / "tpplan").parts and "torch" in
                 {n.split(".")[0] for n in _all_imports(p)}]
    assert not offenders, offenders


def _all_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


# The checks above must be able to fail: run them on small graphs with a known defect.

def test_cycle_finder_finds_a_cycle():
    graph = {"tpplan.planner.plan": {"tpplan.planner.explain"}, "tpplan.planner.explain": {"tpplan.planner.plan"}}
    assert find_cycles(graph) == [["tpplan.planner.explain", "tpplan.planner.plan", "tpplan.planner.explain"]]
    assert find_cycles({"tpplan.a": {"tpplan.b"}, "tpplan.b": set()}) == []


def test_layer_check_flags_upward_and_sibling_imports():
    graph = {"tpplan.cost.step": {"tpplan.planner.plan", "tpplan.models.spec"},
             "tpplan.models.kv": {"tpplan.hardware.profile", "tpplan.models.spec"},
             "tpplan.report.plan": {"tpplan.planner.result"}}
    assert upward_imports(graph) == [
        "tpplan.cost.step (layer 2) imports tpplan.planner.plan (layer 3)",
        "tpplan.models.kv (layer 1) imports tpplan.hardware.profile (layer 1)",
    ]
    assert layer_of("tpplan.cli") == 6 and layer_of("tpplan") == 6

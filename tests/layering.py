"""Discover tpplan's modules, their imports and their layers (shared/DESIGN.md §1), for test_architecture.py.

Layers, lowest first. A module may import its own folder and any lower layer, never a higher one:

    0  errors, units, files, records, _version (no tpplan imports above these)
    1  models/, hardware/                       (siblings: neither imports the other)
    2  cost/
    3  planner/
    4  measure/                                 (predicts with the planner's evaluation)
    5  report/
    6  cli, __init__ (the Python API), __main__
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tpplan"

LAYER_BY_TOP = {
    "errors": 0, "units": 0, "files": 0, "records": 0, "_version": 0,
    "models": 1, "hardware": 1,
    "cost": 2,
    "planner": 3,
    "measure": 4,
    "report": 5,
    "cli": 6, "__init__": 6, "__main__": 6,
}
CORE_FOLDERS = ("models", "hardware", "cost", "planner")
"""The planning core: never imports torch, typer or rich (`tpplan recommend` runs without them)."""


def module_name(path: Path, package: Path = PACKAGE) -> str:
    rel = path.relative_to(package.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> int:
    """Layer of `tpplan.x[.y]`; KeyError for a top-level name that has no layer yet (the test says so)."""
    parts = module.split(".")
    return LAYER_BY_TOP["__init__" if len(parts) == 1 else parts[1]]


def _resolve(name: str, known: set[str]) -> str | None:
    """The tpplan module an import refers to: the longest known prefix of `name`."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in known:
            return candidate
    return None


def imports_of(path: Path) -> set[str]:
    """Every absolute `tpplan...` name imported anywhere in the file (module level, functions, TYPE_CHECKING)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the tpplan modules it imports (kernels and packaged data folders are left out)."""
    paths = {module_name(p, package): p for p in package.rglob("*.py")
             if "kernels" not in p.parts and "hardware_profiles" not in p.parts}
    known = set(paths)
    graph: dict[str, set[str]] = {}
    for mod, path in paths.items():
        targets = {_resolve(n, known) for n in imports_of(path) if n.split(".")[0] == package.name}
        graph[mod] = {t for t in targets if t and t != mod and not mod.startswith(t + ".")
                      and t != package.name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles, each as the list of modules along it (depth-first search, one report per back edge)."""
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """'a imports b' for every import of a higher layer, or of a sibling folder of the same layer."""
    bad = []
    for mod, targets in sorted(graph.items()):
        for tgt in sorted(targets):
            lm, lt = layer_of(mod), layer_of(tgt)
            same_folder = mod.split(".")[:2] == tgt.split(".")[:2]
            if lt > lm or (lt == lm and lm > 0 and not same_folder and lm < 6):
                bad.append(f"{mod} (layer {lm}) imports {tgt} (layer {lt})")
    return bad

"""Turn YAML and pydantic failures into `file:line: key.path: problem (got VALUE); expected ...` lines."""

from __future__ import annotations

from typing import Any

import yaml


def node_line(text: str, loc: tuple[Any, ...]) -> int:
    """1-based line of the deepest YAML node on `loc` that exists (the parent line for a missing key)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return 1
    line = node.start_mark.line + 1 if node is not None else 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if getattr(k, "value", None) == str(key)), None)
            if match is None:
                return line
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _allowed_keys(model: type, loc: tuple[Any, ...]) -> list[str]:
    """Field names of the pydantic model found by walking `loc` (minus its last element)."""
    from typing import get_args

    for key in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(key)
        if field is None:
            return []
        candidates = [field.annotation, *get_args(field.annotation)]
        model = next((c for c in candidates if hasattr(c, "model_fields")), None)
        if model is None:
            return []
    return list(getattr(model, "model_fields", {}))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def pydantic_problems(exc: Any, *, text: str, origin: str, model: type) -> list[str]:
    """One line per pydantic error, each naming file, line, key path, value and the fix."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith(("function-", "literal["))))
        path = ".".join(str(x) for x in loc) or "(root)"
        line = node_line(text, loc)
        kind, msg = err["type"], err["msg"].removeprefix("Value error, ")
        if kind == "missing":
            problem, expected = "missing required key", "add it (see `tpplan profiles schema`)"
        elif kind == "extra_forbidden":
            allowed = _allowed_keys(model, loc)
            problem, expected = "unknown key", f"one of: {', '.join(allowed)}" if allowed else "remove it"
        elif "; expected " in msg:  # tpplan's own unit errors carry their fix
            problem, expected = msg.split("; expected ", 1)
        elif msg.startswith("Input should be "):
            problem, expected = "invalid value", msg.removeprefix("Input should be ")
        else:
            problem, expected = msg, "a valid value (see `tpplan profiles schema`)"
        got = "" if kind == "missing" else f" (got {_shown(err.get('input'))})"
        lines.append(f"{origin}:{line}: {path}: {problem}{got}; expected {expected}")
    return lines


def yaml_problem(exc: yaml.YAMLError, *, origin: str) -> str:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else 1
    what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{origin}:{line}: (file): YAML syntax error: {what}; expected valid YAML (safe subset, no tags)"

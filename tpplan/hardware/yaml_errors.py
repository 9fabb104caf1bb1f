"""Turn YAML and pydantic failures into `file:line: key.path: problem (got VALUE); expected ...` lines, and the
safe loader every tpplan YAML is read with, which refuses a key given twice in one mapping."""

from __future__ import annotations

from typing import Any

import yaml

_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names the same key twice. YAML 1.2 forbids it; PyYAML would keep the last value in silence."""

    def __init__(self, key: str, first: yaml.Mark, again: yaml.Mark) -> None:
        super().__init__("while constructing a mapping", first, f"duplicate key {key!r}", again)
        self.key, self.first_line, self.line = key, first.line + 1, again.line + 1


class UniqueKeySafeLoader(_SAFE_LOADER):  # type: ignore[misc, valid-type]
    """The safe loader (C parser when available) with one more rule: every key of a mapping appears once. Keys are
    compared as written with their resolved tag (`1` and `"1"` differ); `<<` merge keys are left to YAML."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], yaml.Mark] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                ident = (key_node.tag, key_node.value)
                if ident in seen:
                    raise DuplicateKeyError(key_node.value, seen[ident], key_node.start_mark)
                seen[ident] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def key_path(text: str, *, line: int, key: str) -> str:
    """The dotted path of the mapping key `key` written on 1-based `line` ('' when it cannot be found)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return ""
    stack: list[tuple[yaml.Node | None, tuple[str, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                here = (*path, str(getattr(k, "value", "?")))
                if getattr(k, "value", None) == key and k.start_mark.line + 1 == line:
                    return ".".join(here)
                stack.append((v, here))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((v, (*path, str(i))) for i, v in enumerate(node.value))
    return ""


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


def _misspelt(errors: list[tuple[tuple[Any, ...], dict]]) -> dict[tuple[Any, ...], str]:
    """Unknown keys that are a near miss of a required key missing from the same mapping: unknown key's loc -> the
    missing key's name (`memory_bandwith` for a missing `memory_bandwidth`)."""
    import difflib

    missing = {(loc[:-1], str(loc[-1])) for loc, err in errors if err["type"] == "missing" and loc}
    out = {}
    for loc, err in errors:
        if err["type"] == "extra_forbidden" and loc:
            names = [name for parent, name in missing if parent == loc[:-1]]
            close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.75)
            if close:
                out[loc] = close[0]
    return out


def pydantic_problems(exc: Any, *, text: str, origin: str, model: type) -> list[str]:
    """One line per pydantic error, each naming file, line, key path, value and the fix. An unknown key that is a
    near miss of a missing required key in the same mapping is one problem, the misspelling, and comes first."""
    import difflib

    errors = [(tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith(("function-", "literal[")))),
               err) for err in exc.errors(include_url=False)]
    misspelt = _misspelt(errors)
    first, lines = [], []
    for loc, err in errors:
        path = ".".join(str(x) for x in loc) or "(root)"
        line = node_line(text, loc)
        kind, msg = err["type"], err["msg"].removeprefix("Value error, ")
        got = f" (got {_shown(err.get('input'))})"
        if kind == "missing":
            if (loc[:-1], str(loc[-1])) in {(k[:-1], v) for k, v in misspelt.items()}:
                continue  # reported as its misspelling
            where = f"in {'.'.join(str(x) for x in loc[:-1])}" if loc[:-1] else "at the top level"
            lines.append(f"{origin}:{line}: {path}: missing required key; expected a {str(loc[-1])!r} key {where} "
                         f"(see `tpplan profiles schema`)")
            continue
        if kind == "extra_forbidden" and loc in misspelt:
            first.append(f"{origin}:{line}: {path}: unknown key{got}; expected {misspelt[loc]!r}, a required key this "
                         f"mapping lacks: fix the spelling")
            continue
        if kind == "extra_forbidden":
            allowed = _allowed_keys(model, loc)
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.75) if loc else []
            problem = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
            expected = f"one of: {', '.join(allowed)}" if allowed else "remove it"
        elif err.get("input", ...) is None:  # `memory:` with nothing after it
            got, problem = "", "empty value"
            expected = (msg.removeprefix("expected ").rsplit(", got", 1)[0] if msg.startswith("expected ") else
                        msg.removeprefix("Input should be ") if msg.startswith("Input should be ") else
                        "a value (see `tpplan profiles schema`)")
        elif "; expected " in msg:  # tpplan's own unit errors carry their fix
            problem, expected = msg.split("; expected ", 1)
        elif msg.startswith("Input should be "):
            problem, expected = "invalid value", msg.removeprefix("Input should be ")
        else:
            problem, expected = msg, "a valid value (see `tpplan profiles schema`)"
        lines.append(f"{origin}:{line}: {path}: {problem}{got}; expected {expected}")
    return first + lines


def yaml_problem(exc: yaml.YAMLError, *, origin: str, text: str = "") -> str:
    if isinstance(exc, DuplicateKeyError):
        path = key_path(text, line=exc.line, key=exc.key) or exc.key
        return (f"{origin}:{exc.line}: {path}: duplicate key (first on line {exc.first_line}); expected each key once "
                f"in a mapping: keep one of the two (YAML would silently use the last)")
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else 1
    what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{origin}:{line}: (file): YAML syntax error: {what}; expected valid YAML (safe subset, no tags)"

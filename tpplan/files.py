"""Output files are written atomically (temp file + rename) and never overwritten without --force; the folders of
the data packages tpplan ships (built-in profiles, model catalogue)."""

from __future__ import annotations

import importlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

from tpplan.errors import OutputExistsError, TpplanError


def check_writable(path: Path, *, force: bool, option: str = "--out") -> None:
    """Refuse, before any work, an output that cannot be written: one that exists (without --force), a directory, or
    one whose folder is missing, not a folder or not writable. `option` is the flag that named `path`."""
    if path.is_dir():
        raise TpplanError(f"cannot write {path}: it is a directory; choose another {option} (a file name)")
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists; pass --force to overwrite it, or choose another {option}")
    if path.is_symlink() and not force:  # a link whose target is missing: writing would replace the link
        raise OutputExistsError(f"{path} exists (a symbolic link to {os.readlink(path)}, which does not exist); pass "
                                f"--force to replace the link with the file, or choose another {option}")
    parent = path.parent
    if not parent.exists():
        if any(p.exists() and not p.is_dir() for p in parent.parents):
            raise TpplanError(f"cannot write {path}: {_file_in(parent)} is a file, not a directory; choose another "
                              f"{option}")
        raise TpplanError(f"{parent} does not exist; create the directory or choose another {option}")
    if not parent.is_dir():
        raise TpplanError(f"cannot write {path}: {parent} is a file, not a directory; choose another {option}")
    import tempfile

    try:  # the only sure test (permissions, a read-only mount, /proc): create a file there, as write_atomic will
        fd, probe = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=parent)
    except OSError as exc:
        raise _cannot_write(path, exc, option) from exc
    try:
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:  # e.g. a folder that takes new files but lets none be removed
        raise _cannot_write(path, exc, option) from exc


def _temp_prefix(path: Path) -> str:
    """The hidden temp file's name prefix beside `path`: a short stem of its name, so that a name near the 255-byte
    limit still leaves room for mkstemp's random part and suffix."""
    return f".{path.name[:32]}."


def _file_in(folder: Path) -> Path:
    """The first ancestor of `folder` (nearest the root) that exists and is not a directory."""
    return next(p for p in reversed((folder, *folder.parents)) if p.exists() and not p.is_dir())


def _mode_for(path: Path) -> int:
    """Permission bits the written file gets: those of the file it replaces (--force), else what open() would give
    a new file, 0o666 minus the umask (mkstemp's own 0o600 would hide a shared result from its group)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0o022)  # reading the umask means setting it; put it straight back
        os.umask(umask)
        return 0o666 & ~umask


def write_atomic(path: Path, write: Callable[[Path], None], *, force: bool, option: str = "--out") -> Path:
    """Call `write(tmp_path)`, then rename over `path` in one step; the temp file is removed on failure. The file
    gets the mode of the one it replaces, or a new file's (_mode_for). An OSError (no permission, no such folder, a
    full disk) becomes one TpplanError line naming `path` and `option`, the flag that named it."""
    import tempfile  # here, not at the top: the read-only commands import this module for package_dir

    check_writable(path, force=force, option=option)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _cannot_write(path, exc, option) from exc
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, _mode_for(path))  # after write(): a writer may recreate the file
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _cannot_write(path, exc, option) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _cannot_write(path: Path, exc: OSError, option: str) -> TpplanError:
    reason = exc.strerror or exc.__class__.__name__
    return TpplanError(f"cannot write {path}: {reason[:1].lower()}{reason[1:]}; choose another {option}")


def write_text_atomic(path: Path, text: str, *, force: bool, option: str = "--out") -> Path:
    return write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"), force=force, option=option)


def package_dir(package: str) -> Path:
    """The folder of a regular package that ships data files (`tpplan.hardware_profiles`,
    `tpplan.models.catalogue`). A plain path rather than importlib.resources, whose import pulls in zipfile and
    tempfile (3 ms CPU of a cold `tpplan recommend`, measured); pip installs tpplan unpacked, never zipped."""
    return Path(importlib.import_module(package).__file__).parent


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load_json(text: str, *, origin: str, error: type[TpplanError] = TpplanError) -> object:
    """`json.loads(text)` that refuses a key given twice in one object, as tpplan's YAML loader does
    (tpplan.hardware.yaml_errors.UniqueKeySafeLoader): RFC 8259 section 4 leaves such names' meaning unpredictable,
    and Python's json (like transformers' config loading) keeps the last value in silence. Raises `error` naming
    `origin`, the key's dotted path (list items by index, `results.0.workload`) and both values; a
    json.JSONDecodeError passes through for the caller's own message."""
    import json

    # id of an object with a repeated key -> (the object, kept alive so its id stays unique; key; both values)
    twice: dict[int, tuple[dict[str, object], str, object, object]] = {}

    def pairs_hook(pairs: list[tuple[str, object]]) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, value in pairs:
            if key in out and id(out) not in twice:
                twice[id(out)] = (out, key, out[key], value)
            out[key] = value
        return out

    data = json.loads(text, object_pairs_hook=pairs_hook)
    if twice:
        path = _path_to(data, twice)
        _, key, first, again = twice[id(_at(data, path))] if path is not None else next(iter(twice.values()))
        path = path or ()
        raise error(f"{origin}: {'.'.join((*path, key))}: duplicate key in one JSON object (first {_shown(first)}, "
                    f"then {_shown(again)}); expected each key once: keep one of the two (JSON readers would "
                    f"silently use the last)")
    return data


def _path_to(node: object, twice: dict[int, tuple], path: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """The path (keys and list indices) of the first object in document order that `twice` records; None if none
    is reachable."""
    if isinstance(node, dict) and id(node) in twice:
        return path
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        found = _path_to(child, twice, (*path, str(key))) if isinstance(child, dict | list) else None
        if found is not None:
            return found
    return None


def _at(node: object, path: tuple[str, ...]) -> object:
    for key in path:
        node = node[int(key)] if isinstance(node, list) else node[key]  # type: ignore[index]
    return node

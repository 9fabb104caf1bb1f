"""Output files are written atomically (temp file + rename) and never overwritten without --force; the folders of
the data packages tpplan ships (built-in profiles, model catalogue)."""

from __future__ import annotations

import importlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

from tpplan.errors import OutputExistsError, TpplanError


def check_writable(path: Path, *, force: bool) -> None:
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists; pass --force to overwrite it, or choose another --out")
    if not path.parent.exists():
        raise TpplanError(f"{path.parent} does not exist; create the directory or choose another --out")


def _mode_for(path: Path) -> int:
    """Permission bits the written file gets: those of the file it replaces (--force), else what open() would give
    a new file, 0o666 minus the umask (mkstemp's own 0o600 would hide a shared result from its group)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0o022)  # reading the umask means setting it; put it straight back
        os.umask(umask)
        return 0o666 & ~umask


def write_atomic(path: Path, write: Callable[[Path], None], *, force: bool) -> Path:
    """Call `write(tmp_path)`, then rename over `path` in one step; the temp file is removed on failure. The file
    gets the mode of the one it replaces, or a new file's (_mode_for)."""
    import tempfile  # here, not at the top: the read-only commands import this module for package_dir

    check_writable(path, force=force)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, _mode_for(path))  # after write(): a writer may recreate the file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: Path, text: str, *, force: bool) -> Path:
    return write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"), force=force)


def package_dir(package: str) -> Path:
    """The folder of a regular package that ships data files (`tpplan.hardware_profiles`,
    `tpplan.models.catalogue`). A plain path rather than importlib.resources, whose import pulls in zipfile and
    tempfile (3 ms CPU of a cold `tpplan recommend`, measured); pip installs tpplan unpacked, never zipped."""
    return Path(importlib.import_module(package).__file__).parent

"""Files written whole or not at all (no torch here: the pipeline's data stage imports it)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def umask() -> int:
    """The process's file-mode creation mask (read from /proc where it is, else set and
    restored at once)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode(*, folder: bool = False) -> int:
    """The mode a plain ``open``/``mkdir`` would give: 0o666 (folders 0o777) less the umask.
    Temp files and folders are created 0o600 / 0o700; outputs get this mode instead, so that
    collaborators in a shared folder read them as they read the user's other files."""
    return (0o777 if folder else 0o666) & ~umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and an atomic rename;
    the file gets the mode the umask gives (:func:`default_mode`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, default_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

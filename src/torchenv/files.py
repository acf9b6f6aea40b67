"""Writing project files safely: a reader (or a crash) never sees a half-written file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from torchenv.errors import UserError


def write_atomic(path: Path, text: str | bytes) -> None:
    """Replace `path` with `text` in one rename, with the mode the umask gives a new file
    (mkstemp's 0600 would hide generated files from image builds, which read them as another
    user)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        Path(tmp).chmod(0o666 & ~umask)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable_folder(path: Path, flag: str, shown: Path | None = None) -> None:
    """UserError (one line) unless `path` is a folder this user can write to, or one that can be
    made: checked before a long run, not after it."""
    path = Path(path)
    name = str(shown or path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {name!r}: {str(path)!r} is a file, not a folder")
    parent = path
    while not parent.exists():
        parent = parent.parent
    try:
        if not parent.is_dir():
            raise NotADirectoryError(str(parent))
        with tempfile.TemporaryFile(dir=parent):  # what writing there will do (root too)
            pass
    except OSError as exc:
        why = exc.strerror or "not a folder"
        raise UserError(f"{flag} {name!r}: cannot write in {str(parent)!r} ({why})") from None


def check_writable_file(path: Path, flag: str) -> None:
    """UserError (one line) unless `path` can be written as a file: not a folder, its folder
    there (or makeable) and writable."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {str(path)!r} is a folder: give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{flag} {str(path)!r} is not writable by this user")
    check_writable_folder(path.parent, flag, shown=path)

"""The project's files, handled safely: a reader (or a crash) never sees a half-written file, and
the project's root is a boundary.

The root is a boundary for everything the kit does for the project: what it writes, links or
removes is never reached through a symbolic link and never lies outside the root (`write_in`,
`kit_folder`, `no_links`), and what it reads as the project's is inside the root once its links
are followed (`inside`). A repository is untrusted input: a committed `.torchenv -> ../victim` or
`requirements.txt -> /proc/self/environ` is refused in one line, never followed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from torchenv.errors import UserError


def write_atomic(path: Path, text: str | bytes) -> None:
    """Replace `path` with `text` in one rename, with the mode the umask gives a new file
    (mkstemp's 0600 would hide generated files from image builds, which read them as another
    user). A symlink at `path` is replaced, never written through. An OSError names `path`, not
    the temporary file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        Path(tmp).chmod(0o666 & ~umask)
        Path(tmp).replace(path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _shown(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def no_links(root: Path, path: Path) -> Path:
    """`path` (relative to `root`, or absolute under it) when neither it nor any folder between
    `root` and it is a symbolic link and it stays under `root` without following one; UserError
    (one line, naming it) otherwise. What does not exist yet is fine: it will be made."""
    root = Path(root)
    full = Path(os.path.normpath(root / path))
    try:
        parts = full.relative_to(root).parts
    except ValueError:
        raise UserError(
            f"{path} lies outside the project ({root}): torchenv writes inside the project only"
        ) from None
    here = root
    for part in parts:
        here = here / part
        if here.is_symlink():
            raise UserError(
                f"{_shown(root, here)} is a symbolic link (to {here.readlink()}): torchenv never "
                "writes, links or removes through one; remove the link (a folder of the kit's is "
                "made again)"
            )
    return full


def write_in(root: Path, path: Path, text: str | bytes) -> None:
    """`write_atomic` of a file of the project's: refused in one line when a folder on its way
    from `root` is a symbolic link (a link at the file itself is replaced, as write_atomic does)."""
    full = no_links(root, Path(path).parent) / Path(path).name
    write_atomic(full, text)


def kit_folder(root: Path, rel: str) -> Path:
    """The kit's folder `rel` under `root` (`.torchenv/kit`, ...), made where missing; UserError
    when any part of it is a symbolic link or not a folder (a hostile repository can commit
    `.torchenv -> ../elsewhere`: the kit then refuses instead of writing or deleting there)."""
    folder = no_links(root, Path(rel))
    here = Path(root)
    for part in Path(rel).parts:
        here = here / part
        if here.exists() and not here.is_dir():
            raise UserError(
                f"{_shown(Path(root), here)} is not a folder: it is the kit's to make; remove it"
            )
        if not here.exists():
            here.mkdir()
    return folder


def inside(root: Path, path: Path, what: str) -> Path:
    """`path` (relative to `root`) with its symbolic links followed, when that lies inside
    `root`; UserError naming `what` (the user's words for it) otherwise. The file's content is
    never read or shown here."""
    real_root = Path(root).resolve()
    real = (Path(root) / path).resolve()
    if real != real_root and real_root not in real.parents:
        via = " (through a symbolic link)" if (Path(root) / path).is_symlink() else ""
        raise UserError(
            f"{what} lies outside the project{via}: torchenv reads the project's own files only; "
            "copy what it needs into the project"
        )
    return real


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


@contextlib.contextmanager
def exclusive(root: Path, name: str, what: str) -> Iterator[None]:
    """Within the block this process alone works on `what` in the project at `root` (an flock on
    `.torchenv/<name>.lock`, released when the process ends, however it ends); another holder
    is refused in one line."""
    path = kit_folder(root, ".torchenv") / f"{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another torchenv process is working on {what} in this project: wait for it to "
                "end, then run this again"
            ) from None
        yield
    finally:
        os.close(fd)


class Transaction:
    """Writes and removals of the project's files, done all or not at all.

    `check` refuses (one line) before anything is touched: a symbolic link on the way, a folder
    where a file goes or a file where a folder goes, a folder this user cannot write. `commit`
    then does each step; should one fail (a full disk, Ctrl-C), every step done is undone (a
    replaced file gets its old bytes back, a new file and the folders made for it go) and the
    error goes on.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.steps: list[tuple[Path, bytes | None]] = []  # relative path, new bytes (None: remove)

    def write(self, rel: Path | str, data: str | bytes) -> None:
        self.steps.append((Path(rel), data.encode() if isinstance(data, str) else data))

    def remove(self, rel: Path | str) -> None:
        self.steps.append((Path(rel), None))

    def check(self) -> None:
        for rel, data in self.steps:
            full = no_links(self.root, rel)
            here = full.parent
            while not here.exists():
                here = here.parent
            if not here.is_dir():
                raise UserError(
                    f"{_shown(self.root, here)} is a file where torchenv needs a folder (for "
                    f"{rel}): move it away"
                )
            if full.is_dir():
                raise UserError(f"{rel} is a folder where torchenv writes a file: move it away")
            if data is not None and not os.access(here, os.W_OK | os.X_OK):
                raise UserError(f"cannot write {rel}: {_shown(self.root, here)} is not writable")

    def commit(self) -> None:
        self.check()
        done: list[tuple[Path, bytes | None]] = []  # path, its bytes before (None: it was new)
        made: list[Path] = []  # folders made, deepest last
        try:
            for rel, data in self.steps:
                full = self.root / rel
                before = full.read_bytes() if full.is_file() else None
                if data is None:
                    if before is None:
                        continue
                    full.unlink()
                else:
                    made += _missing_folders(full.parent)
                    write_atomic(full, data)
                done.append((full, before))
        except BaseException:
            for full, before in reversed(done):
                if before is None:
                    full.unlink(missing_ok=True)
                else:
                    write_atomic(full, before)
            for folder in reversed(made):
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise


def _missing_folders(folder: Path) -> list[Path]:
    """The folders that do not exist yet on the way to `folder`, outermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    return list(reversed(missing))


def file_sha256(path: Path) -> str:
    """The sha256 (64 hex digits) of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

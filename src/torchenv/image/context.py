"""The build context: the project's root, with the kit's files staged into `.torchenv/`.

An image is made from the kit (the Dockerfile's scripts, the `torchbuild` helpers, the `torchsmoke`
suite) and from the project (its env files and locks, and later its own package). The kit comes
from the installed wheel, never from a source checkout, so each build first copies it into the
project, with the target's locks, one folder per layer that reads them:

    .torchenv/kit/install-env.sh, compiler-slim.cfg, uv-requirements.txt
    .torchenv/kit/torchbuild/, .torchenv/kit/torchsmoke/     the packages, as installed
    .torchenv/locks/<target>/env/       the env file, the pip lock, the conda lock (torch's layer)
    .torchenv/locks/<target>/project/   the project's lock (its dependencies' layer)
    .torchenv/locks/<target>/dev/       the dev lock (the dev flavor's extras)
    .torchenv/wheelhouse/                                    wheels for an offline build

Each install step bind-mounts its own folder, so that a new project dependency (a changed
project lock) leaves the torch family's layer, whose cache key is its mounts' content, alone.

A file is rewritten only when its bytes changed, and a file the kit no longer has is removed, so
the staged tree is exactly the installed kit (BuildKit's cache keys on content: an unchanged kit
keeps every layer). The wheels of `--wheelhouse DIR` and of the project's own `wheelhouse/` are
linked in for one build and unlinked afterwards. `.torchenv/` is the kit's: `torchenv init` puts it
in the project's .gitignore and lets the generated Dockerfiles read it through .dockerignore.

Everything here is done inside the project's root and never through a symbolic link: a
`.torchenv` (or any folder in it) that is a link or not a folder is refused in one line
(torchenv.files.kit_folder), so a cloned repository cannot make a build write or delete elsewhere.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torchbuild
import torchsmoke
from torchenv import kit
from torchenv.errors import UserError
from torchenv.files import inside, kit_folder, write_in
from torchenv.matrix import Target

STAGE = ".torchenv"
KIT_DIR = f"{STAGE}/kit"
LOCKS_DIR = f"{STAGE}/locks"
WHEELHOUSE_DIR = f"{STAGE}/wheelhouse"
# The project's own folder of wheels: when it holds any, every build is offline.
PROJECT_WHEELHOUSE = "wheelhouse"
_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = (".pyc", ".pyo")


def _package_files(package_dir: Path, into: str) -> dict[str, Path]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(package_dir):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in sorted(filenames):
            if name.endswith(_SKIP_SUFFIXES):
                continue
            path = Path(dirpath) / name
            found[f"{into}/{path.relative_to(package_dir).as_posix()}"] = path
    return found


def kit_files() -> dict[str, Path]:
    """Each staged file (its path under .torchenv/kit/) and the installed file it copies."""
    files = {
        "install-env.sh": kit.INSTALL_SCRIPT,
        "compiler-slim.cfg": kit.COMPILER_SLIM,
        "uv-requirements.txt": kit.UV_REQUIREMENTS,
    }
    files.update(_package_files(Path(torchbuild.__file__).parent, "torchbuild"))
    files.update(_package_files(Path(torchsmoke.__file__).parent, "torchsmoke"))
    return files


def lock_files(target: Target) -> dict[str, Path]:
    """Each staged lock (its path under .torchenv/locks/<target>/) and the project's file."""
    layers = {
        "env": (target.env_file, target.pip_lock, target.conda_lock),
        "project": (target.project_lock,),
        "dev": (target.dev_lock,),
    }
    found = {f"{layer}/{p.name}": p for layer, paths in layers.items() for p in paths if p.exists()}
    wheels = target.folder / "wheels"  # git requirements' wheels (torchenv.lock.vcs)
    if target.project_lock.exists() and wheels.is_dir():
        found |= {f"project/wheels/{w.name}": w for w in sorted(wheels.glob("*.whl"))}
    return found


def stage_locks(root: Path, target: Target) -> list[Path]:
    """Make `root`/.torchenv/locks/<target>/ exactly the target's env file and locks, a folder
    per layer (each folder made, empty or not: the Dockerfile mounts all three)."""
    rel = f"{LOCKS_DIR}/{target.name}"
    written = sync(root, rel, lock_files(target))
    for layer in ("env", "project", "dev"):
        kit_folder(root, f"{rel}/{layer}")
    return written


def stage_kit(root: Path) -> list[Path]:
    """Make `root`/.torchenv/kit/ exactly the installed kit; returns the files (re)written."""
    return sync(root, KIT_DIR, kit_files())


def sync(root: Path, rel: str, wanted: dict[str, Path]) -> list[Path]:
    """Make the kit's folder `rel` under `root` hold exactly `wanted` (relative path: source);
    returns the files (re)written. A symbolic link in it is refused, never followed."""
    dest = kit_folder(root, rel)
    for dirpath, dirnames, filenames in os.walk(dest):
        for name in (*dirnames, *filenames):
            if (Path(dirpath) / name).is_symlink():
                raise UserError(
                    f"{(Path(dirpath) / name).relative_to(root)} is a symbolic link: {rel}/ is "
                    f"the kit's to fill; remove {rel}/ (the kit makes it again)"
                )
    written = []
    for rel_path, source in wanted.items():
        target = dest / rel_path
        data = source.read_bytes()
        if not target.is_file() or target.read_bytes() != data:
            write_in(root, target.relative_to(root), data)
            written.append(target)
    for dirpath, _dirnames, filenames in os.walk(dest, topdown=False):
        for name in filenames:
            path = Path(dirpath) / name
            if path.relative_to(dest).as_posix() not in wanted:
                path.unlink()
        if Path(dirpath) != dest and not any(Path(dirpath).iterdir()):
            Path(dirpath).rmdir()
    return written


@dataclass
class BuildContext:
    """For one build: the kit staged under `root`, and the wheels of an offline build linked into
    .torchenv/wheelhouse/ (removed again on exit, Ctrl-C and SIGTERM included)."""

    root: Path
    wheelhouse: Path | None = None
    target: Target | None = None  # whose locks to stage
    linked: list[Path] = field(default_factory=list)

    def __enter__(self) -> BuildContext:
        stage_kit(self.root)
        if self.target is not None:
            stage_locks(self.root, self.target)
        dest = kit_folder(self.root, WHEELHOUSE_DIR)
        for stale in dest.glob("*.whl"):  # left by a build that was killed outright
            if stale.is_symlink() or stale.is_file():
                stale.unlink()  # a link itself, never what it points at
        try:
            for source in self.wheel_sources():
                for wheel in sorted(source.glob("*.whl")):
                    self._link(wheel, dest / wheel.name)
        except BaseException:
            self.__exit__()
            raise
        return self

    def wheel_sources(self) -> list[Path]:
        sources = []
        own = Path(self.root) / PROJECT_WHEELHOUSE
        if own.is_dir():  # the project's: inside it, its links followed
            sources.append(inside(self.root, Path(PROJECT_WHEELHOUSE), f"{PROJECT_WHEELHOUSE}/"))
        if self.wheelhouse is not None and Path(self.wheelhouse).is_dir():
            sources.append(Path(self.wheelhouse))  # the user's own choice, on the command line
        return sources

    def _link(self, wheel: Path, dest: Path) -> None:
        if dest.exists():
            return
        try:
            os.link(wheel, dest)
        except OSError:
            shutil.copyfile(wheel, dest)  # another filesystem: BuildKit cannot follow a symlink out
        self.linked.append(dest)

    def __exit__(self, *exc: object) -> None:
        for path in self.linked:
            path.unlink(missing_ok=True)
        self.linked.clear()

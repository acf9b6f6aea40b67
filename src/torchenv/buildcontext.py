"""The build context: the project's root, with the kit's files staged into `.torchenv/`.

An image is made from the kit (the Dockerfile's scripts, the `torchbuild` helpers, the `torchsmoke`
suite) and from the project (its `envs/`, and later its own package). The kit comes from the
installed wheel, never from a source checkout, so each build first copies it into the project:

    .torchenv/kit/install-env.sh, compiler-slim.cfg, uv-requirements.txt
    .torchenv/kit/torchbuild/, .torchenv/kit/torchsmoke/     the packages, as installed
    .torchenv/wheelhouse/                                    wheels for an offline build

A file is rewritten only when its bytes changed, and a file the kit no longer has is removed, so
the staged tree is exactly the installed kit (BuildKit's cache keys on content: an unchanged kit
keeps every layer). The wheels of `--wheelhouse DIR` and of the project's own `wheelhouse/` are
linked in for one build and unlinked afterwards. `.torchenv/` is the kit's: `torchenv init` puts it
in the project's .gitignore and lets the generated Dockerfiles read it through .dockerignore.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torchbuild
import torchsmoke
from torchenv import kit
from torchenv.files import write_atomic

STAGE = ".torchenv"
KIT_DIR = f"{STAGE}/kit"
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


def stage_kit(root: Path) -> list[Path]:
    """Make `root`/.torchenv/kit/ exactly the installed kit; returns the files (re)written."""
    dest = Path(root) / KIT_DIR
    wanted = kit_files()
    written = []
    for rel_path, source in wanted.items():
        target = dest / rel_path
        data = source.read_bytes()
        if not target.is_file() or target.read_bytes() != data:
            write_atomic(target, data)
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
    linked: list[Path] = field(default_factory=list)

    def __enter__(self) -> BuildContext:
        stage_kit(self.root)
        dest = Path(self.root) / WHEELHOUSE_DIR
        dest.mkdir(parents=True, exist_ok=True)
        for stale in dest.glob("*.whl"):  # left by a build that was killed outright
            stale.unlink()
        try:
            for source in self.wheel_sources():
                for wheel in sorted(source.glob("*.whl")):
                    self._link(wheel, dest / wheel.name)
        except BaseException:
            self.__exit__()
            raise
        return self

    def wheel_sources(self) -> list[Path]:
        sources = [Path(self.root) / PROJECT_WHEELHOUSE]
        if self.wheelhouse is not None:
            sources.append(Path(self.wheelhouse))
        return [s for s in sources if s.is_dir()]

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

"""The project's own package in its images: whether it goes in, and the wheel `invoke build` makes.

The package is the image's last layer, installed with `pip install --no-deps` (its dependencies
are locked and installed in the layers below), so that an edit of the project's code rebuilds one
small layer. Its wheel is built on the host from the working tree, in an isolated build (the
project's own build backend, from the default index: `uv build`, else `pip wheel`), into
`.torchenv/package/`, which then holds exactly that wheel: the layer's cache key is the wheel's
bytes, made the same for the same sources (SOURCE_DATE_EPOCH fixes the timestamps in the zip).

Only a pure-Python wheel goes in: one built here for the host's Python and platform could not be
trusted to load in the image. The build's droppings in the working tree (setuptools' build/ and
*.egg-info folders that were not there before) are removed again.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from torchenv import matrix
from torchenv.errors import UserError
from torchenv.image import context as buildcontext
from torchenv.lock import uv_resolver
from torchenv.matrix import Project
from torchenv.project.deps import PYPROJECT, project_table
from torchenv.runner import Runner, subprocess_runner

PACKAGE_DIR = ".torchenv/package"
# Zip timestamps before 1980 cannot be stored: the earliest a wheel holds.
EPOCH = "315532800"
_PURE = re.compile(r"-(py3|py2\.py3|py3\.py2)-none-any\.whl$")
_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")
BUILD_TIMEOUT_S = 600


@dataclass(frozen=True)
class Wheel:
    path: Path
    name: str  # as the file names it (underscores for dashes)
    version: str

    @property
    def pin(self) -> str:
        return f"{canonicalize_name(self.name)}=={self.version}"


def has_project_table(root: Path) -> bool:
    """Whether pyproject.toml has a [project] table (then there is a package to build)."""
    path = Path(root) / PYPROJECT
    return path.is_file() and project_table(path) is not None


def enabled(root: Path, project: Project) -> bool:
    """[project] package in the matrix; unset: when pyproject.toml has a [project] table."""
    return has_project_table(root) if project.package is None else project.package


def enabled_in(root: Path) -> bool:
    """`enabled` for the project whose matrix is in `root` (False where it has none)."""
    path = Path(root) / matrix.MATRIX_NAME
    # parsed each time, not matrix.project's cache: init writes the file this reads
    return path.is_file() and enabled(root, matrix.parse_project(path.read_text()))


def build_command(root: Path, out_dir: Path, uv: str | None = None) -> list[str]:
    """`uv build --wheel` where uv is installed (it keeps the isolated build environment between
    builds: about 1.5 s against pip's 4.5 s for the sample project), else `pip wheel`."""
    source = str(Path(root).resolve())
    if uv:
        return [uv, "build", "--wheel", "--quiet", "--out-dir", str(out_dir), source]
    return [
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check",
        "--wheel-dir", str(out_dir), source,
    ]  # fmt: skip


def _droppings(root: Path) -> set[Path]:
    found = {root / "build"} if (root / "build").exists() else set()
    for folder in (root, root / "src"):
        if folder.is_dir():
            found.update(folder.glob("*.egg-info"))
    return found


def parse_wheel(path: Path) -> Wheel:
    match = _WHEEL.match(path.name)
    if not match:
        raise UserError(f"the project's build made {path.name}, which is not a wheel's name")
    return Wheel(path, match["name"], match["version"])


def build_wheel(root: Path, runner: Runner = subprocess_runner) -> Wheel:
    """Build the project's wheel and make .torchenv/package/ hold exactly it (rewritten only when
    its bytes changed); UserError when it does not build or is not pure Python."""
    root = Path(root)
    if not has_project_table(root):
        raise UserError(
            f"[project] package = true in targets.toml, but {root / PYPROJECT} has no [project] "
            "table to build a package from: add one, or set package = false"
        )
    before = _droppings(root)
    with tempfile.TemporaryDirectory(prefix="torchenv-wheel-") as tmp:
        try:
            done = runner(
                build_command(root, Path(tmp), uv_resolver.executable()),
                env={"SOURCE_DATE_EPOCH": EPOCH}, timeout=BUILD_TIMEOUT_S,
            )  # fmt: skip
        finally:
            for path in _droppings(root) - before:
                shutil.rmtree(path, ignore_errors=True)
        if not done.ok:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(
                f"building the project's package failed (exit {done.returncode}): {last}; fix the "
                "build (`uv build --wheel` or `pip wheel --no-deps .` shows it all), or set "
                "[project] package = false"
            )
        wheels = sorted(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise UserError(f"building the project's package gave {len(wheels)} wheels, not one")
        made = parse_wheel(wheels[0])
        if not _PURE.search(made.path.name):
            raise UserError(
                f"the project's package builds {made.path.name}, a wheel for one Python and "
                "platform: torchenv installs pure-Python packages only; set [project] package = "
                "false and build it in the image yourself"
            )
        return _stage(root, made)


def _stage(root: Path, made: Wheel) -> Wheel:
    buildcontext.sync(root, PACKAGE_DIR, {made.path.name: made.path})
    return Wheel(root / PACKAGE_DIR / made.path.name, made.name, made.version)

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
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from torchenv import matrix
from torchenv.errors import UserError
from torchenv.image import context as buildcontext
from torchenv.lock import uv_resolver
from torchenv.matrix import Project
from torchenv.project import wheel as wheels
from torchenv.project.deps import PYPROJECT, project_table
from torchenv.project.wheel import EPOCH, build_command
from torchenv.runner import Runner, subprocess_runner

PACKAGE_DIR = ".torchenv/package"
_PURE = re.compile(r"-(py3|py2\.py3|py3\.py2)-none-any\.whl$")
_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")
__all__ = ["EPOCH", "PACKAGE_DIR", "Wheel", "build_command", "build_wheel", "enabled", "enabled_in"]


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
    with tempfile.TemporaryDirectory(prefix="torchenv-wheel-") as tmp:
        built = wheels.build(
            root, Path(tmp), runner, uv_resolver.executable(),
            fix="; or set [project] package = false in targets.toml (no package layer)",
        )  # fmt: skip
        made = parse_wheel(built)
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

"""targets.toml's [project] table: what of the project itself goes into every target's image
(where its dependencies are declared, the extras to add, its own package, its test command).
torchenv.matrix re-exports `Project` and `parse_project`.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from torchenv.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

MATRIX_NAME = "targets.toml"


@dataclass(frozen=True)
class Project:
    """The [project] table: what of the project itself goes into every target's image."""

    # Where its dependencies are declared: "auto" (pyproject.toml's [project] dependencies, else
    # requirements.txt, else environment.yml's pip section), one such file, or "none".
    dependencies: str = "auto"
    extras: tuple[str, ...] = ()  # pyproject extras locked and installed with the dependencies
    # Install the project's own package (--no-deps, from the build context); None: when
    # pyproject.toml has a [project] table.
    package: bool | None = None
    test_command: str = "pytest"  # what `invoke test` runs in the image


_PROJECT_TYPES: dict[str, tuple[type, ...]] = {
    "dependencies": (str,), "extras": (list,), "package": (bool,), "test_command": (str,)
}  # fmt: skip
_EXTRA = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def parse_project(text: str, source: str = MATRIX_NAME) -> Project:
    """The [project] table of matrix TOML text (defaults where absent); UserError when malformed."""
    try:
        raw = tomllib.loads(text).get("project", {})
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{source}: {exc}; fix the TOML syntax") from None
    if not isinstance(raw, dict):
        raise UserError(f"{source}: project must be a table ([project])")
    unknown = set(raw) - set(_PROJECT_TYPES)
    if unknown:
        raise UserError(
            f"{source}: [project] has unknown key(s) {', '.join(sorted(unknown))}; valid keys: "
            f"{', '.join(_PROJECT_TYPES)}"
        )
    for key, value in raw.items():
        if not isinstance(value, _PROJECT_TYPES[key]):
            kind = _PROJECT_TYPES[key][0].__name__
            raise UserError(f"{source}: [project] {key} = {value!r}: give a {kind}")
    extras = tuple(raw.get("extras", ()))
    bad = [e for e in extras if not isinstance(e, str) or not _EXTRA.fullmatch(e)]
    if bad:
        raise UserError(f"{source}: [project] extras has {bad[0]!r}: give extra names, e.g. test")
    command = raw.get("test_command", Project.test_command)
    if not command.strip() or not command.isprintable():
        raise UserError(f"{source}: [project] test_command must be one printable line")
    return Project(
        dependencies=raw.get("dependencies", Project.dependencies), extras=extras,
        package=raw.get("package"), test_command=command,
    )  # fmt: skip

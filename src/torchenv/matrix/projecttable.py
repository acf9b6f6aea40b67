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

    # Where its dependencies are declared: "auto" (the package's metadata, any backend: pyproject's
    # [project], setup.py, setup.cfg, poetry; plus requirements.txt or requirements/*.txt, plus
    # environment.yml's pip section), one such file or a list of them, or "none".
    dependencies: str | tuple[str, ...] = "auto"
    extras: tuple[str, ...] = ()  # the package's extras, locked and installed with it
    # Install the project's own package (--no-deps, from the build context); None: when
    # pyproject.toml has a [project] table.
    package: bool | None = None
    test_command: str = "pytest"  # what `invoke test` runs in the image
    # Dependency groups (PEP 735, PDM, Poetry) locked with them: test tools, typically.
    groups: tuple[str, ...] = ()
    # More requirements files of test tools: "auto" (requirements-dev.txt, requirements/test.txt
    # and the like, where dependencies is "auto"), a list of files, or "none".
    test_requirements: str | tuple[str, ...] = "auto"


_PROJECT_TYPES: dict[str, tuple[type, ...]] = {
    "dependencies": (str, list), "extras": (list,), "groups": (list,),
    "test_requirements": (str, list), "package": (bool,), "test_command": (str,),
}  # fmt: skip
_EXTRA = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _names(raw: dict[str, object], key: str, source: str, what: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    found: tuple[object, ...] = tuple(value) if isinstance(value, list) else ()
    bad = [e for e in found if not isinstance(e, str) or not _EXTRA.fullmatch(e)]
    if bad:
        raise UserError(f"{source}: [project] {key} has {bad[0]!r}: give {what} names, e.g. test")
    return tuple(str(e) for e in found)


def _files(raw: dict[str, object], key: str, source: str, default: str) -> str | tuple[str, ...]:
    value = raw.get(key, default)
    if isinstance(value, list):
        if not value or not all(
            isinstance(v, str) and v.strip() and v.isprintable() for v in value
        ):
            raise UserError(f"{source}: [project] {key} must be a list of file paths")
        return tuple(value)
    assert isinstance(value, str)
    if not value.strip() or not value.isprintable():
        raise UserError(f'{source}: [project] {key} must be "auto", "none" or a file path')
    return value


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
            kind = " or ".join(t.__name__ for t in _PROJECT_TYPES[key])
            raise UserError(f"{source}: [project] {key} = {value!r}: give a {kind}")
    command = raw.get("test_command", Project.test_command)
    if not command.strip() or not command.isprintable():
        raise UserError(f"{source}: [project] test_command must be one printable line")
    return Project(
        dependencies=_files(raw, "dependencies", source, "auto"),
        extras=_names(raw, "extras", source, "extra"), groups=_names(raw, "groups", source, "group"),
        test_requirements=_files(raw, "test_requirements", source, "auto"),
        package=raw.get("package"), test_command=command,
    )  # fmt: skip

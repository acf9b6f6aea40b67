"""The project's own dependencies, read where the project already declares them.

The matrix's [project] table says where (`torchenv.matrix.Project.dependencies`):
- "auto": pyproject.toml's [project] dependencies (plus the extras the table names), else
  requirements.txt, else the pip section of environment.yml, all in the project's root;
- a path (relative to the root) to one such file: *.toml is read as a pyproject, *.yml/*.yaml as
  a conda environment file, anything else as a requirements file;
- "none": the images hold the torch family and the smoke suite only.

What is read is a list of PEP 508 requirements, each with where it came from (`sample`,
`sample[test]`, `requirements.txt:3`) so that a refusal can name it. Only requirements an index
serves can be locked with hashes: options (`-r`, `-e`, `--index-url`), paths and direct URLs are
refused in one line that says what to write instead.

`torch_conflicts` is the lock's first gate: a requirement on torch, torchvision or torchaudio that
the target's pin does not satisfy is refused before anything is resolved.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from torchenv.credentials import shown
from torchenv.errors import UserError
from torchenv.files import inside
from torchenv.matrix import Project, Target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the 3.10 path
    import tomli as tomllib

PYPROJECT = "pyproject.toml"
REQUIREMENTS = "requirements.txt"
ENVIRONMENT = "environment.yml"


@dataclass(frozen=True)
class Dependency:
    requirement: str  # as written, e.g. "einops>=0.8"
    origin: str  # who asks for it: "sample", "sample[test]", "requirements.txt:3"

    @property
    def name(self) -> str:
        return canonicalize_name(Requirement(self.requirement).name)


@dataclass(frozen=True)
class Dependencies:
    source: str  # the file, relative to the root, e.g. "pyproject.toml"
    items: tuple[Dependency, ...]

    @property
    def requirements(self) -> list[str]:
        return [d.requirement for d in self.items]


def _parse(text: str, origin: str, source: str) -> Dependency:
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        first = str(exc).splitlines()[0] if str(exc) else "not PEP 508"
        raise UserError(
            f"{origin}: {shown(text)!r} is not a requirement ({shown(first)})"
        ) from None
    if req.url:
        raise UserError(
            f"{origin}: {shown(text)!r} is a direct URL, which no index serves with a hash to lock: "
            f"publish it to an index, or install it in the image yourself; fix {source}"
        )
    return Dependency(str(req), origin)


def project_table(path: Path, source: str = PYPROJECT) -> dict[str, Any] | None:
    """pyproject.toml's [project] table; None when the file has none; UserError for bad TOML."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{source}: {exc}; fix the TOML syntax") from None
    table = data.get("project")
    return table if isinstance(table, dict) else None


def from_pyproject(path: Path, extras: tuple[str, ...], source: str) -> Dependencies | None:
    """[project] dependencies plus `extras`; None when the file has no [project] table."""
    table = project_table(path, source)
    if table is None:
        return None
    name = str(table.get("name") or path.parent.name)
    if not isinstance(table.get("dynamic", []), list):
        raise UserError(f"{source}: [project] dynamic must be a list of field names")
    if "dependencies" in table.get("dynamic", []):
        raise UserError(
            f"{source}: [project] dependencies are dynamic, which torchenv cannot read: list them "
            f"in {source}, or point [project] dependencies in targets.toml at a requirements file"
        )
    items = [
        _parse(r, name, source)
        for r in _strings(table.get("dependencies", []), source, "dependencies")
    ]
    optional = table.get("optional-dependencies", {}) or {}
    if not isinstance(optional, dict):
        raise UserError(
            f"{source}: [project] optional-dependencies must be a table of extras "
            '(test = ["pytest"]), not ' + type(optional).__name__
        )
    for extra in extras:
        if extra not in optional:
            known = ", ".join(sorted(optional)) or "none"
            raise UserError(
                f"{source} has no extra {extra!r} (its extras: {known}): fix [project] extras in "
                "targets.toml"
            )
        for text in _strings(optional[extra], source, f"optional-dependencies.{extra}"):
            dep = _parse(text, f"{name}[{extra}]", source)
            if dep.name == canonicalize_name(name):  # `sample[gpu]` inside an extra: its own
                continue
            items.append(dep)
    return Dependencies(source, tuple(items))


def _strings(value: object, source: str, key: str) -> list[str]:
    """A TOML list of requirement strings; UserError (one line) for anything else (a string is
    not read one character at a time)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(
            f"{source}: [project] {key} must be a list of requirement strings "
            f'(e.g. ["numpy>=1.26"]), not {type(value).__name__}'
        )
    return value


def from_requirements(path: Path, source: str) -> Dependencies:
    items = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        text = re.sub(r"(^|\s)#.*$", "", line).strip()
        if not text:
            continue
        origin = f"{source}:{lineno}"
        if text.startswith(("-", ".", "/")):
            raise UserError(
                f"{origin}: {shown(text)!r} is not supported (torchenv locks index packages only; the "
                "index is the target's or --index-url): list the requirements themselves"
            )
        items.append(_parse(text, origin, source))
    return Dependencies(source, tuple(items))


def from_environment(path: Path, source: str) -> Dependencies:
    """The `pip:` list under `dependencies:`; conda packages are the image's business, not read."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{source}: not valid YAML ({exc.__class__.__name__}); fix it") from None
    pip: list[str] = []
    for entry in data.get("dependencies", []) if isinstance(data, dict) else []:
        if isinstance(entry, dict) and isinstance(entry.get("pip"), list):
            pip += [str(item) for item in entry["pip"]]
    items = []
    for index, text in enumerate(pip, start=1):
        if text.startswith("-"):
            raise UserError(
                f"{source}: pip entry {shown(text)!r} is not supported: list requirements"
            )
        items.append(_parse(text, f"{source} pip #{index}", source))
    return Dependencies(source, tuple(items))


def read(root: Path, project: Project) -> Dependencies | None:
    """The project's dependencies as the matrix's [project] table says; None for "none"."""
    where = project.dependencies.strip()
    if where == "none":
        return None
    if where != "auto":
        path = inside(
            root, Path(where), f"[project] dependencies = {shown(where)!r} in targets.toml"
        )
        if not path.is_file():
            raise UserError(
                f"[project] dependencies = {shown(where)!r} in targets.toml, but there is no such file: "
                'fix the path, or write "auto" or "none"'
            )
        return _read_file(path, where, project.extras)
    pyproject = root / PYPROJECT
    if pyproject.is_file() or pyproject.is_symlink():
        pyproject = inside(root, Path(PYPROJECT), PYPROJECT)
        found = from_pyproject(pyproject, project.extras, PYPROJECT)
        if found is not None:
            return found
    for name in (REQUIREMENTS, ENVIRONMENT):
        if (root / name).is_file() or (root / name).is_symlink():
            path = inside(root, Path(name), name)
            _no_extras(project, name)
            return _read_file(path, name, ())
    raise UserError(
        f"no dependencies found in {root}: looked for {PYPROJECT} with a [project] table, "
        f'{REQUIREMENTS} and {ENVIRONMENT}; write one, or set [project] dependencies = "none" in '
        "targets.toml"
    )


def _no_extras(project: Project, source: str) -> None:
    if project.extras:
        raise UserError(
            f"[project] extras = {list(project.extras)} in targets.toml, but the dependencies "
            f"come from {source}, which has no extras: remove extras, or declare them in "
            f"{PYPROJECT}"
        )


def _read_file(path: Path, source: str, extras: tuple[str, ...]) -> Dependencies:
    if path.suffix == ".toml":
        found = from_pyproject(path, extras, source)
        if found is None:
            raise UserError(f"{source} has no [project] table to read dependencies from")
        return found
    project = Project(extras=extras)
    _no_extras(project, source)
    if path.suffix in (".yml", ".yaml"):
        return from_environment(path, source)
    return from_requirements(path, source)


def torch_conflicts(deps: Dependencies, target: Target) -> list[str]:
    """One line for each requirement on the torch family that the target's pin excludes."""
    pins = {"torch": target.torch, "torchvision": target.torchvision}
    if target.torchaudio:
        pins["torchaudio"] = target.torchaudio
    lines = []
    for dep in deps.items:
        req = Requirement(dep.requirement)
        name = canonicalize_name(req.name)
        if name not in pins or not req.specifier:
            continue
        if not req.specifier.contains(Version(pins[name]), prereleases=True):
            lines.append(
                f"{dep.origin} requires {req}, but target {target.name} pins {name} {pins[name]}: "
                f"relax that requirement in {deps.source}, or choose a target whose {name} it "
                "accepts (invoke matrix); no lock was written"
            )
    return lines

"""The project's own dependencies, read where and how the project already declares them.

The matrix's [project] table says where (`torchenv.matrix.Project`):

- `dependencies = "auto"` reads every standard place and combines them: the package's metadata
  (pyproject.toml's [project] table as it stands; where that is dynamic, or the project has
  setup.py, setup.cfg or Poetry's tables, the project's own build backend says, as `pip install
  .` would run it: torchenv.project.wheel), plus requirements.txt (or requirements/requirements.txt,
  base.txt, main.txt, runtime.txt), plus environment.yml's (or .yaml's) pip section; one such
  file, or a list of them, names the sources instead; "none" reads nothing;
- `extras` adds the package's extras (PEP 685 names; an extra that names the project itself,
  `dev = ["mypkg[test]"]`, is expanded), `groups` adds dependency groups (PEP 735, PDM, Poetry:
  torchenv.project.groups), `test_requirements` adds requirements files of test tools
  (requirements-dev.txt and the like: "auto" where dependencies is "auto").

Requirements files are read as pip reads them (torchenv.project.requirements). Every file is
read inside the project's root (its links followed first); nothing of a file's content appears in
an error but the requirement it holds, redacted.

Every problem found is collected and said at once, one line each naming the file and line and the
fix (`Problems`). `torch_conflicts` (torchenv.project.torchpins) is the lock's first gate: a requirement on the torch
family that the target's pin does not satisfy (its marker evaluated for the image) is refused
before anything is resolved.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from torchenv.credentials import shown
from torchenv.errors import Problems, UserError
from torchenv.files import inside
from torchenv.matrix import Project
from torchenv.project import conda, groups
from torchenv.project import requirements as reqfiles
from torchenv.project import wheel as wheels
from torchenv.project.declared import Dependencies, Dependency
from torchenv.project.torchpins import image_environment, torch_conflicts
from torchenv.runner import Runner, subprocess_runner

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the 3.10 path
    import tomli as tomllib

PYPROJECT = "pyproject.toml"
REQUIREMENTS = "requirements.txt"
ENVIRONMENT = "environment.yml"
RUNTIME_REQUIREMENTS = (
    "requirements.txt", "requirements/requirements.txt", "requirements/base.txt",
    "requirements/main.txt", "requirements/runtime.txt",
)  # fmt: skip
TEST_REQUIREMENTS = (
    "requirements-dev.txt", "requirements-test.txt", "requirements_dev.txt", "dev-requirements.txt",
    "test-requirements.txt", "requirements/dev.txt", "requirements/test.txt",
    "requirements/tests.txt",
)  # fmt: skip


def pinned_form(url: str) -> str:
    """A VCS URL as it would be pinned: its `@<revision>` replaced by `@<the full commit hash>`
    (the user's `@` before the host and a `#subdirectory=` fragment stay)."""
    url, hash_, fragment = url.partition("#")
    scheme, _, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in path:
        path = path.rsplit("@", 1)[0]
    return f"{scheme}://{authority}{slash}{path}@<the full commit hash>{hash_}{fragment}"


def git_commit(url: str) -> str | None:
    """The full commit hash a `git+...@<commit>` URL is pinned to; None for a branch, a tag, a
    short hash or none (which can move, so they cannot be locked)."""
    path = url.split("://", 1)[-1].split("#", 1)[0]
    if "@" not in path.split("/", 1)[-1]:
        return None
    rev = path.rsplit("@", 1)[1]
    return rev if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", rev) else None


def project_table(path: Path, source: str = PYPROJECT) -> dict[str, Any] | None:
    """pyproject.toml's [project] table; None when the file has none; UserError for bad TOML."""
    table = _toml(path, source).get("project")
    return table if isinstance(table, dict) else None


def _toml(path: Path, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8", errors="replace"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{source}: {exc}; fix the TOML syntax") from None


@dataclass
class _Reading:
    root: Path
    python: str
    runner: Runner
    uv: str | None
    index_url: str | None
    items: list[Dependency] = field(default_factory=list)
    constraints: list[Dependency] = field(default_factory=list)
    checks: list[Dependency] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def add(self, text: str, origin: str, to: list[Dependency] | None = None) -> None:
        """One requirement, parsed; a problem (collected) when it is none an index serves."""
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            first = str(exc).splitlines()[0] if str(exc) else "not PEP 508"
            self.problems.append(f"{origin}: {shown(text)!r} is not a requirement ({shown(first)})")
            return
        if req.url and req.url.startswith("git+"):
            if not git_commit(req.url):
                self.problems.append(
                    f"{origin}: {shown(text)!r} names no commit, so it cannot be locked: pin it to "
                    f"one, {req.name} @ {shown(pinned_form(req.url))}"
                )
                return
        elif req.url:
            self.problems.append(
                f"{origin}: {shown(text)!r} is a direct URL, which no index serves with a hash to "
                "lock: publish it to an index, pin a git URL to a commit, or list what it needs"
            )
            return
        (self.items if to is None else to).append(Dependency(str(req), origin))

    def collect(self, read: reqfiles.Read) -> None:
        for line in read.requirements:
            self.add(line.text, line.origin)
        for line in read.constraints:
            self.add(line.text, line.origin, self.constraints)
        self.notes += read.notes
        self.problems += read.problems

    def exists(self, rel: str) -> bool:
        return (self.root / rel).is_file() or (self.root / rel).is_symlink()

    # --- the package's metadata -------------------------------------------------------------

    def package(self, extras: Sequence[str]) -> bool:
        """The package's dependencies (and `extras`); whether the project has a package."""
        data: dict[str, Any] = {}
        if self.exists(PYPROJECT):
            try:
                data = _toml(inside(self.root, Path(PYPROJECT), PYPROJECT), PYPROJECT)
            except UserError as exc:
                self.problems.append(str(exc))
                return True
        table = data.get("project")
        if isinstance(table, dict) and not _dynamic(table, "dependencies", self):
            self.static(table, extras)
            return True
        has_build = "build-system" in data or self.exists("setup.py") or self.exists("setup.cfg")
        if has_build or isinstance(table, dict) or "poetry" in data.get("tool", {}):
            self.backend(extras)
            return True
        if extras:
            self.problems.append(
                f"[project] extras = {list(extras)} in targets.toml, but the project has no "
                "package to have extras (no pyproject.toml [project], setup.py or setup.cfg): "
                "remove extras, or use groups or test_requirements"
            )
        return False

    def static(self, table: Mapping[str, Any], extras: Sequence[str]) -> None:
        name = str(table.get("name") or self.root.name)
        self.sources.append(PYPROJECT)
        for text in _strings(table.get("dependencies", []), "dependencies", self):
            self.add(text, name)
        optional = table.get("optional-dependencies", {}) or {}
        if not isinstance(optional, dict):
            self.problems.append(
                f"{PYPROJECT}: [project] optional-dependencies must be a table of extras "
                '(test = ["pytest"]), not ' + type(optional).__name__
            )
            return
        table_extras: dict[str, list[str]] = {
            canonicalize_name(k): _strings(v, f"optional-dependencies.{k}", self)
            for k, v in optional.items()
        }
        self.extras(name, table_extras, extras, PYPROJECT)

    def extras(
        self, name: str, table: Mapping[str, list[str]], wanted: Sequence[str], source: str
    ) -> None:
        """The requirements of each wanted extra, an extra naming the project expanded."""
        own, todo, seen = canonicalize_name(name), [canonicalize_name(e) for e in wanted], set()
        while todo:
            extra = todo.pop(0)
            if extra in seen:
                continue
            seen.add(extra)
            if extra not in table:
                known = ", ".join(sorted(table)) or "none"
                self.problems.append(
                    f"{source} has no extra {extra!r} (its extras: {known}): fix [project] extras "
                    "in targets.toml"
                )
                continue
            for text in table[extra]:
                try:
                    req = Requirement(text)
                except InvalidRequirement:
                    self.add(text, f"{name}[{extra}]")
                    continue
                if canonicalize_name(req.name) == own:  # `mypkg[test]` inside an extra: expand
                    todo += [canonicalize_name(e) for e in req.extras]
                    continue
                self.add(text, f"{name}[{extra}]")

    def backend(self, extras: Sequence[str]) -> None:
        """What the project's build backend declares (setup.py, setup.cfg, poetry, dynamic)."""
        try:
            with tempfile.TemporaryDirectory(prefix="torchenv-metadata-") as tmp:
                built = wheels.build(
                    self.root, Path(tmp), self.runner, self.uv, self.index_url,
                    what="the project's package, to read its dependencies",
                )  # fmt: skip
                meta = wheels.metadata(built)
        except UserError as exc:
            self.problems.append(str(exc))
            return
        name = meta.name or self.root.name
        self.sources.append(f"{name}'s metadata (its build backend)")
        env = image_environment(self.python)
        table: dict[str, list[str]] = {canonicalize_name(e): [] for e in meta.extras}
        for text in meta.requires:
            req = Requirement(text)
            marker = str(req.marker) if req.marker else ""
            if "extra" not in marker:
                self.add(text, name)
                continue
            for extra, found in table.items():
                if req.marker is not None and req.marker.evaluate({**env, "extra": extra}):
                    found.append(str(Requirement(text.split(";", 1)[0])))
        self.extras(name, table, extras, f"{name}'s metadata")

    # --- files -------------------------------------------------------------------------------

    def file(self, rel: str, extras: Sequence[str] = (), named: bool = True) -> None:
        """One file (`named` by [project] dependencies, else found): read by what it is."""
        shown_rel = shown(rel)
        what = f"[project] dependencies = {shown_rel!r} in targets.toml" if named else shown_rel
        try:
            inside(self.root, Path(rel), what)
        except UserError as exc:
            self.problems.append(str(exc))
            return
        if not self.exists(rel):
            self.problems.append(
                f"[project] dependencies = {shown_rel!r} in targets.toml, but there is no such "
                'file: fix the path, or write "auto" or "none"'
            )
            return
        name = Path(rel).name
        if name == PYPROJECT or name in ("setup.py", "setup.cfg"):
            if Path(rel).parent != Path():
                self.problems.append(f"{shown_rel}: only the project's own {name} can be read")
            else:
                self.package(extras)
        elif name.endswith((".yml", ".yaml")):
            self.environment(rel)
        else:
            self.sources.append(rel)
            self.collect(reqfiles.read(self.root, rel))

    def environment(self, rel: str) -> None:
        found = conda.read(self.root, rel)
        self.sources.append(rel)
        self.collect(found.pip)
        for line in found.family:
            self.add(line.text, line.origin, self.checks)
        self.notes += found.notes


def _dynamic(table: Mapping[str, Any], key: str, reading: _Reading) -> bool:
    dynamic = table.get("dynamic", [])
    if not isinstance(dynamic, list):
        reading.problems.append(f"{PYPROJECT}: [project] dynamic must be a list of field names")
        return False
    return key in dynamic


def _strings(value: object, key: str, reading: _Reading) -> list[str]:
    """A TOML list of requirement strings; a problem (and nothing) for anything else: a string
    is not read one character at a time."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    reading.problems.append(
        f"{PYPROJECT}: [project] {key} must be a list of requirement strings "
        f'(e.g. ["numpy>=1.26"]), not {type(value).__name__}'
    )
    return []


def read(
    root: Path,
    project: Project,
    *,
    python: str = "3.11",
    runner: Runner = subprocess_runner,
    uv: str | None = None,
    index_url: str | None = None,
) -> Dependencies | None:
    """The project's dependencies as the matrix's [project] table says; None for "none";
    `Problems` (every problem, one line each) when any is found."""
    deps, problems = read_all(
        root, project, python=python, runner=runner, uv=uv, index_url=index_url
    )
    if problems:
        raise Problems(problems)
    return deps


def read_all(
    root: Path,
    project: Project,
    *,
    python: str = "3.11",
    runner: Runner = subprocess_runner,
    uv: str | None = None,
    index_url: str | None = None,
) -> tuple[Dependencies | None, list[str]]:
    """`read`, with its problems given back beside what could be read (the lock's gate adds its
    own and says them all at once)."""
    where = project.dependencies
    if where == "none":
        return None, []
    reading = _Reading(Path(root), python, runner, uv, index_url)
    if where == "auto":
        _auto(reading, project)
    else:
        for rel in (where,) if isinstance(where, str) else where:
            reading.file(rel, project.extras)
    _groups(reading, project.groups)
    _test_requirements(reading, project)
    deps = Dependencies(
        ", ".join(dict.fromkeys(reading.sources)), tuple(reading.items),
        tuple(reading.constraints), tuple(reading.checks), tuple(reading.notes),
    )  # fmt: skip
    return deps, reading.problems


def _auto(reading: _Reading, project: Project) -> None:
    has_package = reading.package(project.extras)
    runtime = next((r for r in RUNTIME_REQUIREMENTS if reading.exists(r)), None)
    if runtime:
        reading.file(runtime, named=False)
    env = next((e for e in conda.NAMES if reading.exists(e)), None)
    if env:
        try:
            inside(reading.root, Path(env), env)
            reading.environment(env)
        except UserError as exc:
            reading.problems.append(str(exc))
    if not (has_package or runtime or env):
        raise UserError(
            f"no dependencies found in {reading.root}: looked for {PYPROJECT}, setup.py, "
            f"setup.cfg, {REQUIREMENTS} (and requirements/), environment.yml: write one, or set "
            '[project] dependencies = "<file>" (or "none") in targets.toml'
        )


def _groups(reading: _Reading, wanted: Iterable[str]) -> None:
    names = list(wanted)
    if not names:
        return
    data = (
        _toml(inside(reading.root, Path(PYPROJECT), PYPROJECT), PYPROJECT)
        if reading.exists(PYPROJECT)
        else {}
    )
    for name in names:
        try:
            for text, origin in groups.requirements(data, name):
                reading.add(text, origin)
        except UserError as exc:
            reading.problems.append(str(exc))


def _test_requirements(reading: _Reading, project: Project) -> None:
    wanted = project.test_requirements
    if wanted == "none" or (wanted == "auto" and project.dependencies != "auto"):
        return
    files = [r for r in TEST_REQUIREMENTS if reading.exists(r)] if wanted == "auto" else (
        [wanted] if isinstance(wanted, str) else list(wanted)
    )  # fmt: skip
    for rel in files:
        if not reading.exists(rel):
            reading.problems.append(
                f"[project] test_requirements names {shown(rel)!r}, which is not there: fix it"
            )
            continue
        reading.sources.append(f"{rel} (test tools)")
        reading.collect(reqfiles.read(reading.root, rel))


__all__ = [
    "Dependencies",
    "Dependency",
    "Problems",
    "image_environment",
    "read",
    "read_all",
    "torch_conflicts",
]

"""`torchenv init`: make a project a torchenv project, in its own repository, or bring one set
up by an earlier kit up to this one.

What it writes, as `torchenv init` prints it:

    targets.toml          the matrix (scaffold.matrixfile); its folder is the project's root
    tasks.py              a few lines that load the kit's invoke collection
    noxfile.py            an `image(<target>)` and a `test(<target>)` session per target
    .github/workflows/torchenv.yml    CI: per target, the image, its smoke suite, the tests in it
    .dockerignore         the build context: the staged kit and locks
    .gitignore            gains `/.torchenv/` (the staged kit), when it lacks it
    .torchenv.d/          envs/, docker/ (as `invoke generate` writes them) and init.json, the
                          record of what init wrote (scaffold.record)
    .devcontainer/<target>/devcontainer.json

The kit's files live in `.torchenv.d/` (targets.toml's `files`), not at the root: setuptools'
automatic discovery takes any other top-level folder (`envs/`, `docker/`) for a package and
refuses to build the project's wheel. A project set up by torchenv 0.1 has them at the root:
init moves them (the locks keep their bytes) and says what it moved.

Why targets.toml and not a `[tool.torchenv]` table in pyproject.toml: a project with only a
requirements.txt has no pyproject.toml; the matrix is many tables of the kit's own that `invoke
matrix --outdated` and `refresh-digest` rewrite in place, which a tool should not do to the
project's packaging file; and it marks the project's root for the kit as noxfile.py does for nox.

A file the record says the kit wrote, unchanged since, is the kit's to rewrite; one that differs
is the user's: kept, and named, unless `force`. A second run changes nothing that is yours.
Everything is checked before the first write, and what is written is written all or not at all
(torchenv.files.Transaction).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from torchenv import kit, matrix
from torchenv.errors import UserError
from torchenv.files import Transaction, inside
from torchenv.image import generate
from torchenv.image import package as projectpkg
from torchenv.matrix import FILES_DEFAULT, MATRIX_NAME
from torchenv.runner import Runner, subprocess_runner
from torchenv.scaffold import kitsource
from torchenv.scaffold import record as records
from torchenv.scaffold.matrixfile import default_matrix, image_repo, kit_version_or_dev

__all__ = ["Outcome", "default_matrix", "image_repo", "init", "next_steps", "os"]

TEMPLATES = kit.KIT / "templates"
GITIGNORE_LINE = "/.torchenv/"
# Files written from the kit as they are: (path in the project, the kit's file).
_FIXED = (
    ("tasks.py", TEMPLATES / "tasks.py.in"),
    ("noxfile.py", TEMPLATES / "noxfile.py.in"),
    (".dockerignore", TEMPLATES / "dockerignore"),
    (".github/workflows/torchenv.yml", TEMPLATES / "workflow.yml"),
)
# Projects set up before the init record: the sha256 of an earlier kit's version of a file it
# writes as is, and what an earlier kit's generated or written files carry (init replaces those).
_EARLIER = {
    "noxfile.py": {"1deefb549e3eb74830ad38e231bcec6b87c460ad311ea39827cec34cb63aaf8c"},
}
_GENERATED_MARKS = ("invoke generate", '"name": "torchenv ')
_OLD_DOCKERIGNORE = "# Written by `torchenv init`. The build context holds"


@dataclass
class Outcome:
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # the user's files, left as they are
    moved: list[tuple[Path, Path]] = field(default_factory=list)  # an earlier kit's place, now
    notes: list[str] = field(default_factory=list)

    def lines(self, root: Path) -> list[str]:
        out = [f"moved {a.relative_to(root)} to {b.relative_to(root)}" for a, b in self.moved]
        out += [f"wrote {p.relative_to(root)}" for p in self.written]
        out += [
            f"kept {p.relative_to(root)}: it exists with other content (--force replaces it)"
            for p in self.kept
        ]  # fmt: skip
        return (out or ["nothing to do: the project is set up"]) + self.notes


def check_writable(root: Path) -> None:
    if not os.access(root, os.W_OK | os.X_OK):
        raise UserError(f"cannot write in {root}: run `torchenv init` in a folder you can write to")


def kit_version() -> str:
    """The installed kit's version (the workflow installs the same)."""
    version = kit_version_or_dev()
    if version == "from source":
        raise UserError("torchenv is not installed here: pip install torchenv, then init")
    return version


class _Plan:
    """What init will do, decided in full before anything is written."""

    def __init__(self, root: Path, force: bool, record: records.Record) -> None:
        self.root, self.force, self.record = root, force, record
        self.txn = Transaction(root)
        self.outcome = Outcome()
        self.new_record = records.Record(kit_version(), dict(record.files))
        self.planned: dict[str, str] = {}  # path: the text it will have

    def current(self, rel: str) -> str | None:
        if rel in self.planned:
            return self.planned[rel]
        path = self.root / rel
        if path.is_symlink() or path.is_file():
            inside(self.root, Path(rel), rel)
            return path.read_text(errors="replace")
        return None

    def place(self, rel: str, text: str, earlier: Callable[[str], bool], tracked: bool) -> None:
        """Write `text` at `rel` unless the file there is the user's (see the module's docstring);
        `earlier`: whether a file with no record is an earlier kit's; `tracked`: in the record."""
        current = self.current(rel)
        if current != text:
            recorded = rel in self.record.files
            ours = (
                current is None or self.force
                or (recorded and self.record.owns(rel, current))
                or (not recorded and earlier(current))
            )  # fmt: skip
            if not ours:
                self.outcome.kept.append(self.root / rel)
                return
            self.txn.write(rel, text)
            self.planned[rel] = text
            self.outcome.written.append(self.root / rel)
        if tracked:
            self.new_record.files[rel] = records.sha256(text)


def _matrix_text(plan: _Plan, names: Iterable[str] | None) -> str:
    """The matrix init leaves: the user's as it is (an earlier kit's moved to its files folder),
    else the kit's default for this project."""
    current = plan.current(MATRIX_NAME)
    default = default_matrix(plan.root, names)
    if current is None:
        plan.place(MATRIX_NAME, default, lambda _: False, tracked=True)
        return default
    matrix.parse(current, source=MATRIX_NAME, root=plan.root)  # a broken one: one line, now
    if names is not None:
        plan.outcome.notes.append(
            f"--targets left {MATRIX_NAME} as it is: it is there already (edit it, or delete it "
            "and run init again)"
        )
    if plan.record.owns(MATRIX_NAME, current) and names is None:
        # the kit's, unchanged since: this kit's version of it, with the same targets
        kits = matrix.parse(kit.DEFAULT_MATRIX.read_text(), source=f"the kit's {MATRIX_NAME}")
        mine = [n for n in matrix.parse(current, source=MATRIX_NAME) if n in kits]
        newer = default_matrix(plan.root, mine or None)
        plan.place(MATRIX_NAME, newer, lambda _: False, tracked=True)
        return newer
    return current


_TOP_FILES = re.compile(r"(?m)^files\s*=")


def _move_earlier_layout(plan: _Plan, text: str) -> str:
    """A project set up by torchenv 0.1 keeps envs/ and docker/ at the root: move the kit's files
    of its targets into FILES_DEFAULT and name the folder in targets.toml (one line added)."""
    targets = matrix.parse(text, source=MATRIX_NAME, root=plan.root)
    if _TOP_FILES.search(text) or next(iter(targets.values())).files != ".":
        return text
    old = [
        path for t in targets.values()
        for path in (t.env_file, t.dockerfile, t.pip_lock, t.project_lock, t.dev_lock, t.conda_lock)
        if path.is_file()
    ]  # fmt: skip
    if not old:
        return text
    for path in old:
        rel = path.relative_to(plan.root)
        new = Path(FILES_DEFAULT) / rel
        inside(plan.root, rel, str(rel))
        plan.txn.write(new, path.read_bytes())
        plan.txn.remove(rel)
        plan.planned[str(new)] = path.read_text(errors="replace")
        plan.outcome.moved.append((path, plan.root / new))
    line = (
        "# Where the kit keeps what it generates and the locks (setuptools' discovery took envs/\n"
        f'# and docker/ at the root for packages): moved by `torchenv init`.\nfiles = "{FILES_DEFAULT}"\n\n'
    )
    first_table = re.search(r"(?m)^\[", text)
    at = first_table.start() if first_table else len(text)
    moved = text[:at] + line + text[at:]
    plan.txn.write(MATRIX_NAME, moved)
    plan.planned[MATRIX_NAME] = moved
    plan.outcome.notes.append(f'{MATRIX_NAME}: added files = "{FILES_DEFAULT}"')
    return moved


def _gitignore(plan: _Plan) -> None:
    current = plan.current(".gitignore") or ""
    if GITIGNORE_LINE in current.split("\n"):
        return
    lead = "" if not current or current.endswith("\n") else "\n"
    text = f"{current}{lead}# torchenv stages its kit here for each build\n{GITIGNORE_LINE}\n"
    plan.txn.write(".gitignore", text)
    plan.outcome.written.append(plan.root / ".gitignore")


def _earlier(name: str) -> Callable[[str], bool]:
    known = _EARLIER.get(name, set())
    if name == ".dockerignore":
        return lambda text: text.startswith(_OLD_DOCKERIGNORE)
    return lambda text: hashlib.sha256(text.encode()).hexdigest() in known


def ignored(root: Path, paths: list[Path], runner: Runner = subprocess_runner) -> list[str]:
    """One line for each file the kit wrote that the project's git ignores (a `*.json` line
    hides init.json and the dev containers): commit it with `git add -f`."""
    if not paths or not (root / ".git").exists():
        return []
    rels = [str(p.relative_to(root)) for p in paths]
    done = runner(["git", "-C", str(root), "check-ignore", "--verbose", "--", *rels], timeout=30)
    lines = []
    for line in done.stdout.splitlines():
        where, _, path = line.partition("\t")
        if path:
            lines.append(
                f"{path} is ignored by git ({where}): commit it with `git add -f {path}` (the "
                "kit's files belong in the repository)"
            )
    return lines


def next_steps(root: Path) -> str:
    """What to run next, for the project's first target; a kept tasks.py that does not load the
    kit's collection would make `invoke lock` fail ("No idea what 'lock' is!"): said first."""
    first = matrix.names(root)[0]
    tasks = root / "tasks.py"
    if tasks.is_file() and "torchenv.tasks" not in tasks.read_text(errors="replace"):
        return (
            "next: your tasks.py does not load torchenv's tasks: add `from torchenv.tasks import "
            "ns` to it (then ns.add_task(...) for your own), or run `torchenv init --force`; then "
            f"invoke lock --target {first}"
        )
    return f"next: invoke lock --target {first} && invoke build --target {first} (invoke --list)"


def init(
    root: Path,
    force: bool = False,
    names: Iterable[str] | None = None,
    kit_source: kitsource.KitSource | None = None,
) -> Outcome:
    """Set up (or bring up to this kit) the project at `root`; `names`: the targets a new matrix
    holds (default: all the kit's); `kit_source`: how CI installs the kit (default: as this one
    was installed). See the module's docstring."""
    root = Path(root).resolve()
    check_writable(root)
    source = kitsource.detect() if kit_source is None else kit_source
    current = root / MATRIX_NAME
    files = "."
    if current.is_file():
        inside(root, Path(MATRIX_NAME), MATRIX_NAME)
        files = matrix.files_folder(matrix.toml_data(current.read_text(), MATRIX_NAME))
    where = records.path(files if files != "." else FILES_DEFAULT)
    plan = _Plan(root, force, records.load(root, where))
    text = _move_earlier_layout(plan, _matrix_text(plan, names))
    targets = matrix.parse(text, source=MATRIX_NAME, root=root)
    files = next(iter(targets.values())).files
    kit_requirements = str(Path(files) / kitsource.REQUIREMENTS_NAME)
    if source.note:
        plan.outcome.notes.append(source.note)
    for name, template in _FIXED:
        if name.endswith("torchenv.yml") and not source.requirements:
            continue  # CI cannot install this kit: nothing broken is written (the note says why)
        text_of = template.read_text().replace("{{KIT_REQUIREMENTS}}", kit_requirements)
        plan.place(name, text_of.replace("{{KIT_SOURCE}}", source.source), _earlier(name), True)
    if source.requirements:
        plan.place(kit_requirements, source.requirements, lambda _: False, True)
    _gitignore(plan)
    generated = lambda text: any(mark in text for mark in _GENERATED_MARKS)  # noqa: E731
    package = projectpkg.enabled(root, matrix.parse_project(text))  # the matrix as it will be
    for path, produce in generate.outputs(root, targets, package):
        if path.name == "README.md":
            continue  # the project's own README: `invoke generate` fills a table only on request
        plan.place(str(path.relative_to(root)), produce(), generated, tracked=False)
    record_rel = records.path(files)
    if plan.new_record.dumps() != plan.current(str(record_rel)):
        plan.txn.write(record_rel, plan.new_record.dumps())
        plan.outcome.written.append(root / record_rel)
    plan.txn.commit()
    plan.outcome.notes += ignored(root, [p for p in plan.outcome.written if p.name != ".gitignore"])
    for folder in ("envs", "docker"):  # emptied by a move: a folder setuptools would take
        if plan.outcome.moved and (root / folder).is_dir() and not any((root / folder).iterdir()):
            (root / folder).rmdir()
    matrix.forget()
    return plan.outcome

"""`torchenv init`: make a project a torchenv project, in its own repository.

It writes what the kit needs there, then the files generated from the matrix:

    targets.toml          the matrix (the kit's default targets); its folder is the project's root
    tasks.py              a few lines that load the kit's invoke collection
    noxfile.py            an `image(<target>)` and a `test(<target>)` session per target
    .github/workflows/torchenv.yml    CI: per target, the image, its smoke suite, the tests in it
    .dockerignore         the build context: the staged kit and locks (written only when absent)
    .gitignore            gains `/.torchenv/` (the staged kit), when it lacks it
    envs/, docker/, .devcontainer/<target>/    as `invoke generate` writes them

Why targets.toml and not a `[tool.torchenv]` table in pyproject.toml: a project with only a
requirements.txt has no pyproject.toml; the matrix is many tables of the kit's own (one per
target) that `invoke matrix --outdated` and `refresh-digest` rewrite in place, which a tool should
not do to the project's packaging file; and it marks the project's root for the kit as noxfile.py
marks it for nox.

A file that exists with other content is the user's: it is kept, and named, unless `force`. A
second run writes nothing. Nothing is half-written (each file is replaced in one rename).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from torchenv import kit, matrix
from torchenv.errors import UserError
from torchenv.files import write_atomic
from torchenv.image import generate

TEMPLATES = kit.KIT / "templates"
GITIGNORE_LINE = "/.torchenv/"
# Files written from the kit as they are: (path in the project, the kit's file).
_FIXED = (
    ("tasks.py", TEMPLATES / "tasks.py.in"),
    ("noxfile.py", TEMPLATES / "noxfile.py.in"),
    (".dockerignore", TEMPLATES / "dockerignore"),
    (".github/workflows/torchenv.yml", TEMPLATES / "workflow.yml"),
)
# The sha256 of each earlier kit's version of a file it writes as is: init replaces those.
_EARLIER = {
    "noxfile.py": {"1deefb549e3eb74830ad38e231bcec6b87c460ad311ea39827cec34cb63aaf8c"},
}
# What the kit's generated files carry, so that init may replace an old one of its own.
_GENERATED_MARKS = ("invoke generate", '"name": "torchenv ')
# An older kit's .dockerignore (it let envs/ in, not the staged locks) starts so: replaced.
_OLD_DOCKERIGNORE = "# Written by `torchenv init`. The build context holds"


_REPO_LINE = re.compile(r'(?m)^image_repo = "[^"\n]*"$')
# The kit's own images' measured sizes are not this project's.
_MEASURED = re.compile(r"(?m)^image_(size|gzip)_gb = .*\n")


def image_repo(root: Path) -> str:
    """The project's image repository: its folder's name as Docker allows it (lower case)."""
    name = re.sub(r"[^a-z0-9._-]+", "-", root.name.lower()).strip("._-")
    return name or "project"


def default_matrix(root: Path) -> str:
    """The kit's targets, for this project: its own image names, no measured sizes."""
    text = kit.DEFAULT_MATRIX.read_text()
    if len(_REPO_LINE.findall(text)) != 1:
        raise UserError("the kit's targets.toml has no single image_repo line: reinstall torchenv")
    text = _REPO_LINE.sub(f'image_repo = "{image_repo(root)}"', _MEASURED.sub("", text))
    text = _PROJECT_TABLE.sub("", text).rstrip("\n") + "\n" + PROJECT_TABLE
    header = (
        "# Written by `torchenv init` from the kit's default matrix; edit it, then `invoke "
        "generate`.\n# Images are named <image_repo>/<target>:<torch>-<variant>.\n\n"
    )
    matrix.parse(text, source=matrix.MATRIX_NAME)  # what is written is a valid matrix
    return header + text


# The kit's own [project] table (its section comment included) gives way to a new project's.
_PROJECT_TABLE = re.compile(r"(?ms)^(?:#[^\n]*\n)*\[project\]\n.*?(?=^\[|\Z)")
PROJECT_TABLE = """
# What of the project goes into every target's image: its dependencies, locked with the target's
# torch ("auto": pyproject.toml's [project] dependencies, else requirements.txt, else
# environment.yml's pip section; or one such file; or "none"), the pyproject extras to add, its own
# package (installed --no-deps; default: when pyproject.toml has a [project] table), and the
# command `invoke test` runs in the image.
[project]
dependencies = "auto"
extras = []
test_command = "pytest"
"""


@dataclass
class Outcome:
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # the user's files, left as they are

    def lines(self, root: Path) -> list[str]:
        out = [f"wrote {p.relative_to(root)}" for p in self.written]
        out += [
            f"kept {p.relative_to(root)}: it exists with other content (--force replaces it)"
            for p in self.kept
        ]  # fmt: skip
        return out or ["nothing to do: the project is set up"]


def check_writable(root: Path) -> None:
    if not os.access(root, os.W_OK | os.X_OK):
        raise UserError(f"cannot write in {root}: run `torchenv init` in a folder you can write to")


def _place(
    path: Path, text: str, outcome: Outcome, force: bool, ours: Callable[[str], bool]
) -> None:
    if path.is_file():
        current = path.read_text(errors="replace")
        if current == text:
            return
        if not (force or ours(current)):
            outcome.kept.append(path)
            return
    write_atomic(path, text)
    outcome.written.append(path)


def _gitignore(root: Path, outcome: Outcome) -> None:
    path = root / ".gitignore"
    current = path.read_text() if path.is_file() else ""
    if GITIGNORE_LINE in current.split("\n"):
        return
    lead = "" if not current or current.endswith("\n") else "\n"
    write_atomic(
        path, f"{current}{lead}# torchenv stages its kit here for each build\n{GITIGNORE_LINE}\n"
    )
    outcome.written.append(path)


def kit_version() -> str:
    """The installed kit's version (the workflow installs the same)."""
    from importlib import metadata

    try:
        return metadata.version("torchenv")
    except metadata.PackageNotFoundError:  # imported from a source tree, not installed
        raise UserError("torchenv is not installed here: pip install torchenv, then init") from None


def _earlier(name: str) -> Callable[[str], bool]:
    known = _EARLIER.get(name, set())
    return lambda text: hashlib.sha256(text.encode()).hexdigest() in known


def init(root: Path, force: bool = False) -> Outcome:
    """Set up `root` (the project's root); see the module's docstring."""
    root = Path(root).resolve()
    check_writable(root)
    outcome = Outcome()
    never_ours: Callable[[str], bool] = lambda _text: False  # noqa: E731
    _place(root / matrix.MATRIX_NAME, default_matrix(root), outcome, force, never_ours)
    old_ignore: Callable[[str], bool] = lambda text: text.startswith(_OLD_DOCKERIGNORE)  # noqa: E731
    for name, source in _FIXED:
        ours = old_ignore if name == ".dockerignore" else _earlier(name)
        text = source.read_text().replace("{{KIT_VERSION}}", kit_version())
        _place(root / name, text, outcome, force, ours)
    _gitignore(root, outcome)
    matrix.forget()
    targets = matrix.load(root)
    ours = lambda text: any(mark in text for mark in _GENERATED_MARKS)  # noqa: E731
    for path, produce in generate.outputs(root, targets):
        if path.name == "README.md":
            continue  # the project's own README: `invoke generate` fills a table only on request
        _place(path, produce(), outcome, force, ours)
    return outcome

"""pip's requirements-file format, read as pip reads it, inside the project's root.

Followed: `-r FILE` / `--requirement` and `-c FILE` / `--constraint` (relative to the file that
names them, inside the root), line continuations, comments, a UTF-8 BOM, per-line options
(`--hash=...`: the lock makes its own; `--config-settings`, `--global-option`: build options a
wheel needs none of). Skipped with a note: an index line for PyTorch's index (`--index-url`,
`--extra-index-url`, `-f`/`--find-links` to download.pytorch.org: the target owns where the
torch family comes from), `--no-binary`/`--only-binary`/`--prefer-binary`, and `-e .` or `.`
(the project itself: its package is the images' last layer). Refused, one line each naming the
file and line: another index (give it as `invoke lock --index-url`), an editable or local path
other than the project itself, an include outside the root or not there, a line that is no
requirement. Every line shown is redacted (torchenv.credentials.shown).

Each problem is collected, not raised, so that a project's every problem is said in one run.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from torchenv.credentials import shown
from torchenv.errors import UserError
from torchenv.files import inside

PYTORCH_INDEX = re.compile(r"^https?://download\.pytorch\.org/", re.I)
_INDEX_OPTIONS = ("--index-url", "-i", "--extra-index-url", "--find-links", "-f")
_IGNORED_OPTIONS = (
    "--no-binary", "--only-binary", "--prefer-binary", "--pre", "--use-feature",
    "--trusted-host", "--no-index",
)  # fmt: skip
_PER_LINE = re.compile(r"\s--(?:hash|config-settings|global-option|install-option)(?:[= ]\S+)")


@dataclass
class Line:
    text: str  # the requirement, PEP 508
    origin: str  # "requirements.txt:3"


@dataclass
class Read:
    """What a requirements file (and what it includes) gives."""

    requirements: list[Line] = field(default_factory=list)
    constraints: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # every file read, relative to the root


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, line) with continuations joined and comments dropped."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*$", "", raw)
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        if whole:
            out.append((start, whole))
    if pending.strip():
        out.append((start, pending.strip()))
    return out


def read(root: Path, rel: str, out: Read | None = None, constraint: bool = False) -> Read:
    """Read `rel` (relative to `root`) and what it includes."""
    out = Read() if out is None else out
    if rel in out.files:
        return out  # an include read already (or a loop)
    try:
        path = inside(root, Path(rel), rel)
        text = path.read_text(encoding="utf-8", errors="replace")
    except UserError as exc:
        out.problems.append(str(exc))
        return out
    except OSError as exc:
        out.problems.append(f"{rel}: cannot read it ({exc.strerror})")
        return out
    out.files.append(rel)
    folder = Path(rel).parent
    for number, line in _logical_lines(text):
        origin = f"{rel}:{number}"
        read_line(root, folder, origin, line, out, constraint)
    return out


def _vcs_requirement(url: str) -> str | None:
    """`NAME @ URL` for pip's legacy `git+URL#egg=NAME[&subdirectory=...]`; None without egg."""
    base, _, fragment = url.partition("#")
    parts = dict(p.split("=", 1) for p in fragment.split("&") if "=" in p)
    name = parts.pop("egg", None)
    if not name:
        return None
    rest = "&".join(f"{k}={v}" for k, v in parts.items())
    return f"{name} @ {base}{'#' + rest if rest else ''}"


def read_line(
    root: Path, folder: Path, origin: str, line: str, out: Read, constraint: bool
) -> None:
    if line.startswith("-"):
        _option(root, folder, origin, line, out)
        return
    requirement = _PER_LINE.sub("", " " + line).strip()
    if re.match(r"^(?:git|hg|svn|bzr)\+", requirement):  # pip's bare VCS line: NAME from #egg=
        named = _vcs_requirement(requirement)
        if named is None:
            out.problems.append(
                f"{origin}: {shown(requirement)!r} names no package: write NAME @ "
                f"{shown(requirement)} (pinned to a commit: @<the full commit hash>)"
            )
            return
        requirement = named
    requirement = re.sub(r"\s--(?:hash|config-settings|global-option)\S*$", "", requirement)
    if requirement in (".", "./") or requirement.startswith(("./", "../", "/", "file:")):
        if requirement in (".", "./"):
            out.notes.append(
                f"{origin}: {requirement!r} is the project itself, not locked (its own package is the "
                "image's last layer where [project] package says so)"
            )
            return
        out.problems.append(
            f"{origin}: {shown(requirement)!r} is a local path, which no index serves: publish it, "
            "or list what it needs"
        )
        return
    (out.constraints if constraint else out.requirements).append(Line(requirement, origin))


def _option(root: Path, folder: Path, origin: str, line: str, out: Read) -> None:
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    name, _, value = words[0].partition("=")
    if not value and len(words) > 1:
        value = words[1]
    if name in ("-r", "--requirement", "-c", "--constraint"):
        if not value:
            out.problems.append(f"{origin}: {name} names no file")
            return
        include = os.path.normpath(folder / value)  # `..` collapsed, not resolved: `inside`
        # follows the links, and refuses what lies outside the root
        if not (root / include).exists() and not (root / include).is_symlink():
            out.problems.append(f"{origin}: {name} {shown(value)}: there is no such file")
            return
        read(root, include, out, constraint=name in ("-c", "--constraint"))
    elif name in _INDEX_OPTIONS:
        if PYTORCH_INDEX.match(value):
            out.notes.append(
                f"{origin}: skipped {name} {shown(value)}: the target says where its torch "
                "family comes from"
            )
        else:
            out.problems.append(
                f"{origin}: {name} {shown(value)} is another index: torchenv resolves from one "
                "index, the default one or `invoke lock --index-url URL` (INVOKE_TORCHENV_INDEX_URL)"
            )
    elif name in ("-e", "--editable") and re.match(r"^(?:git|hg|svn|bzr)\+", value):
        out.notes.append(
            f"{origin}: {shown(value)} is installed as a package, not editable, in the images"
        )
        read_line(root, folder, origin, value, out, constraint=False)
    elif name in ("-e", "--editable"):
        if value in (".", "./"):
            out.notes.append(
                f"{origin}: '-e .' is the project itself, not locked (its own package is the image's "
                "last layer where [project] package says so)"
            )
        else:
            out.problems.append(
                f"{origin}: {shown(line)!r} is an editable install, which no index serves: list "
                "its requirements, or install it in the dev container"
            )
    elif name in _IGNORED_OPTIONS:
        out.notes.append(f"{origin}: skipped {shown(name)} (the lock takes wheels from the index)")
    else:
        out.problems.append(f"{origin}: {shown(line)!r} is an option torchenv does not know")

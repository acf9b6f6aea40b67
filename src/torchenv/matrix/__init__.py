"""The target matrix, loaded from targets.toml (the one source of truth), and the package that
owns it: `pins` (which torch/CUDA/Python combinations can exist), `digests` (base images pinned
by digest), `table` (the matrix as a table), `projecttable` and `citable` (its [project] and [ci]
tables).

Everything else (env files, Dockerfiles, dev containers, nox sessions, the CI workflow, the
README table) is generated from `load()` or checked against it.

Public surface (users' projects and the files `torchenv init` writes use it; it changes only with
the kit's version): `load`, `names`, `get`, `project`, `ci`, `find_root`, `project_root`,
`Target` (its fields, `image()`, the paths of its files), `Project`, `CI`, `FLAVORS`,
`INSTALLERS`, and `python -m torchenv.matrix [--json] [--event EVENT]` (the [ci] table's targets
of a CI event, torchenv.matrix.citable).

The project is found per call, never at import: every function takes the project's `root`, and
without one finds it from the working directory up to targets.toml, as nox and invoke find theirs.
Each target carries the root it was loaded from, so its paths (env file, Dockerfile, locks) are
that project's.
"""

from __future__ import annotations

import re
import sys
from dataclasses import MISSING, dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

from torchbuild import envfile, versions
from torchenv.errors import UserError
from torchenv.files import write_in
from torchenv.matrix.citable import CI, parse_ci
from torchenv.matrix.projecttable import Project, parse_project

# re-exported: the [project] and [ci] tables are the matrix's too
__all__ = ["CI", "Project", "parse_ci", "parse_project"]

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

MATRIX_NAME = "targets.toml"


def find_root(start: Path | None = None) -> Path | None:
    """The project's root, as nox and invoke find theirs: the first folder from `start` (the
    working directory) upwards that holds targets.toml; None when none does."""
    here = Path.cwd() if start is None else Path(start)
    for folder in (here, *here.parents):
        if (folder / MATRIX_NAME).is_file():
            return folder
    return None


def project_root(start: Path | None = None) -> Path:
    """The project's root (resolved), found from `start` (the working directory) upwards;
    UserError (one line) when no targets.toml is there or above."""
    here = (Path.cwd() if start is None else Path(start)).resolve()
    found = find_root(here)
    if found is None:
        raise UserError(
            f"no {MATRIX_NAME} in {here} or any folder above it: this is not a torchenv project; "
            "run `torchenv init` in the project's root to make it one"
        )
    return found


def _root(root: Path | None) -> Path:
    return project_root() if root is None else Path(root).resolve()


FLAVORS = ("runtime", "dev")
# How an image's environment is made: a venv filled by uv or pip, or micromamba (conda).
INSTALLERS = ("uv", "pip", "conda")
DEFAULT_INSTALLER = "uv"  # the fastest installer that CI builds and runs end to end


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    variant: str  # cpu, cu118, cu128, cu130 ...
    torch: str
    torchvision: str
    torchaudio: str
    python: str
    base_image: str
    base_digest: str
    micromamba_image: str
    micromamba_digest: str
    image_repo: str
    dev_packages: tuple[str, ...]
    cuda: str | None = None  # "11.8"; None for cpu
    index_url: str | None = None  # None: pip's default index
    image_size_gb: float | None = (
        None  # runtime image size as measured by benchmarks/build_speed.py
    )
    image_gzip_gb: float | None = None  # the same image, `docker save | gzip` (build_speed.py)
    smoke_timeout_s: int = 900  # `invoke smoke` stops the suite after this (its --timeout)
    # TorchCodec, through which torchaudio 2.9+ loads and saves files (and which decodes video);
    # None: the target has no TorchCodec (torchaudio 2.7/2.8 have their own backends).
    torchcodec: str | None = None
    # The GPU architectures torch's kernels are built for, as measured (torch._C._cuda_getArchFlags()
    # in the image, which needs no GPU); empty: not measured yet (the build records them).
    cuda_archs: tuple[str, ...] = ()
    # The project this target belongs to (the folder of its targets.toml): not a key of the file.
    root: Path = field(default=Path(), compare=False, repr=False)
    # Where under the root the kit keeps its files for the project (targets.toml's `files`).
    files: str = field(default=".", compare=False, repr=False)

    def as_dict(self) -> dict[str, object]:
        """The target as targets.toml states it (for `invoke matrix --format json`)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _NOT_KEYS}

    @property
    def folder(self) -> Path:
        """The folder of the kit's files for this project: envs/ and docker/ are in it."""
        return self.root / self.files

    @property
    def is_cuda(self) -> bool:
        return self.cuda is not None

    @property
    def min_driver(self) -> str | None:
        """The minimum NVIDIA Linux driver of the target's CUDA (torchbuild.versions); None: cpu."""
        return versions.min_driver(self.cuda)

    @property
    def env_file(self) -> Path:
        return self.folder / "envs" / f"{self.name}.yml"

    @property
    def dockerfile(self) -> Path:
        return self.folder / "docker" / f"{self.name}.Dockerfile"

    @property
    def pip_lock(self) -> Path:
        """Hashed requirements for the pip installer (written by `invoke lock`)."""
        return self.folder / "envs" / f"{self.name}.pip.lock.txt"

    @property
    def project_lock(self) -> Path:
        """Hashed requirements of the project's dependencies, above the pip lock (`invoke lock`)."""
        return self.folder / "envs" / f"{self.name}.project.lock.txt"

    @property
    def dev_lock(self) -> Path:
        """Hashed requirements of the dev flavor's extras, above the project's (`invoke lock`)."""
        return self.folder / "envs" / f"{self.name}.dev.lock.txt"

    @property
    def conda_lock(self) -> Path:
        """conda-lock unified lock for the conda installer (written by `invoke lock`)."""
        return self.folder / "envs" / f"{self.name}.conda-lock.yml"

    def read_env(self) -> envfile.EnvFile:
        """The target's env file as the build reads it (torchbuild.envfile); its errors become
        UserError here, the one place the kit translates torchbuild's (which knows nothing of
        the kit)."""
        try:
            return envfile.parse(self.env_file)
        except envfile.EnvFileError as exc:
            raise UserError(str(exc)) from None

    @property
    def base_ref(self) -> str:
        return f"{self.base_image}@{self.base_digest}"

    @property
    def micromamba_ref(self) -> str:
        return f"{self.micromamba_image}@{self.micromamba_digest}"

    @property
    def nvidia_require_cuda(self) -> str | None:
        return f"cuda>={self.cuda}" if self.cuda else None

    def image(self, flavor: str = "runtime") -> str:
        if flavor not in FLAVORS:
            raise UserError(f"unknown flavor {flavor!r}: choose one of {', '.join(FLAVORS)}")
        suffix = "" if flavor == "runtime" else f"-{flavor}"
        return f"{self.image_repo}/{self.name}:{self.torch}-{self.variant}{suffix}"

    def smoke_expectations(self) -> list[str]:
        """The smoke-suite arguments that say what this target promises."""
        return [
            "--expect-variant", self.variant,
            "--expect-torch", self.torch,
            "--expect-torchvision", self.torchvision,
            "--expect-torchaudio", self.torchaudio,
            "--expect-python", self.python,
        ]  # fmt: skip


_NOT_KEYS = {"root", "files"}  # a Target's fields that are no target keys of targets.toml
_FIELDS = {f.name for f in fields(Target)} - _NOT_KEYS
# What each text field may hold: the values reach file names, Dockerfile fields, labels and
# command lines, so none may carry a quote, a space where it would split, a line break or `..`.
NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
_VERSION = r"[0-9][0-9A-Za-z.+!-]*"
_REFERENCE = r"[a-z0-9]+(?:[._/-][a-z0-9]+)*"  # a registry path, Docker's grammar, no host port
_IMAGE = rf"(?:[a-z0-9.-]+(?::[0-9]+)?/)?{_REFERENCE}:[A-Za-z0-9_][A-Za-z0-9_.-]*"  # NAME:TAG
DIGEST = r"sha256:[0-9a-f]{64}"  # an image digest, as targets.toml and the registries give it
_SHAPES = {
    "variant": (r"[a-z0-9]+", "lowercase letters and digits, e.g. cu130"),
    "torch": (_VERSION, "a version, e.g. 2.11.0"),
    "torchvision": (_VERSION, "a version"),
    "torchaudio": (_VERSION, "a version"),
    "torchcodec": (_VERSION, "a version"),
    "cuda_archs": (r"(?:sm|compute)_[0-9]+[a-z]?", "architectures like sm_90 or compute_120"),
    "python": (r"3\.[0-9]+", "a Python minor version, e.g. 3.11"),
    "cuda": (r"[0-9]+\.[0-9]+", "a CUDA version, e.g. 13.0"),
    "base_image": (_IMAGE, "an image NAME:TAG"),
    "micromamba_image": (_IMAGE, "an image NAME:TAG"),
    "base_digest": (DIGEST, "sha256: and 64 hex digits"),
    "micromamba_digest": (DIGEST, "sha256: and 64 hex digits"),
    "image_repo": (_REFERENCE, "a lowercase repository path, e.g. torchenv or my-org/envs"),
    "index_url": (r"https?://[A-Za-z0-9.-]+(?::[0-9]+)?(?:/[A-Za-z0-9._~%-]*)*",
                  "an http(s) URL of an index, with no credentials, query or spaces"),
    "dev_packages": (r"[A-Za-z0-9][A-Za-z0-9._-]*(?:\[[A-Za-z0-9,._-]+\])?==" + _VERSION,
                     "NAME==VERSION"),
}  # fmt: skip


def _check_values(name: str, values: dict[str, object], source: str) -> None:
    """One UserError line for the first value that could break out of the field it reaches."""
    if not NAME.fullmatch(name):
        raise UserError(
            f"{source}: target name {name!r} is not lowercase letters, digits and dashes "
            "(starting with a letter or digit): rename it, e.g. cuda13"
        )
    for key, (pattern, wanted) in _SHAPES.items():
        raw = values.get(key)
        for value in raw if isinstance(raw, (list, tuple)) else [raw]:
            if value is not None and not re.fullmatch(pattern, str(value)):
                raise UserError(f"{source}: target {name!r} has {key} = {value!r}: give {wanted}")
    description = values.get("description")
    if not isinstance(description, str) or not description.isprintable():
        raise UserError(
            f"{source}: target {name!r} has a description that is not one printable line: "
            "write it on one line, without control characters"
        )


_REQUIRED = {f.name for f in fields(Target) if f.default is MISSING} - {"name", *_NOT_KEYS}


def toml_data(text: str, source: str = MATRIX_NAME) -> dict[str, Any]:
    """The matrix file's TOML as a dict; UserError (one line) for bad TOML."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{source}: {exc}; fix the TOML syntax") from None


def parse(text: str, source: str = "targets.toml", root: Path = Path()) -> dict[str, Target]:
    """Parse matrix TOML text into targets (in file order) of the project at `root`; UserError on
    anything malformed."""
    data = toml_data(text, source)
    defaults = data.get("defaults", {})
    files = files_folder(data, source)
    raw_targets = data.get("targets")
    if not isinstance(raw_targets, dict) or not raw_targets:
        raise UserError(f"{source}: no [targets.<name>] tables; define at least one target")
    targets = {}
    for name, raw in raw_targets.items():
        values = {**defaults, **raw, "name": name}
        unknown = set(values) - _FIELDS
        if unknown:
            raise UserError(
                f"{source}: target {name!r} has unknown key(s) {', '.join(sorted(unknown))}; "
                f"valid keys: {', '.join(sorted(_FIELDS - {'name'}))}"
            )
        missing = _REQUIRED - set(values)
        if missing:
            raise UserError(f"{source}: target {name!r} lacks {', '.join(sorted(missing))}")
        _check_values(name, values, source)
        values["dev_packages"] = tuple(values["dev_packages"])
        values["cuda_archs"] = tuple(values.get("cuda_archs", ()))
        cuda = values.get("cuda")
        if cuda is not None and versions.min_driver(str(cuda)) is None:
            raise UserError(
                f"{source}: target {name!r} has cuda = {cuda!r}, whose minimum driver torchenv "
                f"does not know: use one of {', '.join(versions.MIN_DRIVER)}"
            )
        targets[name] = Target(**values, root=root, files=files)
    parse_ci(data.get("ci"), list(targets), source)  # a bad [ci] table is said at once
    return targets


# What `files` may be: a relative folder of plain names (no `..`, no absolute path, no spaces).
_FILES = re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*")
FILES_DEFAULT = ".torchenv.d"  # what `torchenv init` writes for a new project


def files_folder(data: dict[str, object], source: str = MATRIX_NAME) -> str:
    """targets.toml's top-level `files`: where under the root the kit keeps the files it
    generates and the locks (envs/, docker/, its init record). Without it: the root itself, as
    projects set up by torchenv 0.1 (and this repository) have them."""
    value = data.get("files", ".")
    if value == ".":
        return "."
    if not isinstance(value, str) or not _FILES.fullmatch(value) or ".." in value.split("/"):
        raise UserError(
            f"{source}: files = {value!r}: give a folder inside the project, e.g. "
            f'"{FILES_DEFAULT}" (no "..", no absolute path)'
        )
    return value


def load(root: Path | None = None) -> dict[str, Target]:
    """All targets of the project at `root` (None: found from the working directory), keyed by
    name, in the order of its targets.toml."""
    return _load(_root(root))


@cache
def _load(root: Path) -> dict[str, Target]:
    path = root / MATRIX_NAME
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"cannot read the target matrix {path}: {exc.strerror}") from None
    return parse(text, source=MATRIX_NAME, root=root)


def forget() -> None:
    """Read targets.toml afresh on the next call (after the kit rewrote it)."""
    _load.cache_clear()
    _project.cache_clear()


def set_value(key: str, value: str, root: Path | None = None) -> None:
    """Rewrite the one `key = "..."` line of the matrix file, comments and layout kept.

    The file is replaced in one rename, and `load` forgets what it had read. UserError when the
    key is not there exactly once.
    """
    path = _root(root) / MATRIX_NAME
    text = path.read_text()
    pattern = re.compile(rf'(?m)^(?P<lead>{re.escape(key)}\s*=\s*)"[^"\n]*"')
    found = len(pattern.findall(text))
    if found != 1:
        raise UserError(f"{path.name}: expected one {key} line, found {found}; edit it by hand")
    parse(pattern.sub(lambda m: f'{m["lead"]}"{value}"', text), source=path.name)  # still valid
    write_in(path.parent, Path(MATRIX_NAME), pattern.sub(lambda m: f'{m["lead"]}"{value}"', text))
    forget()


def defaults(root: Path | None = None) -> dict[str, object]:
    """The [defaults] table of the matrix file."""
    path = _root(root) / MATRIX_NAME
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"cannot read the [defaults] of {path.name}: {exc}") from None
    return dict(data.get("defaults", {}))


def project(root: Path | None = None) -> Project:
    """The [project] settings (see Project) of the project at `root` (None: found from the
    working directory)."""
    return _project(_root(root))


@cache
def _project(root: Path) -> Project:
    path = root / MATRIX_NAME
    if not path.exists():
        project_root(root)
    return parse_project(path.read_text(), source=MATRIX_NAME)


def rel(path: Path, root: Path | None = None) -> str:
    """A path as the user knows it: relative to the project's `root` (None: the project that
    holds the path, found from it upwards) when it is inside."""
    where = Path(path).resolve()
    base = find_root(where.parent) if root is None else Path(root).resolve()
    if base is None:
        return str(path)
    try:
        return str(where.relative_to(base))
    except ValueError:
        return str(path)


def names(root: Path | None = None) -> list[str]:
    return list(load(root))


def get(name: str, root: Path | None = None) -> Target:
    """The named target of the project at `root`, or a UserError that lists the valid names."""
    targets = load(root)
    if name not in targets:
        raise UserError(f"unknown target {name!r}: choose one of {', '.join(targets)}")
    return targets[name]


def ci(root: Path | None = None) -> CI:
    """The [ci] table (torchenv.matrix.citable) of the project at `root`: which targets each CI event
    builds."""
    path = _root(root) / MATRIX_NAME
    return parse_ci(toml_data(path.read_text()).get("ci"), names(root), MATRIX_NAME)


def main(argv: list[str] | None = None) -> int:
    """`python -m torchenv.matrix [--json] [--event EVENT]`: the target names (a JSON list for CI
    matrices); with --event, those targets.toml's [ci] table builds on that event."""
    import argparse
    import json

    from torchenv.matrix.citable import event_of

    parser = argparse.ArgumentParser(prog="python -m torchenv.matrix", description=main.__doc__)
    parser.add_argument("--json", action="store_true", help="print a JSON list (default: lines)")
    parser.add_argument("--event", help="a GitHub Actions event name: its targets ([ci])")
    parser.add_argument("--ref", default="", help="with --event push: the pushed ref")
    parser.add_argument("--default-branch", default="", help="the repository's default branch")
    args = parser.parse_args(argv)
    try:
        chosen = names()
        if args.event is not None:
            chosen = ci().targets(event_of(args.event, args.ref, args.default_branch), chosen)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(chosen) if args.json else "\n".join(chosen))
    return 0

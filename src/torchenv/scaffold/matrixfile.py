"""The targets.toml `torchenv init` writes for a project: the kit's targets, rendered for that
project alone (its image names, the files folder, a [project] table), with comments that speak
of the project and the kit's documentation, never of the kit's own repository.

Rendered from the kit's matrix as data, not copied as text: the kit's file carries the kit's own
comments, measured sizes and [project] table, which are not the project's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path

from torchenv import kit, matrix
from torchenv.errors import UserError
from torchenv.matrix import FILES_DEFAULT, MATRIX_NAME, Target

HEADER = """\
# The torchenv target matrix of this project: one table per target (a torch build: CPU, CUDA
# 11.8, 12.8, 13.x), from which `invoke generate` writes each target's env file and Dockerfile
# (under `files`), its dev container (.devcontainer/<target>/) and which `invoke lock`, `invoke
# build`, nox and the CI workflow read. Edit it, then run `invoke generate` and `invoke lock`.
# Written by `torchenv init` (torchenv {version}); `invoke matrix` shows it as a table.
# Images are named <image_repo>/<target>:<torch>-<variant> (and -dev for the dev flavor).

# Where the kit keeps what it generates and the locks (committed with the project): a folder
# whose name no build backend takes for a package.
files = "{files}"
"""
PROJECT_TABLE = """
# What of the project goes into every target's image, locked with the target's torch:
# - dependencies: "auto" reads and combines the package's metadata (pyproject.toml, setup.py,
#   setup.cfg, Poetry), requirements.txt (or requirements/) and environment.yml's pip section;
#   or one such file, or a list of them; or "none";
# - extras: the package's extras to add; groups: dependency groups (PEP 735, PDM, Poetry);
# - test_requirements: your test tools' requirements files ("auto": requirements-dev.txt,
#   requirements/test.txt and the like; or a list; or "none"), locked into the images too;
# - package: the project's own package as the image's last layer (true, false; absent: when
#   pyproject.toml has a [project] table); test_command: what `invoke test` runs in the image.
[project]
dependencies = "auto"
extras = []
groups = []
test_requirements = "auto"
test_command = "pytest"
"""
CI_TABLE = """
# Which targets the CI workflow (.github/workflows/torchenv.yml) builds on which event: "all", or
# a list of targets such as ["cpu", "cuda13"]. `main` is a push to the default branch, `push` any
# other push (and a pull request, unless `pull_request` is given); an event not named here builds
# every target. Each build pulls the image of its content key from the repository's registry
# when it is there: a run that changes nothing an image holds builds nothing.
[ci]
push = "all"
main = "all"
"""
# [defaults] keys, when all the targets share a value, and what each is (one comment line).
_DEFAULT_NOTES = {
    "python": "the images' Python",
    "image_repo": "this project's images: <image_repo>/<target>:<tag>",
    "base_image": "the base every image builds on (CUDA comes with the torch wheels)",
    "base_digest": "the base pinned by digest (`invoke refresh-digest` re-pins it)",
    "micromamba_image": "the micromamba binary of the conda installer (never in a layer)",
    "micromamba_digest": "",
    "dev_packages": "what the dev flavor (dev containers) adds, besides git and a compiler",
    "smoke_timeout_s": "`invoke smoke` stops a suite that runs longer (seconds)",
}
# Measured on the kit's machines for the kit's images, not this project's.
_MEASURED = {"image_size_gb", "image_gzip_gb"}
_ORDER = [f.name for f in fields(Target) if f.name not in {"root", "files", "name"}]


def image_repo(root: Path) -> str:
    """The project's image repository: its folder's name as Docker allows it (lower case)."""
    name = re.sub(r"[^a-z0-9._-]+", "-", root.name.lower()).strip("._-")
    return name or "project"


def _value(value: object) -> str:
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(str(value))  # a TOML basic string: the matrix's values are plain ASCII


def _data(t: Target) -> dict[str, object]:
    return {
        key: value for key in _ORDER
        if (value := getattr(t, key)) not in (None, ()) and key not in _MEASURED
    }  # fmt: skip


def render(targets: Iterable[Target], repo: str, files: str = FILES_DEFAULT) -> str:
    """targets.toml text for `targets` under the image repository `repo`."""
    targets = list(targets)
    chosen = [_data(t) | {"image_repo": repo} for t in targets]
    if not chosen:
        raise UserError("no targets to write: choose at least one (invoke matrix lists them)")
    shared = {
        key: chosen[0][key] for key in _ORDER
        if key in chosen[0] and all(d.get(key) == chosen[0][key] for d in chosen)
        and key in _DEFAULT_NOTES
    }  # fmt: skip
    lines = [HEADER.format(version=kit_version_or_dev(), files=files), "[defaults]"]
    for key, value in shared.items():
        if _DEFAULT_NOTES[key]:
            lines.append(f"# {_DEFAULT_NOTES[key]}")
        lines.append(f"{key} = {_value(value)}")
    for t, data in zip(targets, chosen, strict=True):
        lines += ["", f"[targets.{t.name}]"]
        lines += [f"{k} = {_value(v)}" for k, v in data.items() if k not in shared]
    return "\n".join(lines) + "\n" + PROJECT_TABLE + CI_TABLE


def kit_version_or_dev() -> str:
    from importlib import metadata

    try:
        return metadata.version("torchenv")
    except metadata.PackageNotFoundError:  # imported from a source tree, not installed
        return "from source"


def default_matrix(root: Path, names: Iterable[str] | None = None) -> str:
    """The kit's targets (or those of `names`), for the project at `root`."""
    kits = matrix.parse(kit.DEFAULT_MATRIX.read_text(), source=f"the kit's {MATRIX_NAME}")
    wanted = list(kits) if names is None else list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in kits]
    if unknown:
        raise UserError(
            f"--targets names {', '.join(unknown)}, which the kit does not have: choose from "
            f"{', '.join(kits)}"
        )
    text = render([kits[n] for n in wanted], image_repo(root))
    matrix.parse(text, source=MATRIX_NAME, root=root)  # what is written is a valid matrix
    return text

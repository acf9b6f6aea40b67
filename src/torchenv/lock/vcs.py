"""Git requirements pinned to a commit, locked: each is built into a wheel once, kept in the kit's
files folder (`<files>/wheels/`, committed with the locks), and locked by that wheel's sha256; the
image installs it from there (the build stages it with the project's lock).

Building runs the package's own build code on this host, as `pip install` of it would. Only a
pure-Python wheel is taken: one built here for this host's Python and platform could not be
trusted in the image.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from torchenv.credentials import redact_text
from torchenv.errors import UserError
from torchenv.files import file_sha256, no_links
from torchenv.hints import unreachable_reason
from torchenv.matrix import Target
from torchenv.project.deps import git_commit
from torchenv.project.wheel import backend_error
from torchenv.runner import Runner

WHEELS = "wheels"
SOURCES = "sources.json"  # beside the wheels: which requirement (URL at a commit) made each
_PURE = re.compile(r"-(py3|py2\.py3)-none-any\.whl$")
_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-")


@dataclass(frozen=True)
class Built:
    name: str  # normalized
    version: str
    wheel: Path
    sha256: str


def folder(target: Target) -> Path:
    return target.folder / WHEELS


def is_pinned_git(requirement: str) -> bool:
    req = Requirement(requirement)
    return bool(req.url and req.url.startswith("git+") and git_commit(req.url))


def build(target: Target, requirement: str, runner: Runner, index_url: str | None) -> Built:
    """The wheel of a git requirement at its commit, in `<files>/wheels/` (built once:
    sources.json says which requirement made each wheel there)."""
    dest = no_links(target.root, folder(target).relative_to(target.root))
    sources = _sources(dest)
    public = redact_text(requirement)
    made = next((dest / name for name, source in sources.items() if source == public), None)
    if made is not None and made.is_file():
        return _built(made)
    with tempfile.TemporaryDirectory(prefix="torchenv-git-") as tmp:
        env = {"PIP_INDEX_URL": index_url} if index_url else {}
        listed = Path(tmp, "requirement.txt")  # a URL's secret never goes on a command line
        listed.write_text(requirement + "\n")
        out = Path(tmp, "out")
        done = runner(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "--quiet",
             "--disable-pip-version-check", "--wheel-dir", str(out), "-r", str(listed)],
            env=env, timeout=900,
        )  # fmt: skip
        if not done.ok:
            output = done.stderr + "\n" + done.stdout
            reason = unreachable_reason(output)
            why = f"its git host is out of reach ({reason})" if reason else backend_error(output)
            raise UserError(f"building {public} at its commit failed: {why}")
        wheels = sorted(out.glob("*.whl"))
        if len(wheels) != 1 or not _PURE.search(wheels[0].name):
            raise UserError(
                f"{public} builds {wheels[0].name if wheels else 'no wheel'}, not a pure-Python "
                "wheel: publish it to an index for the image's platform"
            )
        dest.mkdir(parents=True, exist_ok=True)
        kept = dest / wheels[0].name
        shutil.copyfile(wheels[0], kept)
    sources[kept.name] = public
    (dest / SOURCES).write_text(json.dumps(sources, indent=2, sort_keys=True) + "\n")
    return _built(kept)


def _sources(dest: Path) -> dict[str, str]:
    try:
        found = json.loads((dest / SOURCES).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _built(wheel: Path) -> Built:
    match = _WHEEL.match(wheel.name)
    if match is None:
        raise UserError(f"{wheel.name} is not a wheel's name: remove it from {wheel.parent}")
    return Built(canonicalize_name(match["name"]), match["version"], wheel, file_sha256(wheel))

"""Where this kit came from, so that a project's CI installs the same one (PEP 610).

An installed distribution's `direct_url.json` says how it was installed: a VCS URL at a commit, a
local folder or archive, or a remote archive; it is absent for an install from an index. What
`torchenv init` writes for CI (`<files>/kit-requirements.txt`, which the workflow installs with
`--require-hashes`, and the workflow's `TORCHENV_SOURCE`) follows it:

- from an index: `torchenv==V` with the sha256 of each of that version's files on the index (the
  default one, as uv finds it), then the kit's own dependencies, each hashed;
- from a VCS URL: the dependencies, hashed, and `torchenv @ git+URL@<commit>` installed --no-deps
  (a URL a runner cannot reach, `git+file://`, is said in one line);
- from a local wheel or folder, which no runner can reach: nothing for CI is written, and one
  line says so and what to do.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from torchenv import kit
from torchenv.credentials import public_url, redact_text
from torchenv.runner import Runner, subprocess_runner, uv_executable

KIT_DEPENDENCIES = kit.KIT / "kit-requirements.txt"
REQUIREMENTS_NAME = "kit-requirements.txt"  # in the project's files folder
_HEADER = (
    "# Written by `torchenv init`: the torchenv kit this project was set up with, and its own\n"
    "# dependencies, each file pinned by sha256; the CI workflow installs this with\n"
    "# --require-hashes. `torchenv init` with a newer kit rewrites it.\n"
)


@dataclass(frozen=True)
class KitSource:
    requirements: str = ""  # the text of <files>/kit-requirements.txt ("": write none)
    source: str = ""  # what the workflow installs --no-deps after it (a VCS requirement)
    note: str = ""  # one line for the user: an unreachable URL, or why CI files were not written


def direct_url(dist: metadata.Distribution) -> dict[str, object] | None:
    text = dist.read_text("direct_url.json")
    try:
        found = json.loads(text) if text else None
    except json.JSONDecodeError:
        return None
    return found if isinstance(found, dict) else None


def _dependencies() -> str:
    lines = KIT_DEPENDENCIES.read_text().splitlines()
    body = [ln for ln in lines if not ln.startswith("#") or ln.startswith("    #")]
    return "\n".join(body).strip("\n") + "\n"


def _index_hashes(version: str, runner: Runner) -> list[str]:
    """The sha256 of every file of torchenv==`version` on the default index (uv's)."""
    uv = uv_executable()
    if uv is None:
        return []
    with tempfile.TemporaryDirectory(prefix="torchenv-kit-") as tmp:
        req, out = Path(tmp, "kit.in"), Path(tmp, "kit.txt")
        req.write_text(f"torchenv=={version}\n")
        done = runner(
            [uv, "pip", "compile", "--quiet", "--no-deps", "--generate-hashes", "--no-header",
             "--output-file", str(out), str(req)],
            timeout=120,
        )  # fmt: skip
        if not done.ok or not out.is_file():
            return []
        return re.findall(r"--hash=sha256:([0-9a-f]{64})", out.read_text())


def detect(
    runner: Runner = subprocess_runner, dist: metadata.Distribution | None = None
) -> KitSource:
    """How CI installs the kit that runs this (see the module's docstring)."""
    try:
        dist = dist or metadata.distribution("torchenv")
    except metadata.PackageNotFoundError:
        return KitSource(
            note="torchenv is not installed (run from a source tree): CI files not written; pip install torchenv, then init"
        )
    version, found = dist.version, direct_url(dist)
    deps = _dependencies()
    if found is None:  # from an index
        hashes = _index_hashes(version, runner)
        if not hashes:
            return KitSource(note=(
                f"torchenv {version} is not on the package index this machine uses: the CI "
                "workflow and kit-requirements.txt were not written; install a published release "
                "or from a git URL (README: Installing the kit), then run torchenv init again"
            ))  # fmt: skip
        pin = f"torchenv=={version} \\\n" + " \\\n".join(f"    --hash=sha256:{h}" for h in hashes)
        return KitSource(_HEADER + pin + "\n" + deps)
    url = str(found.get("url", ""))
    vcs = found.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("commit_id"):
        requirement = f"torchenv @ {vcs.get('vcs', 'git')}+{url}@{vcs['commit_id']}"
        note = ""
        if url.startswith("file:"):
            note = (
                f"the kit was installed from {public_url(url)}, which a CI runner cannot reach: "
                "the workflow installs it from there; install from the repository's public git "
                "URL (or a release) and run torchenv init again for CI to work"
            )
        return KitSource(_HEADER + deps, redact_text(requirement), note)
    archive = found.get("archive_info")
    hashes = archive.get("hashes", {}) if isinstance(archive, dict) else {}
    if (
        url.startswith(("https://", "http://"))
        and isinstance(hashes, dict)
        and hashes.get("sha256")
    ):
        pin = f"torchenv @ {url} \\\n    --hash=sha256:{hashes['sha256']}"
        return KitSource(_HEADER + pin + "\n" + deps)
    return KitSource(note=(
        f"the kit was installed from {public_url(url) or 'a local file'}, which a CI runner cannot "
        "reach: the CI workflow and kit-requirements.txt were not written; install a release or "
        "from a git URL (README: Installing the kit), then run torchenv init again"
    ))  # fmt: skip

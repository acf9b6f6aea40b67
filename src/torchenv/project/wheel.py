"""The project's wheel, made by the project's own build backend as `pip install .` makes it, and
what its metadata declares.

`build` runs `uv build --wheel` where uv is (it keeps the isolated build environment between
builds: about 1.5 s against pip's 4.5 s for the sample project), else `pip wheel --no-deps`, into a
folder of the caller's, with SOURCE_DATE_EPOCH so that the same sources give the same bytes, and a
TMPDIR of its own that is removed with the build. The backend's droppings in the working tree
(setuptools' build/ and *.egg-info folders that were not there before) are removed again. A failed build is one line: the backend's own error (`error:
Multiple top-level packages discovered in a flat-layout ...`), not the front end's hint.

`requires` reads a built wheel's METADATA: `Requires-Dist` and `Provides-Extra`, whatever the
backend (setup.py's install_requires, setup.cfg, poetry's dependencies, dynamic fields).

This runs the project's build code on the host, with the same trust as `pip install .`.
"""

from __future__ import annotations

import email.parser
import re
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from torchenv.credentials import redact_text
from torchenv.errors import UserError
from torchenv.runner import Runner, subprocess_runner

# Zip timestamps before 1980 cannot be stored: the earliest a wheel holds.
EPOCH = "315532800"
BUILD_TIMEOUT_S = 600
# The front ends' own lines around the backend's output (uv's tree, pip's notes and hints).
_DECORATION = re.compile(
    r"^(?:[×╰├│─▶\s]+|hint:|note:|cause:|\[std(?:out|err)\]|error: subprocess-exited-with-error|"
    r"ERROR: Failed|(?:error:\s*)?Failed to build|.*Call to `.*` failed|"
    r".*The build backend returned an error|\[end of output\])",
    re.I,
)


def build_command(root: Path, out_dir: Path, uv: str | None = None) -> list[str]:
    """`uv build --wheel` where uv is installed, else `pip wheel`."""
    source = str(Path(root).resolve())
    if uv:
        # not --quiet: a failed build's output must hold the backend's own error
        return [uv, "build", "--wheel", "--out-dir", str(out_dir), source]
    return [
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check",
        "--wheel-dir", str(out_dir), source,
    ]  # fmt: skip


def _droppings(root: Path) -> set[Path]:
    found = {root / "build"} if (root / "build").exists() else set()
    for folder in (root, root / "src"):
        if folder.is_dir():
            found.update(folder.glob("*.egg-info"))
    return found


def backend_error(output: str) -> str:
    """The backend's own reason in a failed build's output (one line, redacted)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    own = [ln for ln in lines if not _DECORATION.match(ln)]
    errors = [ln for ln in own if re.search(r"\berror\b", ln, re.I)]
    found = (errors or own or lines or ["no output"])[-1]
    return redact_text(found)


def build(
    root: Path,
    out_dir: Path,
    runner: Runner = subprocess_runner,
    uv: str | None = None,
    index_url: str | None = None,
    what: str = "the project's package",
    fix: str = "",
) -> Path:
    """Build the project's wheel into `out_dir`; the wheel's path, or UserError (one line)."""
    root = Path(root)
    env = {"SOURCE_DATE_EPOCH": EPOCH}
    if index_url:  # by variable: a URL with a secret never goes on a command line
        env |= {"UV_DEFAULT_INDEX": index_url, "PIP_INDEX_URL": index_url}
    before = _droppings(root)
    # the front end's and the backend's own temporary files (uv's uv-setuptools-*.lock) go in a
    # folder of ours that goes with the build, not in the host's /tmp
    with tempfile.TemporaryDirectory(prefix="torchenv-build-") as scratch:
        try:
            done = runner(
                build_command(root, out_dir, uv), env={**env, "TMPDIR": scratch},
                timeout=BUILD_TIMEOUT_S,
            )  # fmt: skip
        finally:
            for path in _droppings(root) - before:
                shutil.rmtree(path, ignore_errors=True)
    if not done.ok:
        raise UserError(
            f"building {what} failed (exit {done.returncode}): "
            f"{backend_error(done.stderr + chr(10) + done.stdout)}; `uv build --wheel` (or `pip "
            f"wheel --no-deps .`) shows the whole output{fix}"
        )
    wheels = sorted(Path(out_dir).glob("*.whl"))
    if len(wheels) != 1:
        raise UserError(f"building {what} gave {len(wheels)} wheels, not one")
    return wheels[0]


@dataclass(frozen=True)
class Metadata:
    name: str
    version: str
    requires: tuple[str, ...]  # Requires-Dist, markers (extra == "x") included
    extras: tuple[str, ...]  # Provides-Extra


def metadata(wheel: Path) -> Metadata:
    """What a wheel's METADATA declares; UserError when it has none to read."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            text = archive.read(name).decode("utf-8", errors="replace")
    except (OSError, zipfile.BadZipFile, StopIteration):
        raise UserError(
            f"{wheel.name} has no METADATA to read the project's dependencies from"
        ) from None
    found = email.parser.Parser().parsestr(text)
    return Metadata(
        str(found.get("Name", "")), str(found.get("Version", "")),
        tuple(found.get_all("Requires-Dist") or ()), tuple(found.get_all("Provides-Extra") or ()),
    )  # fmt: skip

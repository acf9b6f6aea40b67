"""Hash what an image holds now: torchbuild.manifest run on the image's live filesystem.

The hashing code is the host's own src/torchbuild/manifest.py, sent to the container on its
standard input: the verifier never runs code from the image it checks (a tampered image could
carry a manifest module that lies), it needs no bind mount (so it works with a remote engine too),
and an image from elsewhere needs nothing of torchenv's inside. Only the image's `python` runs it.

The container is locked down: no network, a read-only root filesystem, no capabilities, no new
privileges, and a non-root user (the image's own user when that is not root, so that its
`pip install --user` packages count too; else nobody, 65534). It has a name and torchenv's labels,
and is removed whatever happens.

`scan_command` and `driver` are pure; `scan` runs them through the Runner and parses the answer.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torchbuild
from torchenv.engine import images, labels
from torchenv.errors import UserError
from torchenv.runner import TIMED_OUT, Runner, subprocess_runner

MANIFEST_SOURCE = Path(torchbuild.__file__).resolve().parent / "manifest.py"
MARK = "TORCHENV-LIVE-SCAN "  # the line of the driver's output that holds the answer
NOBODY = "65534:65534"
TIMEOUT_S = 900


@dataclass(frozen=True)
class Scan:
    manifest: dict[str, Any]  # torchbuild.manifest's manifest of the live filesystem
    files: dict[str, bytes | None]  # the baked files asked for (None: absent or unreadable)
    user: str  # the user it ran as
    seconds: float  # time spent hashing, inside the container


def scan_user(config_user: str | None) -> str:
    """The user to scan as: the image's user unless that is root (or unset), else nobody."""
    user = (config_user or "").strip()
    name = user.split(":", 1)[0]
    return NOBODY if name in ("", "0", "root") else user


def driver(paths: tuple[str, ...]) -> str:
    """The Python program sent to the container: manifest.py's source, run as a module, then the
    manifest and the files at `paths` printed as one JSON line after MARK."""
    source = MANIFEST_SOURCE.read_text()
    return "\n".join(
        [
            "import base64, json, os, sys, time, types",
            f"SOURCE = {source!r}",
            "module = types.ModuleType('torchbuild_manifest')",
            "exec(compile(SOURCE, 'torchbuild/manifest.py', 'exec'), module.__dict__)",
            "def read(path):",
            "    try:",
            "        with open(path, 'rb') as handle:",
            "            return base64.b64encode(handle.read()).decode()",
            "    except OSError:",
            "        return None",
            "start = time.perf_counter()",
            "manifest = module.build()",
            "seconds = time.perf_counter() - start",
            f"files = {{path: read(path) for path in {list(paths)!r}}}",
            "user = f'{os.getuid()}:{os.getgid()}'",
            "answer = {'manifest': manifest, 'files': files, 'user': user, 'seconds': seconds}",
            f"sys.stdout.write({MARK!r} + json.dumps(answer, sort_keys=True) + '\\n')",
            "",
        ]
    )


def scan_command(
    client: str, image: str, user: str, name: str, target: str, project: str = ""
) -> list[str]:
    """The `docker run` line: stdin is the driver; nothing reaches out, nothing is written."""
    return [
        client, "run", "--rm", "--interactive", "--name", name,
        "--network", "none", "--read-only", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", "--user", user,
        "--env", "PYTHONDONTWRITEBYTECODE=1",
        *labels.cli_args(labels.of("verify", target, project or None)),
        "--entrypoint", "python", image, "-",
    ]  # fmt: skip


def image_config(client: str, image: str, runner: Runner) -> dict[str, Any]:
    """The image's config (User, Labels ...); UserError when there is no such image here."""
    return dict(images.config(client, image, runner))


def parse(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARK):
            return cast("dict[str, Any]", json.loads(line[len(MARK) :]))
    raise ValueError("no answer")


def scan(
    client: str,
    image: str,
    target: str,
    paths: tuple[str, ...] = (),
    config: dict[str, Any] | None = None,
    runner: Runner = subprocess_runner,
    timeout: float = TIMEOUT_S,
    project: str = "",
) -> Scan:
    """Hash the image's live environment; UserError (one line) when that cannot be done."""
    config = image_config(client, image, runner) if config is None else config
    user = scan_user(config.get("User"))
    name = f"torchenv-verify-{uuid.uuid4().hex[:12]}"
    argv = scan_command(client, image, user, name, target, project)
    try:
        done = runner(argv, input=driver(paths), timeout=timeout)
    finally:
        runner([client, "container", "rm", "--force", name], timeout=60)  # --rm may not have run
    if done.returncode == TIMED_OUT:
        raise UserError(f"hashing {image} took longer than {timeout:g} s: it was stopped")
    try:
        answer = parse(done.stdout)
    except (ValueError, json.JSONDecodeError):
        why = done.first_error_line() if not done.ok else "it printed no manifest"
        raise UserError(
            f"cannot hash {image}'s environment with its `python` ({why}): is Python 3.8+ on "
            "its PATH?"
        ) from None
    files = {p: None if v is None else base64.b64decode(v) for p, v in answer["files"].items()}
    return Scan(answer["manifest"], files, answer["user"], float(answer["seconds"]))

"""Images on a registry for the builds that reuse them (torchenv.image.reuse): pull, push and
name them through the docker CLI, and the engine's platform, which is part of a content key.

Credentials are the engine's own (`docker login HOST` first): no command here takes one, so no
secret is ever on a command line. The command lines are built here and shown by
`invoke build --registry ... --dry-run`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torchenv.errors import UserError
from torchenv.runner import NOT_FOUND, LineSink, Runner, subprocess_runner

TRANSFER_TIMEOUT = 3600  # a CUDA image is several GB: pulls and pushes get an hour
_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")
# What the engine says when the registry has no such image (distribution, GHCR, Docker Hub).
_MISSING = ("manifest unknown", "not found", "no such manifest")


def pull_command(client: str, ref: str) -> list[str]:
    return [client, "pull", ref]


def push_command(client: str, ref: str) -> list[str]:
    return [client, "push", ref]


def tag_command(client: str, source: str, ref: str) -> list[str]:
    return [client, "tag", source, ref]


def untag_command(client: str, ref: str) -> list[str]:
    """Removes the name `ref` (the image stays while another name or image needs it)."""
    return [client, "image", "rm", ref]


@dataclass(frozen=True)
class Pulled:
    ok: bool
    missing: bool = False  # the registry answered that it has no such image
    reason: str = ""  # the engine's last line, when not ok


def is_missing(text: str) -> bool:
    lowered = text.lower()
    return any(words in lowered for words in _MISSING)


def pull(
    client: str, ref: str, runner: Runner = subprocess_runner, on_line: LineSink | None = None
) -> Pulled:
    """`docker pull ref`: whether the engine has it now, and, if not, whether the registry lacks
    it (a build makes it then) or could not be asked (the reason, one line)."""
    done = runner(pull_command(client, ref), timeout=TRANSFER_TIMEOUT, on_line=on_line)
    if done.ok:
        return Pulled(True)
    if done.returncode == NOT_FOUND:
        raise UserError(f"{client} not found: install Docker (apt-get install docker.io)")
    reason = done.last_line()
    return Pulled(False, is_missing(reason), reason)


def push(
    client: str, source: str, ref: str, runner: Runner = subprocess_runner,
    on_line: LineSink | None = None,
) -> str:  # fmt: skip
    """Name the local image `source` (a name or an ID) `ref`, push it, take the name `ref` away
    again; returns the digest the registry gave it. UserError (one line) when the push fails."""
    tagged = runner(tag_command(client, source, ref), timeout=60)
    if not tagged.ok:
        raise UserError(f"naming {source} {ref} failed: {tagged.first_error_line()}")
    try:
        done = runner(push_command(client, ref), timeout=TRANSFER_TIMEOUT, on_line=on_line)
    finally:
        runner(untag_command(client, ref), timeout=120)
    if not done.ok:
        raise UserError(
            f"pushing {ref} failed: {done.last_line()} (log in first: docker login HOST)"
        )
    found = _DIGEST.search(done.stdout + done.stderr)
    return found.group(1) if found else ""


def platform(client: str, runner: Runner = subprocess_runner) -> str:
    """The engine's OS/architecture (linux/amd64), what its builds make; "" when it does not
    answer."""
    done = runner([client, "version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"], timeout=30)
    text = done.stdout.strip()
    return text if done.ok and re.fullmatch(r"[a-z0-9]+/[a-z0-9_]+", text) else ""

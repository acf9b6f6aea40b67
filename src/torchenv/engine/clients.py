"""Which Docker client can build with BuildKit, and is the daemon there.

A machine may have several clients: a new one (23+) whose `docker build` needs the buildx plugin
for BuildKit, and an old one (engine 20.10's own, e.g. Debian's docker.io at /usr/bin/docker)
whose legacy builder has BuildKit built in behind DOCKER_BUILDKIT=1. `detect()` probes each
candidate and picks: a client with a working `buildx` first (`buildx build --load`), else a client
older than 23 (`DOCKER_BUILDKIT=1 docker build`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from torchenv.errors import UserError
from torchenv.runner import NOT_FOUND, Runner, subprocess_runner

if TYPE_CHECKING:
    from docker import DockerClient

# Clients newer than this route `DOCKER_BUILDKIT=1 docker build` through buildx.
LEGACY_BUILDKIT_BEFORE = 23
WELL_KNOWN_CLIENTS = ("/usr/bin/docker", "/usr/local/bin/docker")
PROBE_TIMEOUT = 30.0

INSTALL_FIX = "install Docker: apt-get install docker.io"
DAEMON_FIX = "start it (sudo systemctl start docker, or dockerd &) or set DOCKER_HOST"
PERMISSION_FIX = "add yourself to the docker group (sudo usermod -aG docker $USER) or use sudo"
BUILDKIT_FIX = (
    "install the buildx plugin, or use Docker engine 20.10's own client /usr/bin/docker "
    "with DOCKER_BUILDKIT=1"
)


class EngineError(UserError):
    """A UserError whose one line is "<detail>: <fix>"; doctor shows the two parts apart."""

    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(f"{detail}: {fix}")
        self.detail = detail
        self.fix = fix


@dataclass(frozen=True)
class Engine:
    client: str  # path of the docker client to use
    client_version: str
    server_version: str
    builder: Literal["buildx", "builtin"]

    def build_prefix(self) -> tuple[list[str], dict[str, str]]:
        """argv prefix and extra env for a build that leaves the image in the local engine."""
        if self.builder == "buildx":
            return [self.client, "buildx", "build", "--load"], {}
        return [self.client, "build"], {"DOCKER_BUILDKIT": "1"}


@dataclass(frozen=True)
class ClientProbe:
    """What `CLIENT version` said: the client's version, and the server's when it answered."""

    client: str
    client_version: str | None  # None: no such client
    server_version: str | None  # None: daemon not reached
    error: str = ""  # first line of what the client said when the daemon was not reached


def has_nvidia_runtime(runtimes: object) -> bool:
    """Whether an engine's runtimes (`docker info`'s "Runtimes") include NVIDIA's, which
    `--gpus` needs."""
    return isinstance(runtimes, dict) and "nvidia" in runtimes


def gpu_runtime(client: str | DockerClient, runner: Runner = subprocess_runner) -> bool:
    """Whether the engine lists the NVIDIA runtime (what `--gpus` needs): the one probe, asked
    through the CLI `client` (a path) or the SDK client the caller already holds (smoke,
    multi-node); doctor applies the same rule to the `docker info` it has read."""
    if not isinstance(client, str):
        from torchenv.engine.sdk import CallFailed, sdk_errors

        try:
            with sdk_errors():
                return has_nvidia_runtime(client.info().get("Runtimes"))
        except CallFailed:
            return False
    done = runner([client, "info", "--format", "{{json .Runtimes}}"], timeout=PROBE_TIMEOUT)
    try:
        return done.ok and has_nvidia_runtime(json.loads(done.stdout))
    except ValueError:
        return False


def candidate_clients() -> list[str]:
    """`docker` on PATH, then the well-known paths that exist, deduplicated by real path."""
    found = [p for p in (shutil.which("docker"), *WELL_KNOWN_CLIENTS) if p and Path(p).exists()]
    seen: set[str] = set()
    unique = []
    for path in found:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            unique.append(path)
    return unique


def major(version: str | None) -> int | None:
    """20 for "20.10.24+dfsg1"; None when the version does not start with a number."""
    match = re.match(r"\s*v?(\d+)", version or "")
    return int(match.group(1)) if match else None


def _server_version(server: object) -> str | None:
    if not isinstance(server, dict):
        return None
    if server.get("Version"):
        return str(server["Version"])
    for component in server.get("Components") or []:
        if component.get("Name") == "Engine" and component.get("Version"):
            return str(component["Version"])
    return None


def probe_client(client: str, runner: Runner = subprocess_runner) -> ClientProbe:
    result = runner([client, "version", "--format", "{{json .}}"], timeout=PROBE_TIMEOUT)
    if result.returncode == NOT_FOUND:
        return ClientProbe(client, None, None, result.first_error_line())
    try:
        data = json.loads(result.stdout.strip().splitlines()[0])
    except (json.JSONDecodeError, IndexError):
        data = None
    if not isinstance(data, dict):
        # Some clients print nothing useful when the daemon is down; they still exist.
        return ClientProbe(client, "unknown", None, result.first_error_line())
    client_version = str((data.get("Client") or {}).get("Version") or "unknown")
    server_version = _server_version(data.get("Server")) if result.ok else None
    error = "" if server_version else result.first_error_line()
    return ClientProbe(client, client_version, server_version, error)


def probe_clients(
    runner: Runner = subprocess_runner, clients: Sequence[str] | None = None
) -> list[ClientProbe]:
    """Probe every candidate client (`clients`, default `candidate_clients()`), in order."""
    return [probe_client(c, runner) for c in (candidate_clients() if clients is None else clients)]


def require_daemon(probes: Sequence[ClientProbe]) -> list[ClientProbe]:
    """The probes whose client reached the daemon; EngineError if no client or none reached it."""
    present = [p for p in probes if p.client_version is not None]
    if not present:
        looked = ", ".join(["docker on PATH", *WELL_KNOWN_CLIENTS])
        raise EngineError(f"no docker client found (looked for {looked})", INSTALL_FIX)
    reached = [p for p in present if p.server_version]
    if not reached:
        why = present[0].error or "no answer"
        fix = PERMISSION_FIX if "permission denied" in why.lower() else DAEMON_FIX
        raise EngineError(f"Cannot reach the Docker daemon ({why})", fix)
    return reached


def pick_builder(
    probes: Sequence[ClientProbe], runner: Runner = subprocess_runner
) -> tuple[ClientProbe, Literal["buildx", "builtin"]]:
    """The first present client with a working buildx, else the first older than 23."""
    present = [p for p in probes if p.client_version is not None]
    for probe in present:
        if runner([probe.client, "buildx", "version"], timeout=PROBE_TIMEOUT).ok:
            return probe, "buildx"
    for probe in present:
        version = major(probe.client_version)
        if version is not None and version < LEGACY_BUILDKIT_BEFORE:
            return probe, "builtin"
    clients = ", ".join(f"{p.client} {p.client_version}" for p in present) or "none"
    raise EngineError(f"no BuildKit (clients: {clients})", BUILDKIT_FIX)


def detect(runner: Runner = subprocess_runner, *, clients: Sequence[str] | None = None) -> Engine:
    """The client to build with and the daemon it talks to; UserError (one line, with the fix)."""
    reached = require_daemon(probe_clients(runner, clients))
    probe, builder = pick_builder(reached, runner)
    return Engine(
        client=probe.client,
        client_version=probe.client_version or "unknown",
        server_version=probe.server_version or "unknown",
        builder=builder,
    )


def docker_sdk_client() -> DockerClient:
    """`docker.from_env()`, checked with a ping; UserError (one line) when the daemon is away."""
    import docker  # imported here: only the smoke runner needs the SDK
    import requests

    try:
        client = docker.from_env()
        client.ping()
    except (docker.errors.DockerException, requests.RequestException) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        fix = PERMISSION_FIX if "permission denied" in why.lower() else DAEMON_FIX
        raise EngineError(f"Cannot reach the Docker daemon ({why})", fix) from None
    return client


def for_dry_run(runner: Runner = subprocess_runner) -> Engine:
    """For --dry-run: the real engine when there is one, else the commands a 20.10 client runs."""
    try:
        return detect(runner)
    except UserError:
        return Engine("docker", "unknown", "unknown", "builtin")

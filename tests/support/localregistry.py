"""A throw-away registry on this machine: Debian's `docker-registry` (distribution 2.8) on
127.0.0.1, its storage in a folder, for trying `invoke push` and pulls by digest without a remote
registry (the tests and benchmarks/push_pull.py use it). Docker treats `localhost:PORT` as an
insecure-allowed registry, so no TLS is needed. The registry is a background process of the test
(Popen); docker commands go through torchenv.runner like the library's.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import cast

from torchenv.errors import UserError
from torchenv.runner import Runner, subprocess_runner

START_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]  # (host, port) for AF_INET
        return port


def config_text(storage: Path, port: int) -> str:
    return (
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {storage}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )


@contextlib.contextmanager
def running(folder: Path, binary: str | None = None) -> Iterator[str]:
    """Start a registry with its config, log and storage under `folder`; yield `localhost:PORT`;
    stop it (and wait for it) whatever happens. UserError when it is missing or does not start."""
    binary = binary or shutil.which("docker-registry")
    if binary is None:
        raise UserError("docker-registry is not installed: apt-get install -y docker-registry")
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.yml"
    config.write_text(config_text(folder / "storage", port))
    log = folder / "registry.log"
    with log.open("w") as sink:
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=sink, stderr=sink)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text()[-500:].strip()
                    raise UserError(f"the registry did not start: {tail or 'no output'}") from None
                time.sleep(0.2)
        yield f"localhost:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def remove_image_everywhere(client: str, image: str, runner: Runner = subprocess_runner) -> str:
    """Delete a local image for real: every tag and every reference by digest that keeps it (a
    push adds one), not just one tag; returns its ID. Layers another image shares stay."""
    done = runner([client, "image", "inspect", image], timeout=60)
    if not done.ok:
        raise UserError(f"no image {image}: {done.stderr.strip()}")
    info = json.loads(done.stdout)[0]
    refs = [*(info.get("RepoTags") or []), *(info.get("RepoDigests") or [])]
    removed = runner([client, "image", "rm", *refs], timeout=120)
    gone = runner([client, "image", "inspect", info["Id"]], timeout=60)
    if gone.ok:
        raise UserError(f"{image} is still there after removing {refs}: {removed.stderr.strip()}")
    return cast(str, info["Id"])

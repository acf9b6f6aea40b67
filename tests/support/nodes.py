"""Helpers of the multi-node and k8s tests: the invoke CLI run as a user runs it, its one-line
errors, a request for cuda13, what a run leaves on the engine, a free port, a plan run for real."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from tests.support import REPO as ROOT
from tests.support import kubelet

from torchenv.matrix import get
from torchenv.run import k8s, multinode, multinode_run

TARGET = get("cuda13")


def invoke(*args: str, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, check=False, **kw,
    )  # fmt: skip


def one_line_error(done: subprocess.CompletedProcess, text: str) -> None:
    assert done.returncode == 1, (done.stdout[-2000:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and text in errors[0], done.stderr[-2000:]


def req(**kw) -> multinode.MultiNodeRequest:
    return multinode.MultiNodeRequest(target=TARGET, image=TARGET.image(), **{"nodes": 2, **kw})


def leftovers(run_label: str = multinode.MULTINODE_LABEL) -> list[str]:
    import docker

    client = docker.from_env()
    found = [c.name for c in client.containers.list(all=True, filters={"label": run_label})]
    return found + [n.name for n in client.networks.list(filters={"label": run_label})]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_plan(p: multinode.Plan, join_timeout: int = multinode.JOIN_TIMEOUT_S):
    import docker

    lines: list[str] = []
    start = time.monotonic()
    outcome = multinode_run.execute(p, docker.from_env(), lines.append, join_timeout)
    return outcome, time.monotonic() - start, lines


def manifest(**kw) -> list[dict]:
    return kubelet.load(
        k8s.dump(k8s.manifest(TARGET, "r.example/t/cuda13@sha256:" + "a" * 64, **kw))
    )

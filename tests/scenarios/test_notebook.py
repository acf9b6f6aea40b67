"""`invoke notebook` on the engine: JupyterLab from the cuda13 dev image, as the caller.

A real `invoke notebook` process runs in the background in a small project of its own (a
targets.toml, the tasks.py `torchenv init` writes, a package under src/). Its token opens the API
(`GET /api/status`: 200 with it, 403 without), and no process's command line holds it; a notebook
put through the contents API runs through a session's kernel (REST, then the kernel's websocket):
the environment's Python, the project's package importable, a tiny MLP trained for a few steps
with its loss going down, a file written in the workspace that belongs to the caller. SIGINT to the
task leaves no container. Then the command the task prints (`--dry-run`) runs as
`--user 12345:0` with `--read-only` and a tmpfs /tmp, and does the same.

The tests run as root on the project's machines, where root owning a file would prove nothing:
there the task runs as UID 4242 (setpriv, with the engine's socket group and, only to read the
Python that lives under /root, CAP_DAC_READ_SEARCH; the UID the task sees and gives the container
is 4242).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.support import REPO
from tests.support.jupyter import Server

import images
from torchenv import matrix
from torchenv.run import notebook

pytestmark = [pytest.mark.engine, pytest.mark.slow]

TARGET = matrix.get("cuda13")
# This module's own tag of the dev image (the shared tag may be rebuilt by another session's
# tests from another tree meanwhile); removed when the module ends.
IMAGE = "torchenv-test-notebook/cuda13:dev"
CALLER = 4242
URL = re.compile(r"JupyterLab is ready: open (http://127\.0\.0\.1:(\d+)/lab\?token=([0-9a-f]+))")

FACTS = """\
import json, os, sys
import torch
import nbpkg
root_ro = any(line.split()[1] == "/" and "ro" in line.split()[3].split(",")
              for line in open("/proc/mounts"))
names = ("JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "IPYTHONDIR")
print("FACTS " + json.dumps({
    "executable": sys.executable, "torch": torch.__version__, "answer": nbpkg.ANSWER,
    "package": nbpkg.__file__, "uid": os.getuid(), "gid": os.getgid(), "cwd": os.getcwd(),
    "dirs": {name: os.environ.get(name) for name in names},
    "runtime_dir_made": os.path.isdir(os.environ["JUPYTER_RUNTIME_DIR"]), "root_ro": root_ro,
}))
"""
TRAIN = """\
import json, torch
torch.manual_seed(0)
x = torch.randn(512, 16)
y = (x[:, :8].sum(dim=1) > x[:, 8:].sum(dim=1)).long()
model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
losses = []
for step in range(40):
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
    if step % 10 == 0 or step == 39:
        print(f"step {step}: loss {loss.item():.4f}")
with open("losses.json", "w") as handle:
    json.dump(losses, handle)
print("LOSSES " + json.dumps(losses))
"""


@dataclass
class Caller:
    """Who runs the task: argv to put in front of its command, and its environment."""

    uid: int
    gid: int
    prefix: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def the_caller(home: Path) -> Caller:
    if os.getuid() != 0:
        return Caller(os.getuid(), os.getgid())
    sock = Path("/var/run/docker.sock")
    usable = (
        not os.environ.get("DOCKER_HOST") and sock.exists() and sock.stat().st_mode & 0o060 == 0o060
        and shutil.which("setpriv") is not None
    )  # fmt: skip
    if not usable:  # no way to be another UID and reach the engine: root it is
        return Caller(0, 0)
    home.mkdir()
    os.chown(home, CALLER, CALLER)
    prefix = [
        "setpriv", f"--reuid={CALLER}", f"--regid={CALLER}", f"--groups={sock.stat().st_gid}",
        "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--",
    ]  # fmt: skip
    return Caller(CALLER, CALLER, prefix, {"HOME": str(home), "USER": "nbcaller"})


def project(folder: Path, who: Caller) -> Path:
    """A project of the kit's shape: this repository's matrix, init's tasks.py, a package."""
    (folder / "src" / "nbpkg").mkdir(parents=True)
    shutil.copy(REPO / "targets.toml", folder / "targets.toml")
    (folder / "tasks.py").write_text("from torchenv.tasks import ns\n\n__all__ = ['ns']\n")
    (folder / "src" / "nbpkg" / "__init__.py").write_text("ANSWER = 42\n")
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, who.uid, who.gid)
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def containers_named(engine, name: str) -> list[str]:
    done = images.docker(engine, "ps", "--all", "--quiet", "--filter", f"name=^/{name}$")
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def processes_holding(text: str) -> list[str]:
    """The command lines (of every process this host shows) that hold `text`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if any(text.encode() in arg for arg in argv):
            found.append(b" ".join(argv).decode(errors="replace"))
    return found


def wait_for(log: Path, pattern: re.Pattern[str], proc: subprocess.Popen, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = pattern.search(log.read_text())
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"the server ended (exit {proc.returncode}): {log.read_text()[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"no {pattern.pattern!r} in {timeout}s: {log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 90) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        pytest.fail(f"still running {timeout}s after signal {sig}")


def exercise(server: Server, workspace: Path) -> dict:
    """The API's answers, then a notebook through a session's kernel; the kernel's facts."""
    assert server.request("GET", "/api/status")[0] == 200
    assert server.request("GET", "/api/status", token=False)[0] == 403
    assert Server(server.port, "0" * 48).request("GET", "/api/status")[0] == 403
    cells = [FACTS, TRAIN]
    document = {
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [{"cell_type": "code", "id": f"c{i}", "source": source, "metadata": {},
                   "outputs": [], "execution_count": None} for i, source in enumerate(cells)],
    }  # fmt: skip
    body = {"type": "notebook", "format": "json", "content": document}
    assert server.request("PUT", "/api/contents/train.ipynb", body)[0] == 201
    kernel = server.open_notebook("train.ipynb")
    try:
        outputs = []
        for i, source in enumerate(cells):
            output, error = kernel.execute(source)
            assert error is None, (error, output)
            outputs.append(output)
            document["cells"][i]["outputs"] = [{"output_type": "stream", "name": "stdout",
                                                "text": output}]  # fmt: skip
    finally:
        kernel.close()
    assert server.request("PUT", "/api/contents/train.ipynb", body)[0] == 200  # with outputs
    facts = json.loads(outputs[0].split("FACTS ", 1)[1])
    losses = json.loads(outputs[1].split("LOSSES ", 1)[1])
    assert "step 0: loss" in outputs[1] and "step 39: loss" in outputs[1]
    assert losses[-1] < losses[0] / 2, losses  # it learned
    assert json.loads((workspace / "losses.json").read_text()) == losses
    saved = json.loads((workspace / "train.ipynb").read_text())
    assert "LOSSES" in "".join(saved["cells"][1]["outputs"][0]["text"])  # saved: a list of lines
    assert facts["executable"] == "/opt/env/bin/python"
    assert facts["torch"].split("+")[0] == TARGET.torch and facts["answer"] == 42
    assert facts["package"] == "/workspace/src/nbpkg/__init__.py"  # the working tree's code
    assert facts["cwd"] == "/workspace" and facts["runtime_dir_made"]
    assert all(path.startswith("/tmp/") for path in facts["dirs"].values()), facts["dirs"]
    return facts


@pytest.fixture(scope="module")
def notebook_image(docker_engine) -> Iterator[str]:
    if images.docker(docker_engine, "image", "inspect", images.STANDIN).returncode != 0:
        pytest.fail(f"stand-in base {images.STANDIN} missing: run .ci/standin-base.sh first")
    done = images.invoke("build", *images.build_args("dev"), "--tag", IMAGE)
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-2000:])
    yield IMAGE
    images.docker(docker_engine, "image", "rm", IMAGE)


def task_env(who: Caller) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INVOKE_TORCHENV_", "JUPYTER"))}
    return {**env, **who.env}


def test_the_task_serves_notebooks_as_the_caller_and_sigint_leaves_no_container(
    docker_engine, notebook_image, tmp_path
):
    who = the_caller(tmp_path / "home")
    workspace = project(tmp_path / "project", who)
    port = free_port()
    log = tmp_path / "task.log"
    argv = [*who.prefix, sys.executable, "-m", "invoke", "notebook", "--target", "cuda13",
            "--image", notebook_image, "--port", str(port)]  # fmt: skip
    with log.open("w") as sink:
        task = subprocess.Popen(
            argv, cwd=workspace, env=task_env(who), stdin=subprocess.DEVNULL, stdout=sink,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    name = None
    try:
        found = wait_for(log, URL, task)
        assert int(found.group(2)) == port
        token = found.group(3)
        name = re.search(r"--name (\S+)", log.read_text()).group(1)  # type: ignore[union-attr]
        assert f"ssh -L {port}:127.0.0.1:{port} " in log.read_text()
        assert processes_holding(token) == []  # the docker client's, the container's: none
        facts = exercise(Server(port, token), workspace)
        assert (facts["uid"], facts["gid"]) == (who.uid, who.gid)
        for made in ("losses.json", "train.ipynb"):
            info = (workspace / made).stat()
            assert (info.st_uid, info.st_gid) == (who.uid, who.gid), made
        assert containers_named(docker_engine, name) != []
        code = stop(task, signal.SIGINT)
        text = log.read_text()
        assert code == 130 and text.rstrip().endswith("interrupted"), text[-2000:]
        assert containers_named(docker_engine, name) == []
        assert text.count(token) == 1, "the token is printed once: in the URL"
        notebook.check_port(port)  # free again: a second run starts (closing connections aside)
    finally:
        if task.poll() is None:
            task.kill()
            task.wait(10)
        if name:
            images.docker(docker_engine, "rm", "--force", name)


def test_the_printed_command_serves_as_any_uid_on_a_read_only_root(
    docker_engine, notebook_image, tmp_path
):
    who = the_caller(tmp_path / "home")
    workspace = project(tmp_path / "project", who)
    workspace.chmod(0o777)  # whatever UID the container runs as writes here
    port = free_port()
    argv = [*who.prefix, sys.executable, "-m", "invoke", "notebook", "--target", "cuda13",
            "--image", notebook_image, "--port", str(port), "--dry-run"]  # fmt: skip
    dry = subprocess.run(
        argv, cwd=workspace, env=task_env(who), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    line = dry.stdout.splitlines()[-1]
    assert line.startswith("JUPYTER_TOKEN=*** ")
    command = shlex.split(line.removeprefix("JUPYTER_TOKEN=*** "))
    command[command.index("--user") + 1] = "12345:0"
    at = command.index(notebook_image)
    command[at:at] = ["--read-only", "--tmpfs", "/tmp"]
    name = command[command.index("--name") + 1]
    token = secrets.token_hex(24)
    log = tmp_path / "server.log"
    with log.open("w") as sink:
        client = subprocess.Popen(
            command, env={**os.environ, "JUPYTER_TOKEN": token}, stdin=subprocess.DEVNULL,
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        server = Server(port, token)
        wait_for(log, re.compile(r"Jupyter Server \S+ is running at"), client)
        server.wait_until_up()
        assert processes_holding(token) == []
        facts = exercise(server, workspace)
        assert (facts["uid"], facts["gid"], facts["root_ro"]) == (12345, 0, True)
        assert (workspace / "losses.json").stat().st_uid == 12345
        stop(client, signal.SIGINT)  # the docker client passes it on; --rm removes the container
        deadline = time.monotonic() + 30
        while containers_named(docker_engine, name) and time.monotonic() < deadline:
            time.sleep(1)
        assert containers_named(docker_engine, name) == []
        assert token not in log.read_text()  # JupyterLab logs a token it did not make as ...
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(10)
        images.docker(docker_engine, "rm", "--force", name)

"""`invoke notebook`: the exact docker line, a token on no command line, a port in use in one line
before anything starts, a redacted dry run, the URL once the server answers, and the container
removed on Ctrl-C or SIGTERM."""

from __future__ import annotations

import getpass
import os
import re
import signal
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from tests.support.fakerunner import FakeRunner, reply

from torchenv import matrix
from torchenv.errors import UserError
from torchenv.run import notebook, shell

CLIENT = "/usr/bin/docker"
RUNTIMES_NVIDIA = '{"nvidia":{"path":"nvidia-container-runtime"},"runc":{"path":"runc"}}'
RUNTIMES_PLAIN = '{"runc":{"path":"runc"}}'
HEX48 = re.compile(r"[0-9a-f]{48}")


@pytest.fixture(autouse=True)
def engine_here(monkeypatch):
    """The engine detection answers with CLIENT, whatever is installed here."""
    monkeypatch.setattr(
        shell.engines, "detect",
        lambda runner: shell.engines.Engine(CLIENT, "20.10", "20.10", "builtin"),
    )  # fmt: skip


def engine(runtimes: str = RUNTIMES_PLAIN, image: bool = True, run=None) -> FakeRunner:
    return FakeRunner({
        (CLIENT, "info"): reply(runtimes + "\n"),
        (CLIENT, "image", "inspect"): reply("sha256:1\n") if image else reply("", 1, "No such"),
        (CLIENT, "run"): run if run is not None else reply(),
        (CLIENT, "rm"): reply("gone\n"),
    })  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def request(root: Path, target: str = "cuda13", **changes) -> notebook.NotebookRequest:
    changes.setdefault("port", free_port())
    return notebook.NotebookRequest(target=replace(matrix.get(target), root=root), **changes)


def test_the_command_line_as_the_caller_with_the_token_by_name_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(notebook.os, "getuid", lambda: 1234)
    monkeypatch.setattr(notebook.os, "getgid", lambda: 567)
    monkeypatch.setenv("LOGNAME", "alice")  # a name for a UID this host does not know
    (tmp_path / "src").mkdir()  # the working tree's code is imported from src/ when it has one
    req = request(tmp_path, port=8899)
    sreq = notebook.shell_request(req)
    argv = shell.shell_command(CLIENT, sreq, tty=True, gpus=True)
    assert argv == [
        CLIENT, "run", "--rm",  # no --interactive, no --tty: a server reads no terminal
        "--name", f"torchenv-notebook-cuda13-{shell._RUN_ID}", "--init", "--shm-size=2g",
        "--user", "1234:567", "--env", "HOME=/tmp", "--env", "USER=alice",
        "--label", "io.torchenv.managed=true", "--label", "io.torchenv.target=cuda13",
        "--label", "io.torchenv.notebook=cuda13", "--label", "io.torchenv.project=torchenv",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--mount", f"type=bind,source={tmp_path.resolve()},target=/workspace",
        "--workdir", "/workspace",
        "--env", "PYTHONPATH=/workspace/src", "--env", "SHELL=/bin/bash",
        "--env", "JUPYTER_RUNTIME_DIR=/tmp/.jupyter/runtime",
        "--env", "JUPYTER_DATA_DIR=/tmp/.local/share/jupyter",
        "--env", "JUPYTER_CONFIG_DIR=/tmp/.jupyter", "--env", "IPYTHONDIR=/tmp/.ipython",
        "--env", "JUPYTER_TOKEN",  # the name alone: the value is in the docker client's env
        "--publish", "127.0.0.1:8899:8899",  # the host's loopback only
        "--gpus=all",
        "torchenv/cuda13:2.14.1-cu130-dev",
        "/opt/env/bin/jupyter-lab", "--no-browser", "--ip=0.0.0.0", "--port=8899",
        "--ServerApp.port_retries=0", "--ServerApp.root_dir=/workspace",
    ]  # fmt: skip
    assert not any(
        a.startswith(("--IdentityProvider", "--ServerApp.token", "--NotebookApp")) for a in argv
    )


def test_a_root_caller_gets_allow_root_and_a_tree_without_src_its_root(tmp_path, monkeypatch):
    monkeypatch.setattr(notebook.os, "getuid", lambda: 0)
    sreq = notebook.shell_request(request(tmp_path))
    assert sreq.command[-1] == "--allow-root"
    assert ("PYTHONPATH", "/workspace") in sreq.env
    monkeypatch.setattr(notebook.os, "getuid", lambda: 1000)
    assert "--allow-root" not in notebook.shell_request(request(tmp_path)).command


def test_the_run_passes_a_fresh_token_in_the_environment_and_prints_the_url_once_ready(tmp_path):
    printed: list[str] = []
    seen_ready = threading.Event()

    def run(argv):  # the server runs until its URL is out (the announcer polls `ready`)
        assert seen_ready.wait(10)
        return reply()

    def out(line: str) -> None:
        printed.append(line)
        if "is ready" in line:
            seen_ready.set()

    req = request(tmp_path)
    runner = engine(run=run)
    assert notebook.run(req, runner=runner, out=out, ready=lambda port: True) == 0
    (call,) = [c for c in runner.calls if c.args[1] == "run"]
    token = call.env["JUPYTER_TOKEN"]
    assert HEX48.fullmatch(token) and call.interactive
    assert all(token not in arg for c in runner.calls for arg in c.args)  # on no command line
    assert printed[1] == "torchenv: " + notebook.shown(notebook.shlex.join(call.args))
    assert printed[1].startswith(f"torchenv: JUPYTER_TOKEN=*** {CLIENT} run --rm --name")
    assert [line for line in printed if token in line] == [
        f"torchenv: JupyterLab is ready: open http://127.0.0.1:{req.port}/lab?token={token}"
    ]
    ssh = next(line for line in printed if "ssh -L" in line)
    assert f"`ssh -L {req.port}:127.0.0.1:{req.port} {getpass.getuser()}@" in ssh
    again = engine(run=run)
    notebook.run(req, runner=again, out=out, ready=lambda port: True)
    assert [c.env for c in again.calls if c.args[1] == "run"][0]["JUPYTER_TOKEN"] != token


def test_the_url_waits_for_the_server_and_is_never_printed_when_it_never_answers(tmp_path):
    printed: list[str] = []
    answers = iter([False, False, True])
    stop = threading.Event()
    thread = notebook.announce(9, ["url"], printed.append, lambda port: next(answers), stop)
    thread.join(5)
    assert printed == ["url"]
    printed.clear()
    runner = engine()
    notebook.run(request(tmp_path), runner=runner, out=printed.append, ready=lambda port: False)
    assert not [line for line in printed if "token=" in line]


def test_a_port_in_use_is_one_line_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runner = engine()
        with pytest.raises(UserError) as exc:
            notebook.run(request(tmp_path, port=port), runner=runner, out=lambda line: None)
    assert str(exc.value) == f"port {port} on 127.0.0.1 is in use: pick another with --port"
    assert runner.calls == []  # no engine asked, no container


def test_the_dry_run_shows_the_command_with_the_token_hidden(tmp_path, monkeypatch):
    def no_token(*args):
        raise AssertionError("a dry run makes no token")

    monkeypatch.setattr(notebook.secrets, "token_hex", no_token)
    seen: list[str] = []
    req = request(tmp_path)
    assert notebook.run(req, dry_run=True, runner=engine(), out=seen.append) == 0
    line = seen[-1]
    assert line.startswith(f"JUPYTER_TOKEN=*** {CLIENT} run --rm --name torchenv-notebook-cuda13-")
    assert " --env JUPYTER_TOKEN " in line and not HEX48.search(line)
    assert line.endswith(notebook.shlex.join(notebook.server_command(req.port, os.getuid() == 0)))
    with socket.socket() as taken:  # a dry run binds nothing and checks no port
        taken.bind(("127.0.0.1", req.port))
        taken.listen()
        assert notebook.run(req, dry_run=True, runner=engine(), out=seen.append) == 0


def test_gpus_as_smoke_requests_them(tmp_path):
    notes: list[str] = []
    runner = engine(RUNTIMES_NVIDIA)
    notebook.run(request(tmp_path), runner=runner, out=notes.append, ready=lambda port: False)
    assert "--gpus=all" in runner.calls[-1].args
    runner = engine(RUNTIMES_PLAIN)
    notebook.run(request(tmp_path), runner=runner, out=notes.append, ready=lambda port: False)
    assert "--gpus=all" not in runner.calls[-1].args
    assert any("the notebook runs without a GPU" in line for line in notes)
    for req in (request(tmp_path, "cpu"), request(tmp_path, gpu=False)):
        runner = engine(RUNTIMES_NVIDIA)
        notebook.run(req, runner=runner, out=notes.append, ready=lambda port: False)
        assert "--gpus=all" not in runner.calls[-1].args


def test_an_image_without_jupyterlab_or_not_built_is_one_line(tmp_path):
    with pytest.raises(UserError) as exc:
        notebook.run(request(tmp_path), runner=engine(image=False), out=lambda line: None)
    assert "is not built yet: run `invoke build --target cuda13 --flavor dev`" in str(exc.value)
    with pytest.raises(UserError) as exc:
        notebook.run(request(tmp_path), runner=engine(run=reply("", 127)), out=lambda line: None)
    assert str(exc.value) == (
        "JupyterLab is not in torchenv/cuda13:2.14.1-cu130-dev (exit 127): an image of the dev "
        "flavor built before it was added; run `invoke build --target cuda13 --flavor dev`"
    )


def ctrl_c():
    raise KeyboardInterrupt


def sigterm():
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)  # the handler raises before this ends


@pytest.mark.parametrize("how", [ctrl_c, sigterm], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_server_has_its_container_removed_by_name(tmp_path, how):
    def run(argv):
        how()
        return reply()

    runner = engine(run=run)
    before = signal.getsignal(signal.SIGTERM)
    req = request(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        notebook.run(req, runner=runner, out=lambda line: None, ready=lambda port: False)
    started, removal = runner.calls[-2:]
    name = notebook.shell_request(req).container_name
    assert started.args[started.args.index("--name") + 1] == name
    assert removal.args == (CLIENT, "rm", "--force", name)
    assert signal.getsignal(signal.SIGTERM) is before


def test_answers_is_false_where_nothing_listens_and_true_for_an_http_200():
    import http.server

    assert notebook.answers(free_port()) is False

    class Api(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the stdlib's name)
            self.send_response(200 if self.path == "/api" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert notebook.answers(server.server_address[1]) is True
    finally:
        server.shutdown()
        server.server_close()

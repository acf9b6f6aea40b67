"""`invoke shell`: the exact docker line, and the checks that replace Docker's raw errors."""

from __future__ import annotations

import getpass
import os
import signal

import pytest
from tests.support import REPO
from tests.support.fakerunner import FakeRunner, reply

from torchenv import matrix
from torchenv.errors import UserError
from torchenv.run import shell

CLIENT = "/usr/bin/docker"
RUNTIMES_NVIDIA = '{"nvidia":{"path":"nvidia-container-runtime"},"runc":{"path":"runc"}}'
RUNTIMES_PLAIN = '{"runc":{"path":"runc"}}'


def engine(runtimes: str = RUNTIMES_PLAIN, image: bool = True) -> FakeRunner:
    return FakeRunner(
        {
            (CLIENT, "info"): reply(runtimes + "\n"),
            (CLIENT, "image", "inspect"): reply("sha256:1\n")
            if image
            else reply("", 1, "No such image"),
        }
    )


def request(target: str = "cuda13", **changes) -> shell.ShellRequest:
    return shell.ShellRequest(target=matrix.get(target), workspace=REPO, **changes)


def test_the_command_as_the_caller_with_a_tty_only_when_there_is_one():
    argv = shell.shell_command(CLIENT, request(), tty=True, gpus=False)
    assert argv == [
        CLIENT, "run", "--rm", "--interactive", "--tty",
        "--name", f"torchenv-shell-cuda13-{shell._RUN_ID}", "--init", "--shm-size=2g",
        "--user", f"{os.getuid()}:{os.getgid()}", "--env", "HOME=/tmp",
        "--env", f"USER={getpass.getuser()}",
        "--label", "io.torchenv.managed=true", "--label", "io.torchenv.target=cuda13",
        "--label", "io.torchenv.shell=cuda13", "--label", "io.torchenv.project=torchenv",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--mount", f"type=bind,source={REPO},target=/workspace", "--workdir", "/workspace",
        "torchenv/cuda13:2.14.1-cu130", "bash",  # the runtime flavor: every task's default
    ]  # fmt: skip
    piped = shell.shell_command(CLIENT, request(), tty=False, gpus=True)
    assert "--tty" not in piped and "--interactive" in piped and "--gpus=all" in piped


def test_no_nvidia_runtime_means_no_gpus_and_a_note():
    notes = []
    argv = shell.plan(request(), CLIENT, engine(RUNTIMES_PLAIN), tty=False, note=notes.append)
    assert "--gpus=all" not in argv
    assert notes == [
        "torchenv: this engine has no NVIDIA runtime: the shell runs without a GPU (install the "
        "NVIDIA container toolkit to get one)"
    ]
    argv = shell.plan(request(), CLIENT, engine(RUNTIMES_NVIDIA), tty=False, note=notes.append)
    assert "--gpus=all" in argv
    argv = shell.plan(request("cpu"), CLIENT, engine(RUNTIMES_NVIDIA), tty=False)
    assert "--gpus=all" not in argv  # a CPU target never asks for one
    argv = shell.plan(request(gpu=False), CLIENT, engine(RUNTIMES_NVIDIA), tty=False)
    assert "--gpus=all" not in argv


def test_an_image_that_is_not_built_is_one_line_with_the_build_command():
    with pytest.raises(UserError) as exc:
        shell.plan(request(flavor="dev"), CLIENT, engine(image=False), tty=False)
    assert str(exc.value) == (
        "image torchenv/cuda13:2.14.1-cu130-dev is not built yet: run "
        "`invoke build --target cuda13 --flavor dev`"
    )


@pytest.fixture
def detected(monkeypatch):
    """The engine detection answers with CLIENT, whatever is installed here."""
    monkeypatch.setattr(
        shell.engines,
        "detect",
        lambda runner: shell.engines.Engine(CLIENT, "20.10", "20.10", "builtin"),
    )


def test_dry_run_prints_what_the_real_run_runs(detected):
    seen = []
    assert shell.open_shell(request(), dry_run=True, runner=engine(), out=seen.append) == 0
    assert seen[-1].startswith(f"{CLIENT} run --rm --interactive")
    runner = engine()
    runner.answers[(CLIENT, "run")] = reply()
    lines = []
    assert shell.open_shell(request(), runner=runner, out=lines.append) == 0
    assert lines[-1] == f"torchenv: {seen[-1]}"  # the same line, the same client
    assert runner.calls[-1].interactive


def interrupted_by(how) -> FakeRunner:
    """An engine whose `docker run` is interrupted halfway (`how` raises or sends the signal)."""
    runner = engine()

    def run(argv):
        how()
        return reply()

    runner.answers[(CLIENT, "run")] = run
    runner.answers[(CLIENT, "rm")] = reply("torchenv-test\n")
    return runner


def ctrl_c():
    raise KeyboardInterrupt


def sigterm():
    os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("how", [ctrl_c, sigterm], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_removes_its_container_by_name_and_goes_on(how, detected):
    runner = interrupted_by(how)
    before = signal.getsignal(signal.SIGTERM)
    req = request(role="test")
    with pytest.raises(KeyboardInterrupt):
        shell.launch(req, runner, out=lambda line: None)
    run, removal = runner.calls[-2:]
    assert run.args[run.args.index("--name") + 1] == req.container_name
    assert removal.args == (CLIENT, "rm", "--force", req.container_name)
    assert req.container_name == f"torchenv-test-cuda13-{shell._RUN_ID}"
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back


def test_a_container_that_cannot_be_removed_is_one_line_with_the_command(detected):
    runner = interrupted_by(ctrl_c)
    runner.answers[(CLIENT, "rm")] = reply("", 1, "Error response from daemon: engine busy")
    lines = []
    with pytest.raises(KeyboardInterrupt):
        shell.launch(request(), runner, out=lines.append)
    name = request().container_name
    assert lines[-1] == (
        f"torchenv: could not remove the container {name}: Error response from daemon: "
        f"engine busy (remove it with `docker rm --force {name}`)"
    )
    runner.answers[(CLIENT, "rm")] = reply("", 1, f"Error: No such container: {name}")
    lines.clear()
    with pytest.raises(KeyboardInterrupt):
        shell.launch(request(), runner, out=lines.append)
    assert not lines[-1].startswith("torchenv: could not")  # its --rm was quicker: fine


@pytest.mark.parametrize(
    ("folder", "mount"),
    [
        ("/srv/my:project", "type=bind,source=/srv/my:project,target=/workspace"),
        ("/srv/a,b", 'type=bind,"source=/srv/a,b",target=/workspace'),
        ('/srv/say "hi"', 'type=bind,"source=/srv/say ""hi""",target=/workspace'),
    ],
)
def test_a_workspace_path_with_a_colon_or_comma_is_one_unambiguous_mount(folder, mount):
    """`--volume SRC:/workspace` splits at a colon in SRC (issue 31, case 9); --mount does not,
    and quotes what its CSV would split."""
    import csv

    assert shell.bind_mount(folder, "/workspace") == mount
    fields = next(csv.reader([mount]))
    assert dict(f.split("=", 1) for f in fields) == {
        "type": "bind", "source": folder, "target": "/workspace",
    }  # fmt: skip


def test_a_server_gets_no_terminal_its_ports_and_variables_by_name():
    req = request(
        interactive=False, publish=("127.0.0.1:8888:8888",), env=(("A", "1"),), env_names=("B",)
    )
    argv = shell.shell_command(CLIENT, req, tty=True, gpus=False)
    assert "--interactive" not in argv and "--tty" not in argv
    tail = argv[argv.index("/workspace", argv.index("--workdir")) + 1 :]
    assert tail == [
        "--env", "A=1", "--env", "B", "--publish", "127.0.0.1:8888:8888",
        "torchenv/cuda13:2.14.1-cu130", "bash",
    ]  # fmt: skip

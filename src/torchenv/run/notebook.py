"""`invoke notebook`: JupyterLab in a target's dev image, the workspace mounted, as you.

The server's container is `invoke shell`'s (shell.py): the caller's UID:GID (files written from
notebooks are theirs), the project's root at /workspace, the GPUs as `invoke smoke` requests
them, 2 GB of shared memory, a name that Ctrl-C or SIGTERM removes it by. What a server adds:

- its port, published on the host's 127.0.0.1 alone: another machine reaches it through
  `ssh -L`, never directly; a port in use is one line before anything starts;
- a token, random per run, that no process's command line ever holds: the docker client gets it
  in its environment and passes it on by name (`--env JUPYTER_TOKEN`), jupyter_server reads it
  from there (and logs a token it did not make as `...`); the URL with the token is printed once,
  when the server answers; the dry run shows the token as `***`;
- Jupyter's folders (runtime, data, config, IPython's) under HOME=/tmp, which is writable as any
  UID and on a read-only root with a tmpfs /tmp;
- the working tree's code on PYTHONPATH, as `invoke test` has it; the kernel is the environment's
  Python (/opt/env/bin/python: the server's, and `python` on the image's PATH).
"""

from __future__ import annotations

import errno
import os
import secrets
import shlex
import socket
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from torchenv import engine as engines
from torchenv.engine.interrupts import sigterm_as_ctrl_c
from torchenv.errors import UserError
from torchenv.matrix import Target
from torchenv.run import project_tests, shell
from torchenv.runner import Runner, subprocess_runner

DEFAULT_PORT = 8888  # JupyterLab's own default
LOOPBACK = "127.0.0.1"
TOKEN_VARIABLE = "JUPYTER_TOKEN"  # what jupyter_server reads its token from
SHOWN_TOKEN = "***"  # what a printed command line shows instead of the token
SERVER = "/opt/env/bin/jupyter-lab"  # the environment's: its Python is the kernel's
HOME = "/tmp"  # as `invoke shell` sets it: writable as any UID, and a tmpfs on a read-only root
JUPYTER_DIRS = (
    ("JUPYTER_RUNTIME_DIR", f"{HOME}/.jupyter/runtime"),
    ("JUPYTER_DATA_DIR", f"{HOME}/.local/share/jupyter"),
    ("JUPYTER_CONFIG_DIR", f"{HOME}/.jupyter"),
    ("IPYTHONDIR", f"{HOME}/.ipython"),
)
NOT_IN_IMAGE = 127  # docker run's exit status when the command is not in the image
POLL_S = 0.5  # how often the server is asked whether it answers yet


@dataclass(frozen=True)
class NotebookRequest:
    target: Target
    port: int = DEFAULT_PORT
    gpu: bool = True  # request the GPUs for CUDA targets (when the engine can give them)
    image: str | None = None  # another image than the target's dev image

    @property
    def image_name(self) -> str:
        return self.image or self.target.image("dev")


def server_command(port: int, root: bool = False) -> tuple[str, ...]:
    """JupyterLab on every interface of the container (the host publishes it on 127.0.0.1 only),
    on `port` and no other (a port taken inside would be a bug, not a reason to move). `root`:
    the caller is root, and so is the container (with no capabilities), which JupyterLab refuses
    unless told."""
    return (
        SERVER, "--no-browser", "--ip=0.0.0.0", f"--port={port}", "--ServerApp.port_retries=0",
        "--ServerApp.root_dir=/workspace", *(["--allow-root"] if root else []),
    )  # fmt: skip


def shell_request(req: NotebookRequest) -> shell.ShellRequest:
    root = req.target.root
    env = (
        ("PYTHONPATH", project_tests.import_root(root)), ("SHELL", "/bin/bash"), *JUPYTER_DIRS
    )  # fmt: skip
    return shell.ShellRequest(
        target=req.target, flavor="dev", gpu=req.gpu, workspace=root,
        command=server_command(req.port, root=os.getuid() == 0), env=env,
        env_names=(TOKEN_VARIABLE,), publish=(f"{LOOPBACK}:{req.port}:{req.port}",),
        interactive=False, role="notebook", image_name=req.image_name,
    )  # fmt: skip


def shown(command_line: str) -> str:
    """The command line as the docker client runs it: the token's variable, its value hidden."""
    return f"{TOKEN_VARIABLE}={SHOWN_TOKEN} {command_line}"


def check_port(port: int) -> None:
    """One line when 127.0.0.1:`port` cannot be published (as the engine binds it: a listener
    there refuses it, a closing connection does not)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError as exc:
            why = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise UserError(
                f"port {port} on {LOOPBACK} is {why}: pick another with --port"
            ) from None


def url(port: int, token: str) -> str:
    return f"http://{LOOPBACK}:{port}/lab?token={token}"


def ready_lines(port: int, token: str, host: str | None = None) -> list[str]:
    """What the user needs once the server answers: the URL, and the way in from elsewhere."""
    host = host or socket.gethostname()
    return [
        f"torchenv: JupyterLab is ready: open {url(port, token)}",
        f"torchenv: from another machine: `ssh -L {port}:{LOOPBACK}:{port} "
        f"{shell.user_name()}@{host}` there, then open the same URL in its browser",
        "torchenv: Ctrl-C here stops the server and removes its container",
    ]


def answers(port: int) -> bool:
    """Whether the server answers on 127.0.0.1:`port` (its version, which needs no token);
    never through a proxy that HTTP_PROXY names."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{LOOPBACK}:{port}/api", timeout=2) as reply:
            return bool(reply.status == 200)
    except (OSError, ValueError):  # refused, reset by the engine's proxy, not HTTP yet
        return False


def announce(
    port: int, lines: list[str], out: Callable[[str], object], ready: Callable[[int], bool],
    stop: threading.Event,
) -> threading.Thread:  # fmt: skip
    """A started daemon thread that gives `out` the lines once the server answers (or nothing,
    when `stop` is set first)."""

    def wait() -> None:
        while not stop.is_set():
            if ready(port):
                for line in lines:
                    out(line)
                return
            stop.wait(POLL_S)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread


def run(
    req: NotebookRequest,
    dry_run: bool = False,
    runner: Runner = subprocess_runner,
    out: Callable[[str], object] = print,
    ready: Callable[[int], bool] = answers,
) -> int:
    """What `invoke notebook` calls; the server's exit status (Ctrl-C and SIGTERM go on as
    KeyboardInterrupt once its container is removed)."""
    sreq = shell_request(req)
    if dry_run:
        out(shown(shell.dry_run_line(sreq, runner, out)))
        return 0
    check_port(req.port)
    client = engines.detect(runner).client
    argv = shell.plan(sreq, client, runner, tty=False, note=out)
    token = secrets.token_hex(24)
    out(f"torchenv: {shown(shlex.join(argv))}")
    out(f"torchenv: JupyterLab starts on {LOOPBACK}:{req.port}; its URL follows once it answers")
    stop = threading.Event()
    with sigterm_as_ctrl_c():
        waiter = announce(req.port, ready_lines(req.port, token), out, ready, stop)
        try:
            code = runner(argv, interactive=True, env={TOKEN_VARIABLE: token}).returncode
        except KeyboardInterrupt:
            stop.set()
            shell.remove_container(client, sreq.container_name, runner, out)
            raise
        finally:
            stop.set()
            waiter.join(timeout=5)
    if code == NOT_IN_IMAGE:
        raise UserError(
            f"JupyterLab is not in {sreq.image} (exit 127): an image of the dev flavor built "
            f"before it was added; run `invoke build --target {req.target.name} --flavor dev`"
        )
    return code

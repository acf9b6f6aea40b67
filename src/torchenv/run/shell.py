"""`invoke shell`: an interactive (or piped) shell in a target's image, the workspace mounted, as you.

`shell_command` is pure: the exact `docker run` line for a request, so that `--dry-run` prints
what the real run executes and the tests assert it. `open_shell` checks what would otherwise end
in a raw Docker error (an image that is not built, GPUs on an engine without the NVIDIA runtime)
and runs the command through the command seam with this terminal.
"""

from __future__ import annotations

import getpass
import os
import secrets
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torchenv import engine as engines
from torchenv.engine import containers, gpu_runtime, labels
from torchenv.engine.containers import SHM_SIZE
from torchenv.engine.images import ImageNotBuilt, image_exists
from torchenv.engine.interrupts import sigterm_as_ctrl_c
from torchenv.errors import UserError
from torchenv.matrix import Target
from torchenv.runner import Runner, subprocess_runner

SHELL_LABEL = labels.role_key("shell")  # with the rest of labels.of("shell", target)
# one per invoke process: the container's name (torchenv-<role>-<target>-<this>) is known before
# it runs, so an interrupted run removes it by name, and the dry run shows the line the run runs
_RUN_ID = secrets.token_hex(3)


@dataclass(frozen=True)
class ShellRequest:
    target: Target
    flavor: str = "runtime"  # every task's default flavor (build, smoke, test, shell)
    gpu: bool = True  # request the GPUs for CUDA targets (when the engine can give them)
    workspace: Path = Path()
    uid: int = -1  # -1: the caller's
    gid: int = -1
    command: tuple[str, ...] = ("bash",)
    env: tuple[tuple[str, str], ...] = ()  # more variables for the container
    # variables passed by name alone (`--env NAME`): their values come from the docker client's
    # environment, so that a secret is on no command line
    env_names: tuple[str, ...] = ()
    publish: tuple[str, ...] = ()  # `--publish` values, e.g. 127.0.0.1:8888:8888
    interactive: bool = True  # keep stdin open (a shell reads it; a server must not)
    volumes: tuple[tuple[Path, str], ...] = ()  # more (host folder, container path) mounts
    role: str = "shell"  # its label (io.torchenv.<role>), for invoke clean
    image_name: str | None = None  # another image than the target's (None: the matrix's name)

    @property
    def image(self) -> str:
        return self.image_name or self.target.image(self.flavor)

    @property
    def container_name(self) -> str:
        return f"torchenv-{self.role}-{self.target.name}-{_RUN_ID}"


def shell_command(client: str, req: ShellRequest, *, tty: bool, gpus: bool) -> list[str]:
    """The `docker run` line: `-t` only with a terminal (piped input must not hang), the caller's
    UID/GID (files in the workspace stay theirs), HOME in /tmp (that UID has no home there), a
    name (an interrupted run removes it) and the engine's init as PID 1, which passes signals on
    (a command as PID 1 ignores SIGINT and SIGTERM) and reaps what the command leaves."""
    uid = os.getuid() if req.uid < 0 else req.uid
    gid = os.getgid() if req.gid < 0 else req.gid
    argv = [
        client, "run", "--rm", *(["--interactive"] if req.interactive else []),
        *(["--tty"] if tty and req.interactive else []),
        "--name", req.container_name, "--init",
        f"--shm-size={SHM_SIZE}", "--user", f"{uid}:{gid}", "--env", "HOME=/tmp",
        # the image has no passwd entry for your UID: your name, for torch.compile's caches
        "--env", f"USER={user_name()}",
        *labels.cli_args(labels.of(req.role, req.target.name, req.target.image_repo)),
        # no capabilities, no gaining privileges (setuid): a shell as you needs neither
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--mount", bind_mount(req.workspace, "/workspace"), "--workdir", "/workspace",
    ]  # fmt: skip
    for host, inside in req.volumes:
        argv += ["--mount", bind_mount(host, inside)]
    for name, value in req.env:
        argv += ["--env", f"{name}={value}"]
    for name in req.env_names:
        argv += ["--env", name]
    for published in req.publish:
        argv += ["--publish", published]
    if gpus:
        argv.append("--gpus=all")
    return [*argv, req.image, *req.command]


def bind_mount(host: Path | str, inside: str) -> str:
    """`--mount` for a host folder: unlike `--volume SRC:DST` it cannot be split at a colon in
    the path; a field holding a comma or a quote is quoted as the CSV that --mount parses."""

    def field(key: str, value: str) -> str:
        text = f"{key}={value}"
        return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"') else text

    return ",".join(
        ["type=bind", field("source", str(Path(host).resolve())), field("target", inside)]
    )


def user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this UID here either
        return f"uid{os.getuid()}"


def plan(
    req: ShellRequest,
    client: str,
    runner: Runner = subprocess_runner,
    *,
    tty: bool,
    note: Callable[[str], object] = print,
    need_image: bool = True,
) -> list[str]:
    """The command `open_shell` would run, after the checks; UserError when it cannot work."""
    if need_image and not image_exists(client, req.image, runner):
        raise ImageNotBuilt(req.image, req.target.name, req.flavor)
    gpus = req.gpu and req.target.is_cuda
    if gpus and not gpu_runtime(client, runner):
        note(
            f"torchenv: this engine has no NVIDIA runtime: the {req.role} runs without a GPU "
            "(install the NVIDIA container toolkit to get one)"
        )
        gpus = False
    return shell_command(client, req, tty=tty, gpus=gpus)


def open_shell(
    req: ShellRequest,
    dry_run: bool = False,
    runner: Runner = subprocess_runner,
    out: Callable[[str], object] = print,
) -> int:
    """What `invoke shell` calls; returns the shell's exit status."""
    if dry_run:
        out(dry_run_line(req, runner, out))
        return 0
    return launch(req, runner, out)


def _tty() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def dry_run_line(
    req: ShellRequest, runner: Runner = subprocess_runner, note: Callable[[str], object] = print
) -> str:
    """The `docker run` line a real run would execute (with no engine: a default client's)."""
    tty = _tty()
    try:
        client = engines.detect(runner).client
    except UserError:
        return shlex.join(
            shell_command("docker", req, tty=tty, gpus=req.gpu and req.target.is_cuda)
        )
    return shlex.join(plan(req, client, runner, tty=tty, note=note, need_image=False))


def launch(
    req: ShellRequest, runner: Runner = subprocess_runner, out: Callable[[str], object] = print
) -> int:
    """Run the container with this terminal, after the checks; its exit status. Ctrl-C or SIGTERM
    (a cancelled CI job) on this process removes the container, then goes on as KeyboardInterrupt:
    the signal reaches neither the docker client nor the container when it is sent to this
    process alone, and the container would go on running."""
    client = engines.detect(runner).client
    argv = plan(req, client, runner, tty=_tty(), note=out)
    out(f"torchenv: {shlex.join(argv)}")
    with sigterm_as_ctrl_c():
        try:
            return runner(argv, interactive=True).returncode
        except KeyboardInterrupt:
            remove_container(client, req.container_name, runner, out)
            raise


def remove_container(client: str, name: str, runner: Runner, out: Callable[[str], object]) -> None:
    """Remove the named container (forced); gone already (its --rm was quicker) is fine."""
    done = containers.remove_by_name(client, name, runner)
    if not done.ok and "no such container" not in done.first_error_line().lower():
        out(
            f"torchenv: could not remove the container {name}: {done.first_error_line()} "
            f"(remove it with `docker rm --force {name}`)"
        )

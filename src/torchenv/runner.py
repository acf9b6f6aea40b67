"""Run host commands through one small seam, so that tests can replace them with canned answers.

Every host command torchenv runs (docker builds and probes, git, nvidia-smi, pip's resolver,
conda-lock, the interactive shell) goes through a `Runner`. `subprocess_runner` is the real thing;
The tests' double (tests/support/fakerunner.py) answers from a table of command prefixes and records what it was asked. Neither
raises for a failing command: the caller reads `returncode`.

Three ways to run: captured (the default), streamed (`on_line` gets each output line as it comes,
stderr merged into stdout, and the result keeps the last `TAIL_LINES` lines), and interactive
(`interactive=True`: the command uses this terminal's stdin, stdout and stderr; nothing is captured).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

NOT_FOUND = 127  # the shell's code for "command not found"
TIMED_OUT = 124  # the code coreutils' timeout(1) uses
TAIL_LINES = 400  # what a streamed result keeps of the output

LineSink = Callable[[str], None]


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def last_line(self) -> str:
        """The last non-empty line of stderr (else stdout): where the engine says why it stopped."""
        lines = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return lines[-1].strip() if lines else f"exit status {self.returncode}"

    def first_error_line(self) -> str:
        """The first non-empty line of stderr (else stdout), for one-line messages."""
        for line in (self.stderr + "\n" + self.stdout).splitlines():
            if line.strip():
                return line.strip()
        return f"exit status {self.returncode}"


class Runner(Protocol):
    def __call__(
        self,
        args: Sequence[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        input: str | None = None,
        on_line: LineSink | None = None,
        interactive: bool = False,
    ) -> Result:
        """Run `args`; `env` holds variables added to (or overriding) the inherited environment,
        `input` is written to its stdin, `on_line` streams its output, `interactive` hands it the
        terminal."""
        ...


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def subprocess_runner(
    args: Sequence[str],
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    input: str | None = None,
    on_line: LineSink | None = None,
    interactive: bool = False,
) -> Result:
    """Run a command (captured, streamed or interactive); never raises for a failing command.

    A missing executable gives returncode 127 and stderr "not found: NAME"; a command that runs
    past `timeout` seconds is killed and gives returncode 124 with whatever it printed. Ctrl-C
    while streaming stops the command, then re-raises KeyboardInterrupt.
    """
    argv = tuple(str(a) for a in args)
    full_env = {**os.environ, **env} if env else None
    try:
        if interactive:
            code = subprocess.run(argv, env=full_env, cwd=cwd, timeout=timeout, check=False)
            return Result(argv, code.returncode, "", "")
        if on_line is not None:
            return _stream(argv, full_env, cwd, input, on_line, timeout)
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=full_env,
            cwd=cwd,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError:
        return Result(argv, NOT_FOUND, "", f"not found: {argv[0]}")
    except PermissionError as exc:
        return Result(argv, 126, "", f"cannot execute {argv[0]}: {exc.strerror}")
    except subprocess.TimeoutExpired as exc:
        stderr = _text(exc.stderr)
        note = f"timed out after {timeout:g}s: {' '.join(argv)}"
        return Result(argv, TIMED_OUT, _text(exc.stdout), f"{stderr}\n{note}" if stderr else note)
    return Result(argv, proc.returncode, proc.stdout, proc.stderr)


def _stream(
    argv: tuple[str, ...],
    env: Mapping[str, str] | None,
    cwd: str | Path | None,
    input: str | None,
    on_line: LineSink,
    timeout: float | None,
) -> Result:
    """Run with stdout+stderr piped line by line to `on_line`; the result keeps the tail."""
    lines: deque[str] = deque(maxlen=TAIL_LINES)
    # A process group of its own: an interrupt (Ctrl-C, or SIGTERM turned into one) stops the
    # command and whatever it started, not the command alone.
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, text=True, errors="replace", stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        if input is not None and proc.stdin is not None:
            proc.stdin.write(input)
            proc.stdin.close()
        assert proc.stdout is not None
        for line in proc.stdout:
            on_line(line)
            lines.append(line)
            if deadline is not None and time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                note = f"timed out after {timeout:g}s: {' '.join(argv)}"
                return Result(argv, TIMED_OUT, "".join(lines), note)
        return Result(argv, proc.wait(), "".join(lines), "")
    except BaseException:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
        raise


def _signal_group(proc: subprocess.Popen[str], signum: int) -> None:
    """Send `signum` to the process group `proc` leads (start_new_session); to `proc` alone if the
    group is gone already."""
    try:
        os.killpg(proc.pid, signum)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)


def uv_executable() -> str | None:
    """The host's uv: the `uv` package's binary (a dependency of the kit), else one on PATH."""
    try:
        import uv

        found = uv.find_uv_bin()
        if found and os.access(found, os.X_OK):
            return str(found)
    except (ImportError, FileNotFoundError):
        pass
    return shutil.which("uv")

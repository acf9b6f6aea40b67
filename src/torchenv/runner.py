"""Run host commands through one small seam, so that tests can replace them with canned answers.

`subprocess_runner` is the real thing; `FakeRunner` answers from a table of command prefixes and
records what it was asked. Neither raises for a failing command: the caller reads `returncode`.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

NOT_FOUND = 127  # the shell's code for "command not found"
TIMED_OUT = 124  # the code coreutils' timeout(1) uses


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

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
    ) -> Result:
        """Run `args`; `env` holds variables added to (or overriding) the inherited environment."""
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
) -> Result:
    """Run a command and capture its output as text; never raises for a failing command.

    A missing executable gives returncode 127 and stderr "not found: NAME"; a command that runs
    past `timeout` seconds is killed and gives returncode 124 with whatever it printed.
    """
    argv = tuple(str(a) for a in args)
    full_env = {**os.environ, **env} if env else None
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=full_env,
            stdin=subprocess.DEVNULL,
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


def reply(stdout: str = "", returncode: int = 0, stderr: str = "") -> Result:
    """A canned answer for FakeRunner (its args are filled in with the actual command)."""
    return Result((), returncode, stdout, stderr)


Answer = Result | Callable[[tuple[str, ...]], Result]


@dataclass(frozen=True)
class Call:
    args: tuple[str, ...]
    timeout: float | None
    env: Mapping[str, str] | None


@dataclass
class FakeRunner:
    """A Runner for tests: answers by the longest matching command prefix and records each call.

    `answers` maps prefixes such as ("docker", "version") to a Result (see `reply`) or to a
    function of the full argv returning one. A command no prefix matches behaves like a missing
    executable (returncode 127, "not found: NAME"), so tests list only what exists.
    """

    answers: Mapping[tuple[str, ...], Answer] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def __call__(
        self,
        args: Sequence[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        argv = tuple(str(a) for a in args)
        self.calls.append(Call(argv, timeout, dict(env) if env else None))
        matches = [p for p in self.answers if argv[: len(p)] == p]
        if not matches:
            return Result(argv, NOT_FOUND, "", f"not found: {argv[0]}")
        answer = self.answers[max(matches, key=len)]
        result = answer(argv) if callable(answer) else answer
        return dataclasses.replace(result, args=argv)

    def ran(self, *prefix: str) -> bool:
        """Whether some recorded call starts with `prefix`."""
        return any(c.args[: len(prefix)] == prefix for c in self.calls)

"""The tests' Runner double: canned answers by command prefix, every call recorded.

The library's seam is torchenv.runner.Runner; this double lives with the tests, not in the wheel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torchenv.runner import NOT_FOUND, LineSink, Result


def reply(stdout: str = "", returncode: int = 0, stderr: str = "") -> Result:
    """A canned answer for FakeRunner (its args are filled in with the actual command)."""
    return Result((), returncode, stdout, stderr)


Answer = Result | Callable[[tuple[str, ...]], Result]


@dataclass(frozen=True)
class Call:
    args: tuple[str, ...]
    timeout: float | None
    env: Mapping[str, str] | None
    input: str | None = None
    interactive: bool = False
    cwd: str | None = None


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
        cwd: str | Path | None = None,
        input: str | None = None,
        on_line: LineSink | None = None,
        interactive: bool = False,
    ) -> Result:
        argv = tuple(str(a) for a in args)
        self.calls.append(
            Call(
                argv,
                timeout,
                dict(env) if env else None,
                input,
                interactive,
                str(cwd) if cwd else None,
            )
        )
        matches = [p for p in self.answers if argv[: len(p)] == p]
        if not matches:
            return Result(argv, NOT_FOUND, "", f"not found: {argv[0]}")
        answer = self.answers[max(matches, key=len)]
        result = answer(argv) if callable(answer) else answer
        if on_line is not None:  # streamed: the lines as they would have come, merged
            merged = result.stdout + result.stderr
            for line in merged.splitlines(keepends=True):
                on_line(line)
            result = dataclasses.replace(result, stdout=merged, stderr="")
        return dataclasses.replace(result, args=argv)

    def ran(self, *prefix: str) -> bool:
        """Whether some recorded call starts with `prefix`."""
        return any(c.args[: len(prefix)] == prefix for c in self.calls)

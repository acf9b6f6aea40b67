"""This repository's tasks (`invoke --list`): the kit's collection, plus the kit's own `lint`."""

import shlex
from pathlib import Path
from typing import Any

from torchenv import matrix
from torchenv.errors import UserError
from torchenv.image import generate as generation
from torchenv.runner import subprocess_runner
from torchenv.taskopts import Given, command
from torchenv.tasks import ns


def _run_all(commands: list[list[str]], root: Path, check: bool = False) -> None:
    """Print and run each command (streamed) in `root`; with check, the first failure ends."""
    for argv in commands:
        print(shlex.join(argv))
        done = subprocess_runner(argv, cwd=root, on_line=lambda line: print(line, end=""))
        if check and not done.ok:
            raise UserError(f"{Path(argv[0]).name} failed (exit {done.returncode}): see above")


@command("lint")
def lint(c: Any, o: Given) -> None:
    """Lint: ruff and mypy --strict on the Python, hadolint on the Dockerfiles, generated files current."""
    from torchenv.image import lint as lints

    root = matrix.project_root()
    _run_all(lints.lint_commands(root), root, check=True)
    generation.check(root)


ns.add_task(lint)

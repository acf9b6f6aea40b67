"""`invoke lint`: the linters, taken from this Python's environment (no venv activation needed)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from torchenv import matrix


def tool(name: str) -> str:
    """A tool beside this interpreter (the project's venv), else the one on PATH, else the name."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name) or name


def lint_commands(root: Path) -> list[list[str]]:
    """ruff (lint and format), mypy (strict, as pyproject configures it), hadolint on every
    Dockerfile of the project at `root` (the commands run there)."""
    dockerfiles = [str(t.dockerfile.relative_to(root)) for t in matrix.load(root).values()]
    return [
        [tool("ruff"), "check", "."],
        [tool("ruff"), "format", "--check", "."],
        [tool("mypy")],
        [tool("hadolint"), *dockerfiles],
    ]

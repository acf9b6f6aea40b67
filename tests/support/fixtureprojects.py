"""Helpers for tests over the fixture projects (tests/fixtures/projects): where they are, which
are Python projects, a copy to build in, and the environment and uv that see only a given index.
The session fixtures that make and serve that index are in tests/support/indexfixtures.py.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

import pytest
from tests.support.localindex import REPO

PROJECTS = REPO / "tests" / "fixtures" / "projects"
SHAPES = sorted(p.name for p in PROJECTS.iterdir() if p.is_dir() and not p.name.startswith("_"))


def has_build_backend(project: Path) -> bool:
    """Whether a fixture project is a buildable Python project (pyproject.toml or setup.py);
    without [build-system], pip and uv fall back to setuptools' legacy backend."""
    return (project / "pyproject.toml").exists() or (project / "setup.py").exists()


def copy_project(shape: str, dest: Path) -> Path:
    """A copy of fixture project `shape` at `dest/<shape>` (building writes into the source
    folder: build/, *.egg-info; the fixtures stay clean)."""
    target = dest / shape
    shutil.copytree(PROJECTS / shape, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def offline_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any PIP_* or UV_* setting (a configured index or
    find-links would leak in), pip's configuration files off, uv's too, and no Python downloads:
    a pip or uv run with it sees only the index given on its command line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        UV_NO_CONFIG="1",
        UV_PYTHON_DOWNLOADS="never",
    )
    env.update(extra or {})
    return env


def uv_binary() -> str:
    """The uv of this environment (or PATH); skip when there is none."""
    here = Path(sys.executable).parent / "uv"
    found = str(here) if here.exists() else shutil.which("uv")
    if found is None:
        pytest.skip("uv is not installed (pip install -e '.[dev]' provides it)")
    return found


def unavailable(message: str) -> NoReturn:
    """Skip with `message`; fail instead when the CI variable is set (CI must prove it)."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so this is a failure: {message}")
    pytest.skip(message)

"""Run torchbuild's modules the way the image build runs them: a copy of the folder on
PYTHONPATH, nothing else of this project importable."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import torchbuild

PACKAGE = Path(torchbuild.__file__).resolve().parent


@pytest.fixture
def run_module(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    ctx = tmp_path / "ctx"
    shutil.copytree(PACKAGE, ctx / "torchbuild", ignore=shutil.ignore_patterns("__pycache__"))

    def run(python: str | Path, module: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(python), "-s", "-m", f"torchbuild.{module}", *args],
            capture_output=True, text=True, cwd=tmp_path, check=False,
            env={"PYTHONPATH": str(ctx), "PATH": "/usr/bin:/bin"},
        )  # fmt: skip

    return run

"""What the smoke suite's tests share: `python -m torchsmoke` run as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import torchsmoke

SRC = Path(torchsmoke.__file__).parents[1]


def run_torchsmoke(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "torchsmoke", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`run_cli(*args, cwd=folder)`: `python -m torchsmoke ARGS` in a fresh interpreter."""
    return run_torchsmoke

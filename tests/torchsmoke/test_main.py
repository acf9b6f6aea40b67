"""`python -m torchsmoke` (torchsmoke/__main__.py) in a Python that has no torch: --help, --version
and --list work, the rest is one line (exit 2)."""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

import torchsmoke
from torchsmoke.cli import listing

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> str:
    """A venv with nothing installed: no torch, only the standard library."""
    env = tmp_path_factory.mktemp("bare") / "venv"
    venv.EnvBuilder(with_pip=False).create(env)
    return str(env / "bin" / "python")


def run(python: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "torchsmoke", *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(SRC)}, check=False,
    )  # fmt: skip


def test_help_works_without_torch(bare_python):
    done = run(bare_python, "--help")
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert "--only A,B" in done.stdout and "--expect-variant" in done.stdout


def test_version_works_without_torch(bare_python):
    done = run(bare_python, "--version")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == f"torchsmoke {torchsmoke.__version__}\n"


def test_list_works_without_torch_and_matches_the_suite(bare_python):
    done = run(bare_python, "--list")
    assert done.returncode == 0, done.stderr
    names = [line.split()[0] for line in done.stdout.splitlines()]
    assert names[:3] == ["env", "expect", "mlp"] and "compile" in names
    assert done.stdout == listing() + "\n"  # the table's, as printed where torch is installed


def test_running_without_torch_is_one_line_and_exit_2(bare_python):
    done = run(bare_python, "--quick")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"torchsmoke: error: torch is not installed in this Python ({bare_python}): install "
        "torch here, or run the suite in a torchenv image (invoke smoke)"
    ]

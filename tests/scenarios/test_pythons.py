"""The host kit on every Python that pyproject promises (3.10 reads TOML through tomli).

For each promised Python other than the one running this suite (which the whole suite proves), a
fresh venv gets the project (no torch) and pytest, then runs the task list, a dry-run build, the
matrix module and the pure unit tests. An interpreter this machine lacks is skipped with the
reason, and fails under CI, whose machines have them all (pyenv).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.support import REPO as ROOT

UNIT_TESTS = [
    "tests/torchbuild", "tests/torchenv/matrix/test_matrix.py", "tests/torchenv/matrix/test_pins.py",
    "tests/torchenv/lock/test_lockfile.py", "tests/torchenv/lock/test_make.py",
    "tests/torchenv/lock/test_drift.py", "tests/torchenv/image/test_build.py", "tests/torchenv/test_runner.py",
    "tests/torchenv/run/test_shell.py", "tests/torchenv/test_taskopts.py",
]  # fmt: skip


def interpreter(version: str) -> str | None:
    """python<version> on PATH, else pyenv's newest of that minor."""
    found = shutil.which(f"python{version}")
    if found and subprocess.run([found, "-V"], capture_output=True, check=False).returncode == 0:
        return found
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"))
    return candidates[-1] if candidates else None


@pytest.mark.slow
def test_the_host_kit_works_on(other_python, tmp_path):
    version = other_python
    python = interpreter(version)
    if python is None:
        message = f"Python {version} is not installed here (pyenv install {version})"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so this is a failure: {message}")
        pytest.skip(message)
    env_dir = tmp_path / f"venv{version}"
    subprocess.run([python, "-m", "venv", str(env_dir)], check=True, capture_output=True)
    bin_dir = env_dir / "bin"

    def run(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
            env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CI": ""},
        )  # fmt: skip

    done = run(str(bin_dir / "pip"), "install", "-q", "-e", ".", "pytest")
    assert done.returncode == 0, done.stderr[-3000:]
    version_line = run(str(bin_dir / "python"), "-c", "import sys; print(sys.version_info[:2])")
    assert version_line.stdout.strip() == str(tuple(int(p) for p in version.split(".")))
    listing = run(str(bin_dir / "invoke"), "--list")
    assert listing.returncode == 0 and "build" in listing.stdout, listing.stderr
    dry = run(str(bin_dir / "invoke"), "build", "--target", "cuda13", "--dry-run")
    assert dry.returncode == 0 and "--file docker/cuda13.Dockerfile" in dry.stdout, dry.stderr
    names = run(str(bin_dir / "python"), "-m", "torchenv.matrix")
    assert names.stdout.split() == ["cpu", "cuda118", "cuda12", "cuda13", "cuda132"]
    tests = run(
        str(bin_dir / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", *UNIT_TESTS
    )
    assert tests.returncode == 0, tests.stdout[-3000:]


def test_the_listed_unit_tests_exist():
    assert [p for p in UNIT_TESTS if not (ROOT / p).exists()] == []

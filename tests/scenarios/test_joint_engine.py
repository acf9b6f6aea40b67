"""Joint resolution on the engine (issue 33): one project with the three shapes the issue names, a
flat setuptools layout (no explicit packages), `numpy<2` (which moves numpy in the torch layer)
and a dependency published only as an sdist (wget 3.2: its sdist is built in the image), locked
with the kit from its wheel, built for cuda13, and its own tests run in the image by `invoke test`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.images import CA, STANDIN, docker
from tests.support import REPO

pytestmark = [pytest.mark.engine, pytest.mark.slow]

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "flatpkg"
version = "0.1.0"
dependencies = ["numpy<2", "wget==3.2", "tqdm"]

[dependency-groups]
test = ["pytest>=8"]
"""
TEST = """\
import numpy
import wget

import flatpkg


def test_the_three_shapes_in_the_image():
    assert numpy.__version__.startswith("1.")  # numpy<2, resolved with the torch family
    assert wget.__version__ == "3.2"  # built from its sdist in the image
    assert flatpkg.ANSWER == 42  # the flat layout's package, from the working tree
"""


def run(argv: list[str], cwd: Path, timeout: float = 1800, **env: str):
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False, env={**os.environ, **env})  # fmt: skip


def test_a_flat_layout_with_numpy_below_2_and_an_sdist_only_dependency(
    docker_engine, image, kit_venv, tmp_path
):
    project = tmp_path / "flatproj"
    (project / "flatpkg").mkdir(parents=True)
    (project / "tests").mkdir()
    (project / "pyproject.toml").write_text(PYPROJECT)
    (project / "flatpkg" / "__init__.py").write_text("ANSWER = 42\n")
    (project / "tests" / "test_it.py").write_text(TEST)
    path = f"{kit_venv}:{os.environ['PATH']}"
    done = run([str(kit_venv / "torchenv"), "init", "--targets", "cuda13"], project, PATH=path)
    assert done.returncode == 0, done.stderr
    matrix = project / "targets.toml"
    matrix.write_text(re.sub(r'(?m)^test_command = .*$', 'test_command = "python -m pytest -q -p no:cacheprovider tests"', matrix.read_text())
                      .replace("\ngroups = []\n", '\ngroups = ["test"]\n'))  # fmt: skip
    envs = project / ".torchenv.d" / "envs"
    shutil.copy(REPO / "envs" / "cuda13.pip.lock.txt", envs)  # the session image's torch layer
    done = run([str(kit_venv / "invoke"), "lock", "--target", "cuda13"], project, PATH=path)
    assert done.returncode == 0, (done.stdout, done.stderr[-3000:])
    assert "the torch layer changes (numpy 2." in done.stdout and "-> 1." in done.stdout
    project_lock = (envs / "cuda13.project.lock.txt").read_text()
    assert "\nwget==3.2 " in project_lock and "\ntqdm==" in project_lock
    tag = "flatproj/cuda13:2.14.1-cu130"
    build = [str(kit_venv / "invoke"), "build", "--target", "cuda13", "--frozen", "--base-image",
             STANDIN, "--allow-unpinned-base", *(["--ca-cert", CA] if Path(CA).exists() else [])]  # fmt: skip
    try:
        done = run(build, project, PATH=path)
        assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-2000:])
        assert not (project / "build").exists()  # the package layer's droppings removed
        done = run([str(kit_venv / "invoke"), "test", "--target", "cuda13", "--no-gpu"], project,
                   timeout=600, PATH=path)  # fmt: skip
        assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-2000:])
        assert "1 passed" in done.stdout
    finally:
        docker(docker_engine, "image", "rm", "--force", tag)

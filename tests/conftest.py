"""Project-wide test policy.

Tests marked `engine` need a running Docker engine with BuildKit: they skip with the reason on a
machine without one, and fail instead when the CI variable is set (CI must prove them).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from images import STANDIN, build_args, docker, invoke
from torchenv import engine as engines
from torchenv import matrix
from torchenv.errors import UserError

# The sample project (tests/scenarios/test_your_project.py copies it) has tests of its own, which
# run in its image, not here.
collect_ignore = ["sample-project"]


@pytest.fixture(scope="session")
def docker_engine() -> engines.Engine:
    """The detected engine; skip (or fail under CI) when there is none."""
    try:
        return engines.detect()
    except UserError as exc:
        message = f"needs a Docker engine with BuildKit: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so this is a failure: {message}")
        pytest.skip(message)


@pytest.fixture(autouse=True)
def _engine_marker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("engine"):
        request.getfixturevalue("docker_engine")


@pytest.fixture(scope="session")
def tool():
    """Path of a command-line tool from this environment (or PATH); skip with why when absent."""

    def find(name: str) -> str:
        here = Path(sys.executable).parent / name
        found = str(here) if here.exists() else shutil.which(name)
        if found is None:
            pytest.skip(f"{name} is not installed (pip install -e '.[dev]' provides it)")
        return found

    return find


def promised_pythons() -> list[str]:
    """The Python versions pyproject.toml's classifiers promise, e.g. ["3.10", ..., "3.13"]."""
    import re

    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    return re.findall(r'"Programming Language :: Python :: (3\.\d+)"', text)


@pytest.fixture(scope="session")
def pythons() -> list[str]:
    return promised_pythons()


# The built cuda13 images, shared by every engine test module (the host kit's and the scenarios'):
# each flavor is built once a session.


def _build(engine, flavor: str) -> str:
    if docker(engine, "image", "inspect", STANDIN).returncode != 0:
        pytest.fail(f"stand-in base {STANDIN} missing: run .ci/standin-base.sh first")
    done = invoke("build", *build_args(flavor))
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-2000:])
    return matrix.get("cuda13").image(flavor)


@pytest.fixture(scope="session")
def image(docker_engine) -> str:
    """The cuda13 runtime image (default installer, stand-in base)."""
    return _build(docker_engine, "runtime")


@pytest.fixture(scope="session")
def dev_image(docker_engine, image) -> str:
    """The cuda13 dev image (a C/C++ compiler: torch.compile works there)."""
    return _build(docker_engine, "dev")


@pytest.fixture(scope="session")
def cuda13_image(image) -> str:
    """The cuda13 runtime image under the name the multi-node and registry tests use."""
    return image


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`other_python`: each promised Python other than the one running the tests."""
    if "other_python" in metafunc.fixturenames:
        here = f"{sys.version_info[0]}.{sys.version_info[1]}"
        others = [v for v in promised_pythons() if v != here]
        metafunc.parametrize("other_python", others, ids=[f"python{v}" for v in others])


_REPO = Path(__file__).resolve().parents[1]


def _run(argv, cwd):
    import subprocess

    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=900, check=False)


def source_version() -> str:
    """The kit's one version, as src/torchbuild/__init__.py says it (read, not imported)."""
    import re

    text = (_REPO / "src" / "torchbuild" / "__init__.py").read_text()
    found = re.search(r'(?m)^__version__ = "([^"]+)"$', text)
    assert found is not None, "src/torchbuild/__init__.py has no __version__ line"
    return found[1]


def given_wheel() -> Path | None:
    """The wheel TORCHENV_WHEEL names (None: unset); a missing file fails the test in one line."""
    given = os.environ.get("TORCHENV_WHEEL", "")
    if not given:
        return None
    wheel = Path(given).resolve()
    if not (wheel.is_file() and wheel.name.startswith("torchenv-") and wheel.suffix == ".whl"):
        pytest.fail(f"TORCHENV_WHEEL={given!r} is not a torchenv wheel file", pytrace=False)
    return wheel


def build_kit_wheel(tmp: Path) -> Path:
    """A wheel built from a copy of this checkout's sources (no .git: the version is in them)."""
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(_REPO / name, source / name)
    shutil.copytree(_REPO / "src", source / "src", ignore=shutil.ignore_patterns(
        "__pycache__", "*.egg-info"))  # fmt: skip
    wheels = tmp / "wheels"
    done = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels),
                 str(source)], tmp)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = wheels.glob("torchenv-*.whl")
    return wheel


@pytest.fixture(scope="session")
def kit_venv(tmp_path_factory) -> Path:
    """A fresh venv with torchenv installed from a wheel: TORCHENV_WHEEL's (the release
    workflow's), else one built from this checkout. Its `torchenv --version` is the source's."""
    tmp = tmp_path_factory.mktemp("kit")
    wheel = given_wheel() or build_kit_wheel(tmp)
    venv = tmp / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)], tmp).returncode == 0
    # a current pip, as users have (the one bundled with an older Python refuses git+file:///)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-U", "pip"], tmp)
    done = _run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    version = _run([str(venv / "bin" / "torchenv"), "--version"], tmp)
    assert version.stdout == f"torchenv {source_version()}\n", (version.stdout, version.stderr)
    return venv / "bin"

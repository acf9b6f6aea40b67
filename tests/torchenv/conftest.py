"""The built cuda13 images, shared by every engine test module: each flavor is built once."""

from __future__ import annotations

import shutil

import pytest
from tests.support import REPO
from tests.support.nodes import leftovers

from images import STANDIN, build_args, docker, invoke
from torchenv import matrix
from torchenv.lock import pip_resolver


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


@pytest.fixture
def clean_engine(docker_engine):
    assert leftovers() == [], "multi-node containers or networks from an earlier run"
    yield
    assert leftovers() == []


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A copy of the repository's envs/ and targets.toml under tmp_path, the working directory:
    the project the kit finds there."""
    real = REPO
    shutil.copytree(real / "envs", tmp_path / "envs")
    shutil.copy(real / "targets.toml", tmp_path / "targets.toml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pip_resolver, "check_host", lambda python: None)
    return tmp_path

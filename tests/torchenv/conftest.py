"""The host kit's fixtures: a tree to lock in, an engine clean of multi-node leftovers (the built
cuda13 images, which the scenarios share, are in tests/conftest.py)."""

from __future__ import annotations

import shutil

import pytest
from tests.support import REPO
from tests.support.nodes import leftovers

from torchenv.lock import pip_resolver


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

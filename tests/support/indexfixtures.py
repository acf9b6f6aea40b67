"""Pytest fixtures over tests/support/localindex.py, for tests that resolve or build the
projects under tests/fixtures/projects without the network.

Not wired into any conftest: a test module (or, later, the root conftest) loads them as a plugin,

    pytest_plugins = ["tests.support.indexfixtures"]

and asks for them by name (tests/support/fixtureprojects.py has the plain helpers). All are
session-scoped: the stand-ins are made once, the backend wheelhouse is downloaded once (into
pytest's cache when the cache plugin is on, else a session folder), each index is served once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.fixtureprojects import unavailable
from tests.support.localindex import (
    SimpleIndex,
    WheelhouseUnavailable,
    backend_wheelhouse,
    standin_common,
    standin_torch_family,
    target_pins,
)


@pytest.fixture(scope="session")
def standin_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of stand-in distributions: the torch family at the cuda13 target's pins (and what
    it requires) and the common pure-Python packages the fixture projects name."""
    folder = tmp_path_factory.mktemp("standins")
    standin_torch_family(folder, target_pins("cuda13"))
    standin_common(folder)
    return folder


@pytest.fixture(scope="session")
def backend_wheels(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The real build backends' wheels, downloaded once; skip (or fail under CI) without them."""
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        folder = Path(cache.mkdir("torchenv-backend-wheelhouse")) / "wheels"
    else:
        folder = tmp_path_factory.mktemp("backends") / "wheels"
    try:
        return backend_wheelhouse(folder)
    except WheelhouseUnavailable as exc:
        unavailable(f"needs the build backends' wheels from the package index: {exc}")


@pytest.fixture(scope="session")
def standin_index(standin_wheels: Path) -> Iterator[SimpleIndex]:
    """The stand-ins alone, served on 127.0.0.1: enough to resolve, not to build."""
    with SimpleIndex(standin_wheels) as index:
        yield index


@pytest.fixture(scope="session")
def build_index(backend_wheels: Path, standin_wheels: Path) -> Iterator[SimpleIndex]:
    """The backend wheelhouse and the stand-ins as one index (the real packaging and pluggy hide
    their stand-ins): enough to build every fixture project and resolve its dependencies."""
    with SimpleIndex(backend_wheels, standin_wheels) as index:
        yield index

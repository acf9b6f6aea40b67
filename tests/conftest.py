"""Project-wide test policy.

Tests marked `engine` need a running Docker engine with BuildKit: they skip with the reason on a
machine without one, and fail instead when the CI variable is set (CI must prove them).
"""

from __future__ import annotations

import os

import pytest

from torchenv import engine as engines
from torchenv.errors import UserError


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

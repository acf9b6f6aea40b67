"""Fixtures shared by the engine tests of tests/torchenv: one cuda13 image for all of them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from torchenv.matrix import ROOT, get

STANDIN = os.environ.get("TORCHENV_STANDIN_BASE", "torchenv-standin/python:3.11-slim-bookworm")
CA = os.environ.get("TORCHENV_CA_CERT", "/etc/ssl/certs/ca-certificates.crt")
# The stand-in base (`.ci/standin-base.sh`) replaces the registry's python image, which no
# machine here can pull; pip, because conda cannot run here.
CUDA13_BUILD = [
    "--target", "cuda13", "--installer", "pip", "--base-image", STANDIN, "--allow-unpinned-base",
]  # fmt: skip


@pytest.fixture(scope="session")
def cuda13_image(docker_engine) -> str:
    """The cuda13 runtime image, built once per session from this checkout (a cached build when
    nothing changed; the image carries this checkout's torchsmoke)."""
    inspect = [docker_engine.client, "image", "inspect", STANDIN]
    if subprocess.run(inspect, capture_output=True, check=False).returncode != 0:
        pytest.fail(f"stand-in base {STANDIN} missing: run .ci/standin-base.sh first")
    args = [*CUDA13_BUILD, *(["--ca-cert", CA] if Path(CA).exists() else [])]
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "build", *args], cwd=ROOT, capture_output=True,
        text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-2000:])
    return get("cuda13").image()

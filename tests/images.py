"""Building and running the cuda13 test images, shared by the engine test modules.

The images themselves are session fixtures (tests/torchenv/conftest.py): each flavor is built
once a test session. The stand-in base (`.ci/standin-base.sh`) replaces the registry's python
image, which no machine here can pull.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import REPO as ROOT

STANDIN = os.environ.get("TORCHENV_STANDIN_BASE", "torchenv-standin/python:3.11-slim-bookworm")
CA = os.environ.get("TORCHENV_CA_CERT", "/etc/ssl/certs/ca-certificates.crt")
# The default installer (uv); tests/scenarios/test_image.py proves pip too.
BUILD = ["--target", "cuda13", "--base-image", STANDIN, "--allow-unpinned-base"]


def invoke(*args: str, timeout: float = 1200, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, check=False, **kw,
    )  # fmt: skip


def docker(engine, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [engine.client, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def build_args(flavor: str = "runtime") -> list[str]:
    """`invoke build` arguments for a flavor of the test image (with the host's CA if any)."""
    return [*BUILD, "--flavor", flavor, *(["--ca-cert", CA] if Path(CA).exists() else [])]

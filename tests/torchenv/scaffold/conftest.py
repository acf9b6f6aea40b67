"""init's tests see the kit as installed from an index (the venv running them has it editable,
from this checkout: a source CI could not install, which tests/torchenv/scaffold/test_kitsource.py
covers)."""

from __future__ import annotations

import pytest

from torchenv.scaffold import kitsource

AS_FROM_AN_INDEX = kitsource.KitSource(
    kitsource._HEADER
    + "torchenv==0.2.0 \\\n    --hash=sha256:"
    + "a" * 64
    + "\n"
    + kitsource._dependencies()
)


@pytest.fixture(autouse=True)
def _kit_from_an_index(monkeypatch):
    monkeypatch.setattr(kitsource, "detect", lambda *a, **k: AS_FROM_AN_INDEX)

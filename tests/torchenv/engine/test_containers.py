"""The tracked container's pure part: log chunks as lines (its lifecycle is proved for real by the
engine tests of smoke, test_smoke.py and test_image.py)."""

from __future__ import annotations

from torchenv.engine.containers import log_lines


def test_log_chunks_become_whole_lines():
    chunks = [b"torchsmoke 0.1: tor", b"ch 2.11\nmlp  pass\nJSON report: /tmp/x", b"\n", b"tail"]
    assert list(log_lines(chunks)) == [
        "torchsmoke 0.1: torch 2.11\n", "mlp  pass\n", "JSON report: /tmp/x\n", "tail",
    ]  # fmt: skip

"""Hints: what a failed install's output means (hash mismatches named by package)."""

from __future__ import annotations

from tests.support.locks import SHA_A, SHA_B

from torchenv import hints

PIP_MISMATCH = f"""\
Collecting mpmath==1.3.0 (from -r /tmp/ctx/envs/cuda13.pip.lock.txt (line 40))
ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE. If you have updated the \
package versions, please update the hashes. Otherwise, examine the package contents carefully; \
someone may have tampered with them.
    mpmath==1.3.0 from https://files.example.invalid/packages/43/mpmath-1.3.0-py3-none-any.whl \
(from -r /tmp/ctx/envs/cuda13.pip.lock.txt (line 40)):
        Expected sha256 {SHA_A}
             Got        {SHA_B}

    torch==2.11.0 from https://files.example.invalid/torch-2.11.0-cp311.whl (from -r lock (line 3)):
        Expected sha256 {SHA_B}
             Got        {SHA_A}
"""


def test_explain_hash_mismatch_names_the_packages():
    message = hints.explain_hash_mismatch(PIP_MISMATCH)
    assert message is not None and message.startswith(
        "hash mismatch for mpmath==1.3.0 (locked sha256 aaaaaaaaaaaa..., downloaded "
        "bbbbbbbbbbbb...), torch==2.11.0 (locked sha256 bbbbbbbbbbbb..."
    )
    assert "invoke lock" in message and "\n" not in message


def test_explain_hash_mismatch_in_buildkit_output():
    prefixed = "".join(f"#14 12.{i} {line}\n" for i, line in enumerate(PIP_MISMATCH.splitlines()))
    assert "mpmath==1.3.0" in (hints.explain_hash_mismatch(prefixed) or "")
    assert hints.explain_hash_mismatch("ERROR: No matching distribution found") is None

"""Lock files: the committed locks, rendering and parsing pip and conda locks, pin matching."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.support.locks import CONDA_LOCK, SHA_A, SHA_B, set_pin

from torchenv import matrix
from torchenv.lock import drift, lockfile
from torchenv.lock.lockfile import LockedPackage


def test_committed_cuda13_lock_is_complete_hashed_and_names_no_host():
    target = matrix.get("cuda13")
    text = target.pip_lock.read_text()
    parsed = lockfile.parse_pip_lock(text, target.pip_lock, "cuda13")
    pkgs = parsed.packages
    family = {n: pkgs[n].version for n in ("torch", "torchvision", "torchaudio", "torchcodec")}
    assert family == {
        "torch": "2.14.1",
        "torchvision": "0.29.2",
        "torchaudio": "2.11.0",
        "torchcodec": "0.17.0",
    }
    assert any(n.startswith("nvidia-cudnn") for n in pkgs) and "triton" in pkgs
    assert len(pkgs) >= 30
    assert all(len(p.hashes) == 1 for p in pkgs.values())  # the one wheel used, no other files
    assert not re.search(r"https?://|file://|/opt/|\.org|\.com|\.net", text)
    assert parsed.header["platform"] == "manylinux_2_28_x86_64"
    assert parsed.header["index"] == "default"


def test_pin_matches_local_labels():
    assert lockfile.pin_matches("2.7.1", "2.7.1+cu118")
    assert lockfile.pin_matches("2.7.1+cu118", "2.7.1+cu118")
    assert not lockfile.pin_matches("2.7.1", "2.7.10")
    assert not lockfile.pin_matches("2.7.1+cu118", "2.7.1")


def valid_lock_text() -> str:
    pkgs = [
        LockedPackage("torch", "2.11.0", (SHA_A, SHA_B)),
        LockedPackage("numpy", "2.4.6", (SHA_A,)),
    ]
    return lockfile.render_pip_lock("# env-sha256: " + "e" * 64 + "\n# python: 3.11\n", pkgs)


def test_render_and_parse_round_trip():
    text = valid_lock_text()
    assert text.splitlines()[2:] == [
        "numpy==2.4.6 \\",
        f"    --hash=sha256:{SHA_A}",
        "torch==2.11.0 \\",
        f"    --hash=sha256:{SHA_A} \\",
        f"    --hash=sha256:{SHA_B}",
    ]
    parsed = lockfile.parse_pip_lock(text, Path("envs/x.pip.lock.txt"), "x")
    assert parsed.packages["torch"] == LockedPackage("torch", "2.11.0", (SHA_A, SHA_B))
    assert parsed.header == {"env-sha256": "e" * 64, "python": "3.11"}


@pytest.mark.parametrize(
    ("edit", "line", "what"),
    [
        (lambda t: t.replace(SHA_A, SHA_A[:60], 1), 4, "not a sha256 (64 lower-case hex digits)"),
        (lambda t: t.replace(SHA_A, SHA_A.upper(), 1), 4, "not a sha256"),
        (lambda t: t.replace("numpy==2.4.6 \\", "numpy==2.4.6"), 3, "expected 'name==version \\'"),
        (lambda t: t.replace("numpy==2.4.6", "NumPy==2.4.6"), 3, "not a normalized package name"),
        (lambda t: t.replace("numpy==2.4.6", "numpy>=2.4"), 3, "expected 'name==version \\'"),
        (lambda t: t.replace("torch==2.11.0", "numpy==2.11.0"), 5, "numpy is locked twice"),
        (lambda t: t + "    --hash=sha256:" + SHA_B + "\n", 8, "a hash line without a requirement"),
        (lambda t: t + "scipy==1.0 \\\n", 8, "scipy==1.0 has no hash line after it"),
        (lambda t: t.replace(f"{SHA_A} \\", f"{SHA_A} \\\ngarbage"), 7, "expected '--hash=sha256"),
        (lambda t: t.replace("--hash=sha256:", "--hash=md5:", 1), 4, "expected '--hash=sha256"),
    ],
)
def test_corrupt_lock_names_its_line(edit, line, what):
    with pytest.raises(lockfile.LockError) as exc:
        lockfile.parse_pip_lock(edit(valid_lock_text()), Path("envs/cuda13.pip.lock.txt"), "cuda13")
    message = str(exc.value)
    assert message.startswith(f"envs/cuda13.pip.lock.txt:{line}: ")
    assert what in message
    assert message.endswith("; regenerate with invoke lock --target cuda13")
    assert "\n" not in message


def test_empty_lock_is_an_error():
    with pytest.raises(lockfile.LockError, match="no packages"):
        lockfile.parse_pip_lock("# only a comment\n", Path("envs/x.pip.lock.txt"), "x")


def test_conda_lock_parses_and_checks_against_env_file(tree):
    target = matrix.get("cuda118")
    env = target.read_env()
    header = lockfile.render_header(target, "conda", env, "2026-11-23", "linux-64")
    target.conda_lock.write_text(header + CONDA_LOCK)
    parsed = lockfile.read_lock(target.conda_lock, "cuda118")
    assert parsed.packages["torch"] == LockedPackage("torch", "2.7.1+cu118", (SHA_B,), "pip")
    assert parsed.packages["conda:python"].manager == "conda"
    assert drift.check_target(target) == []
    set_pin(target.env_file, "torch", "2.7.0")
    assert any(
        "pins torch==2.7.0, the lock has torch==2.7.1+cu118" in p
        for p in drift.check_target(target)
    )


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        (CONDA_LOCK.replace("  platform: linux-64\n", "  platform: [\n", 1), ":19", "expected ','"),
        (CONDA_LOCK.replace(f"    sha256: {SHA_B}\n", "", 1), ":25:", "torch has no sha256"),
        (CONDA_LOCK.replace("  manager: pip\n", "", 1), ":25:", "lacks manager"),
        ("version: 1\n", "", "no 'package:' list"),
    ],
)
def test_corrupt_conda_lock_is_a_clear_error(text, where, what):
    with pytest.raises(lockfile.LockError) as exc:
        lockfile.parse_conda_lock(text, Path("envs/cuda118.conda-lock.yml"), "cuda118")
    assert str(exc.value).startswith(f"envs/cuda118.conda-lock.yml{where}")
    assert what in str(exc.value) and "invoke lock --target cuda118" in str(exc.value)

"""Drift between env files and their locks (`invoke lock --check`)."""

from __future__ import annotations

import re

from tests.support.locks import set_pin

from torchbuild import envfile
from torchenv import matrix
from torchenv.lock import drift, lockfile


def test_committed_locks_agree_with_their_env_files():
    """`invoke lock --check` over the whole matrix."""
    assert drift.check_all(matrix.load().values()) == []


def test_fingerprint_ignores_comments_and_order_but_not_pins(tree):
    env_file = tree / "envs" / "cuda118.yml"
    base = lockfile.env_fingerprint(envfile.parse(env_file))
    text = env_file.read_text()
    lines = text.splitlines()
    i = lines.index("      - torch==2.7.1")
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    env_file.write_text("# another comment\n" + "\n".join(lines) + "\n")
    assert lockfile.env_fingerprint(envfile.parse(env_file)) == base
    set_pin(env_file, "torch", "2.7.0")
    assert lockfile.env_fingerprint(envfile.parse(env_file)) != base


def test_changing_one_pin_is_drift(tree):
    target = matrix.get("cuda13")
    assert drift.check_target(target) == []
    set_pin(target.env_file, "torchvision", "0.26.1")
    problems = drift.check_target(target)
    assert len(problems) == 2
    assert "older than its env file" in problems[0]
    assert problems[1] == (
        "envs/cuda13.pip.lock.txt: envs/cuda13.yml pins torchvision==0.26.1, the lock has "
        "torchvision==0.29.2; regenerate with invoke lock --target cuda13"
    )
    assert drift.check_all(["cuda13"]) == problems


def test_env_file_changed_without_pin_change_is_drift_too(tree):
    """A lock made from another env file (here: another index) counts as older."""
    target = matrix.get("cuda13")
    text = target.env_file.read_text().replace(
        "  - pip:\n", "  - pip:\n      - --index-url https://download.pytorch.org/whl/cu130\n"
    )
    target.env_file.write_text(text)
    problems = drift.check_target(target)
    assert len(problems) == 1 and "env-sha256" in problems[0]


def test_lock_without_env_sha256_is_drift(tree):
    target = matrix.get("cuda13")
    text = re.sub(r"(?m)^# env-sha256: .*\n", "", target.pip_lock.read_text())
    target.pip_lock.write_text(text)
    assert "no env-sha256" in drift.check_target(target)[0]


def test_missing_env_file_and_corrupt_lock_are_problems_not_tracebacks(tree):
    target = matrix.get("cuda13")
    target.pip_lock.write_text(target.pip_lock.read_text().replace("--hash=sha256:", "--hash=", 1))
    problems = drift.check_target(target)
    assert len(problems) == 1 and problems[0].startswith("envs/cuda13.pip.lock.txt:")
    target.env_file.unlink()
    assert "env file envs/cuda13.yml is missing" in drift.check_target(target)[0]


def test_no_lock_is_not_drift(tree):
    assert drift.check_target(matrix.get("cpu")) == []

"""conda-lock for the conda installer (torchenv.lock.conda_resolver)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.fakerunner import FakeRunner, reply
from tests.support.locks import (
    CONDA_LOCK,
)

from torchenv import matrix
from torchenv.errors import UserError
from torchenv.lock import conda_resolver, drift


def test_conda_lock_command_for_cuda_and_cpu(tree):
    argv, env = conda_resolver.conda_lock_command(matrix.get("cuda118"), Path("/x/out.yml"))
    assert argv[1:7] == ["lock", "--kind", "lock", "-p", "linux-64", "-f"]
    assert argv[argv.index("--with-cuda") + 1] == "11.8" and env == {"CONDA_OVERRIDE_CUDA": "11.8"}
    argv, env = conda_resolver.conda_lock_command(matrix.get("cpu"), Path("/x/out.yml"))
    assert "--without-cuda" in argv and env == {}


def test_lock_conda_writes_the_unified_lock_with_a_header(tree, monkeypatch):
    monkeypatch.setattr(conda_resolver, "conda_lock_executable", lambda: "conda-lock")
    target = matrix.get("cuda118")

    def conda_lock(argv):
        Path(argv[argv.index("--lockfile") + 1]).write_text(CONDA_LOCK)
        return reply()

    runner = FakeRunner({("conda-lock", "lock"): conda_lock})
    assert (
        conda_resolver.lock_conda(target, runner)
        == "wrote envs/cuda118.conda-lock.yml (4 packages)"
    )
    assert runner.calls[0].env == {"CONDA_OVERRIDE_CUDA": "11.8"}
    text = target.conda_lock.read_text()
    assert text.startswith("# torchenv lock of target cuda118 for the conda installer")
    assert text.endswith(CONDA_LOCK)
    assert drift.check_target(target) == []
    assert not list((tree / "envs").glob(".*"))


def test_lock_conda_unreachable_leaves_no_partial_file(tree, monkeypatch):
    monkeypatch.setattr(conda_resolver, "conda_lock_executable", lambda: "conda-lock")

    def offline(argv):
        Path(argv[argv.index("--lockfile") + 1]).write_text("half")
        return reply(
            returncode=1,
            stderr="requests.exceptions.ConnectionError: (NameResolution"
            "Error(\"Failed to resolve 'x' ([Errno -2] Name or service not known)\"))",
        )

    with pytest.raises(UserError) as exc:
        conda_resolver.lock_conda(
            matrix.get("cuda13"), FakeRunner({("conda-lock", "lock"): offline})
        )
    assert str(exc.value).startswith(
        "the conda-forge channel (conda-lock) is unreachable from here"
    )
    assert not list((tree / "envs").glob(".*")) and not matrix.get("cuda13").conda_lock.exists()


def test_conda_lock_not_installed(tree, monkeypatch):
    monkeypatch.setattr(conda_resolver, "conda_lock_executable", lambda: None)
    with pytest.raises(UserError, match="conda-lock is not installed: pip install conda-lock"):
        conda_resolver.lock_conda(matrix.get("cuda13"), FakeRunner())

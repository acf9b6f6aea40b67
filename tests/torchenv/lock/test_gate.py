"""A build without a usable lock locks first, refuses with --frozen, or installs unlocked if asked."""

import dataclasses

import pytest

from torchenv import matrix
from torchenv.errors import UserError
from torchenv.lock import gate as lockgate


@pytest.fixture
def unlocked(tmp_path, monkeypatch):
    """cuda13 as if its lock were missing (its env file is the committed one)."""
    t = matrix.get("cuda13")
    monkeypatch.setattr(type(t), "pip_lock", property(lambda self: tmp_path / "none.pip.lock.txt"))
    return t


def test_a_current_lock_passes_untouched():
    calls = []
    lockgate.ensure(
        matrix.get("cuda13"), "uv", frozen=True, allow_unlocked=False, lock=calls.append
    )
    assert calls == [] and lockgate.state(matrix.get("cuda13"), "pip") is None


def test_a_missing_lock_is_made_first_and_the_build_says_so(unlocked):
    lines, locked = [], []

    def lock(t):
        locked.append(t.name)
        return "wrote envs/cuda13.pip.lock.txt (34 packages)"

    lockgate.ensure(unlocked, "uv", frozen=False, allow_unlocked=False, out=lines.append, lock=lock)
    assert locked == ["cuda13"]
    assert lines[0].startswith("torchenv: ") and "does not exist: locking first" in lines[0]
    assert lines[1] == "torchenv: wrote envs/cuda13.pip.lock.txt (34 packages)"


def test_frozen_refuses_instead(unlocked):
    with pytest.raises(UserError, match="does not exist and --frozen was given: run `invoke lock"):
        lockgate.ensure(unlocked, "pip", frozen=True, allow_unlocked=True, lock=pytest.fail)


def test_an_unreachable_index_refuses_unless_unlocked_is_allowed(unlocked):
    def down(t):
        raise UserError("pip's default index cannot be reached (connection refused)")

    with pytest.raises(UserError, match="cannot lock cuda13 before building: .*--allow-unlocked"):
        lockgate.ensure(unlocked, "uv", frozen=False, allow_unlocked=False, lock=down)
    lines = []
    lockgate.ensure(unlocked, "uv", frozen=False, allow_unlocked=True, out=lines.append, lock=down)
    assert "installing from the pins only (--allow-unlocked), NOT reproducible" in lines[0]


def test_a_stale_lock_counts_as_missing(tmp_path, monkeypatch):
    t = matrix.get("cuda13")
    stale = tmp_path / "cuda13.pip.lock.txt"
    stale.write_text(t.pip_lock.read_text().replace("torch==2.14.1", "torch==2.14.0"))
    monkeypatch.setattr(type(t), "pip_lock", property(lambda self: stale))
    why = lockgate.state(t, "uv")
    assert why and "is stale" in why


def test_conda_without_its_lock_refuses_and_a_dry_run_only_says_so(unlocked):
    conda = dataclasses.replace(unlocked)
    with pytest.raises(UserError, match="conda-lock.yml does not exist: make it with"):
        lockgate.ensure(conda, "conda", frozen=False, allow_unlocked=False, lock=pytest.fail)
    lines = []
    lockgate.ensure(unlocked, "uv", frozen=False, allow_unlocked=False, dry_run=True,
                    out=lines.append, lock=pytest.fail)  # fmt: skip
    assert len(lines) == 1 and lines[0].startswith("# ") and "the build locks first" in lines[0]


def test_the_dev_flavor_needs_the_dev_lock_too(tmp_path, monkeypatch):
    t = matrix.get("cuda13")
    assert lockgate.state(t, "uv", "dev") is None  # the committed one is current
    monkeypatch.setattr(type(t), "dev_lock", property(lambda self: tmp_path / "none.dev.lock.txt"))
    assert lockgate.state(t, "uv") is None  # the runtime flavor does not read it
    # conda's dev image needs its conda lock only (its extras install from pins, with a warning)
    assert lockgate.state(t, "conda", "dev") == "envs/cuda13.conda-lock.yml does not exist"
    assert lockgate.state(t, "pip", "dev") == f"{tmp_path}/none.dev.lock.txt does not exist"
    locked = []
    lockgate.ensure(
        t, "uv", frozen=False, allow_unlocked=False, flavor="dev", out=lambda line: None,
        lock=lambda target: locked.append(target.name) or "wrote both",
    )  # fmt: skip
    assert locked == ["cuda13"]
    with pytest.raises(UserError, match=r"none\.dev\.lock\.txt does not exist and --frozen"):
        lockgate.ensure(t, "uv", frozen=True, allow_unlocked=False, flavor="dev", lock=pytest.fail)

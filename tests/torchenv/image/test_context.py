"""The build context: the installed kit staged into the project's .torchenv/, wheels linked in."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from torchenv import kit
from torchenv.image import context as buildcontext


def test_the_kit_is_staged_from_the_installed_packages(tmp_path: Path):
    written = buildcontext.stage_kit(tmp_path)
    staged = tmp_path / ".torchenv" / "kit"
    assert (staged / "install-env.sh").read_bytes() == kit.INSTALL_SCRIPT.read_bytes()
    assert (staged / "uv-requirements.txt").is_file() and (staged / "compiler-slim.cfg").is_file()
    assert (staged / "torchsmoke" / "__main__.py").is_file()
    assert (staged / "torchsmoke" / "checks").is_dir()
    assert (staged / "torchbuild" / "torchenv.pth").is_file()
    assert not list(staged.rglob("__pycache__")) and not list(staged.rglob("*.pyc"))
    assert len(written) == len(buildcontext.kit_files())


def test_a_second_stage_writes_nothing_and_removes_what_the_kit_lacks(tmp_path: Path):
    buildcontext.stage_kit(tmp_path)
    staged = tmp_path / ".torchenv" / "kit"
    stray = staged / "torchsmoke" / "gone" / "old.py"
    stray.parent.mkdir()
    stray.write_text("x = 1\n")
    (staged / "install-env.sh").write_text("edited\n")
    written = buildcontext.stage_kit(tmp_path)
    assert written == [staged / "install-env.sh"]
    assert not stray.exists() and not stray.parent.exists()
    assert buildcontext.stage_kit(tmp_path) == []


def test_wheels_are_linked_for_one_build_then_removed(tmp_path: Path):
    given, own = tmp_path / "given", tmp_path / "wheelhouse"
    given.mkdir()
    own.mkdir()
    (given / "demo-1.0-py3-none-any.whl").write_bytes(b"not really a wheel")
    (own / "mine-2.0-py3-none-any.whl").write_bytes(b"nor this")
    staged = tmp_path / ".torchenv" / "wheelhouse"
    staged.mkdir(parents=True)
    (staged / "left-by-a-killed-build-1.0-py3-none-any.whl").write_bytes(b"")
    with buildcontext.BuildContext(tmp_path, given) as context:
        assert sorted(p.name for p in staged.iterdir()) == [
            "demo-1.0-py3-none-any.whl", "mine-2.0-py3-none-any.whl"
        ]  # fmt: skip
        assert len(context.linked) == 2
    assert list(staged.iterdir()) == []
    assert (given / "demo-1.0-py3-none-any.whl").exists()  # the user's wheels stay


def test_an_interrupted_link_leaves_no_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    given = tmp_path / "given"
    given.mkdir()
    for name in ("a-1.0-py3-none-any.whl", "b-1.0-py3-none-any.whl"):
        (given / name).write_bytes(b"")
    calls = []

    def link(src: object, dst: object) -> None:
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt
        Path(str(dst)).write_bytes(b"")

    monkeypatch.setattr(buildcontext.os, "link", link)
    with pytest.raises(KeyboardInterrupt), buildcontext.BuildContext(tmp_path, given):
        pass
    assert list((tmp_path / ".torchenv" / "wheelhouse").iterdir()) == []


def test_each_layer_gets_its_own_folder_of_locks(tmp_path: Path, monkeypatch):
    from torchenv import matrix

    for name in ("cuda13.yml", "cuda13.pip.lock.txt", "cuda13.dev.lock.txt"):
        (tmp_path / "envs").mkdir(exist_ok=True)
        (tmp_path / "envs" / name).write_text(name)
    target = dataclasses.replace(matrix.get("cuda13"), root=tmp_path)
    written = buildcontext.stage_locks(tmp_path, target)
    locks = tmp_path / buildcontext.LOCKS_DIR / "cuda13"
    assert sorted(p.relative_to(locks).as_posix() for p in written) == [
        "dev/cuda13.dev.lock.txt", "env/cuda13.pip.lock.txt", "env/cuda13.yml",
    ]  # fmt: skip
    assert (locks / "project").is_dir() and not any((locks / "project").iterdir())
    assert buildcontext.stage_locks(tmp_path, target) == []  # unchanged: nothing rewritten
    # a project lock appears: only the project's folder changes (torch's layer keeps its key)
    (tmp_path / "envs" / "cuda13.project.lock.txt").write_text("p")
    assert buildcontext.stage_locks(tmp_path, target) == [locks / "project/cuda13.project.lock.txt"]
    (tmp_path / "envs" / "cuda13.dev.lock.txt").unlink()
    buildcontext.stage_locks(tmp_path, target)
    assert (locks / "dev").is_dir() and not any((locks / "dev").iterdir())

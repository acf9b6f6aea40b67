"""Git requirements at a commit, built into wheels and locked (torchenv.lock.vcs)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from tests.support.fakerunner import FakeRunner, reply
from tests.support.localindex import build_wheel

from torchenv import matrix
from torchenv.errors import UserError
from torchenv.lock import vcs

COMMIT = "c" * 40
REQ = f"gitpkg @ git+https://u:S3CRET@git.example/o/gitpkg.git@{COMMIT}"


def target(tmp_path: Path) -> matrix.Target:
    return dataclasses.replace(matrix.get("cuda13"), root=tmp_path, files=".torchenv.d")


def pip_wheel(tag: str = "py3-none-any"):
    def run(argv):
        out = Path(argv[argv.index("--wheel-dir") + 1])
        build_wheel(out, "gitpkg", "0.3", tag=tag)
        return reply()

    return run


def test_built_once_kept_and_hashed_and_the_url_never_on_the_command_line(tmp_path):
    runner = FakeRunner({(vcs.sys.executable, "-m", "pip", "wheel"): pip_wheel()})
    built = vcs.build(target(tmp_path), REQ, runner, None)
    assert (built.name, built.version) == ("gitpkg", "0.3") and len(built.sha256) == 64
    assert built.wheel.parent == tmp_path / ".torchenv.d" / "wheels"
    assert "S3CRET" not in " ".join(runner.calls[0].args)
    again = vcs.build(target(tmp_path), REQ, FakeRunner(), None)  # sources.json: no second build
    assert again == built
    assert vcs.is_pinned_git(REQ) and not vcs.is_pinned_git("gitpkg @ git+https://h/o/r.git@main")


def test_a_platform_wheel_is_refused_in_one_line(tmp_path):
    runner = FakeRunner(
        {(vcs.sys.executable, "-m", "pip", "wheel"): pip_wheel("cp311-cp311-linux_x86_64")}
    )
    with pytest.raises(UserError, match="not a pure-Python wheel") as exc:
        vcs.build(target(tmp_path), REQ, runner, None)
    assert "S3CRET" not in str(exc.value)

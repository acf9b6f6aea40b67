"""The project's wheel and its metadata (torchenv.project.wheel)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from tests.support.fakerunner import FakeRunner, reply
from tests.support.localindex import build_wheel

from torchenv.errors import UserError
from torchenv.lock import uv_resolver
from torchenv.project import wheel

UV_FLAT_LAYOUT = """\
  × Failed to build `/p`
  ├─▶ The build backend returned an error
  ╰─▶ Call to `setuptools.build_meta.build_wheel` failed (exit status: 1)

      [stderr]
      error: Multiple top-level packages discovered in a flat-layout: ['envs', 'mypkg', 'docker'].

      hint: This usually indicates a problem with the package or the build environment.
"""


def test_the_backends_own_error_is_the_line_shown():
    assert wheel.backend_error(UV_FLAT_LAYOUT) == (
        "error: Multiple top-level packages discovered in a flat-layout: ['envs', 'mypkg', 'docker']."
    )
    assert wheel.backend_error("") == "no output"


def test_a_failed_build_is_one_line_and_the_index_goes_by_variable(tmp_path):
    runner = FakeRunner({("/opt/uv", "build"): reply("", 1, UV_FLAT_LAYOUT)})
    with pytest.raises(UserError, match=r"failed \(exit 1\): error: Multiple top-level") as exc:
        wheel.build(
            tmp_path, tmp_path / "out", runner, "/opt/uv", "https://u:S3CRET@m.example/simple"
        )
    assert "\n" not in str(exc.value)
    [call] = runner.calls
    assert "S3CRET" not in " ".join(call.args) and call.env["UV_DEFAULT_INDEX"].startswith(
        "https://u:S3CRET@"
    )


def test_the_build_gets_a_temporary_folder_of_its_own_that_goes_with_it(tmp_path):
    runner = FakeRunner({("/opt/uv", "build"): reply("", 1, UV_FLAT_LAYOUT)})
    with pytest.raises(UserError):
        wheel.build(tmp_path, tmp_path / "out", runner, "/opt/uv")
    scratch = Path(runner.calls[0].env["TMPDIR"])
    assert scratch.name.startswith("torchenv-build-") and not scratch.exists()


@pytest.mark.slow
def test_a_real_setuptools_build_leaves_nothing_in_the_hosts_temporary_folder(
    tmp_path, monkeypatch
):
    host_tmp = tmp_path / "tmp"
    host_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(host_tmp))
    project = tmp_path / "proj"
    (project / "mypkg").mkdir(parents=True)
    (project / "mypkg" / "__init__.py").write_text("")
    (project / "setup.py").write_text(
        "from setuptools import setup\nsetup(name='mypkg', version='1', packages=['mypkg'])\n"
    )
    made = wheel.build(project, tmp_path / "out", uv=uv_resolver.executable())
    assert made.name == "mypkg-1-py3-none-any.whl"
    assert list(host_tmp.iterdir()) == []  # uv leaves uv-setuptools-*.lock where TMPDIR is


def test_metadata_reads_requires_and_extras(tmp_path: Path):
    made = build_wheel(tmp_path, "mypkg", "1.0", ["tqdm>=4", 'pytest>=8; extra == "test"'])
    meta = wheel.metadata(made)
    assert (meta.name, meta.version) == ("mypkg", "1.0")
    assert meta.requires == ("tqdm>=4", 'pytest>=8; extra == "test"')

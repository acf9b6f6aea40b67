"""The project's wheel and its metadata (torchenv.project.wheel)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.fakerunner import FakeRunner, reply
from tests.support.localindex import build_wheel

from torchenv.errors import UserError
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


def test_metadata_reads_requires_and_extras(tmp_path: Path):
    made = build_wheel(tmp_path, "mypkg", "1.0", ["tqdm>=4", 'pytest>=8; extra == "test"'])
    meta = wheel.metadata(made)
    assert (meta.name, meta.version) == ("mypkg", "1.0")
    assert meta.requires == ("tqdm>=4", 'pytest>=8; extra == "test"')

"""How CI installs the kit that ran init (torchenv.scaffold.kitsource): PEP 610's direct_url.json."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest

from torchenv.scaffold import kitsource

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SHA = "b" * 64


class Installed(metadata.Distribution):
    """A torchenv 0.2.0 distribution installed as `direct` says (None: from an index)."""

    def __init__(self, direct: dict[str, object] | None) -> None:
        self.direct = direct

    def read_text(self, filename: str) -> str | None:
        if filename == "METADATA":
            return "Metadata-Version: 2.1\nName: torchenv\nVersion: 0.2.0\n"
        if filename == "direct_url.json" and self.direct is not None:
            return json.dumps(self.direct)
        return None

    def locate_file(self, path: str | Path) -> Path:
        return Path("/nowhere") / path


@pytest.fixture(autouse=True)
def _real_detect(monkeypatch):
    """The package's conftest stands the detection in for init's tests; these test it."""
    monkeypatch.undo()


def test_from_an_index_the_version_and_its_hashes(monkeypatch):
    monkeypatch.setattr(kitsource, "_index_hashes", lambda version, runner: [SHA])
    found = kitsource.detect(dist=Installed(None))
    assert f"torchenv==0.2.0 \\\n    --hash=sha256:{SHA}\n" in found.requirements
    assert "\ninvoke==" in found.requirements and found.source == "" and found.note == ""


def test_from_an_index_that_does_not_have_it_nothing_is_written(monkeypatch):
    monkeypatch.setattr(kitsource, "_index_hashes", lambda version, runner: [])
    found = kitsource.detect(dist=Installed(None))
    assert found.requirements == "" and "is not on the package index" in found.note


def test_from_a_git_url_at_a_commit():
    url = {
        "url": "https://github.example/o/torchenv.git",
        "vcs_info": {"vcs": "git", "commit_id": COMMIT},
    }
    found = kitsource.detect(dist=Installed(url))
    assert found.source == f"torchenv @ git+https://github.example/o/torchenv.git@{COMMIT}"
    assert found.note == "" and "\ninvoke==" in found.requirements
    local = {"url": "file:///src/torchenv", "vcs_info": {"vcs": "git", "commit_id": COMMIT}}
    found = kitsource.detect(dist=Installed(local))
    assert found.source.endswith(f"@{COMMIT}") and "which a CI runner cannot reach" in found.note


@pytest.mark.parametrize(
    "direct",
    [
        {"url": "file:///home/me/torchenv", "dir_info": {"editable": True}},
        {"url": "file:///tmp/torchenv-0.2.0-py3-none-any.whl", "archive_info": {}},
    ],
)
def test_from_a_local_folder_or_wheel_no_ci_files_and_one_line(direct):
    found = kitsource.detect(dist=Installed(direct))
    assert found.requirements == "" and found.source == ""
    assert (
        "which a CI runner cannot reach: the CI workflow and kit-requirements.txt were not written"
        in found.note
    )


def test_a_remote_archive_with_its_hash():
    direct = {"url": "https://files.example/torchenv-0.2.0-py3-none-any.whl",
              "archive_info": {"hashes": {"sha256": SHA}}}  # fmt: skip
    found = kitsource.detect(dist=Installed(direct))
    assert (
        f"torchenv @ https://files.example/torchenv-0.2.0-py3-none-any.whl \\\n    --hash=sha256:{SHA}"
        in found.requirements
    )

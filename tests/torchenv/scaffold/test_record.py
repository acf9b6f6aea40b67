"""The init record (torchenv.scaffold.record): what init wrote, with its hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchenv.errors import UserError
from torchenv.scaffold import record


def test_a_file_is_the_kits_while_its_bytes_are_what_the_kit_wrote():
    found = record.Record("0.2.0", {"tasks.py": record.sha256("a\n")})
    assert found.owns("tasks.py", "a\n") and not found.owns("tasks.py", "a\n# mine\n")
    assert not found.owns("noxfile.py", "a\n")  # never written by the kit


def test_it_round_trips_and_a_missing_one_is_empty(tmp_path: Path):
    rel = record.path(".torchenv.d")
    assert record.load(tmp_path, rel) == record.Record()
    (tmp_path / rel).parent.mkdir()
    written = record.Record("0.2.0", {"b": "2" * 64, "a": "1" * 64})
    (tmp_path / rel).write_text(written.dumps())
    assert record.load(tmp_path, rel) == written


@pytest.mark.parametrize("text", ["{", "[]", '{"files": {"a": 1}}', "\x00\x01"])
def test_a_damaged_record_is_one_line(tmp_path: Path, text: str):
    rel = record.path(".torchenv.d")
    (tmp_path / rel).parent.mkdir()
    (tmp_path / rel).write_text(text)
    with pytest.raises(UserError, match=r"^\.torchenv\.d/init\.json (is not|has no)") as exc:
        record.load(tmp_path, rel)
    assert "\n" not in str(exc.value)


def test_a_record_that_links_out_of_the_project_is_refused(tmp_path: Path):
    outside = tmp_path / "elsewhere.json"
    outside.write_text('{"files": {}}')
    project = tmp_path / "p"
    (project / ".torchenv.d").mkdir(parents=True)
    (project / ".torchenv.d" / "init.json").symlink_to(outside)
    with pytest.raises(UserError, match="lies outside the project"):
        record.load(project, record.path(".torchenv.d"))

from __future__ import annotations

import os

import pytest

from torchenv.files import write_atomic


def test_write_atomic_makes_folders_and_gives_the_umask_mode(tmp_path):
    path = tmp_path / "a" / "b.txt"
    write_atomic(path, "one\n")
    umask = os.umask(0)
    os.umask(umask)
    assert path.read_text() == "one\n" and path.stat().st_mode & 0o777 == 0o666 & ~umask
    write_atomic(path, "two\n")
    assert path.read_text() == "two\n"
    assert [p.name for p in path.parent.iterdir()] == ["b.txt"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "b.txt"
    path.write_text("old\n")
    with pytest.raises(TypeError):
        write_atomic(path, 3)  # type: ignore[arg-type]
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["b.txt"]

"""build-info.json: written and read by the build through torchbuild.buildinfo (no sed)."""

from __future__ import annotations

import json
import sys

from torchbuild import buildinfo


def test_write_merges_and_get_reads(tmp_path, run_module):
    path = tmp_path / "build-info.json"
    done = run_module(sys.executable, "buildinfo", "write", str(path), "target=cuda13",
                      "installer=pip", "lock=hashes")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(path.read_text()) == {
        "installer": "pip",
        "lock": "hashes",
        "target": "cuda13",
    }
    assert run_module(sys.executable, "buildinfo", "get", str(path), "lock").stdout == "hashes\n"
    buildinfo.write(path, lock="hashes+extras")
    assert buildinfo.read(path) == {"installer": "pip", "lock": "hashes+extras", "target": "cuda13"}
    assert not list(tmp_path.glob("*.tmp"))


def test_bad_use_is_a_usage_error_not_a_traceback(tmp_path, run_module):
    path = str(tmp_path / "b.json")
    for args in (["write", path, "colour=blue"], ["write", path, "novalue"], ["frob"]):
        done = run_module(sys.executable, "buildinfo", *args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, args
    assert run_module(sys.executable, "buildinfo", "get", path, "lock").stdout == "\n"
    assert buildinfo.read(tmp_path / "missing.json") == {}

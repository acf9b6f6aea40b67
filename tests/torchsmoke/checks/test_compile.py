"""The compile check: a missing compiler is a failure with the fix, --quick skips it, and a UID
without a name fails compile, quantize and export cleanly (`nameless_user`), and compiled code
runs only from a folder that allows it."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from torchsmoke.checks import export, quantize
from torchsmoke.checks.compile import (
    exec_capable_dir,
    missing_compiler,
    nameless_user,
    torch_compile,
)
from torchsmoke.core import run_check


def test_compile_without_a_compiler_fails_with_the_fix(real_env, context):
    env = replace(real_env, compilers={"cc": None, "cxx": None})
    result = run_check(torch_compile, context(env, device="cpu"))
    assert result.status == "fail"
    assert result.reason == (
        "no C compiler (cc/gcc) on PATH: torch.compile needs one; install one (Debian/Ubuntu: "
        "apt-get install g++ libc6-dev; every torchenv image has it: rebuild with `invoke build`)"
    )
    assert result.details["compilers"] == {"cc": None, "cxx": None}


def test_compile_needs_cxx_on_cpu_and_cc_on_cuda():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert "no C++ compiler" in missing_compiler({"cc": "/usr/bin/cc", "cxx": None}, cpu)
    assert missing_compiler({"cc": "/usr/bin/cc", "cxx": None}, gpu) is None
    assert "triton" in missing_compiler({"cc": None, "cxx": "/usr/bin/g++"}, gpu)
    assert missing_compiler({"cc": "/usr/bin/cc", "cxx": "/usr/bin/g++"}, cpu) is None


def test_compile_is_skipped_in_quick_mode(real_env, context):
    result = run_check(torch_compile, context(real_env, quick=True))
    assert (result.status, result.reason) == ("skip", "skipped in --quick mode")


@pytest.mark.parametrize(
    "chk", [torch_compile, quantize.quantize, export.export], ids=lambda c: c.name
)
def test_a_uid_without_a_name_fails_cleanly_with_the_fix(real_env, monkeypatch, chk, context):
    """`docker run --user 4242`: torch names its compile cache after the user, and fails."""
    import pwd

    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)

    def unknown(uid):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", unknown)
    result = run_check(chk, context(real_env, device="cpu"))
    assert result.status == "fail"
    assert result.reason.startswith(f"UID {os.getuid()} has no /etc/passwd entry")
    assert "-e USER=$(id -un)" in result.reason
    monkeypatch.setenv("USER", "alice")
    assert nameless_user() is None


def test_compile_finds_a_folder_that_lets_compiled_code_run(tmp_path: Path, monkeypatch):
    """Read-only root: /tmp may be the only writable place and noexec (Docker's --tmpfs)."""
    assert exec_capable_dir([str(tmp_path / "missing"), "", str(tmp_path)]) == str(tmp_path)
    real = os.statvfs

    class NoExec:
        def __init__(self, path):
            self.f_flag = real(path).f_flag | os.ST_NOEXEC

    monkeypatch.setattr(os, "statvfs", NoExec)
    assert exec_capable_dir([str(tmp_path)]) is None

"""The start-up hook that lets any UID run the images (torchsmoke/userenv.py).

Here on the host the hook's rules are checked one by one; tests/scenarios/test_any_uid.py proves
it in the images, as other UIDs and on a read-only root.
"""

from __future__ import annotations

import getpass
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

import torchsmoke
from torchsmoke import userenv

SRC = Path(torchsmoke.__file__).parents[1]
UID = os.getuid()


def no_entry(uid: int) -> bool:
    return False


def has_entry(uid: int) -> bool:
    return True


def test_a_uid_without_passwd_entry_gets_a_name_and_a_private_home(tmp_path: Path):
    env = {"HOME": str(tmp_path / "missing"), "TMPDIR": str(tmp_path), "PATH": "/usr/bin"}
    added = userenv.settle(env, UID, has_entry=no_entry)
    home = tmp_path / f"torchenv-home-{UID}"
    assert added == {"USER": f"uid{UID}", "LOGNAME": f"uid{UID}", "HOME": str(home)}
    assert env["HOME"] == str(home) and env["PATH"] == "/usr/bin"
    assert home.is_dir() and home.stat().st_mode & 0o777 == 0o700
    # getpass.getuser() reads LOGNAME first: it no longer needs the passwd database.
    old = {k: os.environ.get(k) for k in userenv.NAME_VARIABLES}
    try:
        for key in userenv.NAME_VARIABLES:
            os.environ.pop(key, None)
        os.environ["LOGNAME"] = env["LOGNAME"]
        assert getpass.getuser() == f"uid{UID}"
    finally:
        for key, value in old.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def test_a_second_start_reuses_the_same_home(tmp_path: Path):
    first = {"HOME": "/nonexistent", "TMPDIR": str(tmp_path)}
    second = dict(first)
    userenv.settle(first, UID, has_entry=has_entry)
    userenv.settle(second, UID, has_entry=has_entry)
    assert first["HOME"] == second["HOME"] == str(tmp_path / f"torchenv-home-{UID}")


def test_nothing_is_added_when_nothing_is_missing(tmp_path: Path):
    env = {"HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
    assert userenv.settle(env, UID, has_entry=has_entry) == {}
    assert env == {"HOME": str(tmp_path), "TMPDIR": str(tmp_path)}


@pytest.mark.parametrize("name", userenv.NAME_VARIABLES)
def test_a_name_the_caller_gave_is_kept(tmp_path: Path, name: str):
    env = {name: "alice", "HOME": str(tmp_path)}
    assert userenv.settle(env, UID, has_entry=no_entry) == {}
    assert "USER" not in env or name == "USER"


def test_a_home_taken_by_someone_else_is_not_used(tmp_path: Path):
    """On a shared /tmp (Apptainer binds the host's) the expected name may be another's trap."""
    squatted = tmp_path / f"torchenv-home-{UID}"
    squatted.mkdir(mode=0o755)
    squatted.chmod(0o755)  # not private: someone else can read and plant files there
    env = {"HOME": "/nonexistent", "TMPDIR": str(tmp_path)}
    userenv.settle(env, UID, has_entry=has_entry)
    home = Path(env["HOME"])
    assert home != squatted and home.parent == tmp_path
    assert home.name.startswith(f"torchenv-home-{UID}-") and home.stat().st_mode & 0o777 == 0o700


def test_a_symlink_in_place_of_the_home_is_not_followed(tmp_path: Path):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_path / f"torchenv-home-{UID}").symlink_to(target)
    env = {"HOME": "/nonexistent", "TMPDIR": str(tmp_path)}
    userenv.settle(env, UID, has_entry=has_entry)
    assert Path(env["HOME"]).parent == tmp_path and not Path(env["HOME"]).is_symlink()
    assert Path(env["HOME"]) != target


def test_without_any_writable_temporary_folder_home_stays(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(userenv, "temp_bases", lambda environ: [str(tmp_path / "none")])
    env = {"HOME": "/nonexistent"}
    assert userenv.settle(env, UID, has_entry=has_entry) == {}
    assert env == {"HOME": "/nonexistent"}


def test_the_startup_hook_never_raises(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(userenv, "settle", broken)
    assert userenv.at_startup() is None


def test_the_pth_line_the_images_use_runs_at_interpreter_start(tmp_path: Path):
    """The line the Dockerfiles append to the environment's torchenv.pth, in a real site dir."""
    from torchenv.image.render import STARTUP_PTH_LINE

    site_dir = tmp_path / "site"
    site_dir.mkdir()
    (site_dir / "torchenv.pth").write_text(f"{SRC}\n{STARTUP_PTH_LINE}\n")
    code = (
        "import site, sys; site.addsitedir(sys.argv[1]); import os, getpass; "
        "print(os.environ['HOME']); print(getpass.getuser())"
    )
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-S", "-c", code, str(site_dir)], env=env, capture_output=True,
        text=True, timeout=60, check=True,
    )  # fmt: skip
    home, user = done.stdout.split()
    assert home == str(tmp_path / f"torchenv-home-{UID}") and done.stderr == ""
    assert user == pwd.getpwuid(UID).pw_name  # this UID has a passwd entry: its name stays

"""The `torchenv` command (torchenv.cli), run as a user runs it: a process in a folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import REPO as ROOT

SRC = ROOT / "src"


def torchenv(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC), "HOME": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "torchenv.cli", *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


def test_init_then_stage_from_a_subfolder(tmp_path: Path):
    done = torchenv(tmp_path, "init")
    assert done.returncode == 0, done.stderr
    assert "wrote targets.toml" in done.stdout and "next: invoke lock" in done.stdout
    sub = tmp_path / "src" / "deeper"
    sub.mkdir(parents=True)
    staged = torchenv(sub, "stage")
    assert staged.returncode == 0, staged.stderr
    assert (tmp_path / ".torchenv" / "kit" / "install-env.sh").is_file()  # at the root, not here
    assert not (sub / ".torchenv").exists()
    again = torchenv(sub, "init")
    assert again.stdout.splitlines()[0] == "nothing to do: the project is set up"


def test_stage_outside_a_project_is_one_line_and_writes_nothing(tmp_path: Path):
    done = torchenv(tmp_path, "stage")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"torchenv: error: no targets.toml in {tmp_path.resolve()} or")
    assert "run `torchenv init`" in done.stderr and len(done.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_bad_flag_is_argparse_usage_not_a_traceback(tmp_path: Path):
    done = torchenv(tmp_path, "init", "--forse")
    assert done.returncode == 2 and "unrecognized arguments: --forse" in done.stderr
    assert "Traceback" not in done.stderr and list(tmp_path.iterdir()) == []


def test_the_written_tasks_load_the_kits_collection(tmp_path: Path):
    assert torchenv(tmp_path, "init").returncode == 0
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC), "HOME": str(tmp_path)}
    listed = subprocess.run(
        [sys.executable, "-m", "invoke", "--list"], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert {"build", "smoke", "lock", "verify"} <= {
        line.split()[0] for line in listed.stdout.splitlines()[2:] if line.strip()
    }
    compile((tmp_path / "noxfile.py").read_text(), "noxfile.py", "exec")


def test_version_prints_the_kits_one_version_outside_a_project(tmp_path: Path):
    import torchbuild

    done = torchenv(tmp_path, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"torchenv {torchbuild.__version__}\n" and done.stderr == ""
    assert list(tmp_path.iterdir()) == []  # it looked for no project and wrote nothing

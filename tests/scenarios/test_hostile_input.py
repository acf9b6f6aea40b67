"""Every task's --dry-run with hostile values (issue 20): spaces, quotes, newlines, `;`, `..`, and
credentials (`user:S3CRET@`, `?token=S3CRET`) in every URL field. Each run either succeeds or
ends in one line, never a traceback, and the secret is in no output.

The tasks run through invoke as subprocesses (as a user runs them), from a folder deep in a
temporary directory, so a relative path such as `../../x` stays inside it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.support import REPO

ROOT = REPO
SECRET = "S3CRET"
DIGEST_REF = f"r.example/o/cuda13@sha256:{'a' * 64}"

HOSTILE = [
    "a b",
    "it's",
    'say "hi"',
    "line1\nline2",
    "x; touch pwned",
    "../../x",
    "$(touch pwned)",
]
URLS = [
    f"https://user:{SECRET}@mirror.example/simple",
    f"https://mirror.example/simple?token={SECRET}",
    f"https://user:{SECRET}@mirror.example:8443/simple?token={SECRET}#{SECRET}",
    f"http://user:{SECRET}@mirror.example/a b",
    f"ftp://user:{SECRET}@mirror.example/simple",
    f"https://user:{SECRET}@mirror.example:99999/simple",
    f"https://mirror.example/simple?token={SECRET}\nX",
    f"mirror.example/simple?token={SECRET}",
]

# task, its fixed arguments, the flags given hostile values, the flags given URLs (the fields
# where a URL or a registry goes; k8s's --image goes into a file for a cluster)
TASKS: list[tuple[str, list[str], list[str], list[str]]] = [
    ("build", ["--target", "cuda13", "--dry-run"],
     ["--target", "--flavor", "--installer", "--ca-cert", "--wheelhouse", "--base-image",
      "--uid", "--gid", "--tag"],
     ["--index-url", "--conda-channel-alias"]),
    ("lock", ["--target", "cuda13", "--dry-run"], ["--target", "--installer"], ["--index-url"]),
    ("smoke", ["--target", "cpu", "--dry-run"],
     ["--target", "--flavor", "--image", "--args", "--reports", "--timeout", "--nodes"], []),
    ("shell", ["--target", "cpu", "--dry-run"], ["--target", "--flavor"], []),
    ("export", ["--target", "cpu", "--dry-run"],
     ["--target", "--format", "--out", "--flavor", "--image"], []),
    ("push", ["--target", "cpu", "--registry", "localhost:5000/ns", "--dry-run"],
     ["--target", "--registry", "--flavor"], ["--registry"]),
    ("k8s", ["--target", "cpu", "--image", DIGEST_REF],
     ["--target", "--nodes", "--gpus-per-node", "--image", "--flavor"], ["--image"]),
]  # fmt: skip


def cases() -> list[tuple[str, list[str]]]:
    found = []
    for task, fixed, flags, url_flags in TASKS:
        for flag, values in [*((f, HOSTILE) for f in flags), *((f, URLS) for f in url_flags)]:
            for value in values:
                args = list(fixed)
                if flag in args:  # replace the fixed value
                    args[args.index(flag) + 1] = value
                else:
                    args += [flag, value]
                found.append((task, args))
    return found


def run(task: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT), task, *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_every_dry_run_with_hostile_values_is_one_line_and_keeps_the_secret(tmp_path: Path):
    cwd = tmp_path / "a" / "b" / "c"
    cwd.mkdir(parents=True)
    todo = cases()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda case: run(case[0], case[1], cwd), todo))
    problems = []
    for (task, args), done in zip(todo, results, strict=True):
        both = done.stdout + done.stderr
        errors = [line for line in done.stderr.splitlines() if line.strip()]
        why = []
        if "Traceback" in both:
            why.append("a traceback")
        if SECRET in both:
            why.append("the secret")
        if done.returncode != 0 and len(errors) != 1:
            why.append(f"{len(errors)} lines of errors")
        if done.returncode == 0 and errors:
            why.append("exit 0 with error output")
        if why:
            problems.append(f"invoke {task} {args!r}: {', '.join(why)}: {both[-600:]!r}")
    assert not list(tmp_path.rglob("pwned")), "a value ran as a command"
    assert problems == [], "\n".join(problems)
    assert len(todo) > 150


# ---------------------------------------------------------------------------------------------
# A hostile repository (issue 31): a clone's own files try to make the kit write, delete or read
# outside the project, or print a secret. Every case is one line, and nothing outside changes.

TOKEN = "TOK3N"


def kit(cwd: Path, *argv: str, **kw) -> subprocess.CompletedProcess:
    """`torchenv ...` or `invoke ...` (argv[0]) as a user runs it in `cwd`, the kit from src/."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INVOKE_TORCHENV_")},
        "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1", **kw.pop("env", {}),
    }  # fmt: skip
    module = "torchenv.cli" if argv[0] == "torchenv" else "invoke"
    return subprocess.run(
        [sys.executable, "-m", module, *argv[1:]], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=120, check=False, **kw,
    )  # fmt: skip


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()
    }  # fmt: skip


def one_line(done: subprocess.CompletedProcess, *needles: str) -> str:
    both = done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0, both
    assert "Traceback" not in both and TOKEN not in both, both
    assert len(lines) == 1, both
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def hostile(tmp_path: Path):
    """A project set up by `torchenv init` (its cuda13 pip lock copied in: current), and a
    victim folder beside it whose files must never change."""
    project, victim = tmp_path / "project", tmp_path / "victim"
    project.mkdir()
    (victim / "kit").mkdir(parents=True)
    (victim / "kit" / "id_ed25519").write_text("PRIVATE KEY\n")
    (victim / "requirements.txt").write_text(f"secret-pkg==1.0  # TOKEN={TOKEN}\n")
    (victim / "x.whl").write_text("not a wheel\n")
    (project / "pyproject.toml").write_text('[project]\nname = "mypkg"\nversion = "1"\n')
    assert kit(project, "torchenv", "init", "--targets", "cuda13").returncode == 0
    lock = project / ".torchenv.d" / "envs" / "cuda13.pip.lock.txt"
    lock.write_bytes((ROOT / "envs" / "cuda13.pip.lock.txt").read_bytes())
    before = snapshot(victim)
    yield project, victim
    assert snapshot(victim) == before, "a file outside the project changed"


def _pyproject(project: Path, deps: str, extras: str = "") -> None:
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "mypkg"\nversion = "1"\ndependencies = {deps}\n{extras}'
    )


@pytest.mark.parametrize(
    "plant",
    [
        pytest.param(lambda p, v: (p / ".torchenv").symlink_to(v), id=".torchenv -> victim"),
        pytest.param(lambda p, v: ((p / ".torchenv").mkdir(), (p / ".torchenv" / "kit").symlink_to(v / "kit")), id=".torchenv/kit -> victim/kit"),
    ],
)  # fmt: skip
def test_a_committed_link_in_the_staging_folder_is_refused_and_nothing_outside_changes(
    hostile, plant
):
    project, victim = hostile
    plant(project, victim)
    one_line(kit(project, "torchenv", "stage"), "is a symbolic link", "remove")
    one_line(kit(project, "invoke", "build", "--target", "cuda13", "--allow-unpinned-base",
                 "--base-image", "x:1"), "is a symbolic link")  # fmt: skip


def test_a_linked_wheelhouse_is_refused(hostile):
    from torchenv.errors import UserError
    from torchenv.image.context import BuildContext

    project, victim = hostile
    (project / ".torchenv").mkdir(exist_ok=True)
    (project / ".torchenv" / "wheelhouse").symlink_to(victim)
    with pytest.raises(UserError, match=r"^\.torchenv/wheelhouse is a symbolic link"):
        BuildContext(project).__enter__()


@pytest.mark.parametrize(
    ("setup", "needles"),
    [
        pytest.param(lambda p, v: (p / "pyproject.toml").unlink() or (p / "requirements.txt").symlink_to("/proc/self/environ"), ["requirements.txt lies outside the project (through a symbolic link)"], id="requirements.txt -> /proc/self/environ"),
        pytest.param(lambda p, v: (p / "pyproject.toml").unlink() or (p / "requirements.txt").symlink_to(v / "requirements.txt"), ["requirements.txt lies outside the project"], id="requirements.txt -> ../victim"),
        pytest.param(lambda p, v: _matrix(p, 'dependencies = "/etc/passwd"'), ["'/etc/passwd'", "lies outside the project"], id="dependencies = /etc/passwd"),
        pytest.param(lambda p, v: _matrix(p, 'dependencies = "../victim/requirements.txt"'), ["lies outside the project"], id="dependencies = ../victim/requirements.txt"),
        pytest.param(lambda p, v: _pyproject(p, f'["pkg @ git+https://user:{TOKEN}@git.example/o/r.git"]'), ["https://user:***@git.example/o/r.git"], id="a token in a git URL"),
        pytest.param(lambda p, v: _pyproject(p, f'["pkg @ https://files.example/pkg.whl?token={TOKEN}"]'), ["https://files.example/pkg.whl"], id="a ?token= URL"),
        pytest.param(lambda p, v: (p / "pyproject.toml").unlink() or (p / "requirements.txt").write_text(f"--extra-index-url https://u:{TOKEN}@idx.example/simple\n"), ["https://u:***@idx.example/simple"], id="an index line with a token"),
        pytest.param(lambda p, v: (p / "pyproject.toml").unlink() or (p / "environment.yml").write_text(f"dependencies:\n  - pip:\n    - pkg @ git+https://{TOKEN}@git.example/r.git\n"), ["https://***@git.example/r.git"], id="a token in environment.yml's pip section"),
        pytest.param(lambda p, v: _pyproject(p, "[]", f'[project.optional-dependencies]\ntest = ["pkg @ git+https://u:{TOKEN}@git.example/r.git"]\n') or _matrix(p, 'extras = ["test"]'), ["https://u:***@git.example/r.git"], id="a token in an extra"),
        pytest.param(lambda p, v: _pyproject(p, "[]", 'optional-dependencies = "test"\n') or _matrix(p, 'extras = ["test"]'), ["optional-dependencies must be a table"], id="optional-dependencies as a string"),
        pytest.param(lambda p, v: _pyproject(p, '"numpy"'), ["dependencies must be a list of requirement strings"], id="dependencies as a string"),
    ],
)  # fmt: skip
def test_dependency_files_outside_the_project_and_secrets_in_them_are_one_redacted_line(
    hostile, setup, needles
):
    project, victim = hostile
    setup(project, victim)
    for argv in (["lock", "--target", "cuda13"], ["build", "--target", "cuda13", "--dry-run"]):
        one_line(kit(project, "invoke", *argv), *needles)


def _matrix(project: Path, line: str) -> None:
    path = project / "targets.toml"
    key = line.split("=", 1)[0].strip()
    text = re.sub(rf"(?m)^{key} = .*$", line, path.read_text())
    path.write_text(text)


def test_a_linked_locks_folder_is_never_written_through(hostile, tmp_path):
    project, _ = hostile
    envs, elsewhere = project / ".torchenv.d" / "envs", tmp_path / "elsewhere"
    envs.rename(elsewhere)
    envs.symlink_to(elsewhere)
    before = snapshot(elsewhere)
    one_line(kit(project, "invoke", "lock", "--target", "cuda13", "--upgrade"), "symbolic link")
    assert snapshot(elsewhere) == before


def test_a_registry_with_a_password_is_refused_without_echoing_it(hostile):
    project, _ = hostile
    done = kit(project, "invoke", "push", "--target", "cuda13", "--registry",
               f"u:{TOKEN}@ghcr.io/org", "--dry-run")  # fmt: skip
    one_line(done, "'***@ghcr.io/org' holds a user or password", "docker login")


def test_sigterm_during_a_lock_ends_the_resolver_and_leaves_no_temporary_folder(hostile, tmp_path):
    """Issue 31, case 10: the resolver (a stand-in uv that waits) is stopped with the task."""
    project, _ = hostile
    fake = tmp_path / "fakeuv"
    (fake / "uv").mkdir(parents=True)
    started = tmp_path / "uv-started"
    script = tmp_path / "uv.sh"
    script.write_text(f"#!/bin/sh\necho $$ > {started}\nexec sleep 60\n")
    script.chmod(0o755)
    (fake / "uv" / "__init__.py").write_text(f"def find_uv_bin():\n    return {str(script)!r}\n")
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INVOKE_TORCHENV_")},
        "PYTHONPATH": f"{fake}:{ROOT / 'src'}", "TMPDIR": str(temp),
    }  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "lock", "--target", "cuda13", "--upgrade"], cwd=project,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for _ in range(300):
            if started.exists() and started.read_text().strip():
                break
            time.sleep(0.1)
        assert started.exists(), "the stand-in uv never started"
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    uv_pid = int(started.read_text())
    assert proc.returncode == 130 and "interrupted" in err
    time.sleep(0.5)
    assert (
        not Path(f"/proc/{uv_pid}").exists()
        or "Z" in Path(f"/proc/{uv_pid}/stat").read_text().split()[2]
    )
    assert list(temp.iterdir()) == []


def test_a_second_lock_at_once_is_refused(hostile):
    from torchenv import files
    from torchenv.errors import UserError

    project, _ = hostile
    with files.exclusive(project, "locks", "the locks"):
        one_line(kit(project, "invoke", "lock", "--target", "cuda13"), "another torchenv process")
        with (
            pytest.raises(UserError, match="another torchenv process is working on the locks"),
            files.exclusive(project, "locks", "the locks"),
        ):
            pass

"""The kit pinned as it was installed (issue 34): `torchenv init` run by a kit installed from a git
URL at a commit, from an index, or from a local wheel, and what the CI workflow it writes then
installs, run as the workflow runs it, in a fresh venv.

Installing the kit's own dependencies needs the package index (the default one); the kit itself
comes from this checkout (a git repository at a commit, or a wheel on an index served here).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.support import REPO
from tests.support.localindex import SimpleIndex

pytestmark = [pytest.mark.slow]


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600):
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False, env={**os.environ, **(env or {})})  # fmt: skip


def venv(folder: Path) -> Path:
    """A fresh venv with a current pip, as a runner's setup-python has (the pip bundled with an
    older Python refuses `git+file:///` requirements)."""
    done = run([sys.executable, "-m", "venv", str(folder)], folder.parent)
    assert done.returncode == 0, done.stderr
    done = run(
        [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", "-U", "pip"], folder.parent
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return folder / "bin"


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, str]:
    """The kit's sources as a git repository at one commit (as a clone of it would be)."""
    repo = tmp_path_factory.mktemp("kit") / "torchenv"
    repo.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, repo / name)
    shutil.copytree(REPO / "src", repo / "src", symlinks=False,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))  # fmt: skip
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for argv in (["git", "init", "-q"], ["git", "add", "-A"], [*git, "commit", "-qm", "kit"]):
        assert run(argv, repo).returncode == 0
    commit = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    return repo, commit


def install_step(flow: dict, job: str) -> tuple[str, dict[str, str]]:
    step = next(
        s for s in flow["jobs"][job]["steps"] if s.get("name", "").startswith("Install torchenv")
    )
    return step["run"], {k: str(v) for k, v in flow["env"].items()}


def init_project(bin_: Path, folder: Path, env: dict[str, str] | None = None):
    folder.mkdir()
    (folder / "pyproject.toml").write_text('[project]\nname = "mine"\nversion = "1"\n')
    return run([str(bin_ / "torchenv"), "init", "--targets", "cpu"], folder, env)


def installed(bin_: Path) -> dict:
    code = "from importlib import metadata; d = metadata.distribution('torchenv'); print(d.read_text('direct_url.json') or '{}')"
    done = run([str(bin_ / "python"), "-c", code], bin_.parent)
    return json.loads(done.stdout)


def test_from_a_git_url_at_a_commit_the_workflow_installs_that_commit(source, tmp_path):
    repo, commit = source
    kit = venv(tmp_path / "kit")
    done = run(
        [str(kit / "pip"), "install", "-q", f"torchenv @ git+file://{repo}@{commit}"], tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    project = tmp_path / "project"
    done = init_project(kit, project)
    assert done.returncode == 0, done.stderr
    assert "which a CI runner cannot reach" in done.stdout  # git+file: said, still written
    flow = yaml.safe_load((project / ".github" / "workflows" / "torchenv.yml").read_text())
    script, env = install_step(flow, "targets")
    assert env["TORCHENV_SOURCE"] == f"torchenv @ git+file://{repo}@{commit}"
    runner = venv(tmp_path / "runner")
    done = run(["bash", "-e", "-c", script], project,
               {**env, "PATH": f"{runner}:{os.environ['PATH']}"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert installed(runner)["vcs_info"]["commit_id"] == commit


def test_from_an_index_the_version_is_installed_with_its_hash(source, tmp_path):
    repo, _ = source
    wheels = tmp_path / "wheels"
    done = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(repo)],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with SimpleIndex(wheels) as index:
        extra = {"PIP_EXTRA_INDEX_URL": index.url, "UV_INDEX": index.url}
        kit = venv(tmp_path / "kit")
        done = run([str(kit / "pip"), "install", "-q", "torchenv"], tmp_path, extra)
        assert done.returncode == 0, done.stderr[-2000:]
        assert installed(kit) == {}  # from an index: no direct_url.json
        project = tmp_path / "project"
        done = init_project(kit, project, extra)
        assert done.returncode == 0, done.stderr
        pins = (project / ".torchenv.d" / "kit-requirements.txt").read_text()
        assert "torchenv==" in pins and "--hash=sha256:" in pins
        flow = yaml.safe_load((project / ".github" / "workflows" / "torchenv.yml").read_text())
        script, env = install_step(flow, "image")
        assert env["TORCHENV_SOURCE"] == "" and "--require-hashes" in script
        runner = venv(tmp_path / "runner")
        done = run(["bash", "-e", "-c", script.split("\n")[0]], project,
                   {**env, **extra, "PATH": f"{runner}:{os.environ['PATH']}"})  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert run([str(runner / "torchenv"), "--version"], tmp_path).returncode == 0


def test_from_a_local_wheel_one_line_and_nothing_broken_is_written(source, tmp_path):
    repo, _ = source
    wheels = tmp_path / "wheels"
    done = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(repo)],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = wheels.glob("*.whl")
    kit = venv(tmp_path / "kit")
    assert run([str(kit / "pip"), "install", "-q", str(wheel)], tmp_path).returncode == 0
    project = tmp_path / "project"
    done = init_project(kit, project)
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stdout.splitlines() if "cannot reach" in line]
    assert len(notes) == 1 and "were not written" in notes[0]
    assert not (project / ".github").exists()
    assert not (project / ".torchenv.d" / "kit-requirements.txt").exists()
    assert (project / "tasks.py").is_file()  # the rest of the project's setup is there

"""The content key: each input changed once changes it; what is not in the image does not."""

import shutil
import subprocess
from pathlib import Path

import pytest
from tests.support import REPO

from torchenv import matrix
from torchenv.image import build, contentkey
from torchenv.image import context as buildcontext

PINNED = "python:3.11-slim-bookworm@sha256:" + "a" * 64


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of this repository's matrix, env files, locks and Dockerfiles, and a kit of two
    files the test may edit."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(REPO / "targets.toml", root / "targets.toml")
    for folder in ("envs", "docker"):
        shutil.copytree(REPO / folder, root / folder)
    kit = tmp_path / "kit"
    kit.mkdir()
    (kit / "install-env.sh").write_text("#!/bin/sh\n")
    (kit / "envinfo.py").write_text("print('env')\n")
    files = {"install-env.sh": kit / "install-env.sh", "torchsmoke/envinfo.py": kit / "envinfo.py"}
    monkeypatch.setattr(buildcontext, "kit_files", lambda: dict(files))
    return root


def request(root: Path, **changes) -> build.BuildRequest:
    return build.BuildRequest(target=matrix.get("cuda13", root), **changes)


def key(root: Path, wheel: Path | None = None, base_id: str = "", platform: str = "linux/amd64",
        **changes) -> str:  # fmt: skip
    return contentkey.content_key(request(root, **changes), wheel, base_id, platform)


def test_the_key_is_64_hex_digits_and_the_same_for_the_same_inputs(project):
    first = key(project)
    assert len(first) == 64 and int(first, 16) >= 0
    assert key(project) == first
    found = contentkey.inputs(request(project), platform="linux/amd64")
    assert found["format"] == contentkey.FORMAT and found["flavor"] == "runtime"
    assert {
        "kit/install-env.sh",
        "kit/torchsmoke/envinfo.py",
        "locks/env/cuda13.pip.lock.txt",
    } <= set(found)


def edit(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"# changed\n")


# Each input, changed once: (what, how). Each returns the changed key.
CHANGES = {
    "the Dockerfile": lambda root: (edit(root / "docker" / "cuda13.Dockerfile"), key(root))[1],
    "a kit file": lambda root: (edit(buildcontext.kit_files()["install-env.sh"]), key(root))[1],
    "the torch family's lock": lambda root: (edit(root / "envs" / "cuda13.pip.lock.txt"), key(root))[1],
    "the env file": lambda root: (edit(root / "envs" / "cuda13.yml"), key(root))[1],
    "a new project lock": lambda root: (
        (root / "envs" / "cuda13.project.lock.txt").write_text("einops==0.8.1\n"), key(root)
    )[1],
    "the installer": lambda root: key(root, installer="pip"),
    "the flavor": lambda root: key(root, flavor="dev"),
    "the UID": lambda root: key(root, uid=1001),
    "the GID": lambda root: key(root, gid=1001),
    "the index URL": lambda root: key(root, index_url="https://mirror.example/simple"),
    "the conda channel alias": lambda root: key(root, conda_channel_alias="https://conda.example"),
    "the base image": lambda root: key(root, base_image=PINNED),
    "the base image's ID under its tag": lambda root: key(root, base_id="sha256:" + "b" * 64),
    "the platform": lambda root: key(root, platform="linux/arm64"),
    "the local name": lambda root: key(root, tag="mine/cuda13:t"),
    "a wheel of an offline build": lambda root: (
        (root / "wheelhouse").mkdir(), (root / "wheelhouse" / "uv-0.9-py3-none-any.whl").write_bytes(b"w"),
        key(root),
    )[2],
}  # fmt: skip


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_changing_each_input_once_changes_the_key(project, change):
    before = key(project)
    assert CHANGES[change](project) != before


def test_the_projects_wheel_counts_by_its_bytes(project, tmp_path):
    wheel = tmp_path / "sample-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"one")
    with_wheel = key(project, wheel)
    assert with_wheel != key(project)
    wheel.write_bytes(b"two")
    assert key(project, wheel) != with_wheel


def test_the_dev_lock_counts_for_the_dev_flavor_only(project):
    runtime, dev = key(project), key(project, flavor="dev")
    edit(project / "envs" / "cuda13.dev.lock.txt")
    assert key(project) == runtime  # the runtime image never reads it
    assert key(project, flavor="dev") != dev


def test_the_index_urls_credentials_and_how_the_index_is_reached_stay_out(project, monkeypatch):
    plain = key(project, index_url="https://mirror.example/simple")
    assert key(project, index_url="https://ci:s3cret@mirror.example/simple") == plain
    assert "s3cret" not in str(
        contentkey.inputs(request(project, index_url="https://ci:s3cret@mirror.example/simple"))
    )
    ca = REPO / "tests" / "sample-project" / "README.md"  # any file: the CA is never read here
    assert key(project, ca_cert=ca, no_cache=True) == key(project)
    without = key(project)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert key(project) == without


def git(root: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
           "PATH": "/usr/bin:/bin", "HOME": str(root)}  # fmt: skip
    done = subprocess.run(["git", *args], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_new_commit_message_alone_keeps_the_key_and_changes_the_revision(project):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "first")
    revision, first = build.provenance(project)["REVISION"], key(project)
    git(project, "commit", "-q", "--amend", "-m", "the same tree, another message")
    assert build.provenance(project)["REVISION"] != revision  # the label would change ...
    assert key(project) == first  # ... the key does not

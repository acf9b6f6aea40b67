"""Base image digests: pinned references and `invoke refresh-digest` rewriting one line."""

from __future__ import annotations

import json

import pytest
from tests.support.fakerunner import FakeRunner, reply
from tests.support.locks import REAL_ROOT

from torchenv import matrix
from torchenv.errors import UserError
from torchenv.matrix import digests


def test_is_pinned():
    digest = "sha256:" + "0123456789abcdef" * 4
    assert digests.is_pinned(f"python:3.11-slim-bookworm@{digest}")
    assert digests.is_pinned(f"registry.example:5000/python@{digest}")
    assert not digests.is_pinned("python:3.11-slim-bookworm")
    assert not digests.is_pinned(f"python@{digest[:-1]}")
    assert not digests.is_pinned(f"python@{digest.upper()}")


NEW_DIGEST = "sha256:" + "c" * 64


def test_refresh_digest_without_registry_is_one_line_and_keeps_the_file(tree):
    runner = FakeRunner(
        {
            ("docker", "buildx"): reply(returncode=1, stderr="'buildx' is not a docker command."),
            ("docker", "pull"): reply(
                returncode=1,
                stderr="Error response from daemon: Get "
                '"https://registry.invalid/v2/": dial tcp: lookup failed\n',
            ),
        }
    )
    before = (tree / "targets.toml").read_text()
    with pytest.raises(UserError) as exc:
        digests.refresh_digest(runner=runner, root=tree)
    assert str(exc.value).startswith(
        "cannot resolve the digest of python:3.11-slim-bookworm: no registry reachable"
    )
    assert (tree / "targets.toml").read_text() == before


def test_refresh_digest_by_pull_rewrites_only_that_line(tree):
    repo_digests = json.dumps(["python@" + NEW_DIGEST, "mirror.invalid/python@sha256:" + "d" * 64])
    runner = FakeRunner(
        {
            ("docker", "pull"): reply("Status: Downloaded newer image\n"),
            ("docker", "image", "inspect"): reply(repo_digests + "\n"),
        }
    )
    toml = tree / "targets.toml"
    before = toml.read_text()
    assert digests.refresh_digest(runner=runner, root=toml.parent) == NEW_DIGEST
    changed = [
        (a, b)
        for a, b in zip(before.splitlines(), toml.read_text().splitlines(), strict=True)
        if a != b
    ]
    assert changed == [(changed[0][0], f'base_digest = "{NEW_DIGEST}"')]
    assert runner.ran("docker", "pull", "python:3.11-slim-bookworm")


def test_refresh_digest_with_buildx_for_micromamba(tree):
    runner = FakeRunner(
        {
            ("docker", "buildx", "version"): reply("github.com/docker/buildx v0.24.0\n"),
            ("docker", "buildx", "imagetools"): reply(json.dumps({"digest": NEW_DIGEST}) + "\n"),
        }
    )
    toml = tree / "targets.toml"
    digests.refresh_digest(runner=runner, key="micromamba_digest", root=toml.parent)
    assert f'micromamba_digest = "{NEW_DIGEST}"' in toml.read_text()
    assert runner.ran("docker", "buildx", "imagetools", "inspect", "mambaorg/micromamba:2.3.3")
    assert not runner.ran("docker", "pull")


def test_matrix_set_value_needs_exactly_one_line(tmp_path):
    toml = tmp_path / "targets.toml"
    text = (REAL_ROOT / "targets.toml").read_text()
    toml.write_text(text + 'base_digest = "y"\n')
    with pytest.raises(UserError, match="expected one base_digest line, found 2"):
        matrix.set_value("base_digest", "z", toml.parent)
    toml.write_text(text)
    matrix.set_value("base_digest", "sha256:" + "1" * 64, toml.parent)
    changed = toml.read_text()
    assert changed == text.replace(matrix.get("cuda13").base_digest, "sha256:" + "1" * 64)

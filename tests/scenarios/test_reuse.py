"""Images reused by content (issue 35), on the engine, with a registry this test starts
(Debian's docker-registry on 127.0.0.1, its storage in the test's folder): build cuda13 with
`--registry`, remove the image from the engine, build again: nothing is built, the image is
pulled, and it is the very image that was pushed (the same ID).

The image gets a name of this test's own (`--tag`), so the engine's other images, the session's
test images included, are left alone; what the test made (its image, the registry's copy) is
removed afterwards. About 3.5 GB go into the registry: the first push is most of the time.
"""

from __future__ import annotations

import json
import secrets
import shutil
import urllib.request

import pytest
from tests.support import localregistry

from images import build_args, docker, invoke
from torchenv.engine.labels import CONTENT_KEY, MANIFEST_LABEL

pytestmark = [pytest.mark.engine, pytest.mark.slow]
MEDIA = "application/vnd.docker.distribution.manifest.v2+json"


def registry_json(registry: str, path: str, accept: str = MEDIA) -> dict:
    url = f"http://{registry.replace('localhost', '127.0.0.1')}/v2/{path}"
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


def image_config(registry: str, repository: str, tag: str) -> dict:
    """The image configuration the registry holds for repository:tag."""
    manifest = registry_json(registry, f"{repository}/manifests/{tag}")
    return registry_json(registry, f"{repository}/blobs/{manifest['config']['digest']}", "*/*")


def test_an_unchanged_project_pulls_the_pushed_image_and_builds_nothing(docker_engine, tmp_path):
    tag = f"torchenv-reuse-test/cuda13:{secrets.token_hex(4)}"
    folder = tmp_path / "registry"
    try:
        with localregistry.running(folder) as registry:
            target = f"{registry}/reuse"
            args = ["build", *build_args(), "--tag", tag, "--registry", target]
            first = invoke(*args, timeout=3000)
            assert first.returncode == 0, (first.stdout[-4000:], first.stderr[-2000:])
            assert "BUILDKIT_INLINE_CACHE=1" in first.stdout and "--cache-from" in first.stdout
            pushed = docker(docker_engine, "image", "inspect", "--format", "{{json .}}", tag)
            facts = json.loads(pushed.stdout)
            labels = facts["Config"]["Labels"]
            key = labels[CONTENT_KEY]
            assert len(key) == 64 and labels[MANIFEST_LABEL]
            key_tag = f"key-{key[:16]}"
            assert f"torchenv: pushed {target}/cuda13:{key_tag} (sha256:" in first.stdout

            # What the registry holds: the labelled image under its key, without BuildKit's
            # cache metadata (the label step's builder drops it), and the unlabelled image as
            # the cache, with it: what the next build's --cache-from reads.
            labelled = image_config(registry, "reuse/cuda13", key_tag)
            assert labelled["config"]["Labels"][CONTENT_KEY] == key
            assert "moby.buildkit.cache.v0" not in labelled
            cache = image_config(registry, "reuse/cuda13", "cache-uv")
            assert "moby.buildkit.cache.v0" in cache
            assert cache["rootfs"] == labelled["rootfs"]  # the same layers

            localregistry.remove_image_everywhere(docker_engine.client, tag)
            assert docker(docker_engine, "image", "inspect", tag).returncode != 0
            second = invoke(*args, timeout=3000)
            assert second.returncode == 0, (second.stdout[-4000:], second.stderr[-2000:])
            out = second.stdout
            assert f"docker pull {target}/cuda13:{key_tag}" in out
            assert f"torchenv: reused {target}/cuda13:{key_tag} as {tag}" in out
            assert "no build step ran" in out and "its labels are those of the build" in out
            # no build ran: no BuildKit step, no label step, no build command
            assert "#1 [internal] load build definition" not in out
            assert " build --progress=plain" not in out and "torchenv: built" not in out
            again = docker(docker_engine, "image", "inspect", "--format", "{{.Id}}", tag)
            assert again.stdout.strip() == facts["Id"]  # the very image that was pushed
    finally:
        docker(docker_engine, "image", "rm", tag)
        shutil.rmtree(folder, ignore_errors=True)  # the registry's copy (GBs)

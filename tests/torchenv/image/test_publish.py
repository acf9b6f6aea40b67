"""Publishing by digest: references (fast), then for real against a registry on this machine
(Debian's docker-registry, started and stopped by the fixture): push, remove the local image, pull
by digest, run the quick suite from the pulled image."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from tests.support import REPO as ROOT
from tests.support import localregistry

from torchenv.errors import UserError
from torchenv.image import publish
from torchenv.matrix import get

TARGET = get("cuda13")
DIGEST = "sha256:" + "c" * 64
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.oci.image.manifest.v1+json"
)


def invoke(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def test_digest_references_are_checked():
    assert publish.parse_digest_ref(f"ghcr.io/o/cuda13@{DIGEST}") == ("ghcr.io/o/cuda13", DIGEST)
    assert publish.parse_digest_ref(f"localhost:5000/t/cuda13@{DIGEST}")[0].endswith("cuda13")
    for bad in (f"cuda13@{DIGEST[:-1]}", "ghcr.io/o/cuda13:tag", f"UPPER/x@{DIGEST}"):
        with pytest.raises(UserError, match="is not an image reference by digest"):
            publish.parse_digest_ref(bad)


def test_resolve_prefers_what_was_given_then_what_was_pushed(tmp_path):
    given = f"r.example/o/cuda13@{DIGEST}"
    assert publish.resolve_image(TARGET, given, reports=tmp_path) == (given, "by digest")
    with pytest.raises(UserError) as exc:  # issue 20, item 8: never an unqualified name
        publish.resolve_image(TARGET, None, reports=tmp_path)
    assert "no --image and no push record" in str(exc.value) and "\n" not in str(exc.value)
    record = publish.Pushed("cuda13", "runtime", TARGET.image(), "r.example/o/cuda13", "t",
                            DIGEST, f"r.example/o/cuda13@{DIGEST}", "2026-01-01T00:00:00Z")  # fmt: skip
    publish.record_path(TARGET, reports=tmp_path).write_text(json.dumps(record.__dict__))
    ref, source = publish.resolve_image(TARGET, None, reports=tmp_path)
    assert ref == record.reference and source.startswith("pushed, recorded in")


def test_registry_names():
    assert publish.remote_name(TARGET, "localhost:5000/ns") == (
        "localhost:5000/ns/cuda13",
        "2.14.1-cu130",
    )
    assert publish.remote_name(TARGET, "ghcr.io/org/sub/", "dev")[1] == "2.14.1-cu130-dev"
    for bad in ("ghcr.io", "Ghcr.io/Org", "no-namespace", "localhost:5000/"):
        with pytest.raises(UserError, match="is not HOST\\[:PORT\\]/NAMESPACE"):
            publish.remote_name(TARGET, bad)


def test_push_without_a_registry_is_one_line():
    done = invoke("push", "--target", "cuda13", timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "error: --registry is required: HOST[:PORT]/NAMESPACE, e.g. ghcr.io/my-org"
    )


# --- a real registry -------------------------------------------------------------------------


def needs_registry_binary() -> None:
    """Skip without Debian's docker-registry; fail under CI, whose .ci/run installs it."""
    if shutil.which("docker-registry") is None:
        reason = "docker-registry is not installed: apt-get install -y docker-registry"
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)


@pytest.fixture(scope="module")
def registry(docker_engine, tmp_path_factory):
    """docker-registry on 127.0.0.1:<free port>, its storage in a temporary folder; stopped and
    removed at the end of the module."""
    needs_registry_binary()
    folder = tmp_path_factory.mktemp("registry")
    try:
        with localregistry.running(folder) as address:
            yield address
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_registry_fixture_stops_what_it_started(tmp_path):
    needs_registry_binary()
    with localregistry.running(tmp_path) as address:
        port = int(address.split(":")[1])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=5) as answer:
            assert answer.status == 200
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2)


def registry_get(url: str, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, headers={"Accept": MANIFEST_TYPES})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read()


def docker(engine, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([engine.client, *args], capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


@pytest.mark.engine
@pytest.mark.slow
def test_push_pull_by_digest_and_run_the_pulled_image(
    docker_engine, cuda13_image, registry, tmp_path
):
    image_id = docker(docker_engine, "image", "inspect", "--format", "{{.Id}}", cuda13_image)
    done = invoke("push", "--target", "cuda13", "--registry", f"{registry}/torchenv",
                  "--reports", str(tmp_path))  # fmt: skip
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-2000:])
    record = json.loads((tmp_path / "pushed-cuda13.json").read_text())
    ref = done.stdout.strip().splitlines()[-1]
    assert ref == record["reference"] == f"{registry}/torchenv/cuda13@{record['digest']}"
    assert f"digest {record['digest']}" in done.stdout

    # The registry holds the manifest under that digest, and every layer it names.
    base = f"http://{registry.replace('localhost', '127.0.0.1')}/v2/torchenv/cuda13"
    status, body = registry_get(f"{base}/manifests/{record['digest']}")
    assert status == 200 and f"sha256:{hashlib.sha256(body).hexdigest()}" == record["digest"]
    layers = json.loads(body)["layers"]
    assert layers and all(
        registry_get(f"{base}/blobs/{layer['digest']}", "HEAD")[0] == 200 for layer in layers
    )

    # Remove the local image, pull it by digest, give the shared tag back to the pulled image.
    # Every tag and reference by digest (the push added one): the image is gone, not untagged.
    assert localregistry.remove_image_everywhere(docker_engine.client, cuda13_image) == (
        image_id.stdout.strip()
    )
    try:
        pulled = docker(docker_engine, "pull", ref)
        assert pulled.returncode == 0, pulled.stderr
        # The image (manifest and config) came from the registry by digest; layer bytes that
        # other local images share stay "Already exists", and the registry holds every layer
        # (checked above through its API).
        assert f"Digest: {record['digest']}" in pulled.stdout, pulled.stdout
        assert "Downloaded newer image" in pulled.stdout, pulled.stdout
    finally:
        docker(docker_engine, "tag", ref, cuda13_image)
    again = docker(docker_engine, "image", "inspect", "--format", "{{.Id}}", ref)
    assert again.stdout == image_id.stdout  # the same bytes, by digest

    done = invoke("smoke", "--target", "cuda13", "--image", ref, "--quick",
                  "--reports", str(tmp_path))  # fmt: skip
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-2000:])
    report = json.loads((tmp_path / "smoke-cuda13.json").read_text())
    assert report["summary"]["fail"] == 0 and report["summary"]["pass"] >= 10

    out = tmp_path / "job.yaml"
    done = invoke("k8s", "--target", "cuda13", "--image", ref, "--output", str(out), timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"image: {ref}" in out.read_text()


@pytest.mark.engine
def test_push_of_an_image_that_is_not_built_is_one_line(docker_engine, registry, tmp_path):
    cpu = get("cpu")
    if docker(docker_engine, "image", "inspect", cpu.image()).returncode == 0:
        pytest.skip(f"{cpu.image()} is built on this engine: nothing to prove here")
    done = invoke("push", "--target", "cpu", "--registry", f"{registry}/torchenv",
                  "--reports", str(tmp_path), timeout=120)  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        f"error: image {cpu.image()} is not built yet: run `invoke build --target cpu`"
    )
    assert not Path(tmp_path, "pushed-cpu.json").exists()


@pytest.mark.parametrize(
    "bad", ["localhost:99999/ns", "a.b:1:2/ns", "localhost:0/ns", "-x.io/ns", "x-.io/ns", "a.b/Ns", "a.b/ns/-x", "a.b/n s"]
)  # fmt: skip
def test_registries_docker_would_refuse_are_refused(bad):
    with pytest.raises(UserError, match="is not HOST\\[:PORT\\]/NAMESPACE"):
        publish.remote_name(TARGET, bad)


def test_registries_docker_accepts():
    for good in ("localhost/ns", "localhost:65535/a/b", "reg.example:5000/my-org", "a.b/x__y.z-w"):
        assert publish.remote_name(TARGET, good)[0] == f"{good}/cuda13"

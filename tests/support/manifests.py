"""Reading and comparing the manifests baked into images: what the image tests and
benchmarks/rebuild_identical.py use (the library's `invoke verify` hashes the live image instead)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import docker
from docker import DockerClient

from torchenv import engine
from torchenv.engine import labels as own_labels
from torchenv.engine.containers import read_file, tracked
from torchenv.errors import UserError
from torchenv.image.verify import BUILD_INFO_PATH, MANIFEST_PATH, by_key, check_file, compare
from torchenv.lock import lockfile as locks


def verify_manifest(manifest_bytes: bytes, label: str | None, lock: locks.Lock) -> list[str]:
    """All checks on a manifest file read from an image: label, own digests, lock."""
    manifest, problems = check_file(manifest_bytes, label)
    if manifest is None:
        return problems
    return problems + compare(manifest, lock.packages.values())


def read_image(
    image: str, client: DockerClient | None = None
) -> tuple[dict[str, bytes | None], dict[str, str]]:
    """The manifest and build-info files (None: absent) and the image's labels.

    The files are copied out of a created, never started container, which is always removed.
    """
    client = client or engine.docker_sdk_client()
    try:
        labels = client.images.get(image).labels or {}
    except docker.errors.ImageNotFound:
        raise UserError(f"no image {image}: build it first (invoke build)") from None
    files: dict[str, bytes | None] = {}
    target = labels.get(own_labels.TARGET, "unknown")
    kwargs = {
        "image": image, "command": ["/nonexistent"], "network_disabled": True,
        "labels": own_labels.of("verify", target),
    }  # fmt: skip
    with tracked(client, kwargs, image=image, target=target) as container:
        for path in (MANIFEST_PATH, BUILD_INFO_PATH):
            files[path] = read_file(container, path)
    if files[MANIFEST_PATH] is None:
        raise UserError(f"{image} has no {MANIFEST_PATH}: it was built without one; rebuild it")
    return files, labels


def diff_manifests(first: Mapping[str, Any], second: Mapping[str, Any]) -> list[str]:
    """Every difference between two manifests: distributions, versions, files and their hashes."""

    a, b = by_key(first), by_key(second)
    differences = [
        f"only in the first: {n} {a[(n, loc)]['version']}" for n, loc in sorted(a.keys() - b.keys())
    ]
    differences += [
        f"only in the second: {n} {b[(n, loc)]['version']}"
        for n, loc in sorted(b.keys() - a.keys())
    ]
    for key in sorted(a.keys() & b.keys()):
        one, two = a[key], b[key]
        name = key[0]
        if one["version"] != two["version"]:
            differences.append(f"{name}: version {one['version']} vs {two['version']}")
        files_a, files_b = one.get("files", {}), two.get("files", {})
        for path in sorted(files_a.keys() ^ files_b.keys()):
            side = "first" if path in files_a else "second"
            differences.append(f"{name}: {path} only in the {side}")
        for path in sorted(files_a.keys() & files_b.keys()):
            if files_a[path] != files_b[path]:
                differences.append(f"{name}: {path} differs")
        for field in ("installer", "missing", "modified"):
            if one.get(field) != two.get(field):
                differences.append(f"{name}: {field} {one.get(field)} vs {two.get(field)}")
    if first.get("python") != second.get("python"):
        differences.append(f"python: {first.get('python')} vs {second.get('python')}")
    return differences

"""Base image digests: is a reference pinned, and re-pinning a tag (`invoke refresh-digest`).

`refresh_digest` resolves a tag's current digest on a registry (buildx imagetools when the client
has it, else a pull) and rewrites the one line of targets.toml through `matrix.set_value`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from torchenv import matrix
from torchenv.engine import images
from torchenv.errors import UserError
from torchenv.runner import Runner, subprocess_runner


def is_pinned(ref: str) -> bool:
    """Whether an image reference is pinned by digest (NAME[:TAG]@sha256:<64 hex>)."""
    return re.fullmatch(rf"[^@\s]+@{matrix.DIGEST}", ref) is not None


_IMAGE_KEYS = {"base_digest": "base_image", "micromamba_digest": "micromamba_image"}


def _repository(ref: str) -> str:
    """`python` for `python:3.11-slim`, `docker.io/library/python@sha256:...`; no tag, no digest."""
    name = ref.split("@", 1)[0]
    slash = name.rfind("/")
    if ":" in name[slash + 1 :]:
        name = name[: name.rfind(":")]
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name


def resolve_digest(
    image_tag: str, runner: Runner = subprocess_runner, client: str = "docker"
) -> str:
    """The registry's current digest of a tag: buildx imagetools when present, else pull."""
    manifest = images.registry_manifest(client, image_tag, runner)
    if manifest is not None:
        result = manifest
        if result.ok:
            try:
                digest = json.loads(result.stdout).get("digest", "")
            except (json.JSONDecodeError, AttributeError):
                digest = ""
            return _checked_digest(image_tag, digest)
    else:
        result = images.pull(client, image_tag, runner)
        if result.ok:
            result = images.repo_digests(client, image_tag, runner)
            if result.ok:
                return _checked_digest(image_tag, _pick_repo_digest(image_tag, result.stdout))
    raise UserError(
        f"cannot resolve the digest of {image_tag}: no registry reachable "
        f"({result.first_error_line()}); refresh it where the registry is reachable, or through a "
        "registry mirror or proxy"
    )


def _pick_repo_digest(image_tag: str, stdout: str) -> str:
    try:
        digests = json.loads(stdout or "[]") or []
    except json.JSONDecodeError:
        return ""
    wanted = _repository(image_tag)
    matching = [d for d in digests if _repository(d) == wanted]
    chosen = matching or (digests if len(digests) == 1 else [])
    return chosen[0].split("@", 1)[1] if chosen and "@" in chosen[0] else ""


def _checked_digest(image_tag: str, digest: str) -> str:
    if not re.fullmatch(matrix.DIGEST, digest or ""):
        raise UserError(f"the registry gave no sha256 digest for {image_tag} (got {digest!r})")
    return digest


def refresh_digest(
    image_tag: str | None = None,
    runner: Runner = subprocess_runner,
    *,
    key: str = "base_digest",
    root: Path | None = None,
    client: str = "docker",
) -> str:
    """What `invoke refresh-digest` calls: resolve a tag's digest, rewrite targets.toml's line.

    `key` is base_digest (default) or micromamba_digest; `image_tag` defaults to the matching
    base_image / micromamba_image of targets.toml (a mirror's name for the same tag gives the
    same digest). The file is rewritten in one rename; returns the digest. UserError (one line)
    when no registry is reachable: the file is then left as it was. Regenerate afterwards
    (`invoke generate`) so the Dockerfiles carry the new digest.
    """
    if key not in _IMAGE_KEYS:
        raise UserError(f"unknown key {key!r}: choose one of {', '.join(_IMAGE_KEYS)}")
    if image_tag is None:
        image_tag = str(matrix.defaults(root).get(_IMAGE_KEYS[key]) or "")
        if not image_tag:
            raise UserError(f"{matrix.MATRIX_NAME}: no {_IMAGE_KEYS[key]} in [defaults]")
    digest = resolve_digest(image_tag, runner, client)
    matrix.set_value(key, digest, root)
    return digest

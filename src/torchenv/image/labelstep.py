"""The build's last step: labels that only the built image can tell, added on top of it.

After `docker build`, the manifest the build wrote and the environment report are copied out of
a created, never started container; then a metadata-only build `FROM <built image id>` adds the
manifest file's sha256, the GPU architectures torch has kernels for, torchenv's own labels
(`invoke clean` finds the image by them) and, for a build with a registry, the image's content
key (torchenv.image.contentkey). A rebuild that changed nothing keeps the labelled image it
already has (`already_labelled`).

That step runs the engine's own (non-BuildKit) builder, which writes a new image configuration:
BuildKit's inline cache metadata of the built image is not carried over (checked on engine
20.10), so torchenv.image.reuse pushes the unlabelled image as the registry's build cache.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from collections.abc import Sequence
from pathlib import Path

from torchenv.engine import Engine, containers, labels
from torchenv.engine.labels import (
    CONTENT_KEY,
    CREATED_LABEL,
    ENV_REPORT_PATH,
    MANIFEST_LABEL,
    MANIFEST_PATH,
)
from torchenv.errors import UserError
from torchenv.files import file_sha256
from torchenv.matrix import Target
from torchenv.runner import Runner

ARCHS_LABEL = labels.CUDA_ARCHS


def label_command(
    engine: Engine, image: str, digest: str, cuda_archs: Sequence[str] = (), project: str = "",
    content_key: str | None = None,
) -> tuple[list[str], dict[str, str]]:  # fmt: skip
    """Adds the label with the manifest file's sha256, the GPU architectures torch has kernels
    for (measured at build time: the env report's arch_list), torchenv's own labels (`invoke
    clean` finds the image by them) and the content key when there is one: a metadata-only build
    on top of the built image, named by its ID (label_dockerfile). BuildKit cannot build `FROM
    <image id>` (moby/buildkit#1105) and would look a tag up on a registry (a docker-container
    builder pulls it from Docker Hub), so this step runs the engine's own builder, which takes
    the local image by ID and pulls nothing."""
    own = labels.cli_args(labels.of_image(image, project or None))
    archs = ["--label", f"{ARCHS_LABEL}={' '.join(cuda_archs)}"] if cuda_archs else []
    key = ["--label", f"{CONTENT_KEY}={content_key}"] if content_key else []
    argv = [
        engine.client, "build", "--quiet", "--label", f"{MANIFEST_LABEL}={digest}", *archs, *key,
        *own,
    ]  # fmt: skip
    return [*argv, "--tag", image, "-"], {"DOCKER_BUILDKIT": "0"}


def label_dockerfile(image_id: str) -> str:
    return f"FROM {image_id}\n"


def manifest_read_commands(
    engine: Engine, image: str, name: str, folder: str, target: str = "", project: str = ""
) -> list[list[str]]:
    """Copy the manifest and the env report into `folder` out of a created, never started
    container (no process, no network: a third of the time `docker run` takes), then remove it.
    The container carries torchenv's labels (an interrupt between create and rm leaves what
    `invoke clean` finds) and is made from the local image only (`--pull never`)."""
    own = labels.cli_args(labels.of("manifest", target, project or None)) if target else []
    copies = [
        (MANIFEST_PATH, f"{folder}/manifest.json"),
        (ENV_REPORT_PATH, f"{folder}/env-report.json"),
    ]
    return containers.copy_out_commands(engine.client, image, name, copies, own)


def _comparable(facts: dict[str, object]) -> tuple[object, object]:
    """An image's layers and configuration, without the build time and the label step's labels."""
    config = dict(facts.get("Config") or {})  # type: ignore[call-overload]
    own = {CREATED_LABEL, MANIFEST_LABEL, ARCHS_LABEL, CONTENT_KEY}
    own |= set(labels.of_image("", "-"))
    config["Labels"] = {k: v for k, v in (config.get("Labels") or {}).items() if k not in own}
    config.pop("Image", None)  # the engine's note of the parent image, not the image
    rootfs = facts.get("RootFS") or {}
    return (rootfs.get("Layers") if isinstance(rootfs, dict) else None), config


def image_labels(facts: dict[str, object] | None) -> dict[str, str]:
    """The labels of an image's `docker image inspect` facts ({} for none)."""
    config = (facts or {}).get("Config")
    found = (config.get("Labels") or {}) if isinstance(config, dict) else {}
    return {str(k): str(v) for k, v in found.items()}


def already_labelled(
    previous: dict[str, object] | None, built: dict[str, object], content_key: str | None = None
) -> str | None:
    """The manifest sha256 of `previous` when it is the labelled form of the image just built:
    the same layers and configuration, only the build time differing (a rebuild with nothing
    changed), and the same content key label when the build has one. Then the earlier image is
    kept as it is, and the label step is not needed."""
    if previous is None:
        return None
    found = image_labels(previous)
    digest = found.get(MANIFEST_LABEL)
    if not digest or _comparable(previous) != _comparable(built):
        return None
    if content_key is not None and found.get(CONTENT_KEY) != content_key:
        return None
    return str(digest)


def archs_of_report(text: str | None) -> list[str]:
    """The env report's arch_list (torch's kernel architectures); [] for a CPU build or no report."""
    try:
        found = json.loads(text or "{}")["env"]["torch"].get("arch_list") or []
    except (ValueError, KeyError, TypeError, AttributeError):
        return []
    return [str(a) for a in found if re.fullmatch(r"(?:sm|compute)_[0-9]+[a-z]?", str(a))]


def label(
    runner: Runner, engine: Engine, image: str, built: str, target: Target,
    content_key: str | None = None,
) -> str:  # fmt: skip
    """The label step on the built image `built` (an ID), tagged `image`; returns the manifest
    file's sha256. UserError (one line) when it fails."""
    project = target.image_repo
    file_sha, cuda_archs = manifest_file_sha256(runner, engine, built, target, project)
    label_argv, label_env = label_command(engine, image, file_sha, cuda_archs, project, content_key)
    labelled = runner(label_argv, env=label_env, input=label_dockerfile(built))
    if not labelled.ok:
        last = (labelled.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"labelling {image} failed: {last}")
    return file_sha


def manifest_file_sha256(
    runner: Runner, engine: Engine, image: str, target: Target, project: str
) -> tuple[str, list[str]]:
    """The sha256 of the manifest file's bytes and the env report's kernel architectures, copied
    out of a created, never started container."""
    name = f"torchenv-manifest-{os.getpid()}-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="torchenv-manifest-") as tmp:
        dest = Path(tmp) / "manifest.json"
        create, copy, copy_report, remove = manifest_read_commands(
            engine, image, name, tmp, target.name, project
        )
        done = runner(create, timeout=120)
        try:
            if done.ok:
                done = runner(copy, timeout=300)
            if done.ok:
                runner(copy_report, timeout=120)
        finally:
            runner(remove, timeout=120)
        if not done.ok or not dest.is_file():
            raise UserError(f"{image} has no readable {MANIFEST_PATH}: {done.stderr.strip()[:200]}")
        report = dest.with_name("env-report.json")
        archs = archs_of_report(report.read_text() if report.is_file() else None)
        return file_sha256(dest), archs

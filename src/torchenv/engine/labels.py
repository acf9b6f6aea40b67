"""What describes a built image and what torchenv makes on the engine: the labels it puts on
them, so that `invoke clean` finds them, and where a built image keeps its records (the manifest,
the environment report). The one place these names are written down.

Every image torchenv builds and every container and network it starts carries
`io.torchenv.managed=true` and `io.torchenv.target=<target>`; a container or network also
carries `io.torchenv.<role>=<target>` (role: smoke, shell, verify, ...). A built image also
carries `io.torchenv.tag=<the tag the build gave it>`: an image built FROM a torchenv image
inherits every label, but not that tag, which is how `invoke clean` tells the two apart. Each
also carries `io.torchenv.project=<image_repo>`, the project that made it: `invoke clean` acts
on its own project's alone.
"""

from __future__ import annotations

MANAGED = "io.torchenv.managed"
TARGET = "io.torchenv.target"
TAG = "io.torchenv.tag"
PROJECT = "io.torchenv.project"
PREFIX = "io.torchenv."
# The GPU architectures torch has kernels for in a built image (the build measures them, from the
# env report; torchenv.doctor.gpufit compares them with the host's GPUs).
CUDA_ARCHS = "io.torchenv.cuda-archs"
# The build's record of every installed file (torchbuild.manifest), and its sha256 as a label.
MANIFEST_PATH = "/opt/torchenv/manifest.json"
MANIFEST_LABEL = "io.torchenv.manifest.sha256"
# The environment report the build runs (torchsmoke.envinfo), read for the kernel architectures.
ENV_REPORT_PATH = "/opt/torchenv/env-report.json"
CREATED_LABEL = "org.opencontainers.image.created"
REVISION_LABEL = "org.opencontainers.image.revision"
# The image's content key (torchenv.image.contentkey): a build with a registry labels its image
# with it, and a pulled image says by it which inputs made it.
CONTENT_KEY = "io.torchenv.content-key"


def role_key(role: str) -> str:
    """The label key naming a container's or network's role: io.torchenv.<role>."""
    return f"{PREFIX}{role}"


def of(role: str, target: str, project: str | None = None) -> dict[str, str]:
    """The labels of a container or network that torchenv starts for `target` in `role`, for
    `project` (its image_repo)."""
    found = {MANAGED: "true", TARGET: target, role_key(role): target}
    return {**found, PROJECT: project} if project else found


def of_image(tag: str, project: str | None = None) -> dict[str, str]:
    """The labels the build's last step adds to an image it tagged `tag` for `project`."""
    return {MANAGED: "true", TAG: tag, **({PROJECT: project} if project else {})}


def cli_args(labels: dict[str, str]) -> list[str]:
    """`--label key=value` for each label, for docker CLI commands."""
    return [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]

"""Images on the engine: whether one exists, its ID, the untagged ones, and the one "image not
built" error.

The CLI way (`inspect_image`, `image_exists`, `require_image`) serves the modules that reach the
engine through the Runner (build, shell, export); `get_image` serves those holding an SDK client
(smoke, multi-node, publish).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from torchenv.engine.registry import pull_command, tag_command, untag_command
from torchenv.errors import UserError
from torchenv.runner import NOT_FOUND, Result, Runner, subprocess_runner

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.images import Image


def build_command(target: str, flavor: str = "runtime") -> str:
    """The command that builds `target`'s image of `flavor`."""
    return f"invoke build --target {target}" + (
        "" if flavor == "runtime" else f" --flavor {flavor}"
    )


class ImageNotBuilt(UserError):
    """The engine has no `image`: one line naming it and the command that builds it."""

    def __init__(self, image: str, target: str, flavor: str = "runtime") -> None:
        self.image = image
        self.fix = build_command(target, flavor)
        super().__init__(f"image {image} is not built yet: run `{self.fix}`")


def is_missing(error_line: str) -> bool:
    """Whether the CLI's error line says the image is not there."""
    return "No such image" in error_line or "No such object" in error_line


def inspect_image(client: str, image: str, runner: Runner = subprocess_runner) -> Result:
    """`docker image inspect` for an image's ID: ok (the ID on stdout) when the engine has it."""
    return runner([client, "image", "inspect", "--format", "{{.Id}}", image], timeout=60)


def image_exists(client: str, image: str, runner: Runner = subprocess_runner) -> bool:
    return inspect_image(client, image, runner).ok


def image_id(client: str, image: str, runner: Runner = subprocess_runner) -> str | None:
    """The image's ID (sha256:...), or None when the engine does not have it."""
    found = inspect_image(client, image, runner)
    return found.stdout.strip() or None if found.ok else None


def facts(client: str, image: str, runner: Runner = subprocess_runner) -> dict[str, object] | None:
    """`docker image inspect` of one image as a dict; None when there is no such image."""
    done = runner([client, "image", "inspect", image], timeout=60)
    if not done.ok:
        return None
    try:
        found = json.loads(done.stdout)
    except ValueError:
        return None
    return found[0] if isinstance(found, list) and found and isinstance(found[0], dict) else None


def tag(client: str, source: str, name: str, runner: Runner = subprocess_runner) -> None:
    """`docker tag`: `name` names the image `source` again; UserError with the engine's line."""
    done = runner(tag_command(client, source, name), timeout=60)
    if not done.ok:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"tagging {name} again failed: {last}")


def remove(client: str, image: str, runner: Runner = subprocess_runner) -> bool:
    """`docker image rm` (never forced: an image a container or tag still uses stays)."""
    return runner(untag_command(client, image), timeout=120).ok


def config(client: str, image: str, runner: Runner = subprocess_runner) -> dict[str, object]:
    """The image's config (User, Labels ...); UserError when there is no such image here."""
    done = runner([client, "image", "inspect", "--format", "{{json .Config}}", image], timeout=60)
    if done.returncode == NOT_FOUND:
        raise UserError(f"{client} not found: install Docker (apt-get install docker.io)")
    if not done.ok:
        raise UserError(
            f"no image {image} on this engine: build it (invoke build) or pull it "
            f"(docker pull {image}) first"
        )
    found = json.loads(done.stdout or "{}")
    return found if isinstance(found, dict) else {}


def registry_manifest(client: str, ref: str, runner: Runner = subprocess_runner) -> Result | None:
    """`docker buildx imagetools inspect` of a reference on its registry (JSON of its manifest
    descriptor); None when the client has no buildx."""
    if not runner([client, "buildx", "version"], timeout=30).ok:
        return None
    inspect = ["buildx", "imagetools", "inspect", ref, "--format", "{{json .Manifest}}"]
    return runner([client, *inspect], timeout=300)


def pull(client: str, ref: str, runner: Runner = subprocess_runner) -> Result:
    return runner(pull_command(client, ref), timeout=900)


def repo_digests(client: str, image: str, runner: Runner = subprocess_runner) -> Result:
    """`docker image inspect` of a local image's RepoDigests (a JSON list on stdout)."""
    return runner(
        [client, "image", "inspect", "--format", "{{json .RepoDigests}}", image], timeout=60
    )


def dangling_ids(client: str, runner: Runner = subprocess_runner) -> set[str]:
    """IDs of the engine's untagged (`<none>`) images; empty when the engine does not answer."""
    done = runner(
        [client, "image", "ls", "--quiet", "--no-trunc", "--filter", "dangling=true"], timeout=60
    )
    return set(done.stdout.split()) if done.ok else set()


def require_image(
    client: str, image: str, target: str, flavor: str = "runtime",
    runner: Runner = subprocess_runner,
) -> None:  # fmt: skip
    """Nothing when the engine has `image`; ImageNotBuilt when it does not; UserError otherwise."""
    found = inspect_image(client, image, runner)
    if found.returncode == NOT_FOUND:
        raise UserError(f"cannot run the Docker client {client}: {found.first_error_line()}")
    if not found.ok:
        text = found.first_error_line()
        if is_missing(text):
            raise ImageNotBuilt(image, target, flavor)
        raise UserError(f"cannot inspect {image}: {text}")


def get_image(client: DockerClient, image: str, target: str, flavor: str = "runtime") -> Image:
    """The SDK's image `image`; ImageNotBuilt when the engine does not have it."""
    import docker.errors

    try:
        return client.images.get(image)
    except docker.errors.ImageNotFound:
        raise ImageNotBuilt(image, target, flavor) from None


def image_label(client: DockerClient, image: str, key: str) -> str | None:
    """A label of a local image (the SDK); None when the image or the label is not there."""
    import docker.errors

    try:
        value = client.images.get(image).labels.get(key)
    except docker.errors.DockerException:
        return None
    return str(value) if value is not None else None

"""`invoke push`: publish a target's image to a registry and record its digest; image references
by digest (`NAME@sha256:<64 hex>`) for `invoke k8s` and `invoke export`.

The image is tagged `<registry>/<target>:<tag>` (registry = HOST[:PORT]/NAMESPACE), pushed with
the Docker engine (its credentials: `docker login` first), untagged again, and the reference by
digest is written to `reports/pushed-<target>[-dev].json`. A digest names the bytes: the same
reference pulls the same image on every node.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torchenv.engine.images import get_image
from torchenv.engine.sdk import CallFailed, sdk_errors
from torchenv.errors import UserError
from torchenv.files import write_atomic
from torchenv.matrix import Target

if TYPE_CHECKING:  # docker is imported lazily at run time
    from torchenv.engine.sdk import DockerClient

DIGEST_REF = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9._/:-]*[a-z0-9])@(?P<digest>sha256:[0-9a-f]{64})$"
)
# NAME[:TAG] loosely (Docker checks the rest): lowercase name parts, a tag of word characters.
TAG_REF = re.compile(
    r"^[a-z0-9][a-z0-9._/-]*(?::[0-9]{1,5}/[a-z0-9._/-]+)?(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"
)
# HOST[:PORT]/NAMESPACE[/MORE], as Docker's reference grammar has it: host labels of letters,
# digits and inner hyphens joined by dots, one optional port (1-65535, checked in remote_name);
# a host with a dot or a port, or localhost; lowercase path parts `[a-z0-9]+([._-][a-z0-9]+)*`.
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
REGISTRY = re.compile(
    rf"^(?P<host>{_LABEL}(?:\.{_LABEL})*)(?::(?P<port>[0-9]{{1,5}}))?"
    r"(?P<path>(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+)$"
)


@dataclass(frozen=True)
class Pushed:
    target: str
    flavor: str
    image: str  # the local image that was pushed
    repository: str  # where it went
    tag: str
    digest: str  # sha256:...
    reference: str  # repository@digest
    pushed_at: str


def parse_digest_ref(text: str) -> tuple[str, str]:
    """(name, digest) of `NAME@sha256:<64 hex>`; UserError (one line) for anything else."""
    match = DIGEST_REF.match(text.strip())
    if not match:
        from torchenv.credentials import public_url

        raise UserError(
            f"{public_url(text)!r} is not an image reference by digest: give NAME@sha256:<64 hex digits> "
            "(`invoke push` prints one)"
        )
    return match["name"], match["digest"]


def is_digest_ref(text: str) -> bool:
    return "@" in text


def record_path(target: Target, flavor: str = "runtime", reports: Path | None = None) -> Path:
    """Where `invoke push` records the pushed reference (`reports` None: the project's
    reports/)."""
    suffix = "" if flavor == "runtime" else f"-{flavor}"
    folder = target.root / "reports" if reports is None else reports
    return folder / f"pushed-{target.name}{suffix}.json"


def read_record(
    target: Target, flavor: str = "runtime", reports: Path | None = None
) -> Pushed | None:
    path = record_path(target, flavor, reports)
    if not path.exists():
        return None
    try:
        return Pushed(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError):
        raise UserError(f"{path} is not a push record: remove it and run `invoke push`") from None


def resolve_image(
    target: Target, image: str | None, flavor: str = "runtime", reports: Path | None = None
) -> tuple[str, str]:
    """The image reference for a cluster and where it came from.

    `image` given: a reference by digest is checked (NAME@sha256:...), a tag is kept as given.
    Not given: the digest `invoke push` recorded for the target, else UserError: the local tag
    names no registry, and an unqualified name resolves to Docker Hub.
    """
    if image:
        if is_digest_ref(image):
            parse_digest_ref(image)
            return image, "by digest"
        if not TAG_REF.match(image):
            from torchenv.credentials import public_url

            raise UserError(
                f"--image {public_url(image)!r} is not an image reference: give "
                "NAME@sha256:<64 hex digits> (`invoke push` prints one) or NAME:TAG"
            )
        return image, "by tag (a tag can move: prefer the digest `invoke push` prints)"
    record = read_record(target, flavor, reports)
    if record is not None:
        parse_digest_ref(record.reference)
        return record.reference, f"pushed, recorded in {record_path(target, flavor, reports)}"
    raise UserError(
        f"no --image and no push record ({record_path(target, flavor, reports).name}) for "
        f"{target.name}: the local name {target.image(flavor)} names no registry, so a cluster "
        "would pull it from Docker Hub (someone else's namespace): run `invoke push --target "
        f"{target.name} --registry HOST/NAMESPACE` first, or give --image NAME@sha256:..."
    )


def check_registry(registry: str, flag: str = "--registry") -> str:
    """`registry` (HOST[:PORT]/NAMESPACE) without a trailing slash; UserError (one line) for
    anything else, and for a user or password in it (credentials are the engine's own: docker
    login), which the line never repeats."""
    registry = registry.strip().rstrip("/")
    if "@" in registry.split("/", 1)[0] or "@" in registry.split("://", 1)[-1].split("/", 1)[0]:
        from torchenv.credentials import redact_text

        raise UserError(
            f"{flag} {redact_text(registry.split('://', 1)[-1])!r} holds a user or password: "
            "a registry takes none in its name; log in first (docker login HOST), then give "
            "HOST[:PORT]/NAMESPACE"
        )
    match = REGISTRY.match(registry)
    if match and not (
        (match["port"] is None or 1 <= int(match["port"]) <= 65535)
        and ("." in match["host"] or match["port"] or match["host"] == "localhost")
    ):
        match = None
    if not match:
        from torchenv.credentials import public_url

        raise UserError(
            f"{flag} {public_url(registry)!r} is not HOST[:PORT]/NAMESPACE in lowercase "
            "(e.g. ghcr.io/my-org or localhost:5000/torchenv)"
        )
    return registry


def remote_name(target: Target, registry: str, flavor: str = "runtime") -> tuple[str, str]:
    """(repository, tag) for the target's image at `registry` (HOST[:PORT]/NAMESPACE)."""
    registry = check_registry(registry)
    local = target.image(flavor)
    return f"{registry}/{target.name}", local.rsplit(":", 1)[1]


def describe(target: Target, registry: str, flavor: str = "runtime") -> list[str]:
    """The equivalent docker CLI lines (for --dry-run)."""
    repository, tag = remote_name(target, registry, flavor)
    remote = f"{repository}:{tag}"
    return [
        f"docker tag {target.image(flavor)} {remote}",
        f"docker push {remote}",
        f"docker image rm {remote}",
        f"# then: the digest the push printed, recorded in {record_path(target, flavor).name}",
    ]


def push(
    target: Target, registry: str, client: DockerClient, flavor: str = "runtime",
    reports: Path | None = None, out: Callable[[str], object] = print,
) -> Pushed:  # fmt: skip
    """Tag, push, untag; record and return the reference by digest. UserError (one line)."""
    repository, tag = remote_name(target, registry, flavor)
    local = target.image(flavor)
    image = get_image(client, local, target.name, flavor)
    image.tag(repository, tag)
    digest = None
    try:
        with sdk_errors():
            for event in client.api.push(repository, tag=tag, stream=True, decode=True):
                if "error" in event:
                    detail = event.get("errorDetail", {}).get("message") or event["error"]
                    raise UserError(f"push to {repository} failed: {detail.strip()}")
                if "aux" in event and "Digest" in event["aux"]:
                    digest = event["aux"]["Digest"]
                status = event.get("status", "")
                if status and "id" not in event:
                    out(status)
    except CallFailed as exc:
        raise UserError(f"push to {repository} failed: {exc.text}") from None
    finally:
        client.images.remove(f"{repository}:{tag}", noprune=True)
    if not digest:
        raise UserError(f"the registry at {registry} returned no digest for {repository}:{tag}")
    pushed = Pushed(
        target=target.name, flavor=flavor, image=local, repository=repository, tag=tag,
        digest=digest, reference=f"{repository}@{digest}",
        pushed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )  # fmt: skip
    write_atomic(record_path(target, flavor, reports), json.dumps(asdict(pushed), indent=2) + "\n")
    return pushed

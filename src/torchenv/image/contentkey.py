"""A target image's content key: one sha256 over every input that reaches the image's files, so
that an image built once is found again on a registry instead of being built again
(torchenv.image.reuse).

What goes in (`inputs`, each a line "name: value", sorted):

- `dockerfile`: the rendered Dockerfile's bytes (the build refuses one that is not current);
- `kit/...`: every kit file the build stages into `.torchenv/kit/` (torchenv.image.context);
- `locks/<layer>/...`: the staged locks the flavor's steps read (the torch family's env file and
  locks, the project's lock; the dev lock for the dev flavor only);
- `package/<wheel>`: the project's wheel's bytes, when its package is the image's last layer;
- `wheelhouse/<wheel>`: the name and size of each wheel of an offline build (every install
  checks the lock's hashes, so the bytes are the lock's);
- `base`: the base image reference (pinned by digest), and for a base given by tag alone the
  ID the engine has for that tag (`base-id`), since a tag can move (none when the engine does not
  have it yet: the build pulls it);
- the build arguments that change bytes: `installer`, `flavor`, `uid`, `gid`, the index URL's
  public part (`index-url`: never its user or token), `conda-channel-alias`; the base override is
  `base` itself;
- `image` and `project`: the local name and the project, which the image's labels
  `io.torchenv.tag` and `io.torchenv.project` carry (`invoke clean` reads them);
- `platform`: the engine's OS/architecture: an arm64 build is another image;
- `format`: this scheme's version, so that a kit that hashes otherwise never meets old keys.

Left out on purpose: the provenance labels (source, revision, created: a commit that changes
nothing the image holds keeps the key, and a reused image keeps the labels of the build that
made it), the CA bundle and the proxies (how the index is reached, not what it serves), the
index URL's credentials.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from torchenv.files import file_sha256
from torchenv.image import context
from torchenv.image.build import BuildRequest

FORMAT = "torchenv-content-key/1"
SHORT = 16  # hex digits of the key in a registry tag: key-<16 hex>


def _layers(flavor: str) -> tuple[str, ...]:
    """The staged lock folders the flavor's install steps read."""
    return ("env", "project", "dev") if flavor == "dev" else ("env", "project")


def inputs(
    req: BuildRequest, wheel: Path | None = None, base_id: str = "", platform: str = ""
) -> dict[str, str]:
    """Every input of the image `req` builds, by name (see the module's docstring); `wheel` is
    the project's staged wheel when its package goes in, `base_id` the engine's ID of a base
    given by tag alone, `platform` the engine's OS/architecture."""
    t = req.target
    index = req.index
    found = {
        "format": FORMAT,
        "dockerfile": file_sha256(t.dockerfile),
        "base": req.base,
        "installer": req.installer,
        "flavor": req.flavor,
        "uid": str(req.uid),
        "gid": str(req.gid),
        "index-url": index.public if index is not None else "",
        "conda-channel-alias": req.conda_channel_alias or "",
        "image": req.image,
        "project": t.image_repo,
        "platform": platform,
    }
    if base_id:
        found["base-id"] = base_id
    for rel, source in context.kit_files().items():
        found[f"kit/{rel}"] = file_sha256(source)
    for rel, source in context.lock_files(t).items():
        if rel.split("/", 1)[0] in _layers(req.flavor):
            found[f"locks/{rel}"] = file_sha256(source)
    if wheel is not None:
        found[f"package/{wheel.name}"] = file_sha256(wheel)
    staged = context.BuildContext(t.root, req.wheelhouse, t)
    for folder in staged.wheel_sources():
        for path in sorted(folder.glob("*.whl")):
            found.setdefault(f"wheelhouse/{path.name}", str(path.stat().st_size))
    return found


def key_of(found: Mapping[str, str]) -> str:
    """The sha256 (64 hex digits) of the inputs, each a line `name: value` in name order."""
    text = "".join(f"{name}: {found[name]}\n" for name in sorted(found))
    return hashlib.sha256(text.encode()).hexdigest()


def content_key(
    req: BuildRequest, wheel: Path | None = None, base_id: str = "", platform: str = ""
) -> str:
    return key_of(inputs(req, wheel, base_id, platform))

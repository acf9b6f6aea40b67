"""`invoke build --registry HOST[:PORT]/NAMESPACE`: images reused by content.

The image's content key (torchenv.image.contentkey) names it on the registry:

    <registry>/<target>:key-<16 hex>[-dev]       the image, labelled (what a pull gives)
    <registry>/<target>:cache-<installer>[-dev]  the last build's unlabelled image: its layers
                                                 and BuildKit's inline cache metadata

1. The engine has an image of that key under the local name already: nothing is built (it is
   pushed again, which costs a few requests when the registry has it).
2. Else the image of that key is pulled and takes the local name: no build step runs, and the
   image keeps the labels of the build that made it (its revision and time, said in the output).
3. Else (the registry has none: a dependency changed, or nothing was pushed yet) the image is
   built with BuildKit's inline cache (`--build-arg BUILDKIT_INLINE_CACHE=1`) and the registry's
   cache images as `--cache-from`, so the torch family's steps come from the registry when only
   the project's layers changed; then both images are pushed (`--no-push`: neither).

Why a cache image beside the image: the label step (torchenv.image.labelstep) is a build by the
engine's own builder, which writes a new image configuration without BuildKit's cache metadata;
the image it labels (same layers) keeps it, so that one is pushed as the cache, a manifest and a
configuration more on the registry. `--no-cache` builds from nothing, pulls nothing, and pushes.

Credentials are the engine's (`docker login HOST`); a registry given with a user or password is
refused in one line (torchenv.image.publish.check_registry).
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from torchenv.engine import Engine, images
from torchenv.engine import registry as remote
from torchenv.engine.interrupts import sigterm_as_ctrl_c
from torchenv.engine.labels import CONTENT_KEY, CREATED_LABEL, REVISION_LABEL
from torchenv.errors import UserError
from torchenv.image import build as builds
from torchenv.image import contentkey, labelstep
from torchenv.image import package as projectpkg
from torchenv.image.publish import check_registry
from torchenv.matrix.digests import is_pinned
from torchenv.runner import Runner, subprocess_runner


@dataclass(frozen=True)
class Refs:
    """Where an image of one content key lives on a registry."""

    key: str  # the content key (64 hex digits; "KEY" in a dry run that cannot know it yet)
    image: str  # <registry>/<target>:key-<16 hex>[-dev]
    cache: str  # <registry>/<target>:cache-<installer>[-dev], what this build pushes as cache
    cache_from: tuple[str, ...]  # this flavor's cache, then the other flavor's (same lower steps)


def refs(req: builds.BuildRequest, registry: str, key: str) -> Refs:
    repository = f"{registry}/{req.target.name}"
    dev = req.flavor == "dev"
    own = f"{repository}:cache-{req.installer}{'-dev' if dev else ''}"
    other = f"{repository}:cache-{req.installer}{'' if dev else '-dev'}"
    image = f"{repository}:key-{key[: contentkey.SHORT]}{'-dev' if dev else ''}"
    return Refs(key, image, own, (own, other))


def check(registry: str | None, no_push_given: bool = False) -> None:
    """Refuse, before anything runs, a registry that is not HOST[:PORT]/NAMESPACE or holds
    credentials, and --no-push without a registry."""
    if registry:
        check_registry(registry)
    elif no_push_given:
        raise UserError("--no-push goes with --registry HOST[:PORT]/NAMESPACE: give one")


def build(
    req: builds.BuildRequest, engine: Engine, registry: str | None, *, push: bool = True,
    dry_run: bool = False, runner: Runner = subprocess_runner, out: Callable[[str], None] = print,
) -> list[str]:  # fmt: skip
    """`invoke build`: with a registry, `run`; without, the build alone (builds.run_build)."""
    if not registry:
        return builds.run_build(req, engine, dry_run=dry_run, runner=runner, out=out)
    return run(req, engine, registry, push=push, dry_run=dry_run, runner=runner, out=out)


def run(
    req: builds.BuildRequest, engine: Engine, registry: str, *, push: bool = True,
    dry_run: bool = False, runner: Runner = subprocess_runner, out: Callable[[str], None] = print,
) -> list[str]:  # fmt: skip
    """Reuse, or build and push, the image `req` asks for (see the module's docstring); returns
    the commands (the plan, for a dry run). UserError (one line) for a bad registry, a failed
    build or push."""
    registry = check_registry(registry)
    with sigterm_as_ctrl_c():
        return _run(req, engine, registry, push, dry_run, runner, out)


def _key(
    req: builds.BuildRequest, engine: Engine, wheel: projectpkg.Wheel | None, runner: Runner
) -> str:
    client = engine.client
    base_id = "" if is_pinned(req.base) else images.image_id(client, req.base, runner) or ""
    found = contentkey.inputs(
        req, wheel.path if wheel else None, base_id, remote.platform(client, runner)
    )
    return contentkey.key_of(found)


def _run(
    req: builds.BuildRequest, engine: Engine, registry: str, push: bool, dry_run: bool,
    runner: Runner, out: Callable[[str], None],
) -> list[str]:  # fmt: skip
    builds.validate(req)
    client, root = engine.client, req.target.root
    package = builds.package_layer(req)
    if dry_run:
        key = "KEY" if package else _key(req, engine, None, runner)
        return plan(req, engine, refs(req, registry, key), push, runner)
    wheel = projectpkg.build_wheel(root, runner) if package else None
    r = refs(req, registry, _key(req, engine, wheel, runner))
    have = images.facts(client, req.image, runner)
    if not req.no_cache and labelstep.image_labels(have).get(CONTENT_KEY) == r.key:
        out(f"torchenv: {req.image} is the image of content key {r.key[:16]} already: no build")
        if push:
            out(f"torchenv: pushed {r.image} ({_push(client, req.image, r.image, runner, out)})")
        return []
    if not req.no_cache:
        out(f"torchenv: {shlex.join(remote.pull_command(client, r.image))}")
        pulled = remote.pull(client, r.image, runner, on_line=lambda line: out(line.rstrip()))
        says = labelstep.image_labels(images.facts(client, r.image, runner)).get(CONTENT_KEY)
        if pulled.ok and says == r.key:
            _take(req, engine, r, have, runner, out)
            return []
        if pulled.ok:  # not what its name says: built again, and pushed over it
            images.remove(client, r.image, runner)
        why = (
            f"its image says content key {says or 'none'}" if pulled.ok
            else "it has none yet" if pulled.missing else f"cannot pull it: {pulled.reason}"
        )  # fmt: skip
        out(f"torchenv: no image of content key {r.key[:16]} from the registry ({why}): building")

    def pushed(built: str, final: str) -> None:
        if push:
            digest = _push(client, final, r.image, runner, out)
            remote.push(client, built, r.cache, runner)
            out(f"torchenv: pushed {r.image} ({digest}) and the build cache {r.cache}")

    return builds.run_build(
        _cached(req, r), engine, runner=runner, out=out, wheel=wheel, on_built=pushed
    )


def _cached(req: builds.BuildRequest, r: Refs) -> builds.BuildRequest:
    """The build of `req` with BuildKit's inline cache, from the registry's cache images (none
    with --no-cache), labelled with the content key."""
    return dataclasses.replace(
        req, inline_cache=True, cache_from=() if req.no_cache else r.cache_from, content_key=r.key
    )


def _push(client: str, source: str, ref: str, runner: Runner, out: Callable[[str], None]) -> str:
    out(f"torchenv: {shlex.join(remote.push_command(client, ref))}")
    return remote.push(client, source, ref, runner, on_line=lambda line: out(line.rstrip()))


def _take(
    req: builds.BuildRequest, engine: Engine, r: Refs, had: dict[str, object] | None,
    runner: Runner, out: Callable[[str], None],
) -> None:  # fmt: skip
    """The pulled image takes the local name (the registry's name is taken away again); the
    image the name had before goes when nothing else names it."""
    client = engine.client
    images.tag(client, r.image, req.image, runner)
    images.remove(client, r.image, runner)
    pulled = images.facts(client, req.image, runner) or {}
    previous = str(had["Id"]) if had else None
    if (
        previous
        and previous != pulled.get("Id")
        and previous in images.dangling_ids(client, runner)
    ):
        images.remove(client, previous, runner)
    found = labelstep.image_labels(pulled)
    out(
        f"torchenv: reused {r.image} as {req.image} (image {str(pulled.get('Id', ''))[:19]}..., "
        f"content key {r.key[:16]}): no build step ran"
    )
    out(
        "torchenv: its labels are those of the build that made it: revision "
        f"{found.get(REVISION_LABEL, 'unknown')}, created {found.get(CREATED_LABEL, 'unknown')}"
    )


def plan(
    req: builds.BuildRequest, engine: Engine, r: Refs, push: bool, runner: Runner
) -> list[str]:
    """The commands of a build with a registry, for --dry-run."""
    client, lines = engine.client, []
    if not req.no_cache:
        lines += [
            f"{shlex.join(remote.pull_command(client, r.image))}   # the image of content key "
            f"{r.key[:16]}: when the registry has it, no build",
            f"{shlex.join(remote.tag_command(client, r.image, req.image))}   # it takes the "
            "local name",
            shlex.join(remote.untag_command(client, r.image)),
            "# else, a build with the registry's cache:",
        ]
    lines += builds.run_build(_cached(req, r), engine, dry_run=True, runner=runner)
    if push:
        for source, ref, what in (
            (req.image, r.image, "the image"),
            ("UNLABELLED_ID", r.cache, "the image before the label step: the inline cache"),
        ):
            lines += [
                f"{shlex.join(remote.tag_command(client, source, ref))}   # {what}",
                shlex.join(remote.push_command(client, ref)),
                shlex.join(remote.untag_command(client, ref)),
            ]
    return lines

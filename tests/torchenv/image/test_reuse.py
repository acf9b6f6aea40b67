"""`invoke build --registry`: reuse by content key, through the command seam (a fake engine)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from tests.support.fakerunner import FakeRunner, reply

from torchenv import matrix
from torchenv.engine import Engine
from torchenv.engine.labels import CONTENT_KEY, CREATED_LABEL, MANIFEST_LABEL, REVISION_LABEL
from torchenv.errors import UserError
from torchenv.image import build, contentkey, reuse

D = "/usr/bin/docker"
BUILTIN = Engine(D, "20.10.24", "20.10.24", "builtin")
REGISTRY = "localhost:5000/ns"
LOCAL = "torchenv/cuda13:2.14.1-cu130"
BASE = "local/base:1"
OLD_ID, BUILT_ID, LABELLED_ID, PULLED_ID = ("sha256:" + c * 64 for c in "abcd")
MANIFEST = b'{"format": "torchenv-manifest/1"}\n'


def request(**changes) -> build.BuildRequest:
    values = {"base_image": BASE, "allow_unpinned_base": True, **changes}
    return build.BuildRequest(target=matrix.get("cuda13"), **values)


def expected_key(req: build.BuildRequest) -> str:
    return contentkey.content_key(req, None, "sha256:" + "e" * 64, "linux/amd64")


class FakeEngine:
    """A 20.10 engine and a registry, as far as reuse asks them: names to image IDs, each
    image's labels, what the registry holds; every command recorded by the FakeRunner."""

    def __init__(self, registry: dict[str, str] | None = None, local: dict | None = None,
                 pull_error: str = "", push_error: str = "") -> None:  # fmt: skip
        self.names: dict[str, str] = {BASE: "sha256:" + "e" * 64}
        self.labels: dict[str, dict[str, str]] = {}
        self.registry = dict(registry or {})  # ref -> image ID
        self.pull_error, self.push_error = pull_error, push_error
        for name, (image_id, found) in (local or {}).items():
            self.names[name], self.labels[image_id] = image_id, found
        self.runner = FakeRunner({
            ("git",): reply("", 128),
            (D, "version"): reply("linux/amd64\n"),
            (D, "image", "inspect"): self.inspect,
            (D, "pull"): self.pull,
            (D, "tag"): self.tag,
            (D, "image", "rm"): self.untag,
            (D, "image", "ls"): lambda argv: reply(
                "".join(f"{i}\n" for i in (OLD_ID, BUILT_ID) if i not in self.names.values())
            ),
            (D, "build", "--progress=plain"): self.build,
            (D, "create"): reply("c\n"),
            (D, "cp"): lambda argv: (Path(argv[-1]).write_bytes(MANIFEST), reply())[1],
            (D, "rm"): reply(),
            (D, "build", "--quiet"): self.label,
            (D, "push"): self.push,
        })  # fmt: skip

    def facts(self, name: str) -> dict | None:
        image_id = self.names.get(name, name if name in self.labels else None)
        if image_id is None:
            return None
        found = self.labels.get(image_id, {})
        return {"Id": image_id, "RootFS": {"Layers": ["sha256:1"]}, "Config": {"Labels": found}}

    def inspect(self, argv):
        found = self.facts(argv[-1])
        if found is None:
            return reply("", 1, f"Error: No such image: {argv[-1]}")
        return reply(found["Id"] + "\n" if "--format" in argv else json.dumps([found]))

    def pull(self, argv):
        if self.pull_error:
            return reply("", 1, self.pull_error)
        if argv[-1] not in self.registry:
            return reply("", 1, f"Error response from daemon: manifest for {argv[-1]} not found: "
                         "manifest unknown: manifest unknown")  # fmt: skip
        self.names[argv[-1]] = self.registry[argv[-1]]
        return reply("abc: Pull complete\nStatus: Downloaded newer image\n")

    def tag(self, argv):
        self.names[argv[-1]] = self.facts(argv[-2])["Id"]
        return reply()

    def untag(self, argv):
        self.names.pop(argv[-1], None)
        return reply()

    def build(self, argv):
        self.names[argv[argv.index("--tag") + 1]] = BUILT_ID
        self.labels[BUILT_ID] = {CREATED_LABEL: "now"}
        return reply("#10 [env-uv 1/1] RUN ...\n#10 CACHED\n")

    def label(self, argv):
        found = dict(
            a.split("=", 1) for a in argv[argv.index("--quiet") + 1 : -3] if a != "--label"
        )
        self.labels[LABELLED_ID] = {**self.labels[BUILT_ID], **found}
        self.names[argv[-2]] = LABELLED_ID
        return reply(LABELLED_ID)

    def push(self, argv):
        if self.push_error:
            return reply("", 1, self.push_error)
        self.registry[argv[-1]] = self.names[argv[-1]]
        return reply(f"latest: digest: sha256:{'f' * 64} size: 1155\n")

    def ran(self, *prefix: str) -> list[tuple[str, ...]]:
        return [c.args for c in self.runner.calls if c.args[: len(prefix)] == prefix]


def run(fake: FakeEngine, req: build.BuildRequest | None = None, **kwargs) -> list[str]:
    lines: list[str] = []
    reuse.run(req or request(), BUILTIN, REGISTRY, runner=fake.runner, out=lines.append, **kwargs)
    return lines


def refs(req: build.BuildRequest | None = None) -> reuse.Refs:
    req = req or request()
    return reuse.refs(req, REGISTRY, expected_key(req))


def test_the_names_on_the_registry():
    r = reuse.refs(request(), REGISTRY, "0123456789abcdef" + "0" * 48)
    assert r.image == "localhost:5000/ns/cuda13:key-0123456789abcdef"
    assert r.cache == "localhost:5000/ns/cuda13:cache-uv"
    assert r.cache_from == (r.cache, "localhost:5000/ns/cuda13:cache-uv-dev")
    dev = reuse.refs(request(flavor="dev", installer="pip"), REGISTRY, "0" * 64)
    assert dev.image.endswith(":key-0000000000000000-dev")
    assert dev.cache_from == (
        "localhost:5000/ns/cuda13:cache-pip-dev",
        "localhost:5000/ns/cuda13:cache-pip",
    )


def test_an_image_the_registry_has_is_pulled_and_named_and_nothing_is_built():
    r = refs()
    labels = {CONTENT_KEY: r.key, REVISION_LABEL: "abc123", CREATED_LABEL: "2026-12-01T00:00:00Z"}
    fake = FakeEngine(registry={r.image: PULLED_ID}, local={"x": (PULLED_ID, labels)})
    lines = run(fake)
    assert fake.ran(D, "pull") == [(D, "pull", r.image)]
    assert fake.names[LOCAL] == PULLED_ID and r.image not in fake.names  # only the local name
    assert not fake.ran(D, "build") and not fake.ran(D, "push") and not fake.ran(D, "create")
    assert any(
        f"reused {r.image} as {LOCAL}" in line and "no build step ran" in line for line in lines
    )
    assert lines[-1] == (
        "torchenv: its labels are those of the build that made it: revision abc123, "
        "created 2026-12-01T00:00:00Z"
    )


def test_a_missing_image_is_built_with_the_registrys_cache_then_both_images_are_pushed():
    r, fake = refs(), FakeEngine()
    lines = run(fake)
    (argv,) = fake.ran(D, "build", "--progress=plain")
    line = " ".join(argv)
    assert "--build-arg BUILDKIT_INLINE_CACHE=1" in line
    assert f"--cache-from {r.cache} --cache-from {r.cache}-dev" in line
    (label,) = fake.ran(D, "build", "--quiet")
    assert f"{CONTENT_KEY}={r.key}" in label and f"{MANIFEST_LABEL}=" in " ".join(label)
    # the labelled image under its key; the unlabelled one, which alone keeps BuildKit's
    # inline cache (the label step drops it), as the cache
    assert fake.registry == {r.image: LABELLED_ID, r.cache: BUILT_ID}
    assert [c[-1] for c in fake.ran(D, "push")] == [r.image, r.cache]
    assert r.image not in fake.names and r.cache not in fake.names  # the names taken away again
    assert fake.names[LOCAL] == LABELLED_ID
    assert "(it has none yet): building" in " ".join(lines)
    assert lines[-1].startswith("torchenv: built torchenv/cuda13:2.14.1-cu130")
    assert any(line.startswith(f"torchenv: pushed {r.image} (sha256:ffff") for line in lines)


def test_no_push_builds_with_the_cache_and_pushes_nothing():
    fake = FakeEngine()
    run(fake, push=False)
    assert fake.ran(D, "build", "--progress=plain") and not fake.ran(D, "push")
    assert fake.registry == {}


def test_an_image_of_the_key_already_here_is_neither_pulled_nor_built():
    r = refs()
    fake = FakeEngine(local={LOCAL: (OLD_ID, {CONTENT_KEY: r.key})})
    lines = run(fake)
    assert not fake.ran(D, "pull") and not fake.ran(D, "build")
    assert fake.registry == {r.image: OLD_ID}  # pushed (a few requests when it is there)
    assert (
        lines[0] == f"torchenv: {LOCAL} is the image of content key {r.key[:16]} already: no build"
    )


def test_an_image_of_another_key_here_is_replaced_by_the_pulled_one():
    r = refs()
    fake = FakeEngine(
        registry={r.image: PULLED_ID},
        local={LOCAL: (OLD_ID, {CONTENT_KEY: "0" * 64}), "x": (PULLED_ID, {CONTENT_KEY: r.key})},
    )
    run(fake)
    assert fake.names[LOCAL] == PULLED_ID
    assert fake.ran(D, "image", "rm", OLD_ID)  # untagged now: it goes, as a build's would


def test_a_registry_that_cannot_be_asked_is_said_in_one_line_and_the_image_is_built():
    fake = FakeEngine(pull_error="Error response from daemon: Get https://h/v2/: unauthorized")
    lines = run(fake)
    assert any("(cannot pull it: Error response from daemon: Get https://h/v2/: unauthorized): building"
               in line for line in lines)  # fmt: skip
    assert fake.ran(D, "build", "--progress=plain")


def test_a_failed_push_is_one_line_naming_docker_login_and_leaves_no_dangling_image():
    fake = FakeEngine(push_error="denied: requested access to the resource is denied")
    with pytest.raises(UserError) as exc:
        run(fake)
    message = str(exc.value)
    assert message.startswith(f"pushing {refs().image} failed: denied: requested access")
    assert "docker login" in message and "\n" not in message
    assert fake.ran(D, "image", "rm", BUILT_ID)  # the unlabelled image is still cleaned up


def test_no_cache_pulls_nothing_uses_no_cache_and_still_pushes():
    fake = FakeEngine(registry={refs(request(no_cache=True)).image: PULLED_ID})
    run(fake, request(no_cache=True))
    assert not fake.ran(D, "pull")
    (argv,) = fake.ran(D, "build", "--progress=plain")
    assert "--cache-from" not in argv and "--no-cache" in argv
    assert len(fake.ran(D, "push")) == 2


def test_the_dry_run_prints_the_pull_the_cached_build_and_the_pushes():
    r, fake = refs(), FakeEngine()
    lines = reuse.run(request(), BUILTIN, REGISTRY, dry_run=True, runner=fake.runner)
    assert lines[0] == (
        f"{D} pull {r.image}   # the image of content key {r.key[:16]}: when the registry has it, "
        "no build"
    )
    assert lines[1] == f"{D} tag {r.image} {LOCAL}   # it takes the local name"
    assert lines[2] == f"{D} image rm {r.image}"
    build_line = next(line for line in lines if " build --progress=plain " in line)
    assert f"--build-arg BUILDKIT_INLINE_CACHE=1 --cache-from {r.cache}" in build_line
    assert lines[-6:] == [
        f"{D} tag {LOCAL} {r.image}   # the image",
        f"{D} push {r.image}",
        f"{D} image rm {r.image}",
        f"{D} tag UNLABELLED_ID {r.cache}   # the image before the label step: the inline cache",
        f"{D} push {r.cache}",
        f"{D} image rm {r.cache}",
    ]
    assert not fake.ran(D, "pull") and not fake.ran(D, "build") and not fake.ran(D, "push")
    assert not any(" push " in line for line in reuse.run(
        request(), BUILTIN, REGISTRY, dry_run=True, push=False, runner=fake.runner))  # fmt: skip


@pytest.mark.parametrize(
    ("registry", "message"),
    [
        ("user:s3cret@ghcr.io/org", "--registry '***@ghcr.io/org' holds a user or password"),
        ("https://user:s3cret@ghcr.io/org", "holds a user or password"),
        ("ghcr.io", "is not HOST[:PORT]/NAMESPACE"),
        ("GHCR.io/Org", "is not HOST[:PORT]/NAMESPACE in lowercase"),
    ],
    ids=["user and password", "a URL with them", "no namespace", "upper case"],
)
def test_a_bad_registry_is_one_line_before_anything_runs(registry, message):
    with pytest.raises(UserError) as exc:
        reuse.check(registry)
    assert message in str(exc.value) and "s3cret" not in str(exc.value)
    fake = FakeEngine()
    with pytest.raises(UserError):
        reuse.run(request(), BUILTIN, registry, runner=fake.runner)
    assert fake.runner.calls == []


def test_no_push_without_a_registry_is_refused():
    with pytest.raises(UserError, match="^--no-push goes with --registry"):
        reuse.check(None, no_push_given=True)
    reuse.check(None)  # nothing asked, nothing said


def test_without_a_registry_it_is_the_plain_build():
    fake = FakeEngine()
    lines = reuse.build(request(), BUILTIN, None, dry_run=True, runner=fake.runner)
    assert lines == build.run_build(request(), BUILTIN, dry_run=True, runner=fake.runner)
    assert not any("--cache-from" in line or "INLINE_CACHE" in line for line in lines)


def test_the_key_knows_a_base_by_tag_by_its_id_on_the_engine():
    fake = FakeEngine()
    first = reuse.refs(request(), REGISTRY, reuse._key(request(), BUILTIN, None, fake.runner))
    assert first == refs()
    fake.names[BASE] = "sha256:" + "9" * 64  # the tag moved
    moved = reuse._key(request(), BUILTIN, None, fake.runner)
    assert moved != first.key
    pinned = dataclasses.replace(request(), base_image="python:3.11@sha256:" + "a" * 64)
    calls = len(fake.runner.calls)
    reuse._key(pinned, BUILTIN, None, fake.runner)
    assert not [c for c in fake.runner.calls[calls:] if c.args[1:3] == ("image", "inspect")]


def test_a_pulled_image_whose_label_is_another_key_is_not_used_but_built_over():
    r = refs()
    fake = FakeEngine(
        registry={r.image: PULLED_ID}, local={"x": (PULLED_ID, {CONTENT_KEY: "0" * 64})}
    )
    lines = run(fake)
    assert any(f"(its image says content key {'0' * 64}): building" in line for line in lines)
    assert r.image not in fake.names  # the pulled name is taken away again
    assert fake.registry[r.image] == LABELLED_ID  # the right image pushed over it


def test_no_cache_builds_even_when_the_engine_has_the_image_of_the_key():
    r = refs(request(no_cache=True))
    fake = FakeEngine(local={LOCAL: (OLD_ID, {CONTENT_KEY: r.key})})
    run(fake, request(no_cache=True))
    assert fake.ran(D, "build", "--progress=plain") and not fake.ran(D, "pull")

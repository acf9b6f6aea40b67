from __future__ import annotations

import pytest
from tests.support.fakerunner import FakeRunner, reply

from torchenv.engine import registry
from torchenv.errors import UserError

D = "/usr/bin/docker"
REF = "localhost:5000/ns/cuda13:key-0123456789abcdef"
DIGEST = "sha256:" + "f" * 64


def test_the_command_lines_take_no_credentials():
    assert registry.pull_command(D, REF) == [D, "pull", REF]
    assert registry.push_command(D, REF) == [D, "push", REF]
    assert registry.tag_command(D, "sha256:abc", REF) == [D, "tag", "sha256:abc", REF]
    assert registry.untag_command(D, REF) == [D, "image", "rm", REF]


def test_a_pull_says_whether_the_registry_lacks_the_image_or_could_not_be_asked():
    lines: list[str] = []
    ok = FakeRunner({(D, "pull"): reply("abc: Pull complete\n")})
    assert registry.pull(D, REF, ok, on_line=lines.append) == registry.Pulled(True)
    assert lines == ["abc: Pull complete\n"]  # streamed as it comes
    unknown = (
        "Error response from daemon: manifest for X not found: manifest unknown: manifest unknown"
    )
    missing = registry.pull(D, REF, FakeRunner({(D, "pull"): reply("", 1, unknown)}))
    assert missing == registry.Pulled(False, True, unknown)
    denied = "Error response from daemon: Head https://ghcr.io/v2/o/r/manifests/k: unauthorized"
    failed = registry.pull(D, REF, FakeRunner({(D, "pull"): reply("", 1, "x\n" + denied)}))
    assert failed == registry.Pulled(False, False, denied)  # the last line, one line
    with pytest.raises(UserError, match="install Docker"):
        registry.pull(D, REF, FakeRunner({}))


def test_a_push_names_pushes_and_unnames_and_returns_the_digest():
    runner = FakeRunner({
        (D, "tag"): reply(),
        (D, "push"): reply(f"key-0123: digest: {DIGEST} size: 2622\n"),
        (D, "image", "rm"): reply(),
    })  # fmt: skip
    assert registry.push(D, "sha256:abc", REF, runner) == DIGEST
    assert [c.args for c in runner.calls] == [
        (D, "tag", "sha256:abc", REF), (D, "push", REF), (D, "image", "rm", REF),
    ]  # fmt: skip


def test_a_failed_push_is_one_line_and_the_name_goes_anyway():
    runner = FakeRunner({
        (D, "tag"): reply(),
        (D, "push"): reply("The push refers to repository [x]\n", 1, "denied: requested access "
                           "to the resource is denied\n"),
        (D, "image", "rm"): reply(),
    })  # fmt: skip
    with pytest.raises(UserError) as exc:
        registry.push(D, "sha256:abc", REF, runner)
    assert str(exc.value) == (
        f"pushing {REF} failed: denied: requested access to the resource is denied "
        "(log in first: docker login HOST)"
    )
    assert runner.calls[-1].args == (D, "image", "rm", REF)
    untaggable = FakeRunner({(D, "tag"): reply("", 1, "Error: No such image: sha256:abc")})
    with pytest.raises(UserError, match="^naming sha256:abc .* failed: Error: No such image"):
        registry.push(D, "sha256:abc", REF, untaggable)


def test_the_platform_of_the_engine():
    version = (D, "version", "--format", "{{.Server.Os}}/{{.Server.Arch}}")
    assert registry.platform(D, FakeRunner({version: reply("linux/amd64\n")})) == "linux/amd64"
    assert registry.platform(D, FakeRunner({version: reply("linux/arm64\n")})) == "linux/arm64"
    assert registry.platform(D, FakeRunner({version: reply("", 1, "Cannot connect")})) == ""
    assert registry.platform(D, FakeRunner({version: reply("<no value>/x y\n")})) == ""
    assert registry.is_missing("manifest unknown") and not registry.is_missing("unauthorized")

"""Joint resolution split into the image's layers (torchenv.lock.joint)."""

from __future__ import annotations

from pathlib import Path

from tests.support.fakerunner import FakeRunner

from torchenv import matrix
from torchenv.lock import joint, uv_resolver
from torchenv.lock.lockfile import Lock, LockedPackage


def pkg(name: str, version: str) -> LockedPackage:
    return LockedPackage(name, version, (name[0] * 64,))


def test_the_familys_closure_goes_below_the_rest_above_and_what_moved_is_named(monkeypatch):
    calls = []

    def report(python, index, requirements, runner, constraints="", what="", family=None, **kw):
        calls.append((requirements, constraints, kw))
        if "numpy<2" in requirements:  # the joint resolve
            return [pkg("torch", "2.14.1"), pkg("numpy", "1.26.4"), pkg("tqdm", "4.67.1")]
        return [pkg("torch", "2.14.1"), pkg("numpy", "1.26.4")]  # the family at those versions

    monkeypatch.setattr(uv_resolver, "report", report)
    t = matrix.get("cuda13")
    now = Lock(
        Path("x"), "pip", {}, {"torch": pkg("torch", "2.14.1"), "numpy": pkg("numpy", "2.4.6")}
    )
    layers = joint.resolve(t, ["numpy<2", "tqdm"], [], [now], FakeRunner())
    assert [p.name for p in layers.lower] == ["torch", "numpy"] and [
        p.name for p in layers.upper
    ] == ["tqdm"]
    assert layers.moved == ["numpy 2.4.6 -> 1.26.4"]
    joint_call, closure_call = calls
    assert "torch==2.14.1" in joint_call[0] and joint_call[2]["sdists"] is True
    assert (
        "numpy==2.4.6" in joint_call[2]["preferred"]
    )  # the locks' versions, kept where they can be
    assert "tqdm==4.67.1" in closure_call[1]  # the family resolved with every joint version held


def test_upgrade_gives_uv_no_preferences(monkeypatch):
    seen = []
    monkeypatch.setattr(
        uv_resolver, "report", lambda *a, **kw: seen.append(kw.get("preferred", "")) or []
    )
    now = Lock(Path("x"), "pip", {}, {"numpy": pkg("numpy", "2.4.6")})
    joint.resolve(matrix.get("cuda13"), ["tqdm"], [], [now], FakeRunner(), prefer=False)
    assert seen[0] == ""

"""The tracked containers' pure part: log chunks as lines, a group that removes what it made when
a creation fails, removal that goes on past errors (the lifecycle is proved for real by the engine
tests of smoke, multi-node and the image: test_smoke.py, test_multinode_run.py, test_image.py)."""

from __future__ import annotations

import pytest

from torchenv.engine import containers
from torchenv.engine.containers import Group, log_lines
from torchenv.engine.images import ImageNotBuilt


def test_log_chunks_become_whole_lines():
    chunks = [b"torchsmoke 0.1: tor", b"ch 2.11\nmlp  pass\nJSON report: /tmp/x", b"\n", b"tail"]
    assert list(log_lines(chunks)) == [
        "torchsmoke 0.1: torch 2.11\n", "mlp  pass\n", "JSON report: /tmp/x\n", "tail",
    ]  # fmt: skip


def test_cleanup_goes_on_past_errors_and_says_one_line_each(monkeypatch):
    """Issue 20, Low list: an engine error (or a lost connection) on one node never leaves the
    others and the network behind."""
    import requests

    monkeypatch.setattr(containers.time, "sleep", lambda s: None)
    removed = []

    class Item:
        def __init__(self, name, error=None):
            self.name, self.error = name, error

        def remove(self, **_kw):
            if self.error is not None:
                raise self.error
            removed.append(self.name)

    lost = Item("node-0", requests.exceptions.ConnectionError("Connection aborted.\nmore"))
    said = []
    containers.remove_all([lost, Item("node-1")], Item("net"), say=said.append)
    assert removed == ["node-1", "net"]
    assert said == ["torchenv: could not remove node-0 (Connection aborted.): run `invoke clean`"]


def test_a_group_removes_what_it_made_when_a_creation_fails_and_names_the_build_command():
    import docker.errors

    removed = []

    class Thing:
        def __init__(self, name):
            self.name = name

        def remove(self, **_kw):
            removed.append(self.name)

    class Containers:
        def __init__(self):
            self.made = 0

        def create(self, **kwargs):
            self.made += 1
            if self.made == 2:
                raise docker.errors.ImageNotFound("No such image: torchenv/cuda13:x")
            return Thing(kwargs["name"])

    class Networks:
        def create(self, name, **_kw):
            return Thing(name)

    class Client:
        containers = Containers()
        networks = Networks()

    group = Group(Client(), image="torchenv/cuda13:x", target="cuda13")  # type: ignore[arg-type]
    with pytest.raises(ImageNotBuilt) as exc, group:
        group.create_network("net", {})
        group.create({"name": "node-0"})
        group.create({"name": "node-1"})
    assert str(exc.value) == (
        "image torchenv/cuda13:x is not built yet: run `invoke build --target cuda13`"
    )
    assert removed == ["node-0", "net"]  # the containers first, then their network
    assert group.containers == [] and group.network is None

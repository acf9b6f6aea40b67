"""What torchenv made on the engine, found by its labels (torchenv.engine.inventory)."""

from __future__ import annotations

import json

import pytest
from tests.support.fakerunner import FakeRunner, reply

from torchenv.engine import inventory, labels
from torchenv.errors import UserError

DOCKER = "/usr/bin/docker"
IMAGE = "sha256:" + "1" * 64


def test_each_kind_is_asked_by_label_and_read():
    line = f"{IMAGE}\t{json.dumps(['me/cuda13:1'])}\t{json.dumps({labels.TARGET: 'cuda13'})}"
    runner = FakeRunner(
        {
            (DOCKER, "container", "ls"): reply("c1\ttorchenv-shell-cuda13-abc\texited\n"),
            (DOCKER, "image", "ls"): reply(IMAGE + "\n"),
            (DOCKER, "image", "inspect"): reply(line + "\n"),
            (DOCKER, "network", "ls"): reply(""),
        }
    )
    found = inventory.find(DOCKER, "cuda13", runner)
    assert found == [
        inventory.Found("container", "c1", ("torchenv-shell-cuda13-abc",), "exited"),
        inventory.Found("image", IMAGE, ("me/cuda13:1",), "", ((labels.TARGET, "cuda13"),)),
    ]
    for call in runner.calls:
        if call.args[2] == "ls":
            assert f"label={labels.TARGET}=cuda13" in call.args


def test_an_engine_that_cannot_list_is_one_line():
    runner = FakeRunner({(DOCKER, "container", "ls"): reply("", 1, "permission denied")})
    with pytest.raises(
        UserError, match=r"^/usr/bin/docker container ls failed: permission denied$"
    ):
        inventory.find(DOCKER, None, runner)

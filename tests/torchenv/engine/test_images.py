from __future__ import annotations

import pytest
from tests.support.fakerunner import FakeRunner, reply

from torchenv.engine import images
from torchenv.errors import UserError

CLIENT = "/usr/bin/docker"
IMAGE = "torchenv/cuda13:2.11.0-cu130"
INSPECT = (CLIENT, "image", "inspect", "--format", "{{.Id}}", IMAGE)


def test_image_not_built_has_one_wording_and_its_fix():
    assert str(images.ImageNotBuilt(IMAGE, "cuda13")) == (
        f"image {IMAGE} is not built yet: run `invoke build --target cuda13`"
    )
    dev = images.ImageNotBuilt(IMAGE + "-dev", "cuda13", "dev")
    assert dev.fix == "invoke build --target cuda13 --flavor dev"
    assert isinstance(dev, UserError)


def test_image_id_and_exists_read_docker_image_inspect():
    have = FakeRunner({INSPECT: reply("sha256:abc\n")})
    assert images.image_exists(CLIENT, IMAGE, have)
    assert images.image_id(CLIENT, IMAGE, have) == "sha256:abc"
    lack = FakeRunner({INSPECT: reply("", 1, f"Error: No such image: {IMAGE}")})
    assert not images.image_exists(CLIENT, IMAGE, lack)
    assert images.image_id(CLIENT, IMAGE, lack) is None


def test_require_image_tells_a_missing_image_from_an_engine_that_fails():
    images.require_image(CLIENT, IMAGE, "cuda13", runner=FakeRunner({INSPECT: reply("sha256:a")}))
    missing = FakeRunner({INSPECT: reply("", 1, "Error response: No such object: " + IMAGE)})
    with pytest.raises(images.ImageNotBuilt):
        images.require_image(CLIENT, IMAGE, "cuda13", runner=missing)
    broken = FakeRunner({INSPECT: reply("", 1, "permission denied")})
    with pytest.raises(UserError, match="cannot inspect .*: permission denied"):
        images.require_image(CLIENT, IMAGE, "cuda13", runner=broken)


def test_dangling_ids_are_the_untagged_images_and_none_when_the_engine_fails():
    argv = (CLIENT, "image", "ls", "--quiet", "--no-trunc", "--filter", "dangling=true")
    found = FakeRunner({argv: reply("sha256:a\nsha256:b\n")})
    assert images.dangling_ids(CLIENT, found) == {"sha256:a", "sha256:b"}
    assert images.dangling_ids(CLIENT, FakeRunner({argv: reply("", 1, "down")})) == set()

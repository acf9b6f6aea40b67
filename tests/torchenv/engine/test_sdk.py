from __future__ import annotations

import docker.errors
import pytest

from torchenv.engine import sdk


@pytest.mark.parametrize(
    "raised,caught",
    [
        (docker.errors.ImageNotFound("no image x"), sdk.ImageMissing),
        (docker.errors.NotFound("no container y"), sdk.Missing),
        (docker.errors.APIError("refused"), sdk.CallFailed),
    ],
)
def test_the_sdks_errors_come_out_as_the_kits_own(raised, caught):
    with pytest.raises(caught) as exc, sdk.sdk_errors():
        raise raised
    assert type(exc.value) is caught and exc.value.text == str(raised)


def test_an_image_missing_is_a_missing_object_is_a_failed_call():
    assert issubclass(sdk.ImageMissing, sdk.Missing) and issubclass(sdk.Missing, sdk.CallFailed)


def test_gpu_requests_ask_for_every_gpu_or_the_listed_ones():
    every = sdk.gpu_request()
    assert every["Count"] == -1 and every["Capabilities"] == [["gpu"]]
    assert sdk.gpu_request(["0", "1"])["DeviceIDs"] == ["0", "1"]

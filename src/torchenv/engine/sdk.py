"""The docker SDK behind the package: its types for annotations, its errors turned into the kit's
own (`sdk_errors()`), and the GPU device request. Modules outside torchenv.engine that hold an SDK
client use these, never `import docker`; the SDK is imported when first needed, not at startup.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from torchenv.errors import UserError

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container
    from docker.models.images import Image
    from docker.models.networks import Network

__all__ = [
    "CallFailed", "Container", "DockerClient", "EngineGone", "Image", "ImageMissing", "Missing",
    "Network",
    "gpu_request", "sdk_errors",
]  # fmt: skip


class CallFailed(UserError):
    """The engine refused an SDK call (docker.errors.APIError); `text`: what it said."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class Missing(CallFailed):
    """No such object on the engine (docker.errors.NotFound)."""


class ImageMissing(Missing):
    """No such image on the engine (docker.errors.ImageNotFound)."""


class EngineGone(CallFailed):
    """The engine did not answer (connection refused or lost, a timeout)."""


@contextlib.contextmanager
def sdk_errors() -> Iterator[None]:
    """Within the block the SDK's API errors come out as CallFailed, Missing or ImageMissing."""
    import docker.errors

    try:
        yield
    except docker.errors.ImageNotFound as exc:
        raise ImageMissing(_text(exc)) from exc
    except docker.errors.NotFound as exc:
        raise Missing(_text(exc)) from exc
    except docker.errors.APIError as exc:
        raise CallFailed(_text(exc)) from exc
    except docker.errors.DockerException as exc:
        raise EngineGone(_first_line(exc)) from exc
    except OSError as exc:  # requests' ConnectionError and Timeout are OSErrors too
        raise EngineGone(_first_line(exc)) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]


def _text(exc: Any) -> str:
    return str(exc.explanation or exc)


def gpu_request(device_ids: Sequence[str] | None = None) -> Any:
    """A device request for every GPU (`--gpus=all`), or for those of `device_ids`."""
    import docker.types

    if device_ids is None:
        return docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])
    return docker.types.DeviceRequest(device_ids=list(device_ids), capabilities=[["gpu"]])

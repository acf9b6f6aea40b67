"""One tracked container through the docker SDK: created (ImageNotBuilt when its image is
missing), its output followed as whole lines, waited for with a timeout, files read out of it
(created or stopped: no process runs), and removed whatever happens, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from torchenv.engine.images import ImageNotBuilt
from torchenv.engine.interrupts import sigterm_as_ctrl_c
from torchenv.engine.sdk import CallFailed, ImageMissing, sdk_errors
from torchenv.errors import UserError

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container


@contextlib.contextmanager
def tracked(
    client: DockerClient, kwargs: dict[str, Any], *, image: str, target: str,
    flavor: str = "runtime", role: str = "container",
) -> Iterator[Container]:  # fmt: skip
    """The container `client.containers.create(**kwargs)` makes, removed when the block ends
    however it ends (SIGTERM is handled like Ctrl-C within it). UserError (one line) when it
    cannot be created: ImageNotBuilt when `image` is not there."""
    with sigterm_as_ctrl_c():
        try:
            with sdk_errors():
                container = client.containers.create(**kwargs)
        except ImageMissing:
            raise ImageNotBuilt(image, target, flavor) from None
        except CallFailed as exc:
            raise UserError(f"cannot create the {role}: {exc.text}") from None
        try:
            yield container
        finally:
            container.remove(force=True)


def log_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Whole lines from a stream of log chunks (a chunk may end mid-line)."""
    pending = ""
    for chunk in chunks:
        pending += chunk.decode(errors="replace")
        *whole, pending = pending.split("\n")
        yield from (line + "\n" for line in whole)
    if pending:
        yield pending


def follow(container: Container, show: Callable[[str], object]) -> threading.Thread:
    """A started daemon thread that gives `show` each line of the container's output until it
    ends (its stop ends it; a container removed under the stream ends it quietly)."""

    def pump() -> None:
        try:
            for line in log_lines(container.logs(stream=True, follow=True)):
                show(line)
        except Exception:  # the container went away under the stream: nothing more to show
            return

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def wait(container: Container, timeout: float) -> int | None:
    """The container's exit status; None when it still runs after `timeout` seconds."""
    import requests

    try:
        return int(container.wait(timeout=timeout).get("StatusCode", 1))
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
        return None


def read_file(container: Container, path: str) -> bytes | None:
    """The bytes of the file at `path` in the container; None when there is no such file."""
    import docker.errors

    try:
        stream, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.extractfile(tar.getmembers()[0])
        return member.read() if member is not None else None

"""Reading a file out of a container through the docker SDK (created or stopped: no process runs)."""

from __future__ import annotations

import io
import tarfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docker.models.containers import Container


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

"""Containers the kit drives through the docker SDK, tracked: created (ImageNotBuilt when their
image is missing), their output followed as whole lines, waited for with a timeout, files read out
of them (created or stopped: no process runs), and removed whatever happens, Ctrl-C and SIGTERM
included. `tracked` is one container (smoke); `Group` is several and the network they share
(multi-node), removed together.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from torchenv.engine.images import ImageNotBuilt
from torchenv.engine.interrupts import sigterm_as_ctrl_c
from torchenv.engine.sdk import CallFailed, ImageMissing, Missing, sdk_errors
from torchenv.errors import UserError
from torchenv.runner import Result, Runner, subprocess_runner

# The shared memory of every container the kit runs a job in (smoke, shell, tests, dev
# containers): DataLoader workers need more than Docker's default 64 MB /dev/shm.
SHM_SIZE = "2g"

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container
    from docker.models.networks import Network


class Group:
    """Containers of one image and the network they share, made for one run and removed together
    when the `with` block ends however it ends (SIGTERM is handled like Ctrl-C within it).

    `create` raises one line (ImageNotBuilt when the image is not there); what was made before
    is still removed. Removal never stops at an error: each thing left is one line (`say`)."""

    def __init__(
        self, client: DockerClient, *, image: str, target: str, flavor: str = "runtime",
        say: Callable[[str], object] = print,
    ) -> None:  # fmt: skip
        self.client, self.image, self.target, self.flavor, self.say = (
            client, image, target, flavor, say,
        )  # fmt: skip
        self.containers: list[Container] = []
        self.network: Network | None = None
        self._sigterm = contextlib.ExitStack()

    def __enter__(self) -> Group:
        self._sigterm.enter_context(sigterm_as_ctrl_c())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.remove()
        finally:
            self._sigterm.close()

    def create_network(self, name: str, labels: dict[str, str], role: str = "") -> Network:
        """A bridge network, tracked for removal (removed after the containers)."""
        try:
            with sdk_errors():
                self.network = self.client.networks.create(name, driver="bridge", labels=labels)
        except CallFailed as exc:
            raise UserError(f"cannot create {role or 'the network ' + name}: {exc.text}") from None
        return self.network

    def create(self, kwargs: dict[str, Any], role: str = "the container") -> Container:
        """The container `client.containers.create(**kwargs)` makes, tracked for removal;
        `role` names it in the error line ("cannot create <role>: ...")."""
        try:
            with sdk_errors():
                container = self.client.containers.create(**kwargs)
        except ImageMissing:
            raise ImageNotBuilt(self.image, self.target, self.flavor) from None
        except CallFailed as exc:
            raise UserError(f"cannot create {role}: {exc.text}") from None
        self.containers.append(container)
        return container

    def remove(self) -> None:
        network, self.network = self.network, None
        made, self.containers = self.containers, []
        remove_all(made, network, self.say)


@contextlib.contextmanager
def tracked(
    client: DockerClient, kwargs: dict[str, Any], *, image: str, target: str,
    flavor: str = "runtime", role: str = "container",
) -> Iterator[Container]:  # fmt: skip
    """The container `client.containers.create(**kwargs)` makes, removed when the block ends
    however it ends (SIGTERM is handled like Ctrl-C within it). UserError (one line) when it
    cannot be created: ImageNotBuilt when `image` is not there."""
    with Group(client, image=image, target=target, flavor=flavor) as group:
        yield group.create(kwargs, f"the {role}")


def remove_all(
    containers: Iterable[Any], network: Any = None, say: Callable[[str], object] = print
) -> None:
    """Remove the containers (forced), then the network; a second try after a second (a
    container that is still stopping can refuse once); what is already gone is fine. An error
    (the engine refusing, or gone) never stops the others: each one left is one line."""
    left: list[tuple[Any, bool]] = [(c, True) for c in containers]
    if network is not None:
        left.append((network, False))  # a network's remove() takes no force
    why: dict[int, str] = {}
    for attempt in (1, 2):
        failed = []
        for item, force in left:
            try:
                with sdk_errors():
                    item.remove(force=True) if force else item.remove()
            except Missing:
                pass
            except CallFailed as exc:
                failed.append((item, force))
                why[id(item)] = exc.text
        left = failed
        if not left:
            return
        if attempt == 1:
            time.sleep(1)
    for item, _ in left:
        name = getattr(item, "name", "?")
        say(f"torchenv: could not remove {name} ({why[id(item)]}): run `invoke clean`")


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


def remove_by_name(client: str, name: str, runner: Runner = subprocess_runner) -> Result:
    """`docker rm --force NAME` through the CLI (a container the kit named and started)."""
    return runner([client, "rm", "--force", name], timeout=60)


def copy_out_commands(
    client: str, image: str, name: str, copies: Sequence[tuple[str, str]], own: Sequence[str] = ()
) -> list[list[str]]:
    """Copy files (`copies`: (path in the image, path here)) out of a created, never started
    container (no process, no network: a third of the time `docker run` takes), then remove
    it. `own`: the --label arguments it carries (an interrupt between create and rm leaves what
    `invoke clean` finds); made from the local image only (`--pull never`)."""
    return [
        [client, "create", "--pull", "never", *own, "--name", name, image],
        *([client, "cp", f"{name}:{inside}", here] for inside, here in copies),
        [client, "rm", "--force", name],
    ]

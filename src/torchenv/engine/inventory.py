"""What torchenv made on the engine, found by its labels (torchenv.engine.labels): containers,
images and networks, each with what `invoke clean` needs to decide (torchenv.image.clean).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from torchenv.engine import labels
from torchenv.errors import UserError
from torchenv.runner import Runner, subprocess_runner


@dataclass(frozen=True)
class Found:
    kind: str  # container | image | network
    id: str
    names: tuple[str, ...] = ()  # container or network name; image tags
    state: str = ""  # a container's state (running, exited, created ...)
    labels: tuple[tuple[str, str], ...] = ()


def _filters(key: str, target: str | None) -> list[str]:
    flt = ["--filter", f"label={key}"]
    return flt + (["--filter", f"label={labels.TARGET}={target}"] if target else [])


def find(
    client: str,
    target: str | None = None,
    runner: Runner = subprocess_runner,
    projects: frozenset[str] | None = None,
) -> list[Found]:
    """torchenv's containers, images and networks on the engine (all, or `target`'s); with
    `projects` (image_repos), the containers and networks of those projects alone (images are
    told apart by torchenv.image.clean, which knows images from before the project label)."""

    def lines(argv: list[str]) -> list[str]:
        done = runner(argv, timeout=120)
        if not done.ok:
            raise UserError(f"{' '.join(argv[:3])} failed: {done.first_error_line()}")
        return [line for line in done.stdout.splitlines() if line.strip()]

    managed = f"{labels.MANAGED}=true"
    found = []
    mark = f'{{{{.Label "{labels.PROJECT}"}}}}'

    def wanted(maker: str) -> bool:
        return projects is None or maker in projects

    fmt = "{{.ID}}\t{{.Names}}\t{{.State}}\t" + mark
    for line in lines([client, "container", "ls", "--all", "--no-trunc",
                       *_filters(managed, target), "--format", fmt]):  # fmt: skip
        cid, name, state, maker = (line.split("\t") + ["", "", ""])[:4]
        if wanted(maker):
            found.append(Found("container", cid, (name,), state))
    ids = lines([client, "image", "ls", "--quiet", "--no-trunc", *_filters(labels.TARGET, target)])
    if ids:
        fmt = "{{.Id}}\t{{json .RepoTags}}\t{{json .Config.Labels}}"
        for line in lines([client, "image", "inspect", "--format", fmt, *dict.fromkeys(ids)]):
            iid, tags, image_labels = line.split("\t", 2)
            found.append(Found("image", iid, tuple(json.loads(tags) or ()), "",
                               tuple(sorted((json.loads(image_labels) or {}).items()))))  # fmt: skip
    fmt = "{{.ID}}\t{{.Name}}\t" + mark
    for line in lines([client, "network", "ls", "--no-trunc", *_filters(managed, target),
                       "--format", fmt]):  # fmt: skip
        nid, name, maker = (line.split("\t") + ["", ""])[:3]
        if wanted(maker):
            found.append(Found("network", nid, (name,)))
    return found

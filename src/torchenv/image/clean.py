"""`invoke clean`: find what torchenv made on the engine by its labels, and remove it.

What counts as torchenv's (see torchenv.engine.labels):
- containers labelled io.torchenv.managed=true (smoke, shell, notebook, verify, multi-node
  runs); a running one is kept and named, so that an open shell is never killed;
- networks labelled io.torchenv.managed=true (multi-node runs);
- images labelled io.torchenv.target (every image the Dockerfiles build): the tag the build gave
  (label io.torchenv.tag; for images built before that label, the matrix's image names), and
  untagged (`<none>`) ones. An image built FROM a torchenv image inherits the labels but carries
  another tag: it is kept, and named.

torchenv.engine.inventory's `find` asks the engine, `plan` decides (pure), `run` removes.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from torchenv.engine import labels
from torchenv.engine.inventory import Found, find
from torchenv.errors import UserError
from torchenv.runner import Runner, subprocess_runner

NONE_TAG = "<none>:<none>"
__all__ = ["Found", "Step", "UserError", "describe", "find", "plan", "run"]


@dataclass(frozen=True)
class Step:
    kind: str
    ref: str  # what `docker <kind> rm` is given
    what: str  # for people
    keep: str = ""  # why it stays; "" when it is removed

    def argv(self, client: str) -> list[str]:
        return [client, self.kind, "rm", self.ref]


def plan(
    found: Iterable[Found],
    known_images: Iterable[str] = (),
    projects: frozenset[str] | None = None,
) -> list[Step]:
    """What to remove and what to keep (with why): containers, then images, then networks.

    `known_images`: the matrix's image names, this project's for an image without
    io.torchenv.tag or io.torchenv.project (a kit from before those labels); `projects`: this
    project's image_repos, the io.torchenv.project of what it made (None: any project's).
    """
    known = set(known_images)
    order = {"container": 0, "image": 1, "network": 2}
    steps = []
    for item in sorted(found, key=lambda f: (order[f.kind], f.names, f.id)):
        short = item.id.removeprefix("sha256:")[:12]
        if item.kind == "container":
            what = f"container {item.names[0] if item.names else short} ({item.state or 'unknown'})"
            keep = "it is running: stop it first" if item.state == "running" else ""
            steps.append(Step("container", item.id, what, keep))
        elif item.kind == "network":
            steps.append(
                Step("network", item.id, f"network {item.names[0] if item.names else short}")
            )
        else:
            steps += _image_steps(item, short, known, projects)
    return steps


def _image_steps(
    item: Found, short: str, known: set[str], projects: frozenset[str] | None
) -> list[Step]:
    tags = [t for t in item.names if t != NONE_TAG]
    found = dict(item.labels)
    maker = found.get(labels.PROJECT)
    if projects is not None and maker and maker not in projects:
        return [Step("image", item.id, f"image {(tags or [short])[0]} ({short})",
                     f"another project's ({labels.PROJECT}={maker})")]  # fmt: skip
    if not tags:
        if projects is not None and not maker:
            why = "untagged, from a kit before the project label: `docker image rm` it yourself"
            return [Step("image", item.id, f"image {short} (untagged)", why)]
        return [Step("image", item.id, f"image {short} (untagged)")]
    own = found.get(labels.TAG)
    steps = []
    for tag in tags:
        if projects is None or maker:  # any project's, or labelled as this project's
            ours = tag == own if own else tag in known
        else:  # from a kit before the project label: this project's names alone
            ours = tag in known and (tag == own or not own)
        keep = (
            "" if ours else "not tagged by a torchenv build (an image built FROM one, or retagged)"
        )
        steps.append(Step("image", tag, f"image {tag} ({short})", keep))
    return steps


def describe(steps: Iterable[Step], dry_run: bool) -> list[str]:
    """One line for each step; with dry_run, what would be removed."""
    lines = []
    for step in steps:
        if step.keep:
            lines.append(f"keep {step.what}: {step.keep}")
        else:
            lines.append(f"{'would remove' if dry_run else 'removing'} {step.what}")
    return lines or ["nothing of torchenv's on this engine"]


def run(
    steps: Iterable[Step],
    client: str,
    runner: Runner = subprocess_runner,
    out: Callable[[str], object] = print,
) -> list[str]:
    """Remove what the steps say, printing each command; one line for each removal that failed."""
    failed = []
    for step in steps:
        if step.keep:
            continue
        out(shlex.join(step.argv(client)))
        done = runner(step.argv(client), timeout=300)
        if not done.ok:
            failed.append(f"could not remove {step.what}: {done.first_error_line()}")
    return failed

"""targets.toml's [ci] table: which targets the CI workflow builds on which event.

    [ci]
    push = ["cpu", "cuda13"]   # a push to a branch (and a pull request: no pull_request key)
    main = "all"               # a push to the default branch

Each key is an event, each value "all" or a list of the matrix's targets (an empty list: no image
on that event). `main` is a push to the repository's default branch; the other keys are GitHub
Actions' event names. An event the table does not name falls back along `FALLBACK` (a push to the
default branch takes `push`'s list when there is no `main`, a pull request takes `push`'s when
there is no `pull_request`) and, failing that, builds every target: a project without a [ci]
table builds everything on every event, as before the table existed.

`python -m torchenv.matrix --json --event EVENT [--ref REF --default-branch NAME]` prints the
event's targets for the workflow (torchenv.matrix.main).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from torchenv.errors import UserError

MAIN = "main"  # a push to the default branch
EVENTS = (MAIN, "push", "pull_request", "merge_group", "schedule", "workflow_dispatch")
ALL = "all"
# Where an event's targets come from when the table does not name it (then: every target).
FALLBACK: dict[str, tuple[str, ...]] = {
    MAIN: ("push",),
    "pull_request": ("push",),
    "merge_group": ("pull_request", "push"),
}
_EVENT_NAME = re.compile(r"[a-z_]{1,40}")


@dataclass(frozen=True)
class CI:
    """The [ci] table: event -> target names (None: all of them)."""

    events: dict[str, tuple[str, ...] | None] = field(default_factory=dict)

    def targets(self, event: str, names: Sequence[str]) -> list[str]:
        """The targets (of `names`, the matrix's, in its order) that `event` builds."""
        for key in (event, *FALLBACK.get(event, ())):
            if key in self.events:
                chosen = self.events[key]
                return list(names) if chosen is None else [n for n in names if n in chosen]
        return list(names)


def parse_ci(raw: object, names: Sequence[str], source: str = "targets.toml") -> CI:
    """The [ci] table's value (None: no table) checked against the target `names`; UserError
    (one line) for anything else."""
    if raw is None:
        return CI()
    if not isinstance(raw, dict):
        raise UserError(f"{source}: ci must be a table ([ci])")
    events: dict[str, tuple[str, ...] | None] = {}
    for key, value in raw.items():
        if key not in EVENTS:
            raise UserError(
                f"{source}: [ci] has the unknown event {key!r}: use {', '.join(EVENTS)} "
                f"({MAIN}: a push to the default branch)"
            )
        if value == ALL:
            events[key] = None
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UserError(
                f'{source}: [ci] {key} must be "all" or a list of targets, e.g. ["cpu", "cuda13"]'
            )
        unknown = [v for v in value if v not in names]
        if unknown:
            raise UserError(
                f"{source}: [ci] {key} names {unknown[0]!r}, which is no target: choose from "
                f"{', '.join(names)}"
            )
        events[key] = tuple(dict.fromkeys(value))
    return CI(events)


def event_of(event: str, ref: str = "", default_branch: str = "") -> str:
    """The [ci] key of a GitHub event: `main` for a push to the default branch; UserError for
    what no event is called."""
    if not _EVENT_NAME.fullmatch(event):
        raise UserError(f"--event {event!r} is not an event name (push, pull_request, ...)")
    if event == "push" and default_branch and ref == f"refs/heads/{default_branch}":
        return MAIN
    return event

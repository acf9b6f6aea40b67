"""`invoke clean`: the commands that remove what torchenv made on the engine."""

from __future__ import annotations

from collections.abc import Iterable

from torchenv.matrix import FLAVORS, Target
from torchenv.shell import SHELL_LABEL
from torchenv.smoke import SMOKE_LABEL


def clean_commands(client: str, targets: Iterable[Target]) -> list[list[str]]:
    """Stopped smoke and shell containers (by label), then the targets' images (both flavors)."""
    images = [t.image(f) for t in targets for f in FLAVORS]
    prune = [
        [client, "container", "prune", "--force", "--filter", f"label={label}"]
        for label in (SMOKE_LABEL, SHELL_LABEL)
    ]
    return [*prune, [client, "image", "rm", "--force", *images]]

"""The init record: every file `torchenv init` wrote for the kit, with the sha256 of what it wrote.

It lives beside the kit's other files (`<files>/init.json`, committed), so that a later `init`
(a second run, or a newer kit upgrading the project) knows which files are the kit's as it wrote
them (it may rewrite those) and which the user changed since (it keeps and names those).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from torchenv.errors import UserError
from torchenv.files import inside

NAME = "init.json"


def sha256(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


@dataclass
class Record:
    kit: str = ""  # the kit's version that wrote it
    files: dict[str, str] = field(default_factory=dict)  # path (from the root): sha256 written

    def owns(self, rel: str, current: str | bytes) -> bool:
        """Whether the file at `rel` is still what the kit wrote there (the user did not change
        it since)."""
        return self.files.get(rel) == sha256(current)

    def dumps(self) -> str:
        body = {"kit": self.kit, "files": dict(sorted(self.files.items()))}
        return json.dumps(body, indent=2) + "\n"


def path(files: str) -> Path:
    """Where a project's record is, relative to its root (`files`: targets.toml's)."""
    return Path(files) / NAME


def load(root: Path, rel: Path) -> Record:
    """The project's record; an empty one when there is none (a project set up by torchenv 0.1,
    or a new one); UserError (one line) when it cannot be read as one."""
    full = Path(root) / rel
    if not full.exists() and not full.is_symlink():
        return Record()
    inside(root, rel, str(rel))
    try:
        data = json.loads(full.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(
            f"{rel} is not torchenv's init record ({exc.__class__.__name__}): restore it from "
            "version control, or delete it (init then keeps every file that differs from the kit's)"
        ) from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise UserError(f"{rel} has no files table of torchenv's: restore it, or delete it")
    return Record(str(data.get("kit", "")), dict(files))

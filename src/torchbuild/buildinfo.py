"""/opt/torchenv/build-info.json: what the image build did (target, installer, lock mode).

    python -m torchbuild.buildinfo write PATH target=cuda13 installer=pip lock=hashes
    python -m torchbuild.buildinfo get PATH lock

`write` replaces the given keys and keeps the others (the dev flavor's extras step appends
"+extras" to the lock mode); `get` prints one value. Standard library only: it runs inside the
image build.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PATH = "/opt/torchenv/build-info.json"
KEYS = ("target", "installer", "lock", "package")


def read(path: str | Path = PATH) -> dict[str, str]:
    """The recorded values; {} when the file is missing or not a JSON object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def write(path: str | Path, **values: str) -> dict[str, str]:
    """Merge `values` into the file (written whole, by rename); returns the new content."""
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown build-info keys {', '.join(unknown)}: use {', '.join(KEYS)}")
    data = {**read(path), **values}
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True) + "\n")
    tmp.replace(path)
    return data


def main(argv: list[str]) -> int:
    usage = "usage: buildinfo.py write PATH KEY=VALUE... | get PATH KEY"
    if len(argv) >= 2 and argv[0] == "write":
        pairs = [arg.partition("=") for arg in argv[2:]]
        if not pairs or any(not sep for _, sep, _ in pairs):
            print(usage, file=sys.stderr)
            return 2
        try:
            write(argv[1], **{k: v for k, _, v in pairs})
        except ValueError as exc:
            print(f"buildinfo: {exc}", file=sys.stderr)
            return 2
        return 0
    if len(argv) == 3 and argv[0] == "get":
        print(read(argv[1]).get(argv[2], ""))
        return 0
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Print one of README.md's two quick-start commands, so CI runs exactly what the README says.

    python3 .ci/quickstart.py 1    the main job (set up, build, smoke)
    python3 .ci/quickstart.py 2    the tests

The commands are the non-comment lines of the first ```bash block under README.md's "Quick start"
heading, in order.
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart(text: str) -> list[str]:
    """The command lines of the bash block under the README's "Quick start" heading (comments
    and blank lines dropped)."""
    match = re.search(r"(?m)^#+ Quick start[^\n]*\n.*?```bash\n(.*?)```", text, flags=re.S)
    if match is None:
        raise ValueError('README.md has no ```bash block under a "Quick start" heading')
    lines = [line.strip() for line in match.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def main(argv: list[str]) -> int:
    commands = quickstart(README.read_text())
    if len(argv) != 1 or argv[0] not in ("1", "2") or len(commands) != 2:
        print("usage: quickstart.py 1|2 (README.md's Quick start block holds two commands)",
              file=sys.stderr)  # fmt: skip
        return 2
    print(commands[int(argv[0]) - 1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

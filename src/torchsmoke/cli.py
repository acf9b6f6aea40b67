"""`python -m torchsmoke`: parse the command line once (torchsmoke.options), check the names it
selects against the table of checks, then list them or run them (torchsmoke.suite).

The top of the package: nothing in torchsmoke imports it but __main__. Standard library only but
for the suite, which it imports (torch with it) only to run the checks: `--help`, `--version` and
`--list` work without torch, and anything else in a Python without torch ends with one line
saying so (exit 2).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from torchsmoke import checks
from torchsmoke.options import EXIT_OK, EXIT_USAGE, build_parser, parse

# build_parser: re-exported, for tests/torchenv/test_readme.py checks the README's command lines
# with torchsmoke.cli's parser
__all__ = ["UsageError", "build_parser", "listing", "main", "select"]


class UsageError(Exception):
    pass


def _names(text: str | None, option: str) -> list[str]:
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    unknown = [n for n in names if n not in checks.NAMES]
    if unknown:
        raise UsageError(
            f"unknown check{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"in {option}; valid checks: {', '.join(checks.NAMES)}"
        )
    return names


def select(only: str | None, skip: str | None) -> list[checks.Entry]:
    """The checks to run, in the suite's order; UsageError for an unknown name."""
    wanted = set(_names(only, "--only")) if only is not None else set(checks.NAMES)
    dropped = set(_names(skip, "--skip"))
    return [c for c in checks.ALL if c.name in wanted and c.name not in dropped]


def listing() -> str:
    """`--list`: a line a check, its name and summary, in the order they run."""
    width = max(len(c.name) for c in checks.ALL)
    return "\n".join(f"{c.name:<{width}}  {c.summary}" for c in checks.ALL)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m torchsmoke`: parse once, then list the checks or run them (see the package
    docstring)."""
    invocation = parse(sys.argv[1:] if argv is None else argv)
    try:
        selected = select(invocation.only, invocation.skip)
    except UsageError as exc:
        print(f"torchsmoke: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if invocation.list:
        print(listing())
        return EXIT_OK
    try:
        from torchsmoke import suite
    except ImportError as exc:
        if exc.name != "torch":
            raise
        print(
            f"torchsmoke: error: torch is not installed in this Python ({sys.executable}): "
            "install torch here, or run the suite in a torchenv image (invoke smoke)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return suite.run(invocation, selected)

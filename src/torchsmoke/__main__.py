"""`python -m torchsmoke`: see the package docstring (`python -m torchsmoke --help`).

Without torch in this Python, `--help` and `--list` still work and anything else ends with one
line saying so (exit 2): the suite imports torch only once it is going to run.
"""

from __future__ import annotations

import sys


def without_torch(argv: list[str], why: str) -> int:
    from torchsmoke import catalog, options

    args = options.build_parser().parse_args(argv)  # --help prints and exits here
    if args.list:
        listed = catalog.checks()
        width = max(len(name) for name, _ in listed)
        for name, summary in listed:
            print(f"{name:<{width}}  {summary}")
        return options.EXIT_OK
    print(
        f"torchsmoke: error: {why} in this Python ({sys.executable}): install torch here, or run "
        "the suite in a torchenv image (invoke smoke)",
        file=sys.stderr,
    )
    return options.EXIT_USAGE


def main() -> int:
    try:
        from torchsmoke.cli import main as run
    except ImportError as exc:
        if exc.name != "torch":
            raise
        return without_torch(sys.argv[1:], "torch is not installed")
    return run()


if __name__ == "__main__":
    sys.exit(main())

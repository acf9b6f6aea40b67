"""The `torchenv` command: what runs before a project has its tasks.py.

    torchenv init [--force]    make the working directory a torchenv project (torchenv.scaffold)
    torchenv stage             stage the kit into .torchenv/ (the dev containers' initializeCommand)
    torchenv --version         the kit's version (torchbuild.__version__, the one source)

Everything else is an invoke task of the project (`invoke --list`). A user mistake is one line
on stderr and exit status 1; Ctrl-C is 130.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from torchenv import __version__, matrix, scaffold
from torchenv.credentials import redact_text
from torchenv.errors import Problems, UserError
from torchenv.image import context as buildcontext


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="torchenv",
        description="Containerized, reproducible PyTorch environments for your project.",
        epilog="After init: `invoke --list` shows the project's tasks (build, smoke, lock, ...).",
    )
    parser.add_argument("--version", action="version", version=f"torchenv {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    init = sub.add_parser(
        "init", help="set up this folder as a torchenv project",
        description="Write targets.toml, tasks.py, noxfile.py, .dockerignore and the generated "
        "envs/, docker/ and .devcontainer/ in this folder (or the project root above it). A file "
        "that exists with other content is kept unless --force; a second run writes nothing.",
    )  # fmt: skip
    init.add_argument("--force", action="store_true", help="replace files that differ")
    init.add_argument(
        "--targets", metavar="T1,T2",
        help="the targets a new targets.toml holds, e.g. cpu,cuda13 (default: all the kit's)",
    )  # fmt: skip
    sub.add_parser(
        "stage", help="copy the kit's build files into .torchenv/ (invoke build does it too)"
    )
    return parser


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    root = matrix.find_root() or Path.cwd().resolve()
    if args.command == "init":
        names = [n.strip() for n in args.targets.split(",") if n.strip()] if args.targets else None
        outcome = scaffold.init(root, force=args.force, names=names)
        for line in outcome.lines(root):
            print(line)
        print(scaffold.next_steps(root))
    else:
        written = buildcontext.stage_kit(matrix.project_root())
        print(f"staged the kit in {buildcontext.KIT_DIR}/ ({len(written)} file(s) changed)")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except Problems as exc:  # several at once: a line each
        for line in exc.lines:
            print("torchenv: error: " + redact_text(line), file=sys.stderr)
        return 1
    except UserError as exc:
        print("torchenv: error: " + redact_text(" ".join(str(exc).splitlines())), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("torchenv: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a folder that vanished or turned read-only halfway
        where = f" ({Path(exc.filename)})" if exc.filename else ""
        print(f"torchenv: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

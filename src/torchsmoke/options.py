"""The suite's command-line options and exit codes: standard library only, so that `--help` and
`--list` work in a Python without torch (see torchsmoke/__main__.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from torchsmoke import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# --expect-<key> options, with an example value each (a version matches ignoring its +label).
EXPECT_OPTIONS = {
    "variant": "cu118",
    "torch": "2.7.1",
    "torchvision": "0.22.1",
    "torchaudio": "2.7.1",
    "python": "3.11",
}


class UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="torchsmoke",
        description="Smoke-test this PyTorch environment by training in it.",
        epilog="Exit status: 0 nothing failed, 1 a check failed, 2 usage error (or no torch here).",
    )
    select = parser.add_argument_group("selection")
    select.add_argument("--only", metavar="A,B", help="run only these checks")
    select.add_argument("--skip", metavar="A,B", help="do not run these checks")
    select.add_argument("--list", action="store_true", help="list the checks and exit")
    run = parser.add_argument_group("run")
    run.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="device for the training checks (default: auto, CUDA when available)",
    )
    run.add_argument("--quick", action="store_true", help="smaller budget (dev-container start-up)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    run.add_argument(
        "--no-rerun",
        action="store_true",
        help="do not re-run a failed check in a fresh interpreter (default: re-run it, so that "
        "what it broke cannot fail later checks; the report shows both runs)",
    )
    expect = parser.add_argument_group("expectations (the expect check)")
    for key, example in EXPECT_OPTIONS.items():
        metavar = "VARIANT" if key == "variant" else "VERSION"
        expect.add_argument(f"--expect-{key}", metavar=metavar, help=f"e.g. {example}")
    expect.add_argument(
        "--require-gpu", action="store_true", help="fail (not skip) when no GPU is usable"
    )
    expect.add_argument(
        "--require-compiler",
        action="store_true",
        help="fail (not skip) the compile check when compiled code cannot run here (a noexec /tmp)",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="write the JSON report here ('-': stdout, one line)",
    )
    out.add_argument("--junit", type=Path, metavar="PATH", help="write JUnit XML here")
    parser.add_argument("--version", action="version", version=f"torchsmoke {__version__}")
    return parser

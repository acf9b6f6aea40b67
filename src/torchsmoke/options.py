"""The suite's command line, its one owner: flags, exit codes, the parsed `Invocation` and its
inverse `to_argv` (what a re-run in a fresh interpreter is given).

The bottom of the package: standard library only, and nothing of torchsmoke but its version, so
that the entry (torchsmoke.cli), the checks' context (torchsmoke.core), the suite and the re-run
(torchsmoke.rerun) all read it from below, and `--help` and `--version` work without torch.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Options:
    """What the checks see of the command line (a re-run gets the same)."""

    device: str = "auto"  # auto | cpu | cuda
    quick: bool = False
    seed: int = 0
    expect: dict[str, str] = field(default_factory=dict)  # variant/torch/torchvision/... -> value
    require_gpu: bool = False
    require_compiler: bool = False  # torch.compile must run: its skips become failures


@dataclass(frozen=True)
class Invocation:
    """One parsed command line: the checks' options, the selection and the outputs."""

    options: Options = field(default_factory=Options)
    only: str | None = None  # A,B as given
    skip: str | None = None
    list: bool = False
    no_rerun: bool = False
    json: Path | None = None  # '-': stdout, one line
    junit: Path | None = None
    argv: tuple[str, ...] = field(default=(), compare=False)  # as given: the report's "argv"

    @property
    def json_to_stdout(self) -> bool:
        return str(self.json) == "-"


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


def parse(argv: Sequence[str]) -> Invocation:
    """The command line, parsed once; argparse prints and exits on --help, --version or a bad
    option."""
    args = build_parser().parse_args(list(argv))
    expected = {
        key: value
        for key in EXPECT_OPTIONS
        if (value := getattr(args, f"expect_{key}")) is not None
    }
    options = Options(
        device=args.device,
        quick=args.quick,
        seed=args.seed,
        expect=expected,
        require_gpu=args.require_gpu,
        require_compiler=args.require_compiler,
    )
    return Invocation(
        options, args.only, args.skip, args.list, args.no_rerun, args.json, args.junit, tuple(argv)
    )


def to_argv(invocation: Invocation) -> list[str]:
    """The arguments that `parse` reads back as `invocation` (its `argv` aside): the one inverse
    of the parser."""
    o = invocation.options
    argv = ["--list"] if invocation.list else []
    argv += ["--no-rerun"] if invocation.no_rerun else []
    argv += ["--only", invocation.only] if invocation.only is not None else []
    argv += ["--skip", invocation.skip] if invocation.skip is not None else []
    argv += ["--device", o.device, "--seed", str(o.seed)]
    for key, value in o.expect.items():
        argv += [f"--expect-{key}", value]
    flags = {
        "--quick": o.quick,
        "--require-gpu": o.require_gpu,
        "--require-compiler": o.require_compiler,
    }
    argv += [flag for flag, on in flags.items() if on]
    argv += ["--json", str(invocation.json)] if invocation.json is not None else []
    argv += ["--junit", str(invocation.junit)] if invocation.junit is not None else []
    return argv

"""Command line: `python -m torchsmoke [--only a,b | --skip a,b] [--json PATH] ...`.

Exit status: 0 when no check failed, 1 when one did, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from torchsmoke import __version__, envinfo, report
from torchsmoke.checks import ALL, BY_NAME, NAMES
from torchsmoke.core import Check, Context, Options, Result, error_summary, run_checks

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
        epilog="Exit status: 0 nothing failed, 1 a check failed, 2 usage error.",
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
        help="fail (not skip) the compile check when no C/C++ compiler is on PATH",
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


def _names(text: str | None, option: str) -> list[str]:
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise UsageError(
            f"unknown check{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"in {option}; valid checks: {', '.join(NAMES)}"
        )
    return names


def select(only: str | None, skip: str | None) -> list[Check]:
    """The checks to run, in the suite's order; UsageError for an unknown name."""
    wanted = set(_names(only, "--only")) if only is not None else set(NAMES)
    dropped = set(_names(skip, "--skip"))
    return [c for c in ALL if c.name in wanted and c.name not in dropped]


def configure_threads() -> int:
    """A sensible intra-op thread count, unless the user chose one with OMP_NUM_THREADS."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(min(4, envinfo.get_cpu_count() or 1))
    return torch.get_num_threads()


def _options(args: argparse.Namespace) -> Options:
    expected = {
        key: value
        for key in EXPECT_OPTIONS
        if (value := getattr(args, f"expect_{key}")) is not None
    }
    return Options(
        device=args.device,
        quick=args.quick,
        seed=args.seed,
        expect=expected,
        require_gpu=args.require_gpu,
        require_compiler=args.require_compiler,
    )


def _env_dict(ctx: Context) -> dict:
    try:
        return ctx.env.to_dict()
    except Exception as exc:  # the env check reports it as a failure too
        return {"error": error_summary(exc)}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        checks = select(args.only, args.skip)
    except UsageError as exc:
        print(f"torchsmoke: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.list:
        width = max(len(n) for n in NAMES)
        for chk in ALL:
            print(f"{chk.name:<{width}}  {chk.summary}")
        return EXIT_OK

    threads = configure_threads()
    ctx = Context(_options(args))
    print(
        f"torchsmoke {__version__}: torch {torch.__version__}, Python "
        f"{platform.python_version()}, device {args.device}, seed {args.seed}, "
        f"{threads} threads{', quick' if args.quick else ''}; {len(checks)} checks",
        flush=True,
    )
    width = max([0, *(len(c.name) for c in checks)])

    def on_result(result: Result) -> None:
        print(report.result_line(result, width), flush=True)
        if result.name == "env" and result.status == "pass":
            print("      " + envinfo.render(ctx.env).replace("\n", "\n      "), flush=True)

    start = time.perf_counter()
    try:
        results = run_checks(checks, ctx, on_result)
    except KeyboardInterrupt:
        print("torchsmoke: interrupted", file=sys.stderr)
        return 130
    duration = time.perf_counter() - start
    print()
    print(report.table(results, duration), flush=True)

    data = report.build(results, _env_dict(ctx), argv, duration)
    if args.json and str(args.json) == "-":
        print(report.one_line(data), flush=True)
    elif args.json:
        report.write_json(data, args.json)
        print(f"JSON report: {args.json}")
    if args.junit:
        report.write_junit(data, args.junit)
        print(f"JUnit XML: {args.junit}")
    return EXIT_FAILED if data["summary"]["fail"] else EXIT_OK

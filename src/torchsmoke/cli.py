"""Command line: `python -m torchsmoke [--only a,b | --skip a,b] [--json PATH] ...`.

Exit status: 0 when no check failed, 1 when one did, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from torchsmoke import __version__, envinfo, report
from torchsmoke.checks import ALL, BY_NAME, NAMES, distributed
from torchsmoke.core import FAIL, Check, Context, Options, Result, error_summary, run_checks
from torchsmoke.options import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    EXPECT_OPTIONS,
    UsageError,
    build_parser,
)

RERUN_TIMEOUT_S = 900


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


def option_args(options: Options) -> list[str]:
    """The command-line arguments that give a fresh interpreter the same options."""
    args = ["--device", options.device, "--seed", str(options.seed)]
    for key, value in options.expect.items():
        args += [f"--expect-{key}", value]
    flags = {
        "--quick": options.quick,
        "--require-gpu": options.require_gpu,
        "--require-compiler": options.require_compiler,
    }
    return args + [flag for flag, on in flags.items() if on]


def rerun_argv(name: str, options: Options, json_path: Path) -> list[str]:
    return [
        sys.executable, "-m", "torchsmoke", "--no-rerun", "--only", name,
        *option_args(options), "--json", str(json_path),
    ]  # fmt: skip


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def rerun_in_fresh_interpreter(chk: Check, options: Options) -> Result:
    """Run one check again in a new `python -m torchsmoke`, which shares nothing with this one
    but the environment variables; a failure when that run gives no result."""
    start = time.perf_counter()

    def failed(reason: str, **details: str) -> Result:
        return Result(chk.name, FAIL, reason, round(time.perf_counter() - start, 3), details)

    try:
        with tempfile.TemporaryDirectory(prefix="torchsmoke-rerun-") as tmp:
            out = Path(tmp) / "result.json"
            proc = subprocess.run(
                rerun_argv(chk.name, options, out), capture_output=True, text=True,
                errors="replace", timeout=RERUN_TIMEOUT_S, stdin=subprocess.DEVNULL, check=False,
            )  # fmt: skip
            # the report is written as the run goes: a run that died holds no result for it
            done = json.loads(out.read_text())["checks"] if out.exists() else []
            if done:
                return Result(**done[0])
    except subprocess.TimeoutExpired:
        return failed(f"the fresh interpreter gave no result within {RERUN_TIMEOUT_S} s")
    except (OSError, ValueError, LookupError, TypeError) as exc:
        return failed(f"cannot re-run it in a fresh interpreter: {error_summary(exc)}")
    return failed(
        f"the fresh interpreter ended with exit status {proc.returncode} and no result: "
        f"{_last_line(proc.stderr or proc.stdout)}",
        output=(proc.stdout + proc.stderr)[-4000:],
    )


def _env_dict(ctx: Context) -> dict[str, Any]:
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
    finished: list[Result] = []
    # `--json -` prints the whole report at the end and writes no file, partial or final.
    json_to_stdout = str(args.json) == "-"
    json_file = None if json_to_stdout else args.json

    def write_partial() -> None:
        """The JSON report so far, with the check now running: what a killed run leaves."""
        if json_file:
            running = checks[len(finished)].name if len(finished) < len(checks) else None
            env = _env_dict(ctx) if finished else {}
            data = report.build(finished, env, argv, time.perf_counter() - start)
            report.write_json({**data, "partial": True, "running": running}, json_file)

    def on_result(result: Result) -> None:
        print(report.result_line(result, width), flush=True)
        if result.name == "env" and result.status == "pass":
            print("      " + envinfo.render(ctx.env).replace("\n", "\n      "), flush=True)
        finished.append(result)
        write_partial()

    start = time.perf_counter()
    write_partial()
    try:
        # Under torchrun a check is one rank of a job: it cannot run again on its own.
        alone = args.no_rerun or distributed.launched_by_torchrun()
        rerun = None if alone else lambda chk: rerun_in_fresh_interpreter(chk, ctx.options)
        results = run_checks(checks, ctx, on_result, rerun)
    except KeyboardInterrupt:
        print("torchsmoke: interrupted", file=sys.stderr)
        return 130
    duration = time.perf_counter() - start
    print()
    print(report.table(results, duration), flush=True)

    data = report.build(results, _env_dict(ctx), argv, duration)
    if json_to_stdout:
        print(report.one_line(data), flush=True)
    elif json_file:
        report.write_json(data, json_file)
        print(f"JSON report: {json_file}")
    if args.junit:
        report.write_junit(data, args.junit)
        print(f"JUnit XML: {args.junit}")
    return EXIT_FAILED if data["summary"]["fail"] else EXIT_OK

"""Run a parsed command line (torchsmoke.options; torchsmoke.cli calls `run`): the selected
checks, a result line as each one finishes (each check is printed once), a closing line with the
counts, the JSON report (rewritten as the run goes) and JUnit XML.

A failed check runs again in a fresh interpreter (torchsmoke.rerun) unless --no-rerun is given or
torchrun launched the suite. The exit status is 0 when no check failed, 1 when one did.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch

from torchsmoke import __version__, checks, envinfo, report
from torchsmoke.checks.ddp import launched_by_torchrun
from torchsmoke.core import Context, Result, error_summary, run_checks
from torchsmoke.options import EXIT_FAILED, EXIT_OK, Invocation
from torchsmoke.rerun import rerun_in_fresh_interpreter


def configure_threads() -> int:
    """A sensible intra-op thread count, unless the user chose one with OMP_NUM_THREADS."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(min(4, envinfo.get_cpu_count() or 1))
    return torch.get_num_threads()


def _env_dict(ctx: Context) -> dict[str, Any]:
    try:
        return ctx.env.to_dict()
    except Exception as exc:  # the env check reports it as a failure too
        return {"error": error_summary(exc)}


def run(invocation: Invocation, selected: Sequence[checks.Entry]) -> int:
    """Run the `selected` checks with the invocation's options; the exit status."""
    options, argv = invocation.options, list(invocation.argv)
    to_run = [checks.deferred(entry.name) for entry in selected]
    threads = configure_threads()
    ctx = Context(options)
    print(
        f"torchsmoke {__version__}: torch {torch.__version__}, Python "
        f"{platform.python_version()}, device {options.device}, seed {options.seed}, "
        f"{threads} threads{', quick' if options.quick else ''}; {len(to_run)} checks",
        flush=True,
    )
    width = max([0, *(len(c.name) for c in to_run)])
    finished: list[Result] = []
    # `--json -` prints the whole report at the end and writes no file, partial or final.
    json_file = None if invocation.json_to_stdout else invocation.json

    def write_partial() -> None:
        """The JSON report so far, with the check now running: what a killed run leaves."""
        if json_file:
            running = to_run[len(finished)].name if len(finished) < len(to_run) else None
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
        alone = invocation.no_rerun or launched_by_torchrun()
        rerun = None if alone else lambda chk: rerun_in_fresh_interpreter(chk, options)
        results = run_checks(to_run, ctx, on_result, rerun)
    except KeyboardInterrupt:
        print("torchsmoke: interrupted", file=sys.stderr)
        return 130
    duration = time.perf_counter() - start
    print(report.closing_line(results, duration), flush=True)

    data = report.build(results, _env_dict(ctx), argv, duration)
    if invocation.json_to_stdout:
        print(report.one_line(data), flush=True)
    elif json_file:
        report.write_json(data, json_file)
        print(f"JSON report: {json_file}")
    if invocation.junit:
        report.write_junit(data, invocation.junit)
        print(f"JUnit XML: {invocation.junit}")
    return EXIT_FAILED if data["summary"]["fail"] else EXIT_OK

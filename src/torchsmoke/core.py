"""The check machinery: what a check sees and returns, `@check`, and the runner that isolates
them (a check is a `torchsmoke.checks.Check`, defined beside the table of checks it is named in).

A check is a function `fn(ctx) -> Outcome`. It passes by returning `passed(...)`, and skips or
fails by raising `CheckSkipped` / `CheckFailed` (from any depth). Any other exception is a
failure too, with its type, message and traceback: one broken check never stops the others.
The runner seeds the random generators before every check and restores torch's global state
(threads, determinism flags, TF32 switches, default dtype, environment variables) after it, so
the checks are independent of each other and of their order. What it cannot restore (a module
left half-imported by a failure, say) is handled by re-running a failed check in a fresh
interpreter (`run_checks`, `combine_runs`).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch

from torchsmoke import checks, envinfo
from torchsmoke.checks import Check
from torchsmoke.options import Options

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass(frozen=True)
class Outcome:
    status: str
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def passed(details: dict[str, Any] | None = None, note: str | None = None) -> Outcome:
    """A pass; `note` becomes the result's reason (a caveat worth reading even on success)."""
    return Outcome(PASS, note, dict(details or {}))


class CheckSkipped(Exception):
    def __init__(self, reason: str, **details: Any) -> None:
        super().__init__(reason)
        self.outcome = Outcome(SKIP, reason, details)


class CheckFailed(Exception):
    def __init__(self, reason: str, **details: Any) -> None:
        super().__init__(reason)
        self.outcome = Outcome(FAIL, reason, details)


def require(condition: bool, reason: str, **details: Any) -> None:
    """Fail the running check with `reason` unless `condition` holds (not stripped by -O)."""
    if not condition:
        raise CheckFailed(reason, **details)


@dataclass(frozen=True)
class Result:
    name: str
    status: str
    reason: str | None
    duration_s: float
    details: dict[str, Any]


class Context:
    """What every check sees: the options, the (cached) environment report and the device."""

    def __init__(self, options: Options | None = None) -> None:
        self.options = options or Options()

    @property
    def quick(self) -> bool:
        return self.options.quick

    @property
    def seed(self) -> int:
        return self.options.seed

    def pick(self, full: Any, quick: Any) -> Any:
        """The full-run or the --quick value of a budget (steps, samples...)."""
        return quick if self.options.quick else full

    @cached_property
    def env(self) -> envinfo.EnvReport:
        return envinfo.collect()

    @property
    def gpu_required(self) -> bool:
        return self.options.require_gpu or self.options.device == "cuda"

    @cached_property
    def has_cuda(self) -> bool:
        return torch.cuda.is_available()

    @property
    def device(self) -> torch.device:
        """The device the training checks use; a failure when --device cuda cannot be honoured."""
        wanted = self.options.device
        if wanted == "cpu" or (wanted == "auto" and not self.has_cuda):
            return torch.device("cpu")
        require(
            self.has_cuda,
            "--device cuda was given but torch.cuda.is_available() is False "
            "(the cuda check lists the likely causes)",
        )
        return torch.device("cuda")

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded from --seed (plus an offset for independent streams)."""
        return torch.Generator().manual_seed(self.options.seed + offset)


def check(name: str, summary: str | None = None) -> Callable[[Callable[..., Outcome]], Check]:
    """Decorator: turn `fn(ctx) -> Outcome` into the Check `name`, with the summary of its row
    in the table of checks (torchsmoke.checks), or `summary` for a check outside the table."""
    text = checks.entry(name).summary if summary is None else summary

    def wrap(func: Callable[..., Outcome]) -> Check:
        return Check(name, text, func)

    return wrap


def _deterministic_mode() -> tuple[bool, bool]:
    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )


@contextlib.contextmanager
def isolated_global_state() -> Iterator[None]:
    """Restore torch's process-wide switches and os.environ, whatever the check changed."""
    env = dict(os.environ)
    backends = torch.backends
    saved = {
        "threads": torch.get_num_threads(),
        "deterministic": _deterministic_mode(),
        "dtype": torch.get_default_dtype(),
        "grad": torch.is_grad_enabled(),
        "cudnn": (
            backends.cudnn.deterministic,
            backends.cudnn.benchmark,
            backends.cudnn.allow_tf32,
        ),
        "matmul_tf32": backends.cuda.matmul.allow_tf32,
    }
    try:
        yield
    finally:
        torch.set_num_threads(saved["threads"])
        if (
            _deterministic_mode() != saved["deterministic"]
        ):  # the setter costs ~1 s: only if changed
            mode, warn_only = saved["deterministic"]
            torch.use_deterministic_algorithms(mode, warn_only=warn_only)
        torch.set_default_dtype(saved["dtype"])
        torch.set_grad_enabled(saved["grad"])
        (
            backends.cudnn.deterministic,
            backends.cudnn.benchmark,
            backends.cudnn.allow_tf32,
        ) = saved["cudnn"]
        backends.cuda.matmul.allow_tf32 = saved["matmul_tf32"]
        for key in set(os.environ) - set(env):
            del os.environ[key]
        os.environ.update(env)


def error_summary(exc: BaseException, limit: int = 500) -> str:
    """'Type: first line', plus the last line when the message carries a traceback.

    Errors re-raised from DataLoader workers or spawned processes put the original error on
    the last line of a long message ("Caught OSError in DataLoader worker process 0. ...").
    """
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {lines[0] if lines else '(no message)'}"
    if len(lines) > 1 and "Traceback" in str(exc):
        text += f" ... {lines[-1]}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_check(chk: Check, ctx: Context) -> Result:
    """Run one check; never raises (but for KeyboardInterrupt / SystemExit)."""
    start = time.perf_counter()
    random.seed(ctx.seed)
    torch.manual_seed(ctx.seed)
    try:
        with isolated_global_state():
            outcome = chk.func(ctx)
        if not isinstance(outcome, Outcome):
            outcome = Outcome(FAIL, f"check returned {type(outcome).__name__}, not an Outcome")
    except (CheckSkipped, CheckFailed) as exc:
        outcome = exc.outcome
    except Exception as exc:  # the point: a check that raises is a failure, not a crash
        outcome = Outcome(FAIL, error_summary(exc), {"traceback": traceback.format_exc()})
    duration = round(time.perf_counter() - start, 3)
    return Result(chk.name, outcome.status, outcome.reason, duration, outcome.details)


IN_PROCESS, FRESH = "in the suite's interpreter", "in a fresh interpreter"
ATTEMPTS = "attempts"  # the details key of a re-run check: what each run gave


def _run_record(where: str, result: Result) -> dict[str, Any]:
    record: dict[str, Any] = {"where": where, "status": result.status, "reason": result.reason}
    record["duration_s"] = result.duration_s
    if "traceback" in result.details:
        record["traceback"] = result.details["traceback"]
    return record


def combine_runs(first: Result, again: Result) -> Result:
    """One result from a check that failed in the suite's interpreter and ran `again` in a
    fresh one: the fresh run decides (it cannot inherit what earlier checks broke); the reason
    and `details["attempts"]` say what each run gave."""
    if again.status == FAIL:
        reason = again.reason
        if first.reason != again.reason:
            reason = f"{again.reason} (in the suite's interpreter: {first.reason})"
    else:
        verdict = {PASS: "passed", SKIP: "skipped"}[again.status]
        note = f": {again.reason}" if again.reason else ""
        reason = f"{verdict} {FRESH}{note}; failed {IN_PROCESS}: {first.reason}"
    attempts = [_run_record(IN_PROCESS, first), _run_record(FRESH, again)]
    return Result(
        first.name,
        again.status,
        reason,
        round(first.duration_s + again.duration_s, 3),
        {**again.details, ATTEMPTS: attempts},
    )


def run_checks(
    checks: Iterable[Check],
    ctx: Context,
    on_result: Callable[[Result], None] | None = None,
    rerun: Callable[[Check], Result] | None = None,
) -> list[Result]:
    """Run the checks in order, calling `on_result` as each one finishes.

    One failure stays one failure: a check can fail in a way that breaks the interpreter for
    every later check (a half-imported torch module, a registry filled twice, a sticky CUDA
    error), which restoring the global switches cannot undo. So, given `rerun` (the command
    line passes one that runs the check in a fresh interpreter), a check that fails here is run
    again through it, and `combine_runs` reports both runs.
    """
    results = []
    for chk in checks:
        result = run_check(chk, ctx)
        if result.status == FAIL and rerun is not None:
            result = combine_runs(result, rerun(chk))
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results

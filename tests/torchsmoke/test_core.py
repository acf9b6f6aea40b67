"""The check machinery (torchsmoke.core): outcomes, the isolating runner, and one result from a
check that ran twice (`combine_runs`)."""

from __future__ import annotations

import os

import pytest
import torch

from torchsmoke import checks
from torchsmoke.core import (
    FAIL,
    PASS,
    SKIP,
    CheckFailed,
    CheckSkipped,
    Context,
    Result,
    check,
    combine_runs,
    error_summary,
    passed,
    run_check,
    run_checks,
)
from torchsmoke.options import Options


@check("ok", "passes")
def ok(ctx: Context):
    return passed({"seed": ctx.seed}, note="a caveat")


@check("boom", "raises")
def boom(ctx: Context):
    raise ZeroDivisionError("division by zero in a check")


@check("skips", "skips")
def skips(ctx: Context):
    raise CheckSkipped("not here", why="test")


@check("fails", "fails")
def fails(ctx: Context):
    raise CheckFailed("broken", value=3)


@check("meddles", "changes global state")
def meddles(ctx: Context):
    torch.set_num_threads(1)
    torch.backends.cudnn.benchmark = True
    torch.set_default_dtype(torch.float64)
    os.environ["TORCHSMOKE_TEST_LEAK"] = "1"
    return passed()


def test_a_raising_check_fails_and_the_others_still_run():
    seen = []
    results = run_checks([boom, ok, skips, fails], Context(), on_result=seen.append)
    assert [r.name for r in seen] == ["boom", "ok", "skips", "fails"]
    assert [r.status for r in results] == ["fail", "pass", "skip", "fail"]
    crashed = results[0]
    assert crashed.reason == "ZeroDivisionError: division by zero in a check"
    assert "Traceback" in crashed.details["traceback"]
    assert results[1].reason == "a caveat" and results[1].details == {"seed": 0}
    assert results[2].details == {"why": "test"} and results[3].details == {"value": 3}
    assert all(r.duration_s >= 0 for r in results)


def test_the_runner_restores_global_state():
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    benchmark = torch.backends.cudnn.benchmark
    result = run_check(meddles, Context())
    assert result.status == "pass"
    assert torch.get_num_threads() == threads
    assert torch.get_default_dtype() == dtype
    assert torch.backends.cudnn.benchmark == benchmark
    assert "TORCHSMOKE_TEST_LEAK" not in os.environ


def test_returning_something_else_is_a_failure():
    @check("sloppy", "returns a dict")
    def sloppy(ctx: Context):
        return {"accuracy": 1.0}

    result = run_check(sloppy, Context())
    assert result.status == "fail" and "not an Outcome" in result.reason


def test_error_summary_keeps_the_original_error_of_a_worker():
    exc = OSError(
        "Caught OSError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
        "last):\n  File x\nOSError: [Errno 28] No space left on device"
    )
    assert error_summary(exc) == (
        "OSError: Caught OSError in DataLoader worker process 0. ... "
        "OSError: [Errno 28] No space left on device"
    )


def test_device_cuda_without_a_gpu_is_a_failure_of_the_check(monkeypatch):
    ctx = Context(Options(device="cuda"))
    monkeypatch.setitem(ctx.__dict__, "has_cuda", False)

    @check("trains", "uses the device")
    def trains(ctx: Context):
        return passed({"device": str(ctx.device)})

    result = run_check(trains, ctx)
    assert result.status == "fail"
    assert "--device cuda was given but torch.cuda.is_available() is False" in result.reason
    assert ctx.gpu_required


def test_pick_chooses_the_quick_budget():
    assert Context(Options(quick=True)).pick(100, 10) == 10
    assert Context(Options()).pick(100, 10) == 100


def result(status: str, reason: str | None, seconds: float = 1.0, **details) -> Result:
    return Result("mlp", status, reason, seconds, details)


def test_combine_runs_the_fresh_run_decides_and_both_are_kept():
    first = result(FAIL, "AssertionError: already registered", traceback="Traceback ...")
    got = combine_runs(first, result(PASS, None, 2.0, final_loss=0.1))
    assert got.status == PASS and got.duration_s == 3.0
    assert got.reason == (
        "passed in a fresh interpreter; failed in the suite's interpreter: "
        "AssertionError: already registered"
    )
    assert got.details["final_loss"] == 0.1
    assert got.details["attempts"] == [
        {
            "where": "in the suite's interpreter",
            "status": FAIL,
            "reason": "AssertionError: already registered",
            "duration_s": 1.0,
            "traceback": "Traceback ...",
        },
        {"where": "in a fresh interpreter", "status": PASS, "reason": None, "duration_s": 2.0},
    ]


@pytest.mark.parametrize(
    ("again", "reason"),
    [
        (result(FAIL, "KeyError: uid"), "KeyError: uid"),
        (result(FAIL, "other"), "other (in the suite's interpreter: KeyError: uid)"),
        (
            result(SKIP, "no GPU"),
            "skipped in a fresh interpreter: no GPU; failed in the suite's interpreter: "
            "KeyError: uid",
        ),
    ],
)
def test_combine_runs_reasons(again: Result, reason: str):
    got = combine_runs(result(FAIL, "KeyError: uid"), again)
    assert (got.status, got.reason) == (again.status, reason)


def test_a_check_of_the_table_takes_its_summary_from_there():
    @check("env")
    def env_again(ctx: Context):
        return passed()

    assert env_again.summary == checks.entry("env").summary
    with pytest.raises(LookupError, match="no check 'nowhere' in the table"):
        check("nowhere")

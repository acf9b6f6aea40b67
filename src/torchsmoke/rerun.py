"""A failed check, run again in a fresh `python -m torchsmoke` that shares nothing with the suite's
interpreter but the environment variables (core.run_checks combines the two runs).

The fresh interpreter gets the suite's parsed options back through torchsmoke.options.to_argv,
the parser's one inverse, and writes its one result to a JSON report of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from torchsmoke.checks import Check
from torchsmoke.core import FAIL, Result, error_summary
from torchsmoke.options import Invocation, Options, to_argv

RERUN_TIMEOUT_S = 900


def rerun_argv(name: str, options: Options, json_path: Path) -> list[str]:
    """The command that runs check `name` alone, with `options`, and does not re-run it again."""
    again = Invocation(options, only=name, no_rerun=True, json=json_path)
    return [sys.executable, "-m", "torchsmoke", *to_argv(again)]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def rerun_in_fresh_interpreter(chk: Check, options: Options) -> Result:
    """Run one check again in a new interpreter; a failure when that run gives no result."""
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

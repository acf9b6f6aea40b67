"""One failure stays one failure: a failed check is re-run in a fresh interpreter, so what it
broke in the suite's interpreter cannot fail the checks after it.

The injected checks live in a `sitecustomize` on PYTHONPATH, so they exist in the suite's
interpreter and in every fresh one it starts, as a real check would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import torchsmoke
from torchsmoke.core import FAIL, PASS
from torchsmoke.options import Options
from torchsmoke.rerun import rerun_argv

SRC = Path(torchsmoke.__file__).parents[1]

INJECTED = """
import os
import sys

import torch.nn.functional as F

from torchsmoke import checks

checks.ALL = (
    checks.Entry("poison", __name__, "fails, and leaves torch broken for every later check"),
    checks.Entry("vanish", __name__, "fails here, and its fresh interpreter dies without a result"),
    *checks.ALL,
)
checks.NAMES = tuple(e.name for e in checks.ALL)

from torchsmoke.core import CheckFailed, check  # noqa: E402  (after the rows: @check reads them)


@check("poison")
def poison(ctx):
    def broken(*args, **kwargs):
        raise RuntimeError("torch state poisoned by an earlier check")

    F.linear = broken  # nothing restores this: only a fresh interpreter is clean
    raise CheckFailed("injected failure")


@check("vanish")
def vanish(ctx):
    if "--no-rerun" in sys.argv:
        sys.stderr.write("vanishing now\\n")
        os._exit(3)
    raise CheckFailed("failed in the suite")
"""


def run_suite(tmp: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    inject = tmp / "inject"
    inject.mkdir(exist_ok=True)
    (inject / "sitecustomize.py").write_text(textwrap.dedent(INJECTED))
    path = [str(inject), str(SRC), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}
    argv = [sys.executable, "-W", "ignore", "-m", "torchsmoke", "--quick", *args]
    argv += ["--json", str(tmp / "report.json"), "--junit", str(tmp / "report.xml")]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    return proc, json.loads((tmp / "report.json").read_text())


def by_name(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def test_a_check_that_poisons_torch_fails_alone_and_the_others_pass(tmp_path: Path):
    proc, report = run_suite(tmp_path, "--only", "poison,mlp,autograd")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    checks = by_name(report)
    assert report["summary"] | {"duration_s": 0} == {
        "pass": 2,
        "fail": 1,
        "skip": 0,
        "duration_s": 0,
    }
    # The injected failure stays a failure, in both interpreters.
    poison = checks["poison"]
    assert (poison["status"], poison["reason"]) == (FAIL, "injected failure")
    assert [r["status"] for r in poison["details"]["attempts"]] == [FAIL, FAIL]
    # mlp really was broken by it in the suite's interpreter, and passes in a fresh one.
    mlp = checks["mlp"]
    first, again = mlp["details"]["attempts"]
    assert first["status"] == FAIL and "poisoned by an earlier check" in first["reason"]
    assert "Traceback" in first["traceback"]
    assert again["status"] == PASS and mlp["status"] == PASS
    assert mlp["reason"].startswith("passed in a fresh interpreter; failed in the suite's")
    assert mlp["details"]["accuracy"] >= mlp["details"]["threshold"]  # the fresh run's details
    # A check that passed at once ran once.
    assert checks["autograd"]["status"] == PASS and "attempts" not in checks["autograd"]["details"]
    assert "PASS  mlp" in proc.stdout and "2 passed, 1 failed, 0 skipped" in proc.stdout
    suite = ET.parse(tmp_path / "report.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("3", "1")


def test_without_rerun_the_poison_spreads(tmp_path: Path):
    """The control: the injected check does poison the interpreter."""
    proc, report = run_suite(tmp_path, "--only", "poison,mlp", "--no-rerun")
    assert proc.returncode == 1
    mlp = by_name(report)["mlp"]
    assert mlp["status"] == FAIL and "poisoned by an earlier check" in mlp["reason"]
    assert "attempts" not in mlp["details"]


def test_a_fresh_interpreter_that_dies_is_a_failure_with_its_last_words(tmp_path: Path):
    proc, report = run_suite(tmp_path, "--only", "vanish,env")
    assert proc.returncode == 1
    vanish = by_name(report)["vanish"]
    assert vanish["status"] == FAIL
    assert vanish["reason"].startswith(
        "the fresh interpreter ended with exit status 3 and no result: vanishing now"
    )
    assert vanish["details"]["attempts"][0]["reason"] == "failed in the suite"
    assert by_name(report)["env"]["status"] == PASS


def test_rerun_argv_runs_only_that_check_without_rerunning_again(tmp_path: Path):
    argv = rerun_argv("mlp", Options(quick=True), tmp_path / "r.json")
    assert argv == [
        sys.executable, "-m", "torchsmoke", "--no-rerun", "--only", "mlp",
        "--device", "auto", "--seed", "0", "--quick", "--json", str(tmp_path / "r.json"),
    ]  # fmt: skip

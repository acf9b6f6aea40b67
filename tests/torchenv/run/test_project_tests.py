"""`invoke test`: the project's test command in the target's image, as the caller, with a JUnit
report, its exit status the task's, and one line for a command the image lacks."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from tests.support.fakerunner import FakeRunner, reply

from torchenv import matrix
from torchenv.errors import UserError
from torchenv.matrix import Project
from torchenv.run import project_tests as projecttest
from torchenv.run import shell

CLIENT = "/usr/bin/docker"


@pytest.fixture(autouse=True)
def engine_here(monkeypatch):
    monkeypatch.setattr(
        shell.engines, "detect",
        lambda runner: shell.engines.Engine(CLIENT, "20.10", "20.10", "builtin"),
    )  # fmt: skip


def engine(code: int = 0) -> FakeRunner:
    return FakeRunner({
        (CLIENT, "info"): reply('{"runc":{"path":"runc"}}\n'),
        (CLIENT, "image", "inspect"): reply("sha256:1\n"),
        (CLIENT, "run"): reply("", code),
    })  # fmt: skip


def request(tmp_path: Path, command: str = "pytest", **changes) -> projecttest.TestRequest:
    changes.setdefault("reports", tmp_path / "reports")
    return projecttest.TestRequest(
        target=replace(matrix.get("cuda13"), root=tmp_path), project=Project(test_command=command),
        **changes,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "expected"),
    [(["pytest"], True), (["/opt/env/bin/py.test", "-x"], True),
     (["python", "-m", "pytest"], True), (["python3.11", "-m", "pytest", "-q"], True),
     (["python", "-m", "unittest"], False), (["make", "test"], False), ([], False)],
)  # fmt: skip
def test_is_pytest(argv, expected):
    assert projecttest.is_pytest(argv) is expected


def test_pytest_gets_the_arguments_and_a_junit_report_in_the_mounted_reports(tmp_path: Path):
    req = request(tmp_path, "python -m pytest -q", args=("-k", "mlp and not slow"))
    assert projecttest.command(req) == [
        "python", "-m", "pytest", "-q", "-k", "mlp and not slow",
        "--junitxml=/torchenv-reports/test-cuda13.xml",
    ]  # fmt: skip
    sreq = projecttest.shell_request(req)
    assert sreq.volumes == ((tmp_path / "reports", "/torchenv-reports"),)
    assert sreq.role == "test" and sreq.image == "torchenv/cuda13:2.14.1-cu130"
    assert projecttest.command(request(tmp_path, reports=None)) == ["pytest"]


def test_the_working_trees_code_comes_first_on_the_path(tmp_path: Path):
    assert projecttest.shell_request(request(tmp_path)).env == (("PYTHONPATH", "/workspace"),)
    (tmp_path / "src").mkdir()
    assert projecttest.shell_request(request(tmp_path)).env == (("PYTHONPATH", "/workspace/src"),)


def test_a_test_command_that_cannot_be_split_is_one_line(tmp_path: Path):
    with pytest.raises(UserError, match=r"^targets.toml: \[project\] test_command cannot be split"):
        projecttest.command(request(tmp_path, 'pytest -k "open'))


def test_the_run_is_the_dry_runs_line_and_its_status_is_returned(tmp_path: Path):
    shown = []
    assert projecttest.run(request(tmp_path), dry_run=True, runner=engine(), out=shown.append) == 0
    assert not (tmp_path / "reports").exists()  # a dry run makes nothing
    line = shown[-1]
    assert line.startswith(f"{CLIENT} run --rm --interactive") and "--gpus=all" not in line
    assert (
        f"--mount type=bind,source={tmp_path},target=/workspace" in line
        and "--label io.torchenv.test=cuda13" in line
    )
    runner = engine(code=3)
    lines = []
    assert projecttest.run(request(tmp_path), runner=runner, out=lines.append) == 3
    assert lines[-1] == f"torchenv: {line}"
    assert runner.calls[-1].interactive and (tmp_path / "reports").is_dir()
    assert not (tmp_path / "reports" / "test-cuda13.xml").exists()  # pytest's own, in a real run


def test_another_command_gets_a_junit_report_of_its_status(tmp_path: Path):
    assert projecttest.run(request(tmp_path, "make check"), runner=engine(2), out=print) == 2
    suite = ET.parse(tmp_path / "reports" / "test-cuda13.xml").getroot().find("testsuite")
    assert suite.get("name") == "torchenv test cuda13" and suite.get("failures") == "1"
    case = suite.find("testcase")
    assert case.get("name") == "make check" and case.find("failure").get("message") == "exit 2"
    assert projecttest.run(request(tmp_path, "make check"), runner=engine(0), out=print) == 0
    suite = ET.parse(tmp_path / "reports" / "test-cuda13.xml").getroot().find("testsuite")
    assert suite.get("failures") == "0" and suite.find("testcase").find("failure") is None


def test_a_command_the_image_lacks_is_one_line(tmp_path: Path):
    with pytest.raises(UserError) as exc:
        projecttest.run(request(tmp_path, "pytest"), runner=engine(127), out=print)
    assert str(exc.value).startswith(
        "the test command 'pytest' is not in torchenv/cuda13:2.14.1-cu130 (exit 127): add it"
    )


def test_reports_that_are_a_file_are_refused_before_the_run(tmp_path: Path):
    (tmp_path / "reports").write_text("")
    runner = engine()
    with pytest.raises(UserError, match="--reports"):
        projecttest.run(request(tmp_path), runner=runner, out=print)
    assert not [c for c in runner.calls if c.args[1:2] == ("run",)]

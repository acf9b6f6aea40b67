import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support import REPO

from torchenv import matrix
from torchenv.errors import UserError
from torchenv.matrix import citable as ci

NAMES = ["cpu", "cuda118", "cuda12", "cuda13", "cuda132"]


def table(text: str) -> ci.CI:
    import tomllib

    return ci.parse_ci(tomllib.loads(text).get("ci"), NAMES)


def test_no_table_builds_every_target_on_every_event():
    for event in (*ci.EVENTS, "release"):
        assert table("").targets(event, NAMES) == NAMES


def test_the_issues_example_pushes_two_targets_and_main_all():
    chosen = table('[ci]\npush = ["cuda13", "cpu"]\nmain = "all"\n')
    assert chosen.targets("push", NAMES) == ["cpu", "cuda13"]  # in the matrix's order
    assert chosen.targets("main", NAMES) == NAMES
    assert chosen.targets("pull_request", NAMES) == ["cpu", "cuda13"]  # as a push, when not given
    assert chosen.targets("merge_group", NAMES) == ["cpu", "cuda13"]
    assert chosen.targets("schedule", NAMES) == NAMES  # not named, no fallback: all


def test_each_event_takes_its_own_list_first_and_an_empty_list_builds_nothing():
    chosen = table('[ci]\npush = ["cpu"]\npull_request = []\nmain = ["cuda13"]\n')
    assert chosen.targets("pull_request", NAMES) == []
    assert chosen.targets("merge_group", NAMES) == []  # a pull request's
    assert chosen.targets("main", NAMES) == ["cuda13"]
    assert table('[ci]\npush = ["cpu"]\n').targets("main", NAMES) == ["cpu"]  # a push too


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('ci = "all"', "ci must be a table"),
        ('[ci]\npushh = "all"', "unknown event 'pushh': use main, push, pull_request"),
        ('[ci]\npush = "some"', 'push must be "all" or a list of targets'),
        ("[ci]\npush = [1]", 'push must be "all" or a list of targets'),
        ('[ci]\nmain = ["cuda14"]', "main names 'cuda14', which is no target: choose from cpu,"),
    ],
    ids=["not a table", "unknown event", "a word", "not names", "unknown target"],
)
def test_a_bad_table_is_one_line(text, message):
    with pytest.raises(UserError) as exc:
        table(text)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_a_push_to_the_default_branch_is_main():
    assert ci.event_of("push", "refs/heads/main", "main") == "main"
    assert ci.event_of("push", "refs/heads/trunk", "trunk") == "main"
    assert ci.event_of("push", "refs/heads/feature", "main") == "push"
    assert ci.event_of("push", "refs/tags/v1", "main") == "push"
    assert ci.event_of("pull_request", "refs/heads/main", "main") == "pull_request"
    assert ci.event_of("push") == "push"  # no default branch given: a push
    with pytest.raises(UserError, match="not an event name"):
        ci.event_of("push; rm -rf /")


def with_ci(tmp_path: Path, text: str) -> Path:
    shutil.copy(REPO / "targets.toml", tmp_path / "targets.toml")
    with (tmp_path / "targets.toml").open("a") as out:
        out.write(text)
    return tmp_path


def test_the_matrix_checks_the_table_when_it_loads(tmp_path):
    root = with_ci(tmp_path, '\n[ci]\npush = ["cuda14"]\n')
    with pytest.raises(UserError, match=r"^targets.toml: \[ci\] push names 'cuda14'"):
        matrix.load(root)
    (tmp_path / "plain").mkdir()
    assert matrix.ci(with_ci(tmp_path / "plain", "")) == ci.CI()  # this repository's: no table


def test_python_m_torchenv_matrix_prints_an_events_targets(tmp_path):
    root = with_ci(tmp_path, '\n[ci]\npush = ["cpu", "cuda13"]\nmain = "all"\n')

    def run(*args: str) -> subprocess.CompletedProcess:
        env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}
        return subprocess.run(
            [sys.executable, "-m", "torchenv.matrix", *args], cwd=root, env=env,
            capture_output=True, text=True, check=False,
        )  # fmt: skip

    assert json.loads(run("--json", "--event", "push").stdout) == ["cpu", "cuda13"]
    main = run("--json", "--event", "push", "--ref", "refs/heads/main", "--default-branch", "main")
    assert json.loads(main.stdout) == matrix.names(REPO)
    assert json.loads(run("--json").stdout) == matrix.names(REPO)  # no event: every target
    assert run("--event", "pull_request").stdout.split() == ["cpu", "cuda13"]
    bad = run("--json", "--event", "$(id)")
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.strip().startswith("error: --event '$(id)' is not an event name")
    assert "Traceback" not in bad.stderr

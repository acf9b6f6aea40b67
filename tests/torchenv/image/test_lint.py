"""`invoke lint`: the linters it runs, found beside this interpreter, over every Dockerfile."""

import sys
from pathlib import Path

from tests.support import REPO

from torchenv import matrix
from torchenv.image import lint


def test_a_tool_beside_the_interpreter_is_preferred_and_a_missing_one_keeps_its_name():
    beside = Path(sys.executable).parent / "ruff"
    assert beside.exists(), "the dev extra installs ruff into this environment"
    assert lint.tool("ruff") == str(beside)
    assert lint.tool("no-such-linter-xyz") == "no-such-linter-xyz"


def test_lint_commands_cover_ruff_mypy_and_hadolint_on_every_dockerfile():
    commands = lint.lint_commands(REPO)
    names = [Path(argv[0]).name for argv in commands]
    assert names == ["ruff", "ruff", "mypy", "hadolint"]
    assert commands[1][1:] == ["format", "--check", "."]
    dockerfiles = commands[3][1:]
    assert dockerfiles == [f"docker/{name}.Dockerfile" for name in matrix.names()]

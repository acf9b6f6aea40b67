"""The entry (torchsmoke.cli): check names checked against the table, `--list`, and the usage
errors (exit 2); the parsing itself is test_options.py's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import torchsmoke
from torchsmoke import cli, options
from torchsmoke.checks import NAMES
from torchsmoke.cli import listing, main, select


def test_selection_keeps_the_suite_order_whatever_the_order_given():
    assert [e.name for e in select("autograd,env,checkpoint", "checkpoint")] == ["env", "autograd"]
    assert [e.name for e in select(None, None)] == list(NAMES)


def test_listing_is_a_line_a_check_with_its_summary():
    lines = listing().splitlines()
    assert [line.split()[0] for line in lines] == list(NAMES)
    assert lines[0].startswith("env          environment report: Python, OS")


def test_an_unknown_check_is_a_usage_error_listing_the_names(tmp_path: Path, run_cli):
    proc = run_cli("--only", "mlp,bogus", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"torchsmoke: error: unknown check 'bogus' in --only; valid checks: {', '.join(NAMES)}"
    ]
    assert proc.stdout == ""


def test_unknown_names_in_skip_are_usage_errors_too(capsys):
    assert main(["--skip", "nope,nada"]) == 2
    assert "unknown checks 'nope', 'nada' in --skip" in capsys.readouterr().err


def test_list_names_every_check(capsys):
    assert main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(NAMES)


def test_skip_and_only_select_in_suite_order(capsys, tmp_path: Path):
    assert (
        main(
            [
                "--only",
                "autograd,env,checkpoint",
                "--skip",
                "checkpoint",
                "--json",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert [c["name"] for c in report["checks"]] == ["env", "autograd"]


def test_the_parser_is_still_read_through_the_cli():
    # tests/torchenv/test_readme.py checks the README's command lines with cli.build_parser
    assert cli.build_parser is options.build_parser
    assert "build_parser" in cli.__all__


SRC = Path(torchsmoke.__file__).parents[1]
BLOCK_TORCH = "import sys; sys.modules['torch'] = None  # import torch raises ImportError\n"


@pytest.mark.parametrize("flag", ["--help", "--version", "--list"])
def test_help_version_and_list_need_no_torch(flag):
    """In-process, with torch made unimportable (test_main.py does it in a venv without torch)."""
    code = BLOCK_TORCH + "from torchsmoke.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    done = subprocess.run(
        [sys.executable, "-c", code, flag], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(SRC)}, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout.strip()


def test_without_torch_the_run_is_one_line_and_exit_2():
    code = BLOCK_TORCH + "from torchsmoke.cli import main\nsys.exit(main(['--only', 'env']))\n"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(SRC)}, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("torchsmoke: error: torch is not installed in this Python")

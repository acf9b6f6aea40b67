"""The command line (torchsmoke.cli): parsed once into an Invocation, `to_argv` its one inverse,
check names checked against the table, `--list`, and the usage errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from torchsmoke.checks import NAMES
from torchsmoke.cli import Invocation, Options, listing, main, parse, select, to_argv


def test_option_args_give_the_fresh_interpreter_the_same_options():
    options = Options(
        device="cpu", quick=True, seed=7, expect={"torch": "2.11.0", "variant": "cu130"},
        require_gpu=True, require_compiler=True,
    )  # fmt: skip
    assert parse(to_argv(Invocation(options))).options == options
    assert parse(to_argv(Invocation(Options()))).options == Options()


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--list", "--only", "env,mlp"],
        ["--skip", "ddp", "--no-rerun", "--json", "-", "--junit", "out/r.xml", "--quick"],
        ["--expect-variant", "cu118", "--expect-python", "3.11", "--require-gpu", "--seed", "3"],
    ],
    ids=["defaults", "list", "selection and outputs", "expectations"],
)
def test_to_argv_is_the_inverse_of_parse(argv):
    invocation = parse(argv)
    assert invocation.argv == tuple(argv)  # as given, for the report
    again = parse(to_argv(invocation))
    assert again == invocation and again.argv == tuple(to_argv(invocation))


def test_json_dash_means_stdout():
    assert parse(["--json", "-"]).json_to_stdout
    assert not parse(["--json", "r.json"]).json_to_stdout and not parse([]).json_to_stdout


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

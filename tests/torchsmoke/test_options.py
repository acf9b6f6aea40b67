"""The command line's grammar (torchsmoke.options): parsed once into an Invocation, `to_argv` its
one inverse (what a re-run in a fresh interpreter is given)."""

from __future__ import annotations

import pytest

from torchsmoke.options import Invocation, Options, parse, to_argv


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

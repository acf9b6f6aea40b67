"""Options declared once: strict parsing, flag over configuration over default, invoke signatures."""

import inspect
from pathlib import Path

import pytest

from torchenv.errors import UserError
from torchenv.taskopts import Option, body, config_defaults, helps, resolve, signature

SWITCH = Option("allow", "accept it", False, bool, config=True)
NUMBER = Option("uid", "a UID", 1000, int, low=1, high=65534)
CHOICE = Option("installer", "which", "uv", config=True, choices=("uv", "pip"))
FOLDER = Option("reports", "where", "reports", Path)
OPTIONS = (SWITCH, NUMBER, CHOICE, FOLDER)


@pytest.mark.parametrize("word", ["1", "true", "TRUE", "yes", "on", " True "])
def test_true_words_read_true(word):
    assert resolve(OPTIONS, {}, {"allow": word})["allow"] is True


@pytest.mark.parametrize("word", ["0", "false", "False", "no", "off"])
def test_false_words_read_false(word):
    # the bug this replaces: invoke read every word but "0" as true
    assert resolve(OPTIONS, {}, {"allow": word})["allow"] is False


@pytest.mark.parametrize("word", ["maybe", "", "2", "enable"])
def test_any_other_word_is_one_line_naming_the_variable(word):
    with pytest.raises(UserError, match=r"INVOKE_TORCHENV_ALLOW\) .* is not true or false"):
        resolve(OPTIONS, {}, {"allow": word})


def test_a_flag_wins_over_the_configuration_and_is_marked_explicit():
    given = resolve(OPTIONS, {"installer": "pip"}, {"installer": "uv"})
    assert given.installer == "pip" and "installer" in given.explicit
    given = resolve(OPTIONS, {}, {"installer": "pip"})
    assert given.installer == "pip" and "installer" not in given.explicit


def test_defaults_are_typed():
    given = resolve(OPTIONS, {}, {})
    assert given.uid == 1000 and given.reports == Path("reports") and given.allow is False


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"uid": "abc"}, "--uid 'abc' is not a whole number"),
        ({"uid": "0"}, "--uid 0 is out of range: give 1..65534"),
        ({"uid": "70000"}, "out of range"),
        ({"installer": "conda"}, "--installer 'conda' is unknown: choose one of uv, pip"),
        ({"reports": "a\nb"}, "--reports holds a line break"),
    ],
)
def test_bad_values_are_one_line(raw, message):
    with pytest.raises(UserError, match=message) as caught:
        resolve(OPTIONS, raw, {})
    assert "\n" not in str(caught.value)


def test_configuration_is_not_consulted_for_options_that_are_not_configurable():
    assert resolve(OPTIONS, {}, {"uid": "5"}).uid == 1000


def test_config_namespace_holds_only_configurable_options_unset():
    assert config_defaults(OPTIONS) == {"allow": None, "installer": None}


def test_invoke_sees_switches_as_false_and_values_as_none():
    sig = signature(OPTIONS)
    assert list(sig.parameters) == ["c", "allow", "uid", "installer", "reports"]
    assert sig.parameters["allow"].default is False
    assert sig.parameters["uid"].default is None


def test_help_says_default_and_configuration_variable():
    text = helps(OPTIONS)
    assert text["installer"] == "which (default: uv; configurable: INVOKE_TORCHENV_INSTALLER)"
    assert text["allow"].endswith("(default: off; configurable: INVOKE_TORCHENV_ALLOW)")


def test_body_passes_typed_values_inside_the_guard():
    seen = {}
    guarded = []

    class Guard:
        def __enter__(self):
            guarded.append("in")

        def __exit__(self, *exc):
            guarded.append("out")
            return True  # swallow, as user_errors turns it into Exit

    def run(c, given):
        seen.update(given)

    class Ctx:
        config = {"torchenv": {"installer": "pip"}}

    fn = body(OPTIONS, run, "doc", Guard)
    assert inspect.signature(fn) == signature(OPTIONS)
    fn(Ctx(), uid="42")
    assert seen["uid"] == 42 and seen["installer"] == "pip" and guarded == ["in", "out"]
    fn(Ctx(), uid="x")  # the bad value is raised inside the guard
    assert guarded == ["in", "out", "in", "out"]


def test_an_empty_path_means_none_not_the_current_folder():
    # `invoke smoke --reports ""` asks for no reports, as before the options were declared once
    assert resolve(OPTIONS, {"reports": ""}, {}).reports is None

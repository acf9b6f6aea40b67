"""targets.toml's [project] table (torchenv.matrix.projecttable)."""

from __future__ import annotations

import pytest

from torchenv.errors import UserError
from torchenv.matrix import projecttable


def test_defaults_where_the_table_is_silent():
    assert projecttable.parse_project("") == projecttable.Project()
    assert projecttable.parse_project('[project]\npackage = false\nextras = ["test"]\n') == (
        projecttable.Project(extras=("test",), package=False)
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[project]\nnope = 1\n", "unknown key"),
        ('[project]\nextras = "test"\n', "extras = 'test': give a list"),
        ('[project]\nextras = ["a b"]\n', "give extra names"),
        ('[project]\ntest_command = "  "\n', "one printable line"),
        ("project = 3\n", "must be a table"),
    ],
)
def test_a_bad_table_is_one_line(text, message):
    with pytest.raises(UserError, match=message) as exc:
        projecttable.parse_project(text)
    assert "\n" not in str(exc.value)

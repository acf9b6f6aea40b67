"""Dependency groups: PEP 735, PDM, Poetry (torchenv.project.groups)."""

from __future__ import annotations

import pytest

from torchenv.errors import UserError
from torchenv.project import groups

PEP735 = {"dependency-groups": {"test": ["pytest", {"include-group": "Lint"}], "lint": ["ruff"]}}


def test_pep735_groups_include_others():
    assert [r for r, _ in groups.requirements(PEP735, "test")] == ["pytest", "ruff"]
    loop = {"dependency-groups": {"a": [{"include-group": "b"}], "b": [{"include-group": "a"}]}}
    with pytest.raises(UserError, match="a -> b -> a includes itself"):
        groups.requirements(loop, "a")


def test_pdm_and_poetry_groups():
    pdm = {"tool": {"pdm": {"dev-dependencies": {"test": ["pytest>=8"]}}}}
    assert groups.requirements(pdm, "test") == [
        ("pytest>=8", "pyproject.toml [tool.pdm.dev-dependencies] test")
    ]
    poetry = {"tool": {"poetry": {"group": {"test": {"dependencies": {
        "pytest": "^8.0", "hypothesis": {"version": "~6.1", "extras": ["numpy"]}}}}}}}  # fmt: skip
    assert [r for r, _ in groups.requirements(poetry, "test")] == [
        "pytest>=8.0,<9", "hypothesis[numpy]>=6.1,<6.2",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "pep440"),
    [("^8.0", ">=8.0,<9"), ("^0.3", ">=0.3,<0.4"), ("~1.2.3", ">=1.2.3,<1.3"), ("1.*", "==1.*"),
     ("*", ""), (">=1,<2", ">=1,<2"), ("2.0.1", "==2.0.1")],
)  # fmt: skip
def test_poetry_constraints_as_pep440(text, pep440):
    assert groups.poetry_constraint(text) == pep440


def test_an_unknown_group_names_the_ones_there():
    with pytest.raises(
        UserError, match=r"has no dependency group 'docs' \(its groups: lint, test\)"
    ):
        groups.requirements(PEP735, "docs")

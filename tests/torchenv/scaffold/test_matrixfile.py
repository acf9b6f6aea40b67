"""The targets.toml init writes (torchenv.scaffold.matrixfile): the project's, not the kit's."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchenv import kit, matrix
from torchenv.errors import UserError
from torchenv.scaffold import matrixfile


def test_it_speaks_of_the_project_and_keeps_the_kits_targets(tmp_path: Path):
    """Issue 32, case 8: no path of the kit's own repository, no measured size of the kit's."""
    text = matrixfile.default_matrix(tmp_path / "my-proj")
    for kits_own in ("../shared", "src/torchbuild", "image_size_gb", "development machines"):
        assert kits_own not in text
    assert 'files = ".torchenv.d"' in text and "package: the project's own package" in text
    mine = matrix.parse(text)
    kits = matrix.parse(kit.DEFAULT_MATRIX.read_text())
    assert list(mine) == list(kits)
    for name, t in mine.items():
        same = {k: v for k, v in t.as_dict().items() if k not in ("image_repo", "image_size_gb")}
        theirs = {
            k: v
            for k, v in kits[name].as_dict().items()
            if k not in ("image_repo", "image_size_gb")
        }
        assert same == theirs
        assert t.image_repo == "my-proj"


def test_a_chosen_set_of_targets_and_an_unknown_one(tmp_path: Path):
    assert list(matrix.parse(matrixfile.default_matrix(tmp_path, ["cuda13", "cpu"]))) == [
        "cuda13", "cpu",
    ]  # fmt: skip
    with pytest.raises(UserError, match="--targets names nope, which the kit does not have"):
        matrixfile.default_matrix(tmp_path, ["nope"])
    with pytest.raises(UserError, match="no targets to write"):
        matrixfile.default_matrix(tmp_path, [])


def test_image_repo_is_a_name_docker_takes():
    assert matrixfile.image_repo(Path("/x/Torch_Env.Demo")) == "torch_env.demo"
    assert matrixfile.image_repo(Path("/x/--")) == "project"


def test_it_writes_a_ci_table_that_builds_everything_until_the_project_says_otherwise(tmp_path):
    """Issue 35: which targets run on which event is the project's choice, in its matrix."""
    import tomllib

    text = matrixfile.default_matrix(tmp_path, ["cuda13", "cpu"])
    assert tomllib.loads(text)["ci"] == {"push": "all", "main": "all"}
    table = matrix.parse_ci(tomllib.loads(text)["ci"], ["cuda13", "cpu"])
    for event in ("push", "main", "pull_request", "schedule"):
        assert table.targets(event, ["cuda13", "cpu"]) == ["cuda13", "cpu"]
    assert 'a list of targets such as ["cpu", "cuda13"]' in text

import re
from pathlib import Path

import pytest
from tests.support import REPO

from torchenv import matrix
from torchenv.errors import UserError
from torchenv.matrix import pins

GOOD = """
[defaults]
python = "3.11"
image_repo = "torchenv"
base_image = "b:1"
base_digest = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
micromamba_image = "m:2"
micromamba_digest = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
dev_packages = ["ipykernel==1"]

[targets.cuda13]
description = "d"
cuda = "13.0"
variant = "cu130"
torch = "2.11.0"
torchvision = "0.26.0"
torchaudio = "2.11.0"
"""


def test_the_committed_matrix_has_the_five_targets_and_their_pins_can_exist():
    targets = matrix.load()
    assert list(targets) == ["cpu", "cuda118", "cuda12", "cuda13", "cuda132"]
    for t in targets.values():
        assert pins.problems(t) == [], t.name
    assert targets["cuda118"].torch == "2.7.1"  # the last CUDA 11.8 release
    assert targets["cuda13"].variant == "cu130" and targets["cuda13"].index_url is None


def test_derived_paths_and_image_names():
    t = matrix.get("cuda13")
    assert t.env_file == REPO / "envs" / "cuda13.yml"
    assert t.dockerfile == REPO / "docker" / "cuda13.Dockerfile"
    assert t.image() == "torchenv/cuda13:2.14.1-cu130"
    assert t.image("dev") == "torchenv/cuda13:2.14.1-cu130-dev"
    assert t.nvidia_require_cuda == "cuda>=13.0"
    assert matrix.get("cpu").nvidia_require_cuda is None


def test_unknown_target_lists_the_valid_ones():
    with pytest.raises(UserError, match="unknown target 'cuda99': choose one of cpu, cuda118"):
        matrix.get("cuda99")


def test_unknown_flavor_is_refused():
    with pytest.raises(UserError, match="unknown flavor 'slim'"):
        matrix.get("cpu").image("slim")


def test_parse_fills_defaults():
    t = matrix.parse(GOOD)["cuda13"]
    assert t.python == "3.11" and t.dev_packages == ("ipykernel==1",)
    assert t.min_driver == "580.65.06"  # CUDA 13.0's, from torchbuild.versions


def test_a_cuda_version_without_a_known_driver_is_refused():
    with pytest.raises(
        UserError, match="cuda = '13.7', whose minimum driver torchenv does not know"
    ):
        matrix.parse(GOOD.replace('cuda = "13.0"', 'cuda = "13.7"'))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[targets.x\n", "fix the TOML syntax"),
        ("[defaults]\n", "no \\[targets.<name>\\] tables"),
        (
            GOOD.replace('torch = "2.11.0"', 'torch = "2.11.0"\ncolour = "red"'),
            "unknown key.*colour",
        ),
        (GOOD.replace('torchaudio = "2.11.0"\n', ""), "lacks torchaudio"),
    ],
    ids=["broken TOML", "no targets", "unknown key", "missing pin"],
)
def test_malformed_matrix_is_one_clear_line(text, message):
    with pytest.raises(UserError, match=message) as info:
        matrix.parse(text)
    assert "\n" not in str(info.value)


def test_missing_matrix_file(tmp_path: Path):
    with pytest.raises(UserError, match="cannot read the target matrix"):
        matrix.load(tmp_path)


def test_cli_prints_names_as_json(capsys):
    assert matrix.main(["--json"]) == 0
    assert capsys.readouterr().out.strip() == '["cpu", "cuda118", "cuda12", "cuda13", "cuda132"]'


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("[targets.cuda13]", '[targets."../../x"]', "target name '../../x' is not lowercase"),
        ("[targets.cuda13]", '[targets."Cuda 13"]', "is not lowercase letters"),
        ('description = "d"', 'description = "d\\"\\nRUN curl x"', "not one printable line"),
        (
            'torch = "2.11.0"',
            'torch = "2.11.0 ; rm -rf /"',
            "torch = '2.11.0 ; rm -rf /': give a version",
        ),
        ('variant = "cu130"', 'variant = "cu130\\""', "give lowercase letters and digits"),
        ('cuda = "13.0"', 'cuda = "13.0\\nRUN x"', "give a CUDA version"),
        ('image_repo = "torchenv"', 'image_repo = "../evil"', "give a lowercase repository path"),
        ('base_image = "b:1"', 'base_image = "b:1 --privileged"', "give an image NAME:TAG"),
        (
            'dev_packages = ["ipykernel==1"]',
            'dev_packages = ["ipykernel>=1; x"]',
            "give NAME==VERSION",
        ),
        (
            'variant = "cu130"',
            'variant = "cu130"\nindex_url = "https://u:p@h/simple"',
            "no credentials",
        ),
        (
            'variant = "cu130"',
            'variant = "cu130"\nindex_url = "https://h/s?token=x"',
            "give an http(s) URL",
        ),
    ],
)
def test_values_that_could_leave_their_field_are_one_line(old, new, message):
    assert old in GOOD
    with pytest.raises(UserError, match=re.escape(message)) as caught:
        matrix.parse(GOOD.replace(old, new))
    assert "\n" not in str(caught.value)


def test_the_good_matrix_parses():
    assert list(matrix.parse(GOOD)) == ["cuda13"]


# --- the [project] table ---------------------------------------------------------------------------


def test_project_table_defaults_and_values():
    assert matrix.parse_project("") == matrix.Project()
    given = matrix.parse_project(
        '[project]\ndependencies = "requirements.txt"\nextras = ["test", "viz"]\npackage = false\n'
        'test_command = "pytest -x tests"\n'
    )
    assert given == matrix.Project("requirements.txt", ("test", "viz"), False, "pytest -x tests")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("colour = 1", r"\[project\] has unknown key\(s\) colour; valid keys: dependencies"),
        ("package = 'yes'", r"\[project\] package = 'yes': give a bool"),
        ("extras = 'test'", r"\[project\] extras = 'test': give a list"),
        ("extras = ['te st']", r"\[project\] extras has 'te st': give extra names"),
        ("test_command = '  '", r"test_command must be one printable line"),
    ],
)
def test_a_malformed_project_table_is_one_line(table: str, message: str):
    with pytest.raises(UserError, match=message):
        matrix.parse_project(f"[project]\n{table}\n")


def test_this_repository_installs_nothing_of_its_own_into_images():
    """The kit's own package and dependencies are host code."""
    assert matrix.project() == matrix.Project(dependencies="none", package=False)

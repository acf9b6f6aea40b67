"""torchenv.project.deps: the project's dependencies, read where it declares them, and the torch
requirements a target cannot meet refused before anything is resolved."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchenv import matrix
from torchenv.errors import UserError
from torchenv.matrix import Project
from torchenv.project import deps as projectdeps

SAMPLE = Path(__file__).parents[2] / "sample-project"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_the_sample_projects_dependencies_and_its_test_extra():
    deps = projectdeps.read(SAMPLE, Project(extras=("test",)))
    assert deps is not None and deps.source == "pyproject.toml"
    assert [(d.requirement, d.origin) for d in deps.items] == [
        ("einops>=0.8", "sample"), ("tqdm>=4.66", "sample"), ("pytest>=8", "sample[test]"),
    ]  # fmt: skip


def test_none_reads_nothing(tmp_path):
    assert projectdeps.read(tmp_path, Project(dependencies="none")) is None


def test_auto_falls_back_to_requirements_then_environment(tmp_path):
    write(tmp_path, "pyproject.toml", "[tool.ruff]\nline-length = 99\n")  # no [project]
    write(tmp_path, "environment.yml", "dependencies:\n  - python=3.11\n  - pip:\n    - tqdm\n")
    deps = projectdeps.read(tmp_path, Project())
    assert deps is not None and deps.source == "environment.yml"
    assert deps.requirements == ["tqdm"]
    write(tmp_path, "requirements.txt", "# tools\neinops>=0.8  # tensors\n\npandas==2.2.3\n")
    deps = projectdeps.read(tmp_path, Project())  # both sources, combined (issue 32)
    assert deps is not None and deps.source == "requirements.txt, environment.yml"
    assert [(d.requirement, d.origin) for d in deps.items] == [
        ("einops>=0.8", "requirements.txt:2"), ("pandas==2.2.3", "requirements.txt:4"),
        ("tqdm", "environment.yml pip #1"),
    ]  # fmt: skip


def test_a_named_file_is_read_by_its_kind(tmp_path):
    (tmp_path / "deps").mkdir()
    write(tmp_path / "deps", "train.txt", "einops\n")
    deps = projectdeps.read(tmp_path, Project(dependencies="deps/train.txt"))
    assert deps is not None and deps.source == "deps/train.txt" and deps.requirements == ["einops"]


@pytest.mark.parametrize(
    ("files", "project", "message"),
    [
        ({}, Project(), "looked for pyproject.toml, setup.py, setup.cfg, requirements.txt (and requirements/), environment.yml"),
        ({}, Project(dependencies="reqs.txt"), "'reqs.txt' in targets.toml, but there is no such file"),
        ({"pyproject.toml": "[project]\nname='p'\n[project.optional-dependencies]\ndocs=['x']\n"},
         Project(extras=("test",)), "pyproject.toml has no extra 'test' (its extras: docs)"),
        ({"requirements.txt": "x\n"}, Project(extras=("test",)), "the project has no package to have extras"),
        ({"requirements.txt": "-r base.txt\n"}, Project(), "requirements.txt:1: -r base.txt: there is no such file"),
        ({"requirements.txt": "./vendor/pkg\n"}, Project(), "'./vendor/pkg' is a local path"),
        ({"requirements.txt": "--index-url https://mirror.example/simple\n"}, Project(), "is another index"),
        ({"requirements.txt": "pkg @ https://example.org/pkg.whl\n"}, Project(), "is a direct URL"),
        ({"requirements.txt": "not a requirement!\n"}, Project(), "requirements.txt:1: 'not a requirement!' is not a requirement"),
        ({"pyproject.toml": "[project\n"}, Project(), "pyproject.toml: "),
        ({"pyproject.toml": "[project]\nname='p'\noptional-dependencies='x'\n"}, Project(), "optional-dependencies must be a table"),
        ({"environment.yml": "dependencies: [\n"}, Project(), "environment.yml: not valid YAML"),
    ],
)  # fmt: skip
def test_bad_declarations_are_one_line_errors(tmp_path, files, project, message):
    for name, text in files.items():
        write(tmp_path, name, text)
    with pytest.raises(UserError) as caught:
        projectdeps.read(tmp_path, project)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_torch_requirement_the_target_excludes_is_refused_naming_who_asks(tmp_path):
    write(tmp_path, "pyproject.toml", "[project]\nname='mypkg'\ndependencies=['torch>=2.0']\n"
          "[project.optional-dependencies]\ntest=['torch==2.4.0', 'torchvision']\n")  # fmt: skip
    deps = projectdeps.read(tmp_path, Project(extras=("test",)))
    target = matrix.get("cuda13")
    assert deps is not None
    [line] = projectdeps.torch_conflicts(deps, target)
    assert line.startswith(
        f"mypkg[test] requires torch==2.4.0, but target cuda13 pins torch {target.torch}: "
    )
    assert "no lock was written" in line


def test_requirements_the_pins_satisfy_are_no_conflict():
    deps = projectdeps.read(SAMPLE, Project(extras=("test",)))
    assert deps is not None
    assert projectdeps.torch_conflicts(deps, matrix.get("cuda13")) == []


def test_a_git_requirement_without_a_commit_says_what_to_write(tmp_path):
    write(tmp_path, "requirements.txt", "pkg @ git+https://u:S3CRET@git.example/o/r.git@main\n")
    with pytest.raises(UserError) as caught:
        projectdeps.read(tmp_path, Project())
    assert str(caught.value) == (
        "requirements.txt:1: 'pkg @ git+https://u:***@git.example/o/r.git@main' names no commit, so "
        "it cannot be locked: pin it to one, pkg @ git+https://u:***@git.example/o/r.git@<the "
        "full commit hash>"
    )

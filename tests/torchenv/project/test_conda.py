"""environment.yml as the project's declaration (torchenv.project.conda)."""

from __future__ import annotations

import pytest

from torchenv.project import conda


@pytest.mark.parametrize(
    ("spec", "pep440"),
    [("=1.11.0", "==1.11.0.*"), ("==2.1", "==2.1"), (">=2,<3", ">=2,<3"), ("", ""),
     ("=2.1=py3.11_cuda", "==2.1.*"), ("2.1.*", "==2.1.*")],
)  # fmt: skip
def test_conda_specs_as_pep440(spec, pep440):
    assert conda.conda_specifier(spec) == pep440


def test_the_pip_section_is_read_and_the_torch_family_checked_not_installed(tmp_path):
    (tmp_path / "environment.yaml").write_text(
        "dependencies:\n  - python=3.11\n  - pytorch::pytorch=2.14.1\n  - numpy\n  - pip:\n"
        "    - einops\n    - -e .\n"
    )
    found = conda.read(tmp_path, "environment.yaml")
    assert [r.text for r in found.pip.requirements] == ["einops"]
    assert [r.text for r in found.family] == ["torch==2.14.1.*"]
    assert "python=3.11 is not read" in found.notes[0] and "conda packages numpy" in found.notes[1]
    assert found.pip.problems == []


def test_broken_yaml_is_a_problem_not_a_traceback(tmp_path):
    (tmp_path / "environment.yml").write_text("dependencies: [\n")
    assert conda.read(tmp_path, "environment.yml").pip.problems == [
        "environment.yml: not valid YAML (ParserError); fix it"
    ]

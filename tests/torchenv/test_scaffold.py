"""`torchenv init` (torchenv.scaffold): what it writes in a project, and what it never touches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.support import REPO

from torchenv import kit, matrix, scaffold
from torchenv.errors import UserError


def test_init_writes_the_kit_files_and_the_generated_ones(tmp_path: Path):
    outcome = scaffold.init(tmp_path)
    written = {str(p.relative_to(tmp_path)) for p in outcome.written}
    assert {"targets.toml", "tasks.py", "noxfile.py", ".dockerignore", ".gitignore"} <= written
    for name in matrix.load(tmp_path):
        assert {f"envs/{name}.yml", f"docker/{name}.Dockerfile"} <= written
        assert f".devcontainer/{name}/devcontainer.json" in written
    assert outcome.kept == []
    assert "from torchenv.tasks import ns" in (tmp_path / "tasks.py").read_text()
    assert (tmp_path / ".gitignore").read_text().splitlines()[-1] == "/.torchenv/"


def test_the_matrix_names_the_projects_own_images(tmp_path: Path):
    project = tmp_path / "My Project"
    project.mkdir()
    scaffold.init(project)
    targets = matrix.load(project)
    assert {t.image_repo for t in targets.values()} == {"my-project"}
    assert all(t.image_size_gb is None for t in targets.values())  # the kit's sizes are not its
    assert 'image_repo = "torchenv"' in kit.DEFAULT_MATRIX.read_text()


def test_a_second_run_writes_nothing(tmp_path: Path):
    scaffold.init(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    outcome = scaffold.init(tmp_path)
    assert outcome.written == [] and outcome.kept == []
    assert outcome.lines(tmp_path) == ["nothing to do: the project is set up"]
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == before


def test_the_users_files_are_kept_unless_forced(tmp_path: Path):
    (tmp_path / "tasks.py").write_text("# my own tasks\n")
    (tmp_path / ".gitignore").write_text("build/")  # no final newline
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "cuda13.Dockerfile").write_text("FROM my/own\n")
    outcome = scaffold.init(tmp_path)
    kept = sorted(str(p.relative_to(tmp_path)) for p in outcome.kept)
    assert kept == ["docker/cuda13.Dockerfile", "tasks.py"]
    assert (tmp_path / "tasks.py").read_text() == "# my own tasks\n"
    assert "kept tasks.py: it exists with other content (--force replaces it)" in outcome.lines(
        tmp_path
    )
    assert (tmp_path / ".gitignore").read_text().startswith("build/\n# torchenv")
    forced = scaffold.init(tmp_path, force=True)
    assert {str(p.relative_to(tmp_path)) for p in forced.written} == {
        "docker/cuda13.Dockerfile", "tasks.py"
    }  # fmt: skip
    assert forced.kept == []


def test_an_old_generated_file_of_the_kit_is_replaced(tmp_path: Path):
    scaffold.init(tmp_path)
    dockerfile = tmp_path / "docker" / "cpu.Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "# an older kit's line\n")
    assert scaffold.init(tmp_path).written == [dockerfile]
    # an older kit's .dockerignore (its build context admitted envs/, not the staged locks)
    ignore = tmp_path / ".dockerignore"
    ignore.write_text(ignore.read_text().replace("!.torchenv/locks/", "!envs/"))
    assert scaffold.init(tmp_path).written == [ignore]
    assert "!.torchenv/locks/" in ignore.read_text()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in a read-only folder anyway")
def test_a_folder_that_is_not_writable_is_one_line(tmp_path: Path):
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(
            UserError, match=r"^cannot write in .*: run `torchenv init` in a folder"
        ):
            scaffold.init(tmp_path)
    finally:
        tmp_path.chmod(0o755)


def test_not_writable_is_checked_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """As root (CI) the permission bits do not stop a write: the check itself is what refuses."""
    monkeypatch.setattr(scaffold.os, "access", lambda path, mode: False)
    with pytest.raises(UserError, match="cannot write in"):
        scaffold.init(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_image_repo_is_a_name_docker_takes():
    assert scaffold.image_repo(Path("/x/Torch_Env.Demo")) == "torch_env.demo"
    assert scaffold.image_repo(Path("/x/--")) == "project"


def test_a_new_project_gets_its_own_project_table(tmp_path: Path):
    text = scaffold.default_matrix(tmp_path)
    assert text.count("\n[project]\n") == 1 and 'dependencies = "none"' not in text
    assert matrix.parse_project(text) == matrix.Project(dependencies="auto")


def test_init_writes_a_ci_workflow_that_installs_this_kit_and_a_test_session(tmp_path: Path):
    from importlib import metadata

    scaffold.init(tmp_path)
    flow = (tmp_path / ".github" / "workflows" / "torchenv.yml").read_text()
    assert f'TORCHENV: "torchenv=={metadata.version("torchenv")}"' in flow
    assert "{{" not in flow.replace("${{", "")
    assert 'nox -s "image(${TARGET})"' in flow and 'nox -s "test(${TARGET})"' in flow
    nox = (tmp_path / "noxfile.py").read_text()
    assert "def test(session" in nox and '"invoke", "test", "--target", target' in nox


def test_the_noxfile_an_earlier_kit_wrote_is_replaced_a_users_is_kept(tmp_path: Path):
    import subprocess

    old = subprocess.run(
        ["git", "show", "6df60c4:src/torchenv/kit/templates/noxfile.py.in"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    if old.returncode != 0:
        pytest.skip(f"this checkout lacks the earlier kit's commit: {old.stderr.strip()}")
    nox = tmp_path / "noxfile.py"
    nox.write_text(old.stdout)
    scaffold.init(tmp_path)
    assert "def test(session" in nox.read_text()
    nox.write_text(old.stdout + "# mine\n")
    assert nox in scaffold.init(tmp_path).kept

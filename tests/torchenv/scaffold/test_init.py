"""`torchenv init` (torchenv.scaffold): what it writes in a project, and what it never touches."""

from __future__ import annotations

import json
import os
import re
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
        assert {f".torchenv.d/envs/{name}.yml", f".torchenv.d/docker/{name}.Dockerfile"} <= written
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
    (tmp_path / ".torchenv.d" / "docker").mkdir(parents=True)
    (tmp_path / ".torchenv.d" / "docker" / "cuda13.Dockerfile").write_text("FROM my/own\n")
    outcome = scaffold.init(tmp_path)
    kept = sorted(str(p.relative_to(tmp_path)) for p in outcome.kept)
    assert kept == [".torchenv.d/docker/cuda13.Dockerfile", "tasks.py"]
    assert (tmp_path / "tasks.py").read_text() == "# my own tasks\n"
    assert "kept tasks.py: it exists with other content (--force replaces it)" in outcome.lines(
        tmp_path
    )
    assert (tmp_path / ".gitignore").read_text().startswith("build/\n# torchenv")
    forced = scaffold.init(tmp_path, force=True)
    assert {str(p.relative_to(tmp_path)) for p in forced.written} == {
        ".torchenv.d/docker/cuda13.Dockerfile", "tasks.py", ".torchenv.d/init.json"
    }  # fmt: skip
    assert forced.kept == []


def test_an_old_generated_file_of_the_kit_is_replaced(tmp_path: Path):
    scaffold.init(tmp_path)
    dockerfile = tmp_path / ".torchenv.d" / "docker" / "cpu.Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "# an older kit's line\n")
    assert scaffold.init(tmp_path).written == [dockerfile]
    # an older kit's .dockerignore (its build context admitted envs/, not the staged locks), in a
    # project it set up: no init record
    (tmp_path / ".torchenv.d" / "init.json").unlink()
    ignore = tmp_path / ".dockerignore"
    ignore.write_text(ignore.read_text().replace("!.torchenv/locks/", "!envs/"))
    assert scaffold.init(tmp_path).written == [ignore, tmp_path / ".torchenv.d" / "init.json"]
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

    scaffold.init(tmp_path)
    flow = (tmp_path / ".github" / "workflows" / "torchenv.yml").read_text()
    assert 'KIT_REQUIREMENTS: ".torchenv.d/kit-requirements.txt"' in flow
    pins = (tmp_path / ".torchenv.d" / "kit-requirements.txt").read_text()
    assert "torchenv==0.2.0 \\\n    --hash=sha256:" in pins and "\ninvoke==" in pins
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


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda r: (r / "pyproject.toml").write_text("[project\n"), id="invalid pyproject.toml"),
        pytest.param(lambda r: (r / ".torchenv.d").write_text("a file"), id="a file where a folder goes"),
        pytest.param(lambda r: (r / "targets.toml").write_text("[targets.x]\n"), id="a broken targets.toml"),
        pytest.param(lambda r: (r / ".devcontainer").write_text("x"), id="a file where .devcontainer/ goes"),
    ],
)  # fmt: skip
def test_init_writes_all_or_nothing(tmp_path: Path, break_it):
    """Issue 31, case 6: a problem found anywhere stops init before its first write."""
    break_it(tmp_path)
    before = _tree(tmp_path)
    with pytest.raises(UserError) as exc:
        scaffold.init(tmp_path)
    assert "\n" not in str(exc.value) and ".tmp" not in str(exc.value)
    assert _tree(tmp_path) == before


def test_a_write_that_fails_halfway_is_undone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / ".gitignore").write_text("build/\n")
    before = _tree(tmp_path)
    from torchenv import files

    real, calls = files.write_atomic, []

    def flaky(path, text):
        calls.append(path)
        if len(calls) == 5:
            raise OSError(28, "No space left on device", str(path))
        real(path, text)

    monkeypatch.setattr(files, "write_atomic", flaky)
    with pytest.raises(OSError, match="No space left"):
        scaffold.init(tmp_path)
    monkeypatch.setattr(files, "write_atomic", real)
    assert _tree(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitignore"]  # no folder left either


def test_the_record_tells_the_kits_files_from_the_users_and_a_newer_kit_updates_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    scaffold.init(tmp_path)
    record = json.loads((tmp_path / ".torchenv.d" / "init.json").read_text())
    assert {"targets.toml", "tasks.py", "noxfile.py", ".dockerignore"} <= set(record["files"])
    (tmp_path / "tasks.py").write_text((tmp_path / "tasks.py").read_text() + "# mine\n")
    newer = tmp_path.parent / "newer-noxfile.py.in"
    newer.write_text((scaffold.TEMPLATES / "noxfile.py.in").read_text() + "# a newer kit's line\n")
    monkeypatch.setattr(
        scaffold,
        "_FIXED",
        tuple((n, newer if n == "noxfile.py" else s) for n, s in scaffold._FIXED),
    )
    outcome = scaffold.init(tmp_path)
    assert tmp_path / "noxfile.py" in outcome.written  # the kit's, unchanged: updated
    assert outcome.kept == [tmp_path / "tasks.py"]  # the user changed it: kept and named
    assert (tmp_path / "noxfile.py").read_text().endswith("# a newer kit's line\n")
    assert scaffold.init(tmp_path).lines(tmp_path) == [
        "kept tasks.py: it exists with other content (--force replaces it)"
    ]  # a second run changes nothing that is yours


def test_a_project_an_earlier_kit_set_up_has_its_files_moved(tmp_path: Path):
    """Issue 32, case 1: torchenv 0.1 wrote envs/ and docker/ at the root, which setuptools'
    flat-layout discovery takes for packages; init moves them, the locks' bytes kept."""
    scaffold.init(tmp_path)
    kit_dir = tmp_path / ".torchenv.d"
    (kit_dir / "envs").rename(tmp_path / "envs")
    (kit_dir / "docker").rename(tmp_path / "docker")
    (kit_dir / "init.json").unlink()
    (kit_dir / "kit-requirements.txt").unlink()  # 0.1 wrote none
    kit_dir.rmdir()
    matrix_file = tmp_path / "targets.toml"
    matrix_file.write_text(re.sub(r"(?m)^files = .*\n", "", matrix_file.read_text()))
    lock = tmp_path / "envs" / "cuda13.pip.lock.txt"
    lock.write_text("# a lock\n")
    outcome = scaffold.init(tmp_path)
    lines = outcome.lines(tmp_path)
    assert "moved envs/cuda13.pip.lock.txt to .torchenv.d/envs/cuda13.pip.lock.txt" in lines
    assert 'targets.toml: added files = ".torchenv.d"' in lines
    assert (kit_dir / "envs" / "cuda13.pip.lock.txt").read_text() == "# a lock\n"
    assert not (tmp_path / "envs").exists() and not (tmp_path / "docker").exists()
    assert matrix.get("cuda13", tmp_path).dockerfile == kit_dir / "docker" / "cuda13.Dockerfile"
    assert scaffold.init(tmp_path).written == []


def test_a_kept_tasks_py_that_does_not_load_the_kit_says_how_to(tmp_path: Path):
    (tmp_path / "tasks.py").write_text("from invoke import task\n")
    scaffold.init(tmp_path)
    assert "add `from torchenv.tasks import ns`" in scaffold.next_steps(tmp_path)
    (tmp_path / "tasks.py").write_text("from torchenv.tasks import ns\n")
    assert scaffold.next_steps(tmp_path).startswith("next: invoke lock --target cpu")


def test_init_targets_chooses_the_matrix(tmp_path: Path):
    scaffold.init(tmp_path, names=["cpu", "cuda13"])
    assert matrix.names(tmp_path) == ["cpu", "cuda13"]
    assert sorted(p.name for p in (tmp_path / ".torchenv.d" / "docker").iterdir()) == [
        "cpu.Dockerfile", "cuda13.Dockerfile",
    ]  # fmt: skip
    with pytest.raises(UserError, match=r"^--targets names cuda99, which the kit does not have"):
        scaffold.init(
            tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path, names=["cuda99"]
        )


def test_a_new_projects_dockerfiles_install_its_package_as_the_matrix_will_say(tmp_path: Path):
    """The matrix init writes is not on disk while init plans: the package layer follows it."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "mypkg"\nversion = "1"\n')
    scaffold.init(tmp_path)
    assert ".torchenv/package" in (tmp_path / ".torchenv.d/docker/cuda13.Dockerfile").read_text()


def test_a_kit_file_the_projects_git_ignores_is_named(tmp_path: Path):
    """A `*.json` line in the project's .gitignore hides init.json and the dev containers."""
    import subprocess

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".gitignore").write_text("*.json\n")
    lines = scaffold.init(tmp_path).lines(tmp_path)
    hidden = [line for line in lines if "is ignored by git" in line]
    assert any(
        line.startswith(".torchenv.d/init.json is ignored by git (.gitignore:1:*.json)")
        for line in hidden
    )
    assert all("git add -f" in line for line in hidden)

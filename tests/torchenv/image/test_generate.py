"""`invoke generate`: every generated file written from the matrix, and what --check reports."""

from tests.support import REPO

from torchenv import matrix
from torchenv.image import generate


def test_committed_generated_files_are_current():
    assert generate.problems(REPO) == [], "run `invoke generate`"


def test_write_all_then_check_in_a_fresh_tree(tmp_path):
    written = generate.write_all(tmp_path, matrix.load())
    assert len(written) == 3 * len(matrix.names())  # env file, Dockerfile, dev container each
    assert generate.problems(tmp_path, matrix.load()) == []
    assert generate.write_all(tmp_path, matrix.load()) == []  # nothing to change the second time


def test_problems_name_missing_stale_and_orphaned_files(tmp_path):
    generate.write_all(tmp_path, matrix.load())
    first, second = matrix.names()[:2]
    (tmp_path / ".devcontainer" / first / "devcontainer.json").unlink()
    (tmp_path / "docker" / f"{second}.Dockerfile").write_text("FROM scratch\n")
    for orphan in (".devcontainer/retired/devcontainer.json", "docker/retired.Dockerfile",
                   "envs/retired.yml"):  # fmt: skip
        (tmp_path / orphan).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / orphan).write_text("{}\n")
    (tmp_path / "envs" / f"{first}.conda-lock.yml").write_text("a lock, not an orphan\n")
    assert generate.problems(tmp_path, matrix.load()) == [
        f".devcontainer/{first}/devcontainer.json is missing: run `invoke generate`",
        f"docker/{second}.Dockerfile is out of date: run `invoke generate`",
        "envs/retired.yml belongs to no target in targets.toml: delete it",
        "docker/retired.Dockerfile belongs to no target in targets.toml: delete it",
        ".devcontainer/retired/devcontainer.json belongs to no target in targets.toml: delete it",
    ]

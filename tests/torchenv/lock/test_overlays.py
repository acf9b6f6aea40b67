"""The locks over the pip lock: the project's dependencies, then the dev extras (`invoke lock`)."""

from __future__ import annotations

import dataclasses

import pytest
from tests.support.locks import DEV_RESOLVED, RESOLVED, pip_runner, report_for

from torchenv import matrix
from torchenv.errors import UserError
from torchenv.lock import drift, lockfile, make, overlays
from torchenv.lock import gate as lockgate

SAMPLE_DEPS = {"einops": "0.8.1", "tqdm": "4.67.1"}


def with_project(tree, pyproject: str) -> None:
    """The tree's project declares its dependencies in `pyproject` (auto)."""
    matrix_file = tree / "targets.toml"
    matrix_file.write_text(
        matrix_file.read_text().replace('dependencies = "none"', 'dependencies = "auto"')
    )
    (tree / "pyproject.toml").write_text(pyproject)
    matrix.forget()  # read again, as a new `invoke` process would


SAMPLE = "[project]\nname='mypkg'\ndependencies=['einops>=0.8', 'tqdm', 'torch>=2']\n"


def test_the_dev_lock_holds_only_what_the_extras_add_resolved_over_the_pip_lock(tree):
    target = matrix.get("cuda13")
    runner = pip_runner(report_for(RESOLVED))
    assert make.lock_pip(target, runner, upgrade=True, resolver="pip") == (
        "wrote envs/cuda13.pip.lock.txt (6 packages); wrote envs/cuda13.dev.lock.txt (4 packages)"
    )
    base_call, dev_call = runner.calls
    assert "--constraint" not in base_call.args and "--index-url" not in dev_call.args
    ((constraints, requirements),) = runner.files
    assert "torch==2.14.1\n" in constraints and "jinja2==3.1.6\n" in constraints
    assert requirements == "ipykernel==7.4.0\njupyterlab==4.6.6\ntensorboard==2.21.0\n"
    dev = lockfile.read_lock(target.dev_lock, "cuda13")
    assert {n: p.version for n, p in dev.packages.items()} == DEV_RESOLVED
    assert all(len(p.hashes) == 1 for p in dev.packages.values())
    assert "over envs/cuda13.pip.lock.txt, whose versions" in target.dev_lock.read_text()
    assert drift.check_target(target) == [] and not target.project_lock.exists()


def test_the_project_lock_sits_between_the_pip_lock_and_the_dev_lock(tree):
    with_project(tree, SAMPLE)
    target = matrix.get("cuda13")
    runner = pip_runner(report_for(RESOLVED), project=SAMPLE_DEPS)
    lines = make.lock_pip(target, runner, upgrade=True, resolver="pip").split("; ")
    assert lines[1] == "wrote envs/cuda13.project.lock.txt (2 packages)"
    project = lockfile.read_lock(target.project_lock, "cuda13")
    assert {n: p.version for n, p in project.packages.items()} == SAMPLE_DEPS  # torch is below
    project_reqs = runner.files[0][1]
    assert project_reqs == "einops>=0.8\ntqdm\ntorch>=2\n"
    # the dev extras are resolved over both: the project's versions are constraints too
    dev_constraints = runner.files[1][0]
    assert "einops==0.8.1\n" in dev_constraints and "torch==2.14.1\n" in dev_constraints
    assert drift.check_target(target) == []
    assert lockgate.state(target, "uv") is None and lockgate.state(target, "uv", "dev") is None


def test_a_project_dependency_that_would_move_a_locked_package_is_refused(tree):
    with_project(tree, SAMPLE)
    target = matrix.get("cuda13")
    moved = pip_runner(report_for(RESOLVED), project={**SAMPLE_DEPS, "jinja2": "3.2.0"})
    before = target.pip_lock.read_text()
    with pytest.raises(UserError) as exc:
        overlays.lock_all(target, moved, upgrade=True, resolver="pip")
    assert str(exc.value) == (
        "the project's dependencies need jinja2 3.2.0, but the locks below have 3.1.6: change "
        "them in pyproject.toml"
    )
    assert not target.project_lock.exists() and target.pip_lock.read_text() == before


def test_a_requirement_pip_left_out_is_named_unless_a_marker_excludes_linux(tree):
    with_project(
        tree, "[project]\nname='m'\ndependencies=['einops', \"pywin32; sys_platform == 'win32'\"]\n"
    )
    target = matrix.get("cuda13")
    assert overlays.lock_all(
        target, pip_runner(report_for(RESOLVED), project=SAMPLE_DEPS), upgrade=True, resolver="pip"
    )[0] == ("wrote envs/cuda13.project.lock.txt (2 packages)")
    lacking = pip_runner(report_for(RESOLVED), project={"tqdm": "4.67.1"})
    with pytest.raises(
        UserError, match=r"^pip's resolve of the project's dependencies lacks einops$"
    ):
        overlays.lock_all(target, lacking, upgrade=True, resolver="pip")


def test_requirements_all_below_give_a_lock_with_no_package(tree):
    with_project(tree, "[project]\nname='m'\ndependencies=['torch>=2', 'jinja2']\n")
    target = matrix.get("cuda13")
    lines = overlays.lock_all(
        target, pip_runner(report_for(RESOLVED)), upgrade=True, resolver="pip"
    )
    assert lines[0] == "wrote envs/cuda13.project.lock.txt (0 packages)"
    assert lockfile.read_lock(target.project_lock, "cuda13", allow_empty=True).packages == {}
    assert drift.check_target(target) == [] and lockgate.state(target, "pip") is None


def test_a_lock_of_one_package_says_one_package_written_kept_and_up_to_date(tree):
    with_project(tree, "[project]\nname='m'\ndependencies=['einops>=0.8']\n")
    target = matrix.get("cuda13")
    one = {"einops": "0.8.1"}
    lines = overlays.lock_all(
        target, pip_runner(report_for(RESOLVED), project=one), upgrade=True, resolver="pip"
    )
    assert lines[0] == "wrote envs/cuda13.project.lock.txt (1 package)"
    kept = overlays.lock_all(target, pip_runner(report_for(RESOLVED), project=one), resolver="pip")
    assert kept[0] == "envs/cuda13.project.lock.txt: current (1 package), kept"
    again = overlays.lock_all(
        target, pip_runner(report_for(RESOLVED), project=one), upgrade=True, resolver="pip"
    )
    assert again[0] == "envs/cuda13.project.lock.txt: up to date (1 package), left as it was"
    assert lockfile.packages_count(0) == "0 packages" and lockfile.packages_count(2) == "2 packages"


def test_stale_overlays_and_one_nothing_asks_for_are_drift(tree):
    with_project(tree, SAMPLE)
    target = matrix.get("cuda13")
    make.lock_pip(
        target, pip_runner(report_for(RESOLVED), project=SAMPLE_DEPS), upgrade=True, resolver="pip"
    )
    (tree / "pyproject.toml").write_text(SAMPLE.replace("'tqdm', ", ""))
    problems = drift.check_target(target)
    assert problems[0].startswith("envs/cuda13.project.lock.txt: made from other requirements")
    assert problems[0].endswith("regenerate with invoke lock --target cuda13")
    assert lockgate.state(target, "uv", "runtime").startswith(  # type: ignore[union-attr]
        "envs/cuda13.project.lock.txt is stale"
    )
    (tree / "pyproject.toml").write_text(SAMPLE)
    bumped = dataclasses.replace(target, dev_packages=("ipykernel==7.4.0",))
    (problem,) = drift.check_target(bumped)
    assert problem.startswith("envs/cuda13.dev.lock.txt: made from other requirements")
    (problem,) = drift.check_target(dataclasses.replace(target, dev_packages=()))
    assert problem == (
        "envs/cuda13.dev.lock.txt: nothing asks for it now; regenerate with invoke lock --target "
        "cuda13"
    )
    lines = overlays.lock_all(
        dataclasses.replace(target, dev_packages=()),
        pip_runner(report_for(RESOLVED), project=SAMPLE_DEPS),
        upgrade=True,
        resolver="pip",
    )
    assert lines[-1] == "removed envs/cuda13.dev.lock.txt (nothing asks for it now)"
    assert not target.dev_lock.exists()


def test_the_dry_run_shows_one_resolve_per_overlay(tree):
    with_project(tree, SAMPLE)
    lines = make.planned_commands(matrix.get("cuda13"), "pip", resolver="pip")
    assert len(lines) == 3
    assert "--constraint" not in lines[0] and all("--constraint" in line for line in lines[1:])


def test_current_locks_are_kept_and_a_new_dependency_leaves_torchs_lock_alone(tree):
    target = matrix.get("cuda13")
    runner = pip_runner(report_for(RESOLVED))
    assert make.lock_pip(target, runner, resolver="pip") == (
        "envs/cuda13.pip.lock.txt: current (34 packages), kept (--upgrade resolves it again); "
        "envs/cuda13.dev.lock.txt: current (95 packages), kept"
    )
    assert runner.calls == []
    before = target.pip_lock.read_text()
    with_project(tree, SAMPLE)  # the project now declares dependencies
    runner = pip_runner(report_for(RESOLVED), project=SAMPLE_DEPS)
    lines = make.lock_pip(target, runner, resolver="pip").split("; ")
    assert lines[0].startswith("envs/cuda13.pip.lock.txt: current (34 packages), kept")
    assert lines[1:] == [
        "wrote envs/cuda13.project.lock.txt (2 packages)",
        "wrote envs/cuda13.dev.lock.txt (4 packages)",  # resolved again: what is below it moved
    ]
    assert len(runner.calls) == 2 and all("--constraint" in c.args for c in runner.calls)
    assert target.pip_lock.read_text() == before

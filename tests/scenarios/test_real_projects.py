"""Real projects, as declared (issue 32): every standard shape in tests/fixtures/projects, with the
kit from its wheel in a fresh venv, against an index this test serves on 127.0.0.1 (stand-ins of
the torch family at cuda13's pins and of the packages the fixtures name, the real build backends
from a wheelhouse filled once). For each shape: its own wheel holds the same files before and
after `torchenv init`, and `invoke lock --target cuda13` locks what the project declares, or
refuses in one line per problem.
"""

from __future__ import annotations

import re
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
from tests.support import REPO
from tests.support.fixtureprojects import SHAPES, copy_project, has_build_backend, offline_env

pytestmark = [pytest.mark.slow]
pytest_plugins = ["tests.support.indexfixtures"]

# shape: (what targets.toml's [project] table adds, the packages the project lock holds, or the
# problems every run names: one line each, in order)
EXPECT: dict[str, tuple[dict[str, str], set[str] | list[str]]] = {
    "flat-setuptools": ({}, {"einops", "tqdm"}),
    "src-layout": ({}, {"tqdm"}),  # numpy is the torch family's, in the pip lock below
    "setup-py-only": ({"extras": '["test"]'}, {"einops", "tqdm", "pytest", "iniconfig", "pluggy", "packaging"}),
    "setup-cfg": ({}, {"einops", "pyyaml"}),
    "dynamic-deps": ({}, {"einops", "tqdm"}),
    "hatchling": ({"extras": '["test"]'}, {"tqdm", "pyyaml", "pytest", "iniconfig", "pluggy", "packaging"}),
    "flit": ({}, {"einops"}),
    "pdm-backend": ({"groups": '["test"]'}, {"tqdm", "pytest", "iniconfig", "pluggy", "packaging"}),
    "poetry-core": ({"groups": '["test"]', "extras": '["shapes"]'}, {"tqdm", "einops", "pytest", "iniconfig", "pluggy", "packaging"}),
    "dependency-groups": ({"groups": '["test"]'}, {"tqdm", "pytest", "ruff", "iniconfig", "pluggy", "packaging"}),
    "requirements-includes": ({}, {"einops", "pyyaml", "tqdm"}),
    "environment-yaml": ({}, {"einops", "tqdm"}),
    "environment-yaml-other-torch": ({}, [
        "environment.yaml dependencies #2 (pytorch=1.11.0) requires torch==1.11.0.*",
        "environment.yaml dependencies #3 (torchvision=0.12.0) requires torchvision==0.12.0.*",
    ]),
    "self-extra": ({"extras": '["dev", "my_test"]'}, {"einops", "pytest", "tqdm", "pyyaml", "iniconfig", "pluggy", "packaging"}),
    "minimal-plus-requirements": ({}, {"einops", "tqdm", "pytest", "ruff", "iniconfig", "pluggy", "packaging"}),
    "three-problems": ({}, [
        "requirements.txt:7: -r requirements/missing.txt: there is no such file",
        "requirements.txt:5 requires torch==2.0.0, but target cuda13 pins torch 2.14.1",
        "requirements.txt:3: no-such-package-on-any-index is on no index",
    ]),
    "torch-marker-win32": ({}, {"tqdm"}),
    "numpy-lt-2": ({}, {"tqdm"}),  # numpy 1.x, jointly resolved, is the torch family's (below)
}  # fmt: skip
TIMINGS: dict[str, float] = {}


def wheel_files(project: Path, index: str, uv: Path) -> list[str]:
    out, scratch = project.parent / f"{project.name}-wheel", project.parent / "tmp"
    scratch.mkdir(exist_ok=True)  # uv leaves a uv-setuptools-*.lock where TMPDIR is
    done = subprocess.run(
        [str(uv), "build", "--wheel", "--quiet", "--no-cache", "--out-dir", str(out), str(project)],
        env=offline_env({"UV_DEFAULT_INDEX": index, "TMPDIR": str(scratch)}),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = out.glob("*.whl")
    names = sorted(zipfile.ZipFile(wheel).namelist())
    wheel.unlink()
    return names


def _set(text: str, key: str, value: str) -> str:
    pattern = rf"(?m)^{key} = .*$"
    if re.search(pattern, text):
        return re.sub(pattern, f"{key} = {value}", text)
    return text.replace("\n[project]\n", f"\n[project]\n{key} = {value}\n")


def test_every_shape_is_shaped(tmp_path):
    assert set(EXPECT) == set(SHAPES)


@pytest.mark.parametrize("shape", sorted(EXPECT))
def test_a_real_project_shape_locks_as_declared_and_init_leaves_its_wheel_alone(
    shape, kit_venv, build_index, tmp_path
):
    edits, expected = EXPECT[shape]
    project = copy_project(shape, tmp_path)
    index = build_index.url
    env = offline_env({"PATH": f"{kit_venv}:/usr/bin:/bin"})
    before = wheel_files(project, index, kit_venv / "uv") if has_build_backend(project) else None
    done = subprocess.run([str(kit_venv / "torchenv"), "init", "--targets", "cuda13"], cwd=project,
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    if before is not None:
        assert wheel_files(project, index, kit_venv / "uv") == before  # init changed nothing of it
    matrix = project / "targets.toml"
    text = _set(matrix.read_text(), "dev_packages", "[]")  # the dev extras are not stood in for
    for key, value in edits.items():
        text = _set(text, key, value)
    matrix.write_text(text)
    started = time.monotonic()
    done = subprocess.run(
        [str(kit_venv / "invoke"), "lock", "--target", "cuda13", "--index-url", index],
        cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    TIMINGS[shape] = time.monotonic() - started
    both = done.stdout + done.stderr
    assert "Traceback" not in both and "conda-lock" not in both, both  # conda was not asked for
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    if isinstance(expected, set):
        assert done.returncode == 0, both
        lock = project / ".torchenv.d" / "envs" / "cuda13.project.lock.txt"
        names = set(re.findall(r"(?m)^([a-z0-9][a-z0-9._-]*)==", lock.read_text()))
        assert names == expected, both
    else:
        assert done.returncode == 1 and len(errors) == len(expected), both
        for line, needle in zip(errors, expected, strict=True):
            assert needle in line, both
        assert not (project / ".torchenv.d" / "envs" / "cuda13.project.lock.txt").exists()
    print(f"\nlock of {shape}: {TIMINGS[shape]:.1f} s")


def test_the_index_lines_of_a_requirements_file_are_skipped_with_a_note(
    kit_venv, build_index, tmp_path
):
    project = copy_project("requirements-includes", tmp_path)
    env = offline_env({"PATH": f"{kit_venv}:/usr/bin:/bin"})
    subprocess.run([str(kit_venv / "torchenv"), "init", "--targets", "cuda13"], cwd=project, env=env,
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    matrix = project / "targets.toml"
    matrix.write_text(_set(matrix.read_text(), "dev_packages", "[]"))
    done = subprocess.run(
        [str(kit_venv / "invoke"), "lock", "--target", "cuda13", "--index-url", build_index.url],
        cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (
        "requirements.txt:3: skipped --extra-index-url https://download.pytorch.org/whl/cu117"
        in done.stdout
    )
    assert str(REPO) not in done.stdout  # no path into the kit's own repository


def _lock(kit_venv: Path, project: Path, index: str, *more: str) -> subprocess.CompletedProcess:
    env = offline_env({"PATH": f"{kit_venv}:/usr/bin:/bin"})
    return subprocess.run(
        [str(kit_venv / "invoke"), "lock", "--target", "cuda13", "--index-url", index, *more],
        cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def _init(kit_venv: Path, shape: str, tmp_path: Path) -> Path:
    project = copy_project(shape, tmp_path)
    env = offline_env({"PATH": f"{kit_venv}:/usr/bin:/bin"})
    subprocess.run([str(kit_venv / "torchenv"), "init", "--targets", "cuda13"], cwd=project,
                   env=env, check=True, capture_output=True, timeout=120)  # fmt: skip
    matrix = project / "targets.toml"
    matrix.write_text(_set(matrix.read_text(), "dev_packages", "[]"))
    return project


def _versions(lock: Path) -> dict[str, str]:
    return dict(re.findall(r"(?m)^([a-z0-9][a-z0-9._-]*)==(\S+) ", lock.read_text()))


def test_joint_resolution_numpy_below_2_and_what_moves_below_is_said(
    kit_venv, build_index, tmp_path
):
    """Issue 33: the project's requirements and the torch family resolved together: numpy<2
    takes a numpy 1.x that torch accepts (below, the family's), and a new requirement that
    moves a package of the torch layer says so at lock."""
    project = _init(kit_venv, "flat-setuptools", tmp_path)
    envs = project / ".torchenv.d" / "envs"
    done = _lock(kit_venv, project, build_index.url)
    assert done.returncode == 0, done.stderr
    assert _versions(envs / "cuda13.pip.lock.txt")["numpy"].startswith("2.")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"tqdm"]', '"tqdm", "numpy<2"]'))
    done = _lock(kit_venv, project, build_index.url)
    assert done.returncode == 0, done.stderr
    below = _versions(envs / "cuda13.pip.lock.txt")
    assert below["numpy"] == "1.26.4" and below["torch"] == "2.14.1"
    assert "the torch layer changes (numpy 2.4.6 -> 1.26.4): it rebuilds" in done.stdout
    assert "# layer: below." in (envs / "cuda13.pip.lock.txt").read_text()
    assert "# layer: above." in (envs / "cuda13.project.lock.txt").read_text()
    # a dependency that leaves the torch layer alone writes the project's lock alone
    before = (envs / "cuda13.pip.lock.txt").read_bytes()
    pyproject.write_text(pyproject.read_text().replace('"tqdm",', '"tqdm", "pyyaml",'))
    done = _lock(kit_venv, project, build_index.url)
    assert done.returncode == 0 and "torch layer changes" not in done.stdout, done.stdout
    assert (envs / "cuda13.pip.lock.txt").read_bytes() == before
    assert "pyyaml" in _versions(envs / "cuda13.project.lock.txt")
    # pip's resolver cannot resolve jointly: a requirement that would move the torch layer
    # says, in one line, that uv does
    pyproject.write_text(pyproject.read_text().replace('"numpy<2"', '"numpy>=2"'))
    done = _lock(kit_venv, project, build_index.url, "--resolver", "pip")
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(errors) == 1 and "--resolver uv" in errors[0], done.stderr


def test_an_sdist_only_dependency_locks_by_its_sdists_hash(
    kit_venv, backend_wheels, standin_wheels, tmp_path
):
    from tests.support.localindex import SimpleIndex, build_sdist, sha256_of

    extra = tmp_path / "sdists"
    extra.mkdir()
    sdist = build_sdist(extra, "onlysdist", "1.0")
    project = _init(kit_venv, "flat-setuptools", tmp_path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"tqdm"]', '"tqdm", "onlysdist"]'))
    with SimpleIndex(backend_wheels, standin_wheels, extra) as index:
        done = _lock(kit_venv, project, index.url)
    assert done.returncode == 0, done.stderr
    lock = (project / ".torchenv.d" / "envs" / "cuda13.project.lock.txt").read_text()
    assert f"onlysdist==1.0 \\\n    --hash=sha256:{sha256_of(sdist)}" in lock


def _git_package(folder: Path) -> str:
    """A tiny package in a git repository of its own; its commit."""
    (folder / "gitpkg").mkdir(parents=True)
    (folder / "gitpkg" / "__init__.py").write_text("VALUE = 1\n")
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "gitpkg"\nversion = "0.3"\n[tool.setuptools]\npackages = ["gitpkg"]\n'
    )
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for argv in (["git", "init", "-q"], ["git", "add", "-A"], [*git, "commit", "-qm", "v"]):
        subprocess.run(argv, cwd=folder, check=True, capture_output=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip


def test_a_git_requirement_at_a_commit_locks_by_its_wheels_hash(kit_venv, build_index, tmp_path):
    repo = tmp_path / "gitpkg-src"
    commit = _git_package(repo)
    project = _init(kit_venv, "flat-setuptools", tmp_path)
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace('"tqdm"]', f'"tqdm", "gitpkg @ git+file://{repo}@main"]'))
    done = _lock(kit_venv, project, build_index.url)
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(errors) == 1 and "names no commit" in errors[0], done.stderr
    assert "@<the full commit hash>" in errors[0]
    pyproject.write_text(text.replace('"tqdm"]', f'"tqdm", "gitpkg @ git+file://{repo}@{commit}"]'))
    done = _lock(kit_venv, project, build_index.url)
    assert done.returncode == 0, done.stderr
    (wheel,) = (project / ".torchenv.d" / "wheels").glob("gitpkg-0.3-*.whl")
    import hashlib

    lock = (project / ".torchenv.d" / "envs" / "cuda13.project.lock.txt").read_text()
    assert (
        f"gitpkg==0.3 \\\n    --hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}"
        in lock
    )

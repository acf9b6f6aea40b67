"""The kit as a release: one version, single-sourced, and the release workflow's steps run here.

The version lives in src/torchbuild/__init__.py alone: pyproject.toml reads it
([tool.setuptools.dynamic]), torchenv and torchsmoke re-export it, the built files carry it. The
release workflow (.github/workflows/release.yml) refuses a tag that is not v<version>, builds the
sdist and the wheel once and runs the end-to-end test (test_your_project.py) on exactly that
wheel. Here its tag check, release notes and build steps run as written, in a copy of the tree
without .git (as the tests copy src/ into projects); what the later jobs name is checked against
what the build made. Trusted publishing and the GitHub release are proved by actionlint and
zizmor (test_workflow.py) and review only.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from tests.support import REPO

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = REPO
RELEASE = ROOT / ".github" / "workflows" / "release.yml"
WORKFLOW = ROOT / ".github" / "workflows" / "torchenv.yml"
BIN = Path(sys.executable).parent
VERSION_FILE = ROOT / "src" / "torchbuild" / "__init__.py"
# What a checkout holds that a copy of the tree leaves out: git's, caches, build outputs.
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".build", ".venv", ".nox", ".mypy_cache", ".ruff_cache", ".pytest_cache",
    "__pycache__", "*.egg-info", "build", "dist", "reports", ".torchenv",
)  # fmt: skip


def source_version() -> str:
    """`__version__` of src/torchbuild/__init__.py, read as pyproject's attr is: not imported."""
    tree = ast.parse(VERSION_FILE.read_text())
    (value,) = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(t, "id", None) for t in node.targets] == ["__version__"]
        and isinstance(node.value, ast.Constant)
    ]
    return str(value)


@pytest.fixture(scope="module")
def release() -> dict:
    return yaml.safe_load(RELEASE.read_text())


def step(job: dict, name: str) -> dict:
    (found,) = [s for s in job["steps"] if s.get("name", "").startswith(name)]
    return found


def run_step(found: dict, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """A step's `run` as the runner runs it (bash -e), with its env, python from this venv."""
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GITHUB_OUTPUT")}
    full = {**clean, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **found.get("env", {})}
    full.update(env)
    return subprocess.run(
        ["bash", "-e", "-c", found["run"]], cwd=cwd, env=full, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip


@dataclass
class Built:
    tree: Path  # the copy the steps ran in
    version: str  # what the tag step wrote to GITHUB_OUTPUT
    sdist: Path
    wheel: Path
    notes: str


@pytest.fixture(scope="module")
def built(release, tmp_path_factory) -> Built:
    """The build job's steps, in order, in a copy of the tree without .git: the tag check (tag
    v<version>), the release notes, the build, the check of what dist/ holds."""
    tree = tmp_path_factory.mktemp("release") / "torchenv"
    shutil.copytree(ROOT, tree, ignore=NOT_COPIED)
    job = release["jobs"]["build"]
    output = tree.parent / "github_output"
    tag = f"v{source_version()}"
    done = run_step(
        step(job, "The tag is the kit's version"), tree, TAG=tag, GITHUB_OUTPUT=str(output)
    )
    assert done.returncode == 0, done.stderr
    version = dict(line.split("=", 1) for line in output.read_text().splitlines())["version"]
    done = run_step(step(job, "The release notes"), tree, VERSION=version)
    assert done.returncode == 0, done.stderr
    done = run_step(step(job, "Build the sdist"), tree)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    done = run_step(step(job, "Exactly the sdist and the wheel"), tree, VERSION=version)
    assert done.returncode == 0, done.stderr
    dist = tree / "dist"
    return Built(
        tree, version, dist / f"torchenv-{version}.tar.gz",
        dist / f"torchenv-{version}-py3-none-any.whl",
        (tree / "notes" / "release-notes.md").read_text(),
    )  # fmt: skip


# --- one version ---------------------------------------------------------------------------------


def test_the_version_is_written_once_and_every_package_reads_it():
    import torchbuild
    import torchenv
    import torchsmoke

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and pyproject["project"]["dynamic"] == ["version"]
    dynamic = pyproject["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "torchbuild.__version__"}
    version = source_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?", version)
    assert torchenv.__version__ == torchsmoke.__version__ == torchbuild.__version__ == version
    literal = re.compile(rf"""["']{re.escape(version)}["']""")
    written = [
        str(p.relative_to(ROOT)) for p in sorted((ROOT / "src").rglob("*.py"))
        if literal.search(p.read_text())
    ]  # fmt: skip
    assert written == ["src/torchbuild/__init__.py"]


def test_the_changelog_leads_with_this_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    versions = re.findall(r"(?m)^## \[([^\]]+)\]", text)
    assert versions[:2] == ["Unreleased", source_version()]
    assert re.search(rf"(?m)^## \[{re.escape(source_version())}\] - \d{{4}}-\d\d-\d\d$", text)


def test_the_wheel_the_command_and_the_suite_say_the_sources_version(built: Built, tmp_path):
    """What a user sees: the installed wheel's metadata, `torchenv --version` and
    `python -m torchsmoke --version` (in the image too: it needs no torch)."""
    version = source_version()
    with zipfile.ZipFile(built.wheel) as wheel:
        (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        assert f"\nVersion: {version}\n" in wheel.read(metadata).decode()
    with tarfile.open(built.sdist) as sdist:
        info = sdist.extractfile(f"torchenv-{version}/PKG-INFO")
        assert info is not None and f"\nVersion: {version}\n" in info.read().decode()
    target = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
         str(target), str(built.wheel)], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    env = {**os.environ, "PYTHONPATH": str(target)}  # the wheel's packages, not the checkout's
    said = [
        subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        for argv in ([str(target / "bin" / "torchenv"), "--version"],
                     [sys.executable, "-m", "torchsmoke", "--version"])
    ]  # fmt: skip
    assert [(d.returncode, d.stdout, d.stderr) for d in said] == [
        (0, f"torchenv {version}\n", ""),
        (0, f"torchsmoke {version}\n", ""),
    ]


# --- the release workflow's steps ------------------------------------------------------------------


def test_a_tag_that_is_not_the_version_is_refused_in_one_line(release, tmp_path):
    output = tmp_path / "github_output"
    check = step(release["jobs"]["build"], "The tag is the kit's version")
    done = run_step(check, ROOT, TAG="v9.9.9", GITHUB_OUTPUT=str(output))
    assert done.returncode == 1 and not output.exists()
    assert done.stderr.splitlines() == [
        f"tag v9.9.9 is not the kit's version v{source_version()} (src/torchbuild/__init__.py): "
        "tag the commit that sets it"
    ]


def test_the_build_makes_the_sdist_and_the_wheel_from_it_at_the_version(built: Built, release):
    assert built.version == source_version()
    assert sorted(p.name for p in (built.tree / "dist").iterdir()) == [
        built.wheel.name, built.sdist.name,
    ]  # fmt: skip
    build = step(release["jobs"]["build"], "Build the sdist")["run"]
    # no --sdist or --wheel: build makes the sdist, then the wheel from it, so testing the wheel
    # tests what the sdist builds; no isolation: the backend is requirements/release.txt's
    assert build == "python -m build --no-isolation --outdir dist ."
    install = step(release["jobs"]["build"], "Install the build tools")["run"]
    assert install == "python -m pip install --require-hashes --no-deps -r requirements/release.txt"
    with zipfile.ZipFile(built.wheel) as wheel:
        names = set(wheel.namelist())
    assert {"torchenv/cli.py", "torchsmoke/cli.py", "torchbuild/__init__.py"} <= names
    assert "torchenv/kit/Dockerfile.in" in names  # the kit's data: the wheel is the whole kit


def test_the_check_of_dist_refuses_anything_else(built: Built, release, tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(built.tree / "dist", tree / "dist")
    (tree / "dist" / "torchenv-0.0.1-py3-none-any.whl").write_bytes(b"")
    check = step(release["jobs"]["build"], "Exactly the sdist and the wheel")
    done = run_step(check, tree, VERSION=built.version)
    assert done.returncode == 1 and "dist/ holds '" in done.stderr


def test_the_release_notes_are_the_changelogs_section(built: Built, release, tmp_path):
    assert built.notes.strip().startswith("Your project's dependencies go into the image")
    assert "### Added" in built.notes and "## [" not in built.notes
    assert "The first version" not in built.notes  # 0.1.0's section stays out
    notes = step(release["jobs"]["build"], "The release notes")
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy(ROOT / "CHANGELOG.md", tree)
    done = run_step(notes, tree, VERSION="9.9.9")
    assert done.returncode == 1 and "CHANGELOG.md has no section for 9.9.9" in done.stderr


def test_the_e2e_job_installs_and_tests_exactly_the_built_wheel(built: Built, release):
    job = release["jobs"]["e2e"]
    assert job["needs"] == ["build"]
    wheel = job["env"]["TORCHENV_WHEEL"].replace(
        "${{ needs.build.outputs.version }}", built.version
    )
    assert wheel == f"dist/{built.wheel.name}"
    download = step(job, "Download the sdist and the wheel")
    assert download["with"] == {"name": "dist", "path": "dist"}
    upload = step(release["jobs"]["build"], "Upload the sdist and the wheel")
    assert upload["with"]["name"] == "dist" and upload["with"]["path"] == "dist/"
    install = step(job, "Install the kit from this wheel")["run"].splitlines()
    assert install == [
        "python -m pip install --require-hashes --no-deps -r requirements/kit.txt",
        "python -m pip install --require-hashes --no-deps -r requirements/release.txt",
        'python -m pip install --no-deps "${TORCHENV_WHEEL}"',
    ]
    e2e = step(job, "The end-to-end test on this wheel")["run"]
    assert e2e.splitlines()[-1] == (
        'TORCHENV_STANDIN_BASE="${base}" python -m pytest -p no:cacheprovider '
        "tests/scenarios/test_your_project.py"
    )
    # the test's kit_venv (tests/conftest.py) takes that wheel instead of building one
    assert 'os.environ.get("TORCHENV_WHEEL"' in (ROOT / "tests/conftest.py").read_text()
    assert "kit_venv" in (ROOT / "tests/scenarios/test_your_project.py").read_text()


def test_only_tested_files_are_published_each_job_with_its_one_permission(release):
    jobs = release["jobs"]
    assert release[True] == {"push": {"tags": ["v*"]}}  # YAML reads the key `on` as true
    assert release["permissions"] == {}
    assert {name: job["permissions"] for name, job in jobs.items()} == {
        "build": {"contents": "read"},
        "e2e": {"contents": "read"},
        "pypi": {"id-token": "write"},
        "github-release": {"contents": "write"},
    }
    pypi = jobs["pypi"]
    assert pypi["needs"] == ["build", "e2e"] and pypi["environment"] == "pypi"
    (publish,) = [s for s in pypi["steps"] if "gh-action-pypi-publish" in s.get("uses", "")]
    assert publish["with"] == {"packages-dir": "dist/"}  # no password: trusted publishing
    assert step(pypi, "Download the tested sdist and wheel")["with"]["name"] == "dist"
    github = jobs["github-release"]
    assert github["needs"] == ["build", "pypi"]
    create = step(github, "Create the release")
    assert create["env"]["GH_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    assert "gh release create" in create["run"] and "gh release upload" in create["run"]
    assert "dist/*" in create["run"] and "--notes-file notes/release-notes.md" in create["run"]
    text = RELEASE.read_text()
    assert "secrets." not in text.replace("secrets.GITHUB_TOKEN", "")  # no stored token
    for job in jobs.values():
        for found in job["steps"]:
            assert "${{" not in found.get("run", ""), found["run"]  # values through env:


def test_the_actions_shared_with_ci_are_pinned_at_the_same_commits():
    def pins(path: Path) -> dict[str, str]:
        found = re.findall(r"uses: ([\w.-]+/[\w.-]+)@([0-9a-f]{40})", path.read_text())
        return dict(found)

    release, ci = pins(RELEASE), pins(WORKFLOW)
    shared = set(release) & set(ci)
    assert {"actions/checkout", "actions/upload-artifact", "actions/download-artifact"} <= shared
    assert {name: release[name] for name in shared} == {name: ci[name] for name in shared}


def test_the_release_tools_are_hashed_and_agree_with_the_kits():
    text = (ROOT / "requirements" / "release.txt").read_text()
    pins = dict(re.findall(r"(?m)^([a-z0-9._-]+)==(\S+) \\$", text))
    assert {"build", "setuptools", "pytest"} <= set(pins)
    blocks = re.split(r"(?m)^(?=[a-z0-9])", text)
    assert all("--hash=sha256:" in b for b in blocks if "==" in b)
    assert not re.search(r"(?m)^--", text) and "://" not in text  # no index, no find-links
    kit = dict(
        re.findall(
            r"(?m)^([a-z0-9._-]+)==(\S+) \\$", (ROOT / "requirements" / "kit.txt").read_text()
        )
    )
    assert {n: v for n, v in pins.items() if n in kit} == {n: kit[n] for n in pins if n in kit}
    backend = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert backend == ["setuptools>=77"] and int(pins["setuptools"].split(".")[0]) >= 77

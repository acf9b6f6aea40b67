"""A project that is not this repository, with the kit installed from a wheel: the README's "Your
project" commands, on the real engine.

tests/sample-project (a small package that needs einops and tqdm, and pytest for its tests) is
copied to a temporary folder; a wheel built from this repository goes into a fresh venv; there
`torchenv init`, `invoke lock` (this repository's cuda13 torch lock copied in: the same env file,
so it is kept and the torch layers come from the session's image build; the project's lock made
with uv, the default), `invoke build` (the project's own package its last layer), the sample's
tests in the image as another UID, `invoke test` (JUnit report), `invoke smoke --quick`, `invoke
verify`; a test command the image lacks is one line; a dependency whose requirement excludes the
target's torch is refused at lock, in one line, with nothing written.

TORCHENV_WHEEL=PATH (a path relative to the working directory, or absolute) tests that wheel
instead of one built from this checkout: the release workflow (.github/workflows/release.yml)
runs this test on exactly the wheel it publishes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.images import CA, STANDIN, docker
from tests.support import REPO

pytestmark = [pytest.mark.engine, pytest.mark.slow]

ROOT = REPO
SAMPLE = ROOT / "tests" / "sample-project"


def run(argv: list[str], cwd: Path, timeout: float = 900, **env: str):
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, **env},
    )  # fmt: skip


def test_lock_build_test_and_verify_a_project_with_the_kit_from_a_wheel(
    docker_engine, image, kit_venv, tmp_path
):
    project = tmp_path / "sample"
    shutil.copytree(SAMPLE, project)
    bin_ = kit_venv
    path = f"{bin_}:{os.environ['PATH']}"
    done = run([str(bin_ / "torchenv"), "init"], project, PATH=path)
    assert done.returncode == 0, done.stderr
    matrix_file = project / "targets.toml"
    matrix_file.write_text(matrix_file.read_text().replace("extras = []", 'extras = ["test"]'))
    shutil.copy(ROOT / "envs" / "cuda13.pip.lock.txt", project / ".torchenv.d" / "envs")
    invoke = [str(bin_ / "invoke")]

    done = run([*invoke, "lock", "--target", "cuda13", "--installer", "pip"], project, PATH=path)
    assert done.returncode == 0, (done.stdout, done.stderr[-3000:])
    assert ".torchenv.d/envs/cuda13.pip.lock.txt: current (" in done.stdout  # torch's lock kept
    assert "wrote .torchenv.d/envs/cuda13.project.lock.txt" in done.stdout
    locked = (project / ".torchenv.d" / "envs" / "cuda13.project.lock.txt").read_text()
    assert "\neinops==" in locked and "\ntqdm==" in locked and "\npytest==" in locked
    assert "\ntorch==" not in locked  # it is below, in the pip lock

    build = [*invoke, "build", "--target", "cuda13", "--frozen", "--base-image", STANDIN,
             "--allow-unpinned-base", *(["--ca-cert", CA] if Path(CA).exists() else [])]  # fmt: skip
    tag = "sample/cuda13:2.14.1-cu130"
    try:
        done = run(build, project, timeout=1800, PATH=path)
        assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-2000:])
        info = docker(docker_engine, "run", "--rm", "--network=none", tag, "cat",
                      "/opt/torchenv/build-info.json")  # fmt: skip
        assert '"lock": "hashes+project-lock"' in info.stdout, (
            info.stdout
        )  # from the layer cache or not
        assert '"package": "sample==0.1.0"' in info.stdout, info.stdout
        assert not (project / "build").exists() and not (project / "sample.egg-info").exists()
        # the sample's own tests (they train a tiny model) pass in the image, as any UID
        done = run([docker_engine.client, "run", "--rm", "--network=none", "--user", "12345:0",
                    "--volume", f"{project}:/workspace:ro", "--env", "PYTHONDONTWRITEBYTECODE=1",
                    tag, "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                   project)  # fmt: skip
        assert done.returncode == 0 and " passed" in done.stdout, done.stdout[-3000:]
        done = run([*invoke, "verify", "--target", "cuda13"], project, PATH=path)
        assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-2000:])
        assert f"{tag} matches its lock" in done.stdout

        # the dev containers' editable install, as their postCreateCommand runs it, offline
        config = json.loads(
            (project / ".devcontainer" / "cuda13" / "devcontainer.json").read_text()
        )
        install = config["postCreateCommand"].split(" && python -m torchsmoke")[0]
        editable = tmp_path / "editable"
        shutil.copytree(project, editable, ignore=shutil.ignore_patterns(".torchenv", "reports"))
        editable.chmod(0o777)
        done = run([docker_engine.client, "run", "--rm", "--network=none",  # as the image's user
                    "--volume", f"{editable}:/workspace",
                    "--workdir", "/workspace", tag, "bash", "-c",
                    f"{install} && python -c 'import sample; print(sample.__file__)'"],
                   project)  # fmt: skip
        assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
        assert done.stdout.strip().endswith("/workspace/sample/__init__.py"), done.stdout

        # invoke test: the sample's tests in the image, as the caller; pytest's JUnit report
        done = run([*invoke, "test", "--target", "cuda13", "--", "-q", "-p", "no:cacheprovider"],
                   project, PATH=path, PYTHONDONTWRITEBYTECODE="1")  # fmt: skip
        assert done.returncode == 0 and "2 passed" in done.stdout, done.stdout[-3000:]
        report = (project / "reports" / "test-cuda13.xml").read_text()
        assert 'tests="2"' in report and 'failures="0"' in report
        assert (project / "reports" / "test-cuda13.xml").stat().st_uid == os.getuid()
        done = run([*invoke, "test", "--target", "cuda13", "--", "-k", "no_such_test"],
                   project, PATH=path)  # fmt: skip
        assert done.returncode == 5, done.stdout[-2000:]  # pytest's "no tests ran", passed on
        done = run([*invoke, "smoke", "--target", "cuda13", "--quick"], project, PATH=path)
        assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-2000:])

        # a test command the image does not have: one line that says what to do
        matrix_file.write_text(matrix_file.read_text().replace(
            'test_command = "pytest"', 'test_command = "nosuchtool --all"'))  # fmt: skip
        done = run([*invoke, "test", "--target", "cuda13"], project, PATH=path)
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert errors == [
            "error: the test command 'nosuchtool' is not in sample/cuda13:2.14.1-cu130 (exit 127): "
            "add it to the project's dependencies (e.g. pytest in an extra that [project] extras "
            "names), then invoke lock and invoke build --target cuda13"
        ], done.stderr

        # A dependency that excludes the target's torch: one line at lock, nothing written.
        before = sorted(
            (p.name, p.read_bytes()) for p in (project / ".torchenv.d" / "envs").iterdir()
        )
        pyproject = project / "pyproject.toml"
        pyproject.write_text(
            pyproject.read_text().replace('"pytest>=8"', '"pytest>=8", "torch==2.4.0"')
        )
        done = run([*invoke, "lock", "--target", "cuda13"], project, PATH=path)
        errors = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 1 and len(errors) == 1 and "Traceback" not in done.stderr
        assert (
            "sample[test] requires torch==2.4.0, but target cuda13 pins torch 2.14.1" in errors[0]
        )
        assert (
            sorted((p.name, p.read_bytes()) for p in (project / ".torchenv.d" / "envs").iterdir())
            == before
        )
    finally:
        docker(docker_engine, "image", "rm", "--force", tag)

"""Every command in README.md's shell blocks is run here (with --dry-run where it would build),
so the README cannot go stale. A command no handler knows fails the test: add a handler."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

from tests.support import REPO as ROOT

README = (ROOT / "README.md").read_text()
_QUICKSTART = importlib.util.spec_from_file_location("quickstart", ROOT / ".ci" / "quickstart.py")
assert _QUICKSTART is not None and _QUICKSTART.loader is not None
_module = importlib.util.module_from_spec(_QUICKSTART)
_QUICKSTART.loader.exec_module(_module)
quickstart = _module.quickstart
BIN = Path(sys.executable).parent


def commands() -> list[str]:
    out = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for raw in block.splitlines():
            line = raw.split("#", 1)[0].strip()
            if line:
                out.extend(part.strip() for part in line.split("&&"))
    return out


def run(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}, check=False)  # fmt: skip


# Tasks that run as written (they build nothing); tasks that need a registry or remote index.
AS_IS_TASKS = ("matrix", "doctor", "verify", "k8s")
NETWORK_TASKS = ("refresh-digest",)


def check(command: str, request: pytest.FixtureRequest) -> None:
    argv = shlex.split(command)
    head = argv[0]
    if head == "invoke" and argv[1] in NETWORK_TASKS:
        # These reach a registry or an index our machines cannot: their refusal must be one line.
        done = run([str(BIN / "invoke"), *argv[1:]])
        assert done.returncode == 0 or (
            "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
        ), (command, done.stderr)
    elif head == "invoke" and argv[1] in AS_IS_TASKS:
        if argv[1] == "verify":
            request.getfixturevalue("docker_engine")
        done = run([str(BIN / "invoke"), *argv[1:]])
        if argv[1] == "verify" and "is not built" in done.stderr + done.stdout:
            pytest.skip(
                "the cuda13 image is not built yet (tests/scenarios/test_image.py builds it)"
            )
        assert done.returncode == 0 or argv[1] == "doctor", (command, done.stdout, done.stderr)
        assert done.stdout.strip(), command
    elif head == "invoke":
        if argv[1] == "clean":  # its dry run lists what the engine holds
            request.getfixturevalue("docker_engine")
        extra = [] if "--dry-run" in argv else ["--dry-run"]
        done = run([str(BIN / "invoke"), *argv[1:], *extra])
        assert done.returncode == 0, (command, done.stderr)
        assert done.stdout.strip(), command
    elif argv[:3] == ["python", "-m", "torchsmoke"]:
        done = run([sys.executable, *argv[1:]])
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    elif head == "nox":
        listing = run([str(BIN / "nox"), "-l"]).stdout
        args = argv[: argv.index("--")] if "--" in argv else argv
        sessions = list(args[args.index("-s") + 1 :]) if "-s" in args else []
        for session in sessions:
            assert f" {session} " in listing or f" {session}" in listing, (session, listing)
        assert "image(cuda13)" in listing
    elif head == "devcontainer":
        config = argv[argv.index("--config") + 1]
        assert (ROOT / config).exists()  # `devcontainer up` itself: test_devcontainer_cli.py
    elif argv[:3] == ["python", "-m", "build"] or (
        argv[:2] == ["pip", "install"] and argv[2:3] and argv[2].startswith(("torchenv", "dist/"))
    ):
        check_kit_install(argv)
    elif head == "torchenv":
        tmp = request.getfixturevalue("tmp_path")
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        done = subprocess.run(
            [sys.executable, "-m", "torchenv.cli", *argv[1:]], cwd=tmp, capture_output=True,
            text=True, timeout=120, env=env, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (command, done.stderr)
        assert (tmp / "targets.toml").is_file() and (tmp / "tasks.py").is_file()
    elif head == "pytest" or command.startswith(
        ("python3 -m venv .venv", ". .venv/bin/activate", "pip install")
    ):
        # the quick start's set-up and test commands: .ci/run runs them as written, and
        # test_quickstart_commands_work_in_a_fresh_clone below runs them in a fresh clone
        assert command in " && ".join(quickstart(README)), command
    elif head in ("docker", "apptainer", "srun"):
        check_container_command(argv)
    elif command.startswith("npm install -g @devcontainers/cli"):
        assert "@devcontainers/cli" in (ROOT / ".ci" / "run").read_text()
    else:
        pytest.fail(f"README command without a test handler: {command}")


def kit_version() -> str:
    return re.search(
        r'(?m)^__version__ = "([^"]+)"$', (ROOT / "src" / "torchbuild" / "__init__.py").read_text()
    )[1]


def check_kit_install(argv: list[str]) -> None:
    """ "Installing the kit": each way names this project at its one version. The kit from its
    wheel, for real, is test_your_project.py; the release's build is test_release.py."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["name"] == "torchenv" and "torchenv" in meta["scripts"]
    version = kit_version()
    if argv[:3] == ["python", "-m", "build"]:  # what the release workflow runs, as a user would
        release = (ROOT / ".github" / "workflows" / "release.yml").read_text()
        assert "run: python -m build " in release, release
        return
    assert argv[:2] == ["pip", "install"] and len(argv) == 3, argv
    assert argv[2] in (
        f"torchenv=={version}",
        f"dist/torchenv-{version}-py3-none-any.whl",
        f"torchenv @ git+https://github.com/OWNER/torchenv@v{version}",  # the release's tag
    ), argv


def check_container_command(argv: list[str]) -> None:
    """`docker run`, `apptainer build|exec`, `srun apptainer exec`: what they run is a valid
    torchsmoke command line, and each names an image, archive or SIF the README makes.
    (test_any_uid.py and test_export.py run these for real, Apptainer played by Docker.)"""
    from torchenv import matrix
    from torchenv.image import export
    from torchsmoke.cli import build_parser

    if argv[0] == "srun":
        argv = argv[argv.index("apptainer") :]
    if argv[:2] == ["apptainer", "build"]:
        source = argv[3].split(":", 1)
        assert argv[2].endswith(".sif") and source[0] in export.FORMATS, argv
        made = [export.default_out(t, "runtime", source[0]).name for t in matrix.names()]
        assert source[1] in made, (source, made)
        return
    assert argv[:2] in (["docker", "run"], ["apptainer", "exec"]), argv
    at = argv.index("torchsmoke")
    assert argv[at - 2 : at] == ["python", "-m"], argv
    image = argv[at - 3]
    images = {matrix.get(t).image(f) for t in matrix.names() for f in matrix.FLAVORS}
    assert image in images or (argv[0] == "apptainer" and image.endswith(".sif")), image
    build_parser().parse_args(argv[at + 1 :])  # exits (fails the test) on a bad option


@pytest.mark.parametrize("command", commands())
def test_readme_command(command, request):
    check(command, request)


def test_readme_starts_with_the_two_commands():
    main_job, tests = quickstart(README)
    assert main_job.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install -e")
    assert main_job.endswith("invoke build --target cuda13 && invoke smoke --target cuda13")
    assert tests.endswith("&& pytest") and "download.pytorch.org/whl/cpu torch" in tests


def test_ci_runs_exactly_the_readme_commands_and_installs_no_python_package():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 .ci/quickstart.py 1" in ci and "python3 .ci/quickstart.py 2" in ci
    assert ci.index("quickstart.py 1") < ci.index("quickstart.py 2")
    code = [line.strip() for line in ci.splitlines() if not line.strip().startswith("#")]
    assert not [line for line in code if re.search(r"\bpip\b|\buv\b|\bpytest\b", line)]
    for number, command in enumerate(quickstart(README), start=1):
        done = subprocess.run([sys.executable, str(ROOT / ".ci" / "quickstart.py"), str(number)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert done.stdout == command + "\n"


@pytest.mark.engine
@pytest.mark.slow
def test_quickstart_commands_work_in_a_fresh_clone(tmp_path, docker_engine):
    """The two commands, as .ci/run runs them, in a fresh clone with a fresh venv. The tests
    command runs one test module here (PYTEST_ADDOPTS): the full suite is what .ci/run runs."""
    clone = tmp_path / "clone"
    done = subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if str(BIN) != p)
    for line in (ROOT / ".ci" / "build.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    main_job, tests = quickstart(README)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", main_job], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=2400, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # "built", or "nothing changed: kept" where this checkout built the same image before
    assert "built torchenv/cuda13" in done.stdout or "kept torchenv/cuda13" in done.stdout
    assert "0 failed" in done.stdout  # the smoke suite's summary line
    env["PYTEST_ADDOPTS"] = "-q -p no:cacheprovider tests/torchsmoke/test_core.py"
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", tests], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=1800, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"\d+ passed", done.stdout) and " skipped" not in done.stdout

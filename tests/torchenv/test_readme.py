"""Every command in README.md's shell blocks is run here (with --dry-run where it would build),
so the README cannot go stale. A command no handler knows fails the test: add a handler."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from torchenv.matrix import ROOT

README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent


def commands() -> list[str]:
    out = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                out.extend(part.strip() for part in line.split("&&"))
    return out


def run(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}, check=False)  # fmt: skip


# Tasks that run as written (they build nothing); tasks that need a registry or remote index.
AS_IS_TASKS = ("list", "doctor", "verify", "k8s")
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
                "the cuda13 image is not built yet (tests/torchenv/test_image.py builds it)"
            )
        assert done.returncode == 0 or argv[1] == "doctor", (command, done.stdout, done.stderr)
        assert done.stdout.strip(), command
    elif head == "invoke":
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
        sessions = [a for a in args[args.index("-s") + 1 :]] if "-s" in args else []
        for session in sessions:
            assert f" {session} " in listing or f" {session}" in listing, (session, listing)
        assert "image(cuda13)" in listing
    elif head == "devcontainer":
        config = argv[argv.index("--config") + 1]
        assert (ROOT / config).exists()  # `devcontainer up` itself: test_devcontainer_cli.py
    elif head == "pytest":
        assert (ROOT / "pyproject.toml").read_text().count("[tool.pytest.ini_options]") == 1
    elif command.startswith(("python3 -m venv .venv", ". .venv/bin/activate", "pip install -e")):
        assert "python3 -m venv .venv" in (ROOT / ".ci" / "run").read_text()  # .ci/run does this
    elif command.startswith("npm install -g @devcontainers/cli"):
        assert "@devcontainers/cli" in (ROOT / ".ci" / "run").read_text()
    else:
        pytest.fail(f"README command without a test handler: {command}")


@pytest.mark.parametrize("command", commands())
def test_readme_command(command, request):
    check(command, request)


def test_readme_starts_with_the_two_commands():
    first_block = re.search(r"```bash\n(.*?)```", README, flags=re.S).group(1)
    lines = [line for line in first_block.splitlines() if line and not line.startswith("#")]
    assert lines[0].endswith("invoke build --target cuda13 && invoke smoke --target cuda13")
    assert lines[1] == "pytest"
    assert (
        lines[1] in (ROOT / ".ci" / "run").read_text().splitlines()
    )  # CI runs the README's command

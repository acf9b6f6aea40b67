"""nox sessions: `nox -l`. The image sessions come from the target matrix (targets.toml)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).parent / "src"))
from torchenv import matrix  # noqa: E402

nox.needs_version = ">=2024.3.2"
PYPROJECT = nox.project.load_toml("pyproject.toml")
# Every Python the host kit promises (pyproject's classifiers), as nox's own noxfile does.
PYTHONS = nox.project.python_versions(PYPROJECT)
# The images' Pythons: the smoke suite's tests get torch there (any build runs them on the CPU).
IMAGE_PYTHONS = {t.python for t in matrix.load().values()}
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

TARGETS = matrix.names()
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# The only index this project's CI machines reach is pip's default one, whose torch is cu130.
CI_BUILDABLE = [t for t in TARGETS if matrix.get(t).index_url is None]


def install_project(session: nox.Session) -> None:
    session.install("-e", ".[dev]")


@nox.session
def lint(session: nox.Session) -> None:
    """Lint: ruff, mypy --strict, hadolint on the Dockerfiles, generated files current."""
    install_project(session)
    # mypy checks the smoke suite against torch's own types: a CPU torch is enough.
    session.install(
        *os.environ.get("TORCHENV_TEST_TORCH", f"--index-url {CPU_INDEX} torch").split()
    )
    session.run("invoke", "lint")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite on each promised Python (engine tests skip without Docker, fail under CI)."""
    install_project(session)
    if session.python in IMAGE_PYTHONS:
        # torch for the smoke suite's own tests: a CPU build, as README's test command installs
        # it (elsewhere those tests skip and say why). TORCHENV_TEST_TORCH replaces these
        # arguments, e.g. "torch==2.13.0" where a CPU wheel is at hand.
        default = f"--index-url {CPU_INDEX} torch"
        session.install(*os.environ.get("TORCHENV_TEST_TORCH", default).split())
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session(default=False)
@nox.parametrize(
    "target",
    [nox.param(t, id=t, tags=["buildable"] if t in CI_BUILDABLE else []) for t in TARGETS],
)
def image(session: nox.Session, target: str) -> None:
    """Build a target's image, then run the smoke suite in a container (GPU checks skip without one)."""
    install_project(session)
    build_args = [a for a in session.posargs if a != "--require-gpu"]
    smoke_args = ["--require-gpu"] if "--require-gpu" in session.posargs else []
    session.run("invoke", "build", "--target", target, *build_args)
    session.run("invoke", "smoke", "--target", target, "--reports", "reports", *smoke_args)


if __name__ == "__main__":
    nox.main()

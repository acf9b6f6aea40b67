"""`invoke test`: the project's own tests in a target's image, as `invoke shell` runs a shell.

The test command is the matrix's `[project] test_command` (default `pytest`) with the arguments
given after `--`. It runs in the target's image with the workspace mounted at /workspace, as the
host user (files it writes stay theirs), with GPUs requested as `invoke smoke` does, and with the
working tree's code ahead of the installed package on the path (`src/` when the project has one,
else its root): the tests test the code as it is now, in the image's environment. The command's
exit status is the task's.

A JUnit report lands in `reports/test-<target>.xml`: pytest writes it (`--junitxml`, added when
the command is pytest); for any other command torchenv writes one test case holding the command,
its duration and its exit status.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from torchenv.errors import UserError
from torchenv.files import write_atomic
from torchenv.matrix import Project, Target
from torchenv.run import shell
from torchenv.runner import Runner, subprocess_runner

REPORTS_INSIDE = "/torchenv-reports"
NOT_IN_IMAGE = 127  # the exit status of a command the container cannot find (or a shell's)


@dataclass(frozen=True)
class TestRequest:
    target: Target
    project: Project
    args: tuple[str, ...] = ()  # after `--`
    flavor: str = "runtime"
    gpu: bool = True
    reports: Path | None = Path("reports")
    image: str | None = None

    def report(self) -> Path | None:
        return None if self.reports is None else Path(self.reports) / f"test-{self.target.name}.xml"


def is_pytest(argv: Sequence[str]) -> bool:
    """Whether a command line runs pytest (so that it takes --junitxml)."""
    if not argv:
        return False
    if Path(argv[0]).name in ("pytest", "py.test"):
        return True
    return Path(argv[0]).name.startswith("python") and list(argv[1:3]) == ["-m", "pytest"]


def command(req: TestRequest) -> list[str]:
    """The test command as it runs in the container; UserError when it cannot be split."""
    try:
        argv = shlex.split(req.project.test_command)
    except ValueError as exc:
        raise UserError(f"targets.toml: [project] test_command cannot be split ({exc})") from None
    argv += req.args
    if is_pytest(argv) and req.reports is not None:
        argv.append(f"--junitxml={REPORTS_INSIDE}/{req.report().name}")  # type: ignore[union-attr]
    return argv


def import_root(root: Path) -> str:
    """Where the working tree's code is imported from inside the container."""
    return "/workspace/src" if (Path(root) / "src").is_dir() else "/workspace"


def shell_request(req: TestRequest) -> shell.ShellRequest:
    volumes = () if req.reports is None else ((Path(req.reports), REPORTS_INSIDE),)
    return shell.ShellRequest(
        target=req.target, flavor=req.flavor, gpu=req.gpu, workspace=req.target.root,
        command=tuple(command(req)), env=(("PYTHONPATH", import_root(req.target.root)),),
        volumes=volumes, role="test", image_name=req.image,
    )  # fmt: skip


def junit(name: str, argv: Sequence[str], code: int, seconds: float) -> str:
    """One test case for a command that writes no JUnit report itself."""
    failure = "" if code == 0 else f'<failure message="exit {code}"/>'
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<testsuites><testsuite name={quoteattr(name)} tests="1" failures="{int(code != 0)}" '
        f'errors="0" time="{seconds:.3f}"><testcase classname="torchenv.test" '
        f'name={quoteattr(shlex.join(argv))} time="{seconds:.3f}">{failure}</testcase>'
        "</testsuite></testsuites>\n"
    )


def run(
    req: TestRequest,
    dry_run: bool = False,
    runner: Runner = subprocess_runner,
    out: Callable[[str], object] = print,
) -> int:
    """Run the project's tests in the image; returns the command's exit status."""
    sreq = shell_request(req)
    if dry_run:
        out(shell.dry_run_line(sreq, runner, out))
        return 0
    if req.reports is not None:
        from torchenv.run.smoke import check_reports

        check_reports(Path(req.reports))
        Path(req.reports).mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    code = shell.launch(sreq, runner, out)
    report = req.report()
    if report is not None and not is_pytest(sreq.command):
        name = f"torchenv test {req.target.name}"
        write_atomic(report, junit(name, sreq.command, code, time.monotonic() - start))
    if code == NOT_IN_IMAGE:
        raise UserError(
            f"the test command {sreq.command[0]!r} is not in {sreq.image} (exit 127): add it to "
            "the project's dependencies (e.g. pytest in an extra that [project] extras names), "
            f"then invoke lock and invoke build --target {req.target.name}"
        )
    return code

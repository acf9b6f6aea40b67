"""conda-lock for the conda installer's lock: `conda-lock lock --kind lock -p linux-64 -f
envs/<target>.yml --lockfile ...`, and for CUDA targets `CONDA_OVERRIDE_CUDA=<cuda>` plus
`--with-cuda <cuda>` (locks are made on machines without a GPU).
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from pathlib import Path

from torchenv.errors import UserError
from torchenv.files import no_links
from torchenv.hints import CONDA_REACH, last_error, unreachable, unreachable_reason
from torchenv.lock.lockfile import (
    CONDA_PLATFORM,
    RESOLVE_TIMEOUT,
    parse_conda_lock,
    render_header,
    write_lock,
)
from torchenv.matrix import Target
from torchenv.runner import NOT_FOUND, Runner, subprocess_runner

CONDA_LOCK_MISSING = (
    "conda-lock is not installed: pip install conda-lock (the conda lock also needs the "
    "conda-forge channel reachable)"
)


def conda_lock_executable() -> str | None:
    beside = Path(sys.executable).with_name("conda-lock")
    return str(beside) if beside.exists() else shutil.which("conda-lock")


def conda_lock_command(target: Target, lockfile: Path) -> tuple[list[str], dict[str, str]]:
    """The conda-lock command for a target and the environment it needs."""
    exe = conda_lock_executable() or "conda-lock"
    argv = [
        exe,
        "lock",
        "--kind",
        "lock",
        "-p",
        CONDA_PLATFORM,
        "-f",
        str(target.env_file),
        "--lockfile",
        str(lockfile),
    ]
    env = {}
    if target.cuda:
        # Solve CUDA builds on a machine without a GPU.
        argv += ["--with-cuda", target.cuda]
        env["CONDA_OVERRIDE_CUDA"] = target.cuda
    else:
        argv.append("--without-cuda")
    return argv, env


def lock_conda(target: Target, runner: Runner = subprocess_runner) -> str:
    """Run conda-lock and write envs/<target>.conda-lock.yml; a line saying what was done."""
    env = target.read_env()
    final = target.conda_lock
    partial = no_links(
        target.root,
        final.with_name(f".{target.name}.conda-lock.partial.yml").relative_to(target.root),
    )
    argv, env_vars = conda_lock_command(target, partial)
    if conda_lock_executable() is None:
        raise UserError(CONDA_LOCK_MISSING)
    partial.unlink(missing_ok=True)
    try:
        result = runner(argv, timeout=RESOLVE_TIMEOUT, env=env_vars)
        if not result.ok:
            reason = unreachable_reason(result.stderr + "\n" + result.stdout)
            if reason:
                raise unreachable("the conda-forge channel (conda-lock)", reason, CONDA_REACH)
            if result.returncode == NOT_FOUND:
                raise UserError(CONDA_LOCK_MISSING)
            raise UserError(f"conda-lock failed: {last_error(result)}")
        if not partial.exists():
            raise UserError("conda-lock succeeded but wrote no lock file")
        header = render_header(target, "conda", env, dt.date.today().isoformat(), CONDA_PLATFORM)
        text = header + partial.read_text()
    finally:
        partial.unlink(missing_ok=True)
    lock = parse_conda_lock(text, final, target.name)
    return write_lock(final, text, len(lock.packages), target.root)

"""Drift: does a target's lock still say what its env file asks for? (`invoke lock --check`)

A lock is in drift when the env-sha256 its header recorded differs from the env file's current
one (the env file changed after locking; file times are useless for this, git does not keep them)
or when its pins or Python disagree with the env file's. `check_all` lists every such problem.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from torchbuild.envfile import EnvFile
from torchenv import matrix
from torchenv.errors import UserError
from torchenv.lock import overlays
from torchenv.lock.lockfile import (
    Lock,
    env_fingerprint,
    env_pins,
    pin_matches,
    read_lock,
    regenerate_hint,
)
from torchenv.matrix import Target, rel


def drift(lock: Lock, env: EnvFile, target_name: str) -> list[str]:
    """Every way `lock` disagrees with the parsed env file `env`; [] when it matches."""
    label = rel(lock.path)
    env_label = lock.header.get("env-file", "the env file")
    fix = regenerate_hint(target_name)
    problems = []
    recorded, current = lock.env_sha256, env_fingerprint(env)
    if recorded is None:
        problems.append(
            f"{label}: no env-sha256 in its header, cannot tell what it was made from; {fix}"
        )
    elif recorded != current:
        problems.append(
            f"{label}: made from other pins than {env_label} has now (env-sha256 "
            f"{recorded[:12]}... was locked, the env file is {current[:12]}...): the lock is "
            f"older than its env file; {fix}"
        )
    if lock.header.get("python") not in (None, env.python):
        problems.append(
            f"{label}: locked for Python {lock.header['python']}, {env_label} "
            f"wants {env.python}; {fix}"
        )
    pip_packages = {k: p for k, p in lock.packages.items() if p.manager == "pip"}
    for name, version in env_pins(env).items():
        locked = pip_packages.get(name)
        if locked is None:
            problems.append(
                f"{label}: {env_label} pins {name}=={version}, the lock lacks {name}; {fix}"
            )
        elif not pin_matches(version, locked.version):
            problems.append(
                f"{label}: {env_label} pins {name}=={version}, the lock has "
                f"{name}=={locked.version}; {fix}"
            )
    conda_python = lock.packages.get("conda:python")
    if conda_python and not (conda_python.version + ".").startswith(env.python + "."):
        problems.append(
            f"{label}: {env_label} wants python={env.python}, the lock has "
            f"python {conda_python.version}; {fix}"
        )
    return problems


def check_target(target: Target, only: Path | None = None) -> list[str]:
    """Drift between a target's env file and each of its locks that exists (or the lock `only`);
    [] when in step.

    A missing lock is not a problem here (the build then locks first: torchenv.lock.gate). The
    overlays (the project's lock, the dev lock) are checked against what they are made from
    (torchenv.lock.overlays.drift).
    """
    candidates = [only] if only is not None else [target.pip_lock, target.conda_lock]
    layered = tuple(overlays.lock_paths(target).values())
    problems = _check_env_locks(target, [p for p in candidates if p.exists() and p not in layered])
    if only is None or only in layered:
        problems += [p for p in overlays.drift(target) if only is None or p.startswith(rel(only))]
    return problems


def _check_env_locks(target: Target, locks: list[Path]) -> list[str]:
    if not locks:
        return []
    if not target.env_file.exists():
        return [
            f"{rel(p)}: its env file {rel(target.env_file)} is missing; run invoke generate"
            for p in locks
        ]
    try:
        env = target.read_env()
    except UserError as exc:
        return [str(exc)]
    problems = []
    for path in locks:
        try:
            problems += drift(read_lock(path, target.name), env, target.name)
        except UserError as exc:
            problems.append(str(exc))
    return problems


def check_all(targets: Iterable[Target | str]) -> list[str]:
    """What `invoke lock --check` reports: drift of every lock of `targets`; [] when all agree.

    The task prints each problem on its own line and fails when there is any.
    """
    problems = []
    for target in targets:
        problems += check_target(matrix.get(target) if isinstance(target, str) else target)
    return problems

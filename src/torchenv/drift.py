"""Drift: does a target's lock still say what its env file asks for? (`invoke lock --check`)

A lock is in drift when the env-sha256 its header recorded differs from the env file's current
one (the env file changed after locking; file times are useless for this, git does not keep them)
or when its pins or Python disagree with the env file's. `check_all` lists every such problem.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from torchbuild.envfile import EnvFile, EnvFileError
from torchbuild.envfile import parse as read_env  # the env file, as the build reads it
from torchenv import matrix
from torchenv.errors import UserError
from torchenv.lockfile import (
    Lock,
    dev_fingerprint,
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


def dev_drift(dev: Lock, base: Lock, target: Target) -> list[str]:
    """Every way the dev extras' lock disagrees with the dev packages and the pip lock it sits on."""
    label, fix = rel(dev.path), regenerate_hint(target.name)
    recorded = dev.header.get("dev-sha256")
    current = dev_fingerprint(target.dev_packages, base)
    if recorded is None:
        return [f"{label}: no dev-sha256 in its header, cannot tell what it was made from; {fix}"]
    if recorded != current:
        return [
            f"{label}: made from other dev packages or another {rel(base.path)} than there are "
            f"now (dev-sha256 {recorded[:12]}... was locked, now {current[:12]}...); {fix}"
        ]
    return []


def _check_dev(target: Target) -> list[str]:
    if not target.dev_packages:
        return [f"{rel(target.dev_lock)}: targets.toml names no dev_packages now: delete it"]
    if not target.pip_lock.exists():
        return [f"{rel(target.dev_lock)}: {rel(target.pip_lock)}, which it sits on, is missing; "
                f"{regenerate_hint(target.name)}"]  # fmt: skip
    try:
        base = read_lock(target.pip_lock, target.name)
    except UserError:
        return []  # the pip lock's own check says what is wrong with it; relocking makes both
    try:
        return dev_drift(read_lock(target.dev_lock, target.name), base, target)
    except UserError as exc:
        return [str(exc)]


def check_target(target: Target, only: Path | None = None) -> list[str]:
    """Drift between a target's env file and each of its locks that exists (or the lock `only`);
    [] when in step.

    A missing lock is not a problem here (the build then locks first: torchenv.lockgate). The
    dev extras' lock is checked against the dev packages and the pip lock it sits on.
    """
    candidates = [only] if only is not None else [target.pip_lock, target.conda_lock]
    env_locks = [p for p in candidates if p.exists() and p != target.dev_lock]
    problems = _check_env_locks(target, env_locks)
    if (only is None or only == target.dev_lock) and target.dev_lock.exists():
        problems += _check_dev(target)
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
        env = read_env(target.env_file)
    except EnvFileError as exc:
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

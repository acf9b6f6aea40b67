"""`invoke lock`: a target's locks made, bottom up, and what `--dry-run` prints.

The pip lock (envs/<target>.pip.lock.txt) holds the torch family's pins resolved for the image's
platform (torchenv.lock.resolvers: uv by default, or pip); the overlays over it (the project's
dependencies, the dev extras) are torchenv.lock.overlays'; the conda lock is
torchenv.lock.conda_resolver's. A lock that is current is kept (`upgrade` resolves again).

Lock files are written whole or not at all (temporary file, then rename). When the index cannot
be reached the task fails with one line that says so and what could help (a mirror, a proxy, a CA
bundle), and leaves any existing lock as it was. `planned_commands` is what `--dry-run` prints.
"""

from __future__ import annotations

import datetime as dt
import shlex
import tempfile
from collections.abc import Sequence
from pathlib import Path

from torchbuild.envfile import EnvFile
from torchenv import matrix
from torchenv.credentials import index_source
from torchenv.errors import Problems, UserError
from torchenv.lock import (
    conda_resolver,
    drift,
    joint,
    overlays,
    pip_resolver,
    resolvers,
    uv_resolver,
)  # fmt: skip
from torchenv.lock.lockfile import (
    LOCK_KINDS,
    PIP_PLATFORM,
    Lock,
    LockedPackage,
    env_pins,
    lock_kind,
    packages_count,
    parse_pip_lock,
    pin_matches,
    read_lock,
    render_header,
    render_overlay_header,
    render_pip_lock,
    write_lock,
)
from torchenv.matrix import Target, rel
from torchenv.runner import Runner, subprocess_runner


def resolve_pip(
    env: EnvFile,
    runner: Runner = subprocess_runner,
    index_url: str | None = None,
    resolver: str | None = None,
) -> list[LockedPackage]:
    """Resolve the env file's pins with `resolver` (None: the default, uv) for the image's platform; every package, hashed.

    `index_url` replaces the env file's index (a mirror); the lock does not record it.
    """
    pins = env_pins(env)
    requirements = "".join(f"{n}=={v}\n" for n, v in pins.items())
    resolver = resolvers.chosen(resolver)
    packages = resolvers.report(
        env.python, index_url or env.index_url, requirements, runner, resolver=resolver
    )
    locked = {p.name: p.version for p in packages}
    for name, version in pins.items():
        if not pin_matches(version, locked.get(name, "")):
            raise UserError(
                f"{resolver} resolved {name} to {locked.get(name)}, not the pinned {version}"
            )
    return packages


def lock_pip(
    target: Target,
    runner: Runner = subprocess_runner,
    index_url: str | None = None,
    upgrade: bool = False,
    resolver: str | None = None,
) -> str:
    """Write envs/<target>.pip.lock.txt, then the overlays over it (the project's dependencies,
    the dev extras: torchenv.lock.overlays); returns a line saying what was done.

    A lock that is current (made from what its inputs say now) is kept as it is, as uv and cargo
    keep theirs: adding a dependency to the project then leaves the torch family's lock, and the
    image's layers that hold it, alone. `upgrade` resolves every lock again (newer releases of
    the unpinned dependencies). The project's own dependencies are read first: one that excludes
    the target's torch is refused in one line, and nothing is written."""
    # the gate, before anything is written: every problem of the project's at once, with what
    # the resolver says of the rest
    overlay_index = None if target.index_url else index_url
    deps, problems = overlays.read_project(target, overlay_index)
    current = (
        not upgrade and target.pip_lock.exists() and not drift.check_target(target, target.pip_lock)
    )
    try:
        if current:
            text = target.pip_lock.read_text()
        else:
            env = target.read_env()
            packages = resolve_pip(env, runner, index_url, resolver)
            header = render_header(target, "pip", env, dt.date.today().isoformat(), PIP_PLATFORM)
            text = render_pip_lock(header, packages)
        lock = parse_pip_lock(text, target.pip_lock, target.name)  # never write what it refuses
    except UserError as exc:
        raise Problems([*problems, str(exc)]) if problems else exc from None
    if problems:  # the project's every problem, with what the resolver says of the rest
        more = overlays.probe(target, deps, problems, lock, runner, overlay_index, resolver)
        raise Problems(problems + more)
    project = overlays.project_overlay(target, deps) if deps is not None and deps.items else None
    joint_lock = (
        project is not None and resolvers.chosen(resolver) == "uv"
        and not (current and overlays.is_current(target, project, [lock]))
    )  # fmt: skip
    if project is not None and joint_lock:
        said = lock_jointly(target, project, runner, overlay_index, upgrade)
        more = overlays.lock_all(target, runner, index_url, upgrade, resolver, fresh={"project"})
        return "; ".join([*said, *more])
    count = packages_count(len(lock.packages))
    done = (
        f"{rel(target.pip_lock)}: current ({count}), kept (--upgrade resolves it again)"
        if current else write_lock(target.pip_lock, text, len(lock.packages), target.root)
    )  # fmt: skip
    return "; ".join([done, *overlays.lock_all(target, runner, index_url, upgrade, resolver)])


def lock_jointly(
    target: Target,
    project: overlays.Overlay,
    runner: Runner,
    index_url: str | None,
    upgrade: bool = False,
) -> list[str]:
    """The pip lock and the project's lock from one resolve of both (torchenv.lock.joint): the
    torch family's closure below, the rest above; lines saying what was written and what of the
    torch layer moved (that layer rebuilds then)."""
    now = [
        read_lock(path, target.name, allow_empty=True)
        for path in (target.pip_lock, target.project_lock) if path.exists()
    ]  # fmt: skip
    had_pip_lock = target.pip_lock.exists()
    try:
        layers = joint.resolve(
            target, project.requirements, project.constraints, now if had_pip_lock else [],
            runner, index_url, prefer=not upgrade,
        )  # fmt: skip
    except UserError as exc:  # the file and line that ask for what failed
        raise UserError(overlays.with_origins(str(exc), project)) from None
    env = target.read_env()
    today = dt.date.today().isoformat()
    same = bool(now) and had_pip_lock and _same_packages(now[0], layers.lower)
    if same:  # the torch layer as it is: its file (the layer's cache key) is left alone
        below = now[0]
        count = packages_count(len(below.packages))
        said = [
            f"{rel(target.pip_lock)}: current ({count}), kept (the project's dependencies need no change below)"
        ]
    else:
        header = render_header(target, "pip", env, today, PIP_PLATFORM) + LOWER_LAYER
        text = render_pip_lock(header, layers.lower)
        below = parse_pip_lock(text, target.pip_lock, target.name)
        said = [write_lock(target.pip_lock, text, len(layers.lower), target.root)]
    if layers.moved and had_pip_lock:
        said.append(f"the torch layer changes ({', '.join(layers.moved)}): it rebuilds")
    header = render_overlay_header(
        target, "project", target.project_lock, [target.pip_lock], env,
        overlays.fingerprint(project.requirements, [below]), today, PIP_PLATFORM,
    ) + UPPER_LAYER  # fmt: skip
    text = render_pip_lock(header, layers.upper)
    said.append(write_lock(target.project_lock, text, len(layers.upper), target.root))
    return said


def _same_packages(lock: Lock, packages: Sequence[LockedPackage]) -> bool:
    mine = {(p.name, p.version, tuple(sorted(p.hashes))) for p in lock.packages.values()}
    return mine == {(p.name, p.version, tuple(sorted(p.hashes))) for p in packages}


LOWER_LAYER = (
    "# layer: below. The torch family and what it needs, resolved with the project's\n"
    "# dependencies (invoke lock: one resolve of both, then split).\n"
)
UPPER_LAYER = (
    "# layer: above. The project's dependencies that the torch family does not need, resolved\n"
    "# with it in one resolve.\n"
)


def lock_target(
    target: Target | str,
    runner: Runner = subprocess_runner,
    installer: str | None = None,
    index_url: str | None = None,
    upgrade: bool = False,
    resolver: str | None = None,
) -> list[str]:
    """What `invoke lock --target X [--installer pip|conda] [--upgrade] [--resolver R]` calls.

    Resolves and writes the lock of `installer` and returns one line per lock written or left as
    it was. Without `installer`: the pip lock, and the conda lock where conda-lock is installed
    (else a line says it was skipped and why). A lock that cannot be made raises UserError (one
    line) after the others were attempted, and leaves its file as it was. `index_url` is a mirror
    of the pip index for resolving. Drift checks are `torchenv.lock.drift`'s job.
    """
    t = matrix.get(target) if isinstance(target, str) else target
    chosen = (lock_kind(installer),) if installer else LOCK_KINDS
    done: list[str] = []
    failed: list[str] = []
    notes: list[str] = []  # what was read, skipped or left out of the project's declarations
    if "pip" in chosen:
        deps, _ = overlays.read_project(t, None if t.index_url else index_url)
        notes = list(deps.notes) if deps is not None else []
    for name in chosen:
        if name == "conda" and installer is None and conda_resolver.conda_lock_executable() is None:
            continue  # conda was not asked for: nothing is said of it
        try:
            made = (
                lock_pip(t, runner, index_url, upgrade, resolver)
                if name == "pip"
                else conda_resolver.lock_conda(t, runner)
            )
            done.append(made)
        except Problems as exc:
            failed += exc.lines
        except UserError as exc:
            failed.append(f"{name} lock of {t.name}: {exc}")
    if failed:
        raise Problems([*done, *failed])
    return [*notes, *done]


def planned_commands(
    target: Target,
    installer: str | None = None,
    index_url: str | None = None,
    resolver: str | None = None,
) -> list[str]:
    """What `invoke lock --target X --dry-run` prints: the resolver commands a lock would run."""
    resolver = resolvers.chosen(resolver)
    tmp = Path(tempfile.gettempdir()) / "torchenv-lock"

    def pip_line(index: str | None, constraints: bool, sdists: bool = False) -> str:
        held = tmp / "constraints.txt"
        if resolver == "uv":
            # an overlay of a target with its own index: the throwaway project (uv_resolver)
            source = "pyproject.toml" if constraints and target.index_url else "requirements.in"
            prefix, argv, env = uv_resolver.invocation(
                uv_resolver.executable() or "uv", target.python, index, tmp / source,
                tmp / "requirements.txt", held if constraints else None, shown=True,
                sdists=sdists,
            )  # fmt: skip
        else:
            prefix, env = pip_resolver.clean_pip_env()
            on_line, env = index_source(index, env, shown=True)
            argv = pip_resolver.pip_resolve_command(
                target.python, on_line, tmp / "requirements.txt", tmp / "report.json",
                tmp / "target",
            )  # fmt: skip
            if constraints:
                argv += ["--constraint", str(held)]
        overrides = [f"{k}={shlex.quote(v)}" for k, v in env.items()]
        return " ".join([*prefix, *overrides, shlex.join(argv)]).strip()

    lines = []
    kind = lock_kind(installer) if installer else None
    if kind in (None, "pip"):
        overlay_index = None if target.index_url else index_url  # they come from the default one
        wanted = overlays.overlays(target)
        if resolver == "uv" and wanted and wanted[0].kind == "project":
            # one resolve of the torch family and the project's dependencies (sdists allowed),
            # then the family alone at those versions: the layers (torchenv.lock.joint)
            joint_index = overlay_index if target.index_url else index_url
            lines.append(pip_line(joint_index, constraints=bool(target.index_url), sdists=True))
            lines.append(pip_line(joint_index, constraints=True))
            wanted = wanted[1:]
        else:
            lines.append(pip_line(index_url or target.index_url, constraints=False))
        lines += [pip_line(overlay_index, True) for _ in wanted]
    if kind in (None, "conda"):
        argv, env = conda_resolver.conda_lock_command(target, target.conda_lock)
        lines.append(" ".join([*(f"{k}={v}" for k, v in env.items()), shlex.join(argv)]))
    return lines

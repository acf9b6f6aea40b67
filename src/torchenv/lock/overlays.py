"""Locks over the pip lock: the project's dependencies, then the dev flavor's extras.

The image installs the torch family from the target's pip lock (envs/<target>.pip.lock.txt), then
each overlay in a layer of its own, with `pip install --require-hashes --no-deps`:

1. envs/<target>.project.lock.txt: the project's own dependencies (torchenv.project.deps reads
   them where the project declares them), when it declares any;
2. envs/<target>.dev.lock.txt: the dev flavor's extras (targets.toml's dev_packages).

Each overlay holds only what it adds to the locks below it: it is resolved from pip's default
index (or a mirror of it) with every version of the locks below held as a constraint, so that
installing it changes nothing below (a requirement that would move a locked package is refused in
one line). Its header's overlay-sha256 fingerprints its requirements and the versions of the locks
below, which is how `drift` tells that it is stale.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.utils import canonicalize_name

from torchenv import matrix
from torchenv.errors import Problems, UserError
from torchenv.files import no_links
from torchenv.lock import resolvers, uv_resolver
from torchenv.lock.lockfile import (
    PIP_PLATFORM,
    Lock,
    LockedPackage,
    env_pins,
    packages_count,
    parse_pip_lock,
    pin_matches,
    read_lock,
    regenerate_hint,
    render_overlay_header,
    render_pip_lock,
    write_lock,
)
from torchenv.matrix import Target, rel
from torchenv.project import deps as projectdeps
from torchenv.runner import Runner, subprocess_runner


@dataclass(frozen=True)
class Overlay:
    kind: str  # "project" or "dev"
    path: Path  # its lock file
    requirements: tuple[str, ...]  # PEP 508, as declared
    what: str  # in messages: "the project's dependencies", "the dev flavor's extras"
    fix: str  # where to change what it asks for
    constraints: tuple[str, ...] = ()  # the project's `-c` files: versions it may not leave
    origins: tuple[tuple[str, str], ...] = ()  # (name, where it is asked for), for messages


# One read per invocation and project state: the backend's metadata costs a build.
_READ: dict[tuple[object, ...], tuple[projectdeps.Dependencies | None, list[str]]] = {}


def _signature(root: Path) -> tuple[tuple[str, int, int], ...]:
    """What the project's declarations were read from, by name, mtime and size: its top-level
    files and requirements/ (a changed file reads again)."""
    found = []
    for folder in (root, root / "requirements"):
        if folder.is_dir():
            for entry in sorted(folder.iterdir()):
                if entry.is_file():
                    stat = entry.stat()
                    found.append((str(entry), stat.st_mtime_ns, stat.st_size))
    return tuple(found)


def read_project(
    target: Target, index_url: str | None = None
) -> tuple[projectdeps.Dependencies | None, list[str]]:
    """The project's dependencies and every problem with them: the reading's and the torch
    family's (a requirement the target's pins exclude)."""
    project = matrix.project(target.root)
    key = (str(target.root), target.name, project, index_url, _signature(target.root))
    if key not in _READ:
        deps, problems = projectdeps.read_all(
            target.root, project, python=target.python, uv=uv_resolver.executable(),
            index_url=index_url,
        )  # fmt: skip
        if deps is not None:
            others = matrix.load(target.root).values()
            problems = problems + projectdeps.torch_conflicts(deps, target, others)
        _READ[key] = (deps, problems)
    deps, problems = _READ[key]
    return deps, list(problems)


def project_dependencies(
    target: Target, index_url: str | None = None
) -> projectdeps.Dependencies | None:
    """The project's dependencies (the matrix's [project] table); `Problems` (each one line)
    where any is found; None when the project declares none."""
    deps, problems = read_project(target, index_url)
    if problems:
        raise Problems(problems)
    return deps


def probe(
    target: Target,
    deps: projectdeps.Dependencies | None,
    problems: Sequence[str],
    below: Lock,
    runner: Runner = subprocess_runner,
    index_url: str | None = None,
    resolver: str | None = None,
) -> list[str]:
    """What the resolver says of the project's requirements that have no problem yet (over the
    pip lock `below`), so that one run names every problem; nothing is written."""
    if deps is None:
        return []
    fine = tuple(
        d
        for d in deps.items
        if not any(p.startswith((f"{d.origin}:", f"{d.origin} ")) for p in problems)
    )
    if not fine:
        return []
    try:
        overlay = project_overlay(target, replace(deps, items=fine))
        resolve(target, overlay, [below], runner, index_url, resolver)
    except UserError as exc:
        return [" ".join(str(exc).splitlines())]
    return []


def project_overlay(target: Target, deps: projectdeps.Dependencies) -> Overlay:
    origins = tuple((d.name, d.origin) for d in deps.items)
    return Overlay(
        "project", target.project_lock, tuple(deps.requirements), "the project's dependencies",
        f"change them in {deps.source}", tuple(d.requirement for d in deps.constraints), origins,
    )  # fmt: skip


def lock_paths(target: Target) -> dict[str, Path]:
    """Every overlay lock a target can have, by kind, bottom up (whether asked for or not)."""
    return {"project": target.project_lock, "dev": target.dev_lock}


def _unasked(target: Target, wanted: Sequence[Overlay]) -> list[Path]:
    """The overlay locks that exist although nothing asks for them now."""
    asked = {o.path for o in wanted}
    return [p for p in lock_paths(target).values() if p.exists() and p not in asked]


def overlays(target: Target) -> list[Overlay]:
    """The target's overlays, bottom up: the project's (when it declares dependencies), the dev
    extras (when the matrix names any)."""
    out = []
    deps = project_dependencies(target)
    if deps is not None and deps.items:
        out.append(project_overlay(target, deps))
    if target.dev_packages:
        out.append(
            Overlay("dev", target.dev_lock, target.dev_packages, "the dev flavor's extras",
                    "change dev_packages in targets.toml")
        )  # fmt: skip
    return out


def fingerprint(requirements: Iterable[str], below: Sequence[Lock]) -> str:
    """sha256 of what an overlay is made from: its requirements and the versions below it."""
    held = {p.name: p.version for lock in below for p in lock.packages.values()}
    content = {"requirements": sorted(requirements), "below": held}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


_NOT_FOUND = (
    re.compile(
        r"Because (?P<name>[A-Za-z0-9][A-Za-z0-9._-]*) was not found in the package registry"
    ),
    re.compile(r"No matching distribution found for (?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)"),
)


def with_origins(message: str, overlay: Overlay) -> str:
    """A resolver's failure in the user's words: a package no index has is named with the file
    and line that ask for it; else the failure, led by where its packages are asked for."""
    origins = dict(overlay.origins)
    for pattern in _NOT_FOUND:
        found = pattern.search(message)
        if found and canonicalize_name(found["name"]) in origins:
            name = canonicalize_name(found["name"])
            return (
                f"{origins[name]}: {name} is on no index (the default one, or --index-url): fix "
                "its name, or publish it"
            )
    named = [o for n, o in overlay.origins if re.search(rf"\b{re.escape(n)}\b", message, re.I)]
    return f"{', '.join(dict.fromkeys(named))}: {message}" if named else message


def requirement_name(requirement: str) -> str:
    return canonicalize_name(re.split(r"[\s\[=<>!~;(@]", requirement.strip(), maxsplit=1)[0])


def resolve(
    target: Target,
    overlay: Overlay,
    below: Sequence[Lock],
    runner: Runner = subprocess_runner,
    index_url: str | None = None,
    resolver: str | None = None,
) -> list[LockedPackage]:
    """What `overlay` adds to the locks `below`, resolved from pip's default index (or
    `index_url` where it mirrors that index: a target without an index of its own) with every
    version below held as a constraint."""
    held = {p.name: p.version for lock in below for p in lock.packages.values()}
    if resolvers.chosen(resolver) == "pip" and any("git+" in r for r in overlay.requirements):
        raise UserError(
            f"{overlay.what} name a git URL at a commit, which only uv's joint resolution locks "
            "(its wheel built and hashed): lock with --resolver uv"
        )
    constraints = "".join(f"{n}=={v}\n" for n, v in sorted(held.items()))
    constraints += "".join(f"{c}\n" for c in overlay.constraints)
    requirements = "".join(f"{r}\n" for r in overlay.requirements)
    index = index_url if not target.index_url else None
    family = None
    if (
        target.index_url and resolvers.chosen(resolver) == "uv"
    ):  # torch's own index serves the family, only it
        names = env_pins(target.read_env())
        family = (index_url or target.index_url, {n: held[n] for n in names if n in held})
    try:
        packages = resolvers.report(
            target.python, index, requirements, runner, constraints, overlay.what, resolver, family
        )
    except UserError as exc:
        hint = ""
        if overlay.kind == "project" and resolvers.chosen(resolver) == "pip":
            hint = (
                " (pip resolves them over the torch layer held as it is; uv, the default, "
                "resolves them with the torch family jointly and may move a package below: "
                "--resolver uv)"
            )
        raise UserError(with_origins(str(exc), overlay) + hint) from None
    for pkg in packages:
        if pkg.name in held and not pin_matches(held[pkg.name], pkg.version):
            raise UserError(
                f"{overlay.what} need {pkg.name} {pkg.version}, but the locks below have "
                f"{held[pkg.name]}: {overlay.fix}"
            )
    missing = sorted(
        {requirement_name(r) for r in overlay.requirements} - {p.name for p in packages}
    )
    if missing:
        # an environment marker that excludes Linux leaves a requirement out, rightly
        markers = {requirement_name(r) for r in overlay.requirements if ";" in r}
        missing = [m for m in missing if m not in markers]
    if missing:
        raise UserError(
            f"{resolvers.chosen(resolver)}'s resolve of {overlay.what} lacks {', '.join(missing)}"
        )
    return [p for p in packages if p.name not in held]


def lock_all(
    target: Target,
    runner: Runner = subprocess_runner,
    index_url: str | None = None,
    upgrade: bool = False,
    resolver: str | None = None,
    fresh: frozenset[str] | set[str] = frozenset(),
) -> list[str]:
    """Resolve and write each overlay over the target's pip lock (which must exist), bottom up;
    a line for each written, kept (current: made from what it is made from now; `upgrade`
    resolves it again), left as it was, or removed (nothing asks for it now). `fresh`: kinds
    just written (by a joint resolution): taken as they are, nothing said of them again."""
    below = [parse_pip_lock(target.pip_lock.read_text(), target.pip_lock, target.name)]
    env = target.read_env()
    lines = []
    wanted = overlays(target)
    for overlay in wanted:
        kept = None if upgrade and overlay.kind not in fresh else _current(target, overlay, below)
        if kept is not None and overlay.kind in fresh:
            below.append(kept)
            continue
        if kept is not None:
            lines.append(
                f"{rel(overlay.path)}: current ({packages_count(len(kept.packages))}), kept"
            )
            below.append(kept)
            continue
        packages = resolve(target, overlay, below, runner, index_url, resolver)
        header = render_overlay_header(
            target, overlay.kind, overlay.path, [lock.path for lock in below], env,
            fingerprint(overlay.requirements, below), dt.date.today().isoformat(), PIP_PLATFORM,
        )  # fmt: skip
        text = render_pip_lock(header, packages)  # no packages: the header alone, still a record
        lock = parse_pip_lock(text, overlay.path, target.name, allow_empty=True)
        lines.append(write_lock(overlay.path, text, len(packages), target.root))
        below.append(lock)
    for path in _unasked(target, wanted):
        no_links(target.root, path.relative_to(target.root)).unlink()
        lines.append(f"removed {rel(path)} (nothing asks for it now)")
    return lines


def is_current(target: Target, overlay: Overlay, below: Sequence[Lock]) -> bool:
    """Whether the overlay's lock exists and was made from what it is made from now."""
    return _current(target, overlay, below) is not None


def _current(target: Target, overlay: Overlay, below: Sequence[Lock]) -> Lock | None:
    """The overlay's lock when it exists and was made from what it is made from now."""
    if not overlay.path.exists():
        return None
    try:
        lock = read_lock(overlay.path, target.name, allow_empty=True)
    except UserError:
        return None
    return lock if _made_from_now(lock, overlay, below) else None


def _made_from_now(lock: Lock, overlay: Overlay, below: Sequence[Lock]) -> bool:
    return lock.header.get("overlay-sha256") == fingerprint(overlay.requirements, below)


def drift(target: Target) -> list[str]:
    """Every overlay lock of the target that is stale, or there where nothing asks for it. A
    missing one is not drift: the build then locks first (torchenv.lock.gate)."""
    fix = regenerate_hint(target.name)
    try:
        wanted = overlays(target)
    except UserError as exc:
        return [f"{target.name}'s overlays cannot be checked: {exc}"]
    problems = [f"{rel(path)}: nothing asks for it now; {fix}" for path in _unasked(target, wanted)]
    if not target.pip_lock.exists():
        return problems + [
            f"{rel(o.path)}: {rel(target.pip_lock)}, which it sits on, is missing; {fix}"
            for o in wanted
            if o.path.exists()
        ]
    try:
        below = [read_lock(target.pip_lock, target.name)]
    except UserError:
        return problems  # the pip lock's own check says what is wrong with it
    for overlay in wanted:
        if not overlay.path.exists():
            continue  # missing is not stale: the build locks first
        try:
            lock = read_lock(overlay.path, target.name, allow_empty=True)
        except UserError as exc:
            problems.append(str(exc))
            continue
        if not _made_from_now(lock, overlay, below):
            recorded = lock.header.get("overlay-sha256")
            current = fingerprint(overlay.requirements, below)
            problems.append(
                f"{rel(overlay.path)}: made from other requirements or other locks below it "
                f"than there are now (overlay-sha256 {str(recorded)[:12]}... was locked, now "
                f"{current[:12]}...); {fix}"
            )
        below.append(lock)
    return problems

"""The resolvers a lock can be made with, and the one default: uv (`uv_resolver`, which comes
with the kit), else pip (`pip_resolver`). Both give the same versions for the image's platform;
uv's lock lists the sha256 of every file of each version, pip's the one file it chose.
"""

from __future__ import annotations

from collections.abc import Mapping

from torchenv.errors import UserError
from torchenv.lock import pip_resolver, uv_resolver
from torchenv.lock.lockfile import LockedPackage
from torchenv.runner import Runner

RESOLVERS = ("uv", "pip")


def default_resolver() -> str:
    """uv where the host has it (the kit depends on it), else pip."""
    return "uv" if uv_resolver.executable() else "pip"


def chosen(resolver: str | None) -> str:
    """The resolver asked for, or the default one; UserError for an unknown name."""
    name = resolver or default_resolver()
    if name not in RESOLVERS:
        raise UserError(f"unknown resolver {name!r}: choose one of {', '.join(RESOLVERS)}")
    return name


def report(
    python: str,
    index: str | None,
    requirements: str,
    runner: Runner,
    constraints: str = "",
    what: str = "the pins",
    resolver: str | None = None,
    family: tuple[str, Mapping[str, str]] | None = None,
) -> list[LockedPackage]:
    """Every package `resolver` (uv or pip; None: the default) resolves for `requirements`
    (requirements-file text) on the image's platform, hashed; `constraints` (text) holds versions
    it may not change; `family`: (index, {name: version}) of the torch family where only that
    index may serve it (uv only: pip takes one index, the default one, for an overlay)."""
    if chosen(resolver) == "uv":
        return uv_resolver.report(python, index, requirements, runner, constraints, what, family)
    return pip_resolver.pip_report(python, index, requirements, runner, constraints, what)

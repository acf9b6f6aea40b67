"""What a project declares, as the kit reads it: each requirement with where it comes from
(`Dependency`), and all of them with the sources read and the notes said (`Dependencies`)."""

from __future__ import annotations

from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


@dataclass(frozen=True)
class Dependency:
    requirement: str  # as written, e.g. "einops>=0.8"
    origin: str  # who asks for it: "sample", "sample[test]", "requirements.txt:3"

    @property
    def name(self) -> str:
        return canonicalize_name(Requirement(self.requirement).name)


@dataclass(frozen=True)
class Dependencies:
    source: str  # the files read, e.g. "pyproject.toml, requirements.txt"
    items: tuple[Dependency, ...]
    constraints: tuple[Dependency, ...] = ()  # `-c` files: versions the resolve may not leave
    checks: tuple[Dependency, ...] = ()  # conda's torch family pins: checked, not installed
    notes: tuple[str, ...] = ()  # what was read, skipped or left out, one line each

    @property
    def requirements(self) -> list[str]:
        return [d.requirement for d in self.items]

    def origin_of(self, name: str) -> str | None:
        wanted = canonicalize_name(name)
        return next((d.origin for d in self.items if d.name == wanted), None)

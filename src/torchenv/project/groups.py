"""Named lists of requirements a project keeps apart from its package's: PEP 735
`[dependency-groups]` (with `{include-group = ...}`), PDM's `[tool.pdm.dev-dependencies]` and
Poetry's `[tool.poetry.group.<name>.dependencies]` (its constraints written as PEP 508). None of
them is part of the package's metadata: they are read from pyproject.toml as they stand.

`targets.toml`'s `[project] groups` names the groups to lock with the project's dependencies
(test tools, typically), without editing the project's packaging.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from packaging.utils import canonicalize_name

from torchenv.credentials import shown
from torchenv.errors import UserError

SOURCE = "pyproject.toml"


def available(data: Mapping[str, Any]) -> dict[str, str]:
    """{normalized group name: where it is declared} of every group the pyproject holds."""
    found: dict[str, str] = {}
    for name in _table(data, ("dependency-groups",)):
        found[canonicalize_name(name)] = "[dependency-groups]"
    for name in _table(data, ("tool", "pdm", "dev-dependencies")):
        found.setdefault(canonicalize_name(name), "[tool.pdm.dev-dependencies]")
    for name in _table(data, ("tool", "poetry", "group")):
        found.setdefault(canonicalize_name(name), f"[tool.poetry.group.{name}]")
    return found


def _table(data: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    here: Any = data
    for key in keys:
        here = here.get(key) if isinstance(here, Mapping) else None
    return dict(here) if isinstance(here, Mapping) else {}


def requirements(data: Mapping[str, Any], name: str) -> list[tuple[str, str]]:
    """(requirement, origin) of the group `name` (PEP 735 first, then PDM, then Poetry);
    UserError (one line) when the pyproject has no such group or it is malformed."""
    wanted = canonicalize_name(name)
    pep735: dict[str, Any] = {
        canonicalize_name(k): v for k, v in _table(data, ("dependency-groups",)).items()
    }
    if wanted in pep735:
        return _pep735(pep735, wanted, ())
    pdm = {
        canonicalize_name(k): v
        for k, v in _table(data, ("tool", "pdm", "dev-dependencies")).items()
    }
    if wanted in pdm:
        return [
            (r, f"{SOURCE} [tool.pdm.dev-dependencies] {name}") for r in _strings(pdm[wanted], name)
        ]
    poetry = {canonicalize_name(k): v for k, v in _table(data, ("tool", "poetry", "group")).items()}
    if wanted in poetry:
        deps = poetry[wanted].get("dependencies", {}) if isinstance(poetry[wanted], Mapping) else {}
        where = f"{SOURCE} [tool.poetry.group.{name}.dependencies]"
        return [(poetry_requirement(k, v, where), where) for k, v in dict(deps).items()]
    known = ", ".join(sorted(available(data))) or "none"
    raise UserError(
        f"{SOURCE} has no dependency group {name!r} (its groups: {known}): fix [project] groups "
        "in targets.toml"
    )


def _strings(value: object, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f"{SOURCE}: group {name!r} must be a list of requirement strings")
    return list(value)


def _pep735(groups: Mapping[str, Any], name: str, seen: tuple[str, ...]) -> list[tuple[str, str]]:
    if name in seen:
        raise UserError(
            f"{SOURCE} [dependency-groups]: {' -> '.join((*seen, name))} includes itself: break "
            "the loop"
        )
    if name not in groups:
        raise UserError(
            f"{SOURCE} [dependency-groups]: include-group {name!r}: there is no such group"
        )
    items = groups[name]
    if not isinstance(items, list):
        raise UserError(f"{SOURCE} [dependency-groups] {name} must be a list")
    out: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, str):
            out.append((item, f"{SOURCE} [dependency-groups] {name}"))
        elif isinstance(item, Mapping) and set(item) == {"include-group"}:
            out += _pep735(groups, canonicalize_name(str(item["include-group"])), (*seen, name))
        else:
            raise UserError(
                f"{SOURCE} [dependency-groups] {name}: {shown(str(item))!r} is neither a "
                "requirement nor {include-group = NAME}"
            )
    return out


_CARET = re.compile(r"^\^\s*(\d+(?:\.\d+)*)(.*)$")
_TILDE = re.compile(r"^~(?!=)\s*(\d+(?:\.\d+)*)(.*)$")


def _bump(parts: list[int], at: int) -> str:
    upper = [*parts[:at], parts[at] + 1]
    return ".".join(str(p) for p in upper)


def poetry_constraint(text: str) -> str:
    """A Poetry version constraint as a PEP 440 specifier: `^1.2` is >=1.2,<2.0, `^0.3` is
    >=0.3,<0.4, `~1.2` is >=1.2,<1.3, `1.*` is ==1.*, `*` is anything, `>=1,<2` as it is,
    `a || b` is refused (PEP 440 has no "or")."""
    text = text.strip()
    if text in ("", "*"):
        return ""
    if "||" in text:
        raise UserError(f"a Poetry constraint with || ({text}) has no PEP 440 form: pick one range")
    out = []
    for part in re.split(r"\s*,\s*|\s+(?=[<>=!~^])", text):
        caret, tilde = _CARET.match(part), _TILDE.match(part)
        if caret:
            nums = [int(p) for p in caret[1].split(".")]
            first = next((i for i, p in enumerate(nums) if p != 0), len(nums) - 1)
            out.append(f">={caret[1]},<{_bump(nums, first)}")
        elif tilde:
            nums = [int(p) for p in tilde[1].split(".")]
            out.append(f">={tilde[1]},<{_bump(nums, min(1, len(nums) - 1))}")
        elif re.match(r"^\d", part):
            out.append(f"=={part}")
        else:
            out.append(part)
    return ",".join(out)


def poetry_requirement(name: str, spec: object, where: str) -> str:
    """One Poetry dependency (`pytest = "^8.0"`, `{version = ..., extras = [...]}`) as PEP 508."""
    if isinstance(spec, str):
        return f"{name}{poetry_constraint(spec)}"
    if isinstance(spec, Mapping) and "version" in spec:
        extras = spec.get("extras") or []
        bracket = f"[{','.join(str(e) for e in extras)}]" if extras else ""
        marker = f"; {spec['markers']}" if spec.get("markers") else ""
        return f"{name}{bracket}{poetry_constraint(str(spec['version']))}{marker}"
    raise UserError(
        f"{where}: {name} is a path, git or URL dependency, which no index serves: publish it, or "
        "list what it needs"
    )

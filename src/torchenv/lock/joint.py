"""Joint resolution: the project's requirements and the target's torch family resolved together,
then split into the image's two layers.

The torch family (torch, torchvision, torchaudio, torchcodec at the target's pins; the CUDA
wheels and the rest at the versions those pins need) and the project's requirements go to uv in
one resolve, everything but the family's pins free, so a project that needs `numpy<2` gets a numpy
1.x that torch accepts. The result is then split: the family's closure (what the family needs, at
the joint result's versions: a second resolve of the pins alone with every joint version held) is
the lower layer, the pip lock; everything else is the project's lock above it. The versions the
locks hold now are uv's preferences (its output file, seeded with them), so a new dependency moves
nothing below unless it must; what moves is named.

pip's resolver has no preferences and cannot resolve for another platform with sdists: with
`--resolver pip` the project's lock is resolved over the pip lock held as constraints, as before,
and a conflict with a package below says that a joint resolution needs uv.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from torchenv.lock import uv_resolver, vcs
from torchenv.lock.lockfile import Lock, LockedPackage, env_pins
from torchenv.matrix import Target
from torchenv.runner import Runner


@dataclass(frozen=True)
class Layers:
    lower: list[LockedPackage]  # the torch family's closure: the pip lock
    upper: list[LockedPackage]  # the project's: what the family does not need
    moved: list[str]  # "numpy 2.4.6 -> 1.26.4" for each package below that changed


def _preferences(locks: Sequence[Lock]) -> str:
    """The versions (and hashes) the locks hold now, as uv's output file: its preferences."""
    lines = []
    for lock in locks:
        for pkg in lock.packages.values():
            hashes = " \\\n".join(f"    --hash=sha256:{h}" for h in pkg.hashes)
            lines.append(f"{pkg.name}=={pkg.version} \\\n{hashes}\n")
    return "".join(sorted(lines))


def resolve(
    target: Target,
    requirements: Sequence[str],
    constraints: Sequence[str],
    now: Sequence[Lock],
    runner: Runner,
    index_url: str | None = None,
    prefer: bool = True,
) -> Layers:
    """The two layers for the project's `requirements` over `target`'s torch family (see the
    module's docstring); `now`: the locks as they are (the pip lock, the project's), whose
    versions uv keeps where it can unless not `prefer` (`invoke lock --upgrade`)."""
    pins = env_pins(target.read_env())
    family_text = "".join(f"{name}=={version}\n" for name, version in pins.items())
    built = [vcs.build(target, r, runner, index_url) for r in requirements if vcs.is_pinned_git(r)]
    plain = [r for r in requirements if not vcs.is_pinned_git(r)]
    wanted = "".join(f"{r}\n" for r in [*plain, *(f"{b.name}=={b.version}" for b in built)])
    links = vcs.folder(target) if built else None
    held = "".join(f"{c}\n" for c in constraints)
    family: tuple[str, Mapping[str, str]] | None = None
    if target.index_url:  # the family from the target's own index alone, the rest from the default
        family, index, joint_text = (index_url or target.index_url, pins), None, wanted
    else:
        index, joint_text = index_url, family_text + wanted
    joint = uv_resolver.report(
        target.python, index, joint_text, runner, held, "the project's dependencies with the "
        "torch family", family, preferred=_preferences(now) if prefer else "", sdists=True,
        find_links=links,
    )  # fmt: skip
    versions = "".join(f"{p.name}=={p.version}\n" for p in joint)
    closure = uv_resolver.report(
        target.python, index, "" if family else family_text, runner, versions,
        "the torch family at the joint versions", family, find_links=links,
    )  # fmt: skip
    # a git requirement's wheel is locked by its own sha256, whatever an index has of that version
    own = {b.name: b.sha256 for b in built}
    joint = [replace(p, hashes=(own[p.name],)) if p.name in own else p for p in joint]
    below = {p.name for p in closure}
    lower = [p for p in joint if p.name in below]
    upper = [p for p in joint if p.name not in below]
    before = {p.name: p.version for p in now[0].packages.values()} if now else {}
    after = {p.name: p.version for p in lower}
    moved = [
        f"{name} {before.get(name, 'absent')} -> {after.get(name, 'absent')}"
        for name in sorted(set(before) | set(after)) if before.get(name) != after.get(name)
    ]  # fmt: skip
    return Layers(lower, upper, moved)

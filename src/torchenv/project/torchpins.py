"""The lock's first gate: the project's requirements on the torch family checked against a
target's pins, with environment markers evaluated as the images see them (Linux, x86_64, the
target's CPython), before anything is resolved.
"""

from __future__ import annotations

from collections.abc import Iterable

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from torchenv.credentials import shown
from torchenv.matrix import Target
from torchenv.project.declared import Dependencies


def image_environment(python: str = "3.11") -> dict[str, str]:
    """What environment markers see in the images (Linux, x86_64, CPython `python`)."""
    return {
        "python_version": python, "python_full_version": f"{python}.0", "os_name": "posix",
        "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
        "implementation_name": "cpython", "platform_python_implementation": "CPython",
        "platform_release": "", "platform_version": "", "implementation_version": f"{python}.0",
        "extra": "",
    }  # fmt: skip


FAMILY = ("torch", "torchvision", "torchaudio")


def _applies(req: Requirement, python: str) -> bool:
    return req.marker is None or Marker(str(req.marker)).evaluate(image_environment(python))


def torch_conflicts(deps: Dependencies, target: Target, others: Iterable[Target] = ()) -> list[str]:
    """One line for each requirement on the torch family that the target's pin excludes (a
    marker that excludes the image, `; sys_platform == "win32"`, excludes the requirement)."""
    pins = {"torch": target.torch, "torchvision": target.torchvision}
    if target.torchaudio:
        pins["torchaudio"] = target.torchaudio
    lines: list[str] = []
    said: set[str] = set()  # a requirement read twice (setup.py reading requirements.txt): once
    for dep in (*deps.items, *deps.checks):
        req = Requirement(dep.requirement)
        name = canonicalize_name(req.name)
        if name not in pins or not req.specifier or not _applies(req, target.python):
            continue
        if str(req) in said:
            continue
        said.add(str(req))
        if not req.specifier.contains(Version(pins[name]), prereleases=True):
            accepting = [
                t.name for t in others
                if req.specifier.contains(Version(getattr(t, name) or "0"), prereleases=True)
            ]  # fmt: skip
            choose = (
                f"or choose a target whose {name} it accepts ({', '.join(accepting)})"
                if accepting else f"no target of targets.toml has a {name} it accepts"
            )  # fmt: skip
            lines.append(
                f"{dep.origin} requires {shown(str(req))}, but target {target.name} pins {name} "
                f"{pins[name]}: relax that requirement, {choose}; no lock was written"
            )
    return lines

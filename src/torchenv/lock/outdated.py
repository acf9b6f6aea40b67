"""`invoke matrix --outdated`: newer torch releases on each target's index that the pin rules accept.

For each target, pip (`pip index versions`, with the user's pip configuration kept out as in a
lock) lists torch, torchvision and torchaudio on the target's index (pip's default index when
the target has none), for the image's Python and platform. A newer torch is offered with the
newest torchvision (and torchaudio, and TorchCodec where the target has it) that `pins.problems`
accepts beside it; releases the rules refuse are left out, so what is listed can be pinned.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torchbuild import versions
from torchenv.errors import UserError
from torchenv.lock.lockfile import PIP_PLATFORM
from torchenv.lock.pip_resolver import clean_pip_env
from torchenv.matrix import Target, pins
from torchenv.runner import Runner, subprocess_runner

TIMEOUT = 120.0
_AVAILABLE = re.compile(r"^Available versions:\s*(.+)$", re.M)
_RELEASE = re.compile(r"^[0-9]+(?:\.[0-9]+)*$")  # final releases only: no rc, no dev


def versions_command(package: str, t: Target) -> list[str]:
    argv = [
        sys.executable, "-m", "pip", "index", "versions", package, "--only-binary=:all:",
        "--python-version", t.python, "--platform", PIP_PLATFORM, "--retries", "1",
        "--timeout", "20", "--disable-pip-version-check",
    ]  # fmt: skip
    return argv + (["--index-url", t.index_url] if t.index_url else [])


def parse_versions(text: str) -> list[str]:
    """The final releases `pip index versions` lists, newest first."""
    found = _AVAILABLE.search(text)
    listed = [v.strip() for v in found.group(1).split(",")] if found else []
    return sorted((v for v in listed if _RELEASE.match(v)), key=versions.parse, reverse=True)


@dataclass(frozen=True)
class Offer:
    target: str
    pins: dict[str, str]  # the new pins, torch first


def offers(t: Target, available: Callable[[str], list[str]]) -> list[Offer]:
    """Every newer torch with the newest companions the rules accept, newest first."""
    newer = [v for v in available("torch") if versions.parse(v) > versions.parse(t.torch)]
    family = [name for name in pins.COMPANIONS if name != "torchcodec" or t.torchcodec]
    companions = {name: available(name) for name in family} if newer else {}
    out = []
    for torch in newer:
        chosen = {"torch": torch}
        for name in family:
            for version in companions[name]:
                if not pins.companion_problems(_with(t, {**chosen, name: version}), name):
                    chosen[name] = version
                    break
        if not pins.problems(_with(t, chosen)):
            out.append(Offer(t.name, chosen))
    return out


def _why(stderr: str) -> str:
    """The line of pip's output that says why it listed nothing (a connection error, an ERROR)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for marker in ("Failed to establish", "Could not fetch", "ERROR", "connection"):
        for line in lines:
            if marker in line:
                found = re.search(r"(Failed to establish[^']*|ERROR: .*|Could not fetch.*)", line)
                return found.group(1).rstrip(" ')\"") if found else line[:200]
    return "it listed no release"


def _with(t: Target, new_pins: dict[str, str]) -> Target:
    return dataclasses.replace(t, **new_pins)  # type: ignore[arg-type]


def check(targets: Sequence[Target], runner: Runner = subprocess_runner) -> list[str]:
    """One line per target: its newer accepted pins, or that it is current."""
    prefix, env = clean_pip_env()
    lines = []
    for t in targets:
        cache: dict[str, list[str]] = {}

        def available(
            package: str, t: Target = t, cache: dict[str, list[str]] = cache
        ) -> list[str]:
            if package not in cache:
                done = runner([*prefix, *versions_command(package, t)], timeout=TIMEOUT, env=env)
                cache[package] = parse_versions(done.stdout) if done.ok else []
                if not cache[package]:
                    where = t.index_url or "pip's default index"
                    raise UserError(
                        f"cannot list {package} on {where} for target {t.name}: "
                        f"{_why(done.stderr)}; `invoke matrix --outdated` needs the index"
                    )
            return cache[package]

        found = offers(t, available)
        if not found:
            lines.append(f"{t.name}: current (torch {t.torch} is the newest its rules accept)")
            continue
        best = found[0].pins
        spelled = ", ".join(f"{k} {v}" for k, v in best.items())
        more = (
            f" (also: torch {', '.join(o.pins['torch'] for o in found[1:])})" if found[1:] else ""
        )
        lines.append(f"{t.name}: torch {t.torch} -> {spelled}{more}")
    return lines

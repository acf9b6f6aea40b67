"""uv, the default installer: its pin and what its failures mean.

uv installs the same hashed lock as pip (envs/<target>.pip.lock.txt, `uv pip install
--require-hashes --no-deps`) into the same venv. uv itself comes from PyPI, pinned by version and
sha256 in the kit's uv-requirements.txt; a build stage of its own installs it with pip
--require-hashes, and the install step bind-mounts the binary, so uv never lands in an image.
An offline build (--wheelhouse) therefore needs uv's wheel in the wheelhouse too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from torchenv.errors import UserError
from torchenv.kit import UV_REQUIREMENTS
from torchenv.matrix import rel

_REQUIREMENT = re.compile(
    r"uv==(?P<version>[0-9][0-9A-Za-z.!+-]*)(?P<hashes>(?:\s+--hash=sha256:[0-9a-f]{64})+)"
)
_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class UvPin:
    version: str
    hashes: tuple[str, ...]

    @property
    def wheel_glob(self) -> str:
        return f"uv-{self.version}-*.whl"


def parse_pin(text: str, source: str) -> UvPin:
    """`uv==VERSION` with one or more `--hash=sha256:` (continuation lines allowed)."""
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")
    ]
    body = " ".join(ln.removesuffix("\\").strip() for ln in lines)
    match = _REQUIREMENT.fullmatch(body)
    if not match:
        raise UserError(
            f"{source}: expected one requirement `uv==VERSION` with `--hash=sha256:<64 hex>` "
            f"lines and nothing else, got {body[:80]!r}"
        )
    return UvPin(match["version"], tuple(_HEX.findall(match["hashes"])))


def read_pin(path: Path = UV_REQUIREMENTS) -> UvPin:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UserError(f"{rel(path)}: cannot read it ({exc.strerror})") from None
    return parse_pin(text, rel(path))


def check_wheelhouse(wheelhouse: Path, pin: UvPin) -> None:
    """An offline uv build installs uv from the wheelhouse: refuse one that lacks its wheel."""
    if not any(Path(wheelhouse).glob(pin.wheel_glob)):
        raise UserError(
            f"--wheelhouse {wheelhouse}: no uv {pin.version} wheel ({pin.wheel_glob}), which the "
            f"uv installer needs offline: pip download --no-deps -d {wheelhouse} "
            f"uv=={pin.version}, or build with --installer pip"
        )

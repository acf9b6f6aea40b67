"""The torch family's pins in the image, for pip and uv: `pip install X` cannot swap torch.

    python -m torchbuild.constraints --out /opt/env/torchenv-constraints.txt

Writes `torch==V`, `torchvision==V` and `torchaudio==V` with the versions installed in the running
environment (local labels such as +cu118 kept). The image sets PIP_CONSTRAINT and UV_CONSTRAINT to
this file, so a later install that would replace the CUDA build with another torch fails with the
installer's own message instead. A user who means to change torch builds another image (or unsets
the variables). Standard library only: it runs inside the image build.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path

FAMILY = ("torch", "torchvision", "torchaudio")
PATH = "/opt/env/torchenv-constraints.txt"
HEADER = (
    "# The torch family of this image (torchenv): PIP_CONSTRAINT and UV_CONSTRAINT name this file,\n"
    "# so pip and uv keep these versions. Another torch means another image (invoke build).\n"
)


def pins(version_of: Callable[[str], str] | None = None) -> dict[str, str]:
    """{name: installed version} for the family members that are installed."""
    version_of = version_of or metadata.version
    found = {}
    for name in FAMILY:
        try:
            found[name] = version_of(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def render(found: dict[str, str]) -> str:
    return HEADER + "".join(f"{name}=={version}\n" for name, version in found.items())


def parse(lines: Iterable[str]) -> dict[str, str]:
    """{name: version} of the `name==version` lines (comments and blank lines skipped)."""
    out = {}
    for raw in lines:
        name, sep, version = raw.split("#", 1)[0].strip().partition("==")
        if sep and name.strip() and version.strip():
            out[name.strip().lower()] = version.strip()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="torchbuild.constraints", description=__doc__)
    parser.add_argument("--out", default=PATH, help=f"the file to write (default {PATH})")
    args = parser.parse_args(argv)
    found = pins()
    if "torch" not in found:
        print("torchbuild.constraints: torch is not installed in this environment", file=sys.stderr)
        return 1
    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render(found))
    tmp.replace(out)
    listed = " ".join(f"{name}=={version}" for name, version in found.items())
    print(f"torch family pinned for pip and uv in {out}: {listed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The kit's own files, shipped in the wheel: what every project's images are made from.

- `Dockerfile.in`: the one Dockerfile template (`torchenv.image.render` fills it per target).
- `install-env.sh`, `compiler-slim.cfg`, `uv-requirements.txt`: what the build mounts or copies.
- `targets.toml`: the matrix `torchenv init` starts a project with.

Nothing here is read from a source checkout: `torchenv.image.context` stages these files, with the
`torchbuild` and `torchsmoke` packages, into the project's `.torchenv/` for each build.
"""

from __future__ import annotations

from pathlib import Path

KIT = Path(__file__).resolve().parent
TEMPLATE = KIT / "Dockerfile.in"
INSTALL_SCRIPT = KIT / "install-env.sh"
COMPILER_SLIM = KIT / "compiler-slim.cfg"
UV_REQUIREMENTS = KIT / "uv-requirements.txt"
DEFAULT_MATRIX = KIT / "targets.toml"

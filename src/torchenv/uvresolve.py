"""Resolving a lock with uv (`uv pip compile`), the fast resolver; pip's is torchenv.resolve's.

uv resolves for the image's platform as given (`--python-platform x86_64-manylinux_2_28`,
`--python-version`), so, unlike pip, it needs no host of the image's kind: markers are evaluated
for the image. Its output is a requirements file with every package pinned and `--hash=sha256:`
for each of that version's files on the index; the image installs it with `--require-hashes`
(any of a package's hashes matches only that package's own files).

As with pip, the user's configuration stays out (`--no-config`, and no UV_* variable but those
that say how to reach the network), one index serves a resolve, and an index URL with a secret
goes to uv by the environment (UV_INDEX_URL), never on a command line.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from torchenv.errors import UserError
from torchenv.lockfile import SHA256_HEX, LockedPackage, normalize_name

# glibc 2.28 or newer on x86_64, as pip's platform list (torchenv.resolve.PIP_PLATFORMS) says.
PLATFORM = "x86_64-manylinux_2_28"
# uv variables that only say how to reach the network (or where its cache is); the rest go.
UV_ENV_KEEP = frozenset(
    {"UV_NATIVE_TLS", "UV_HTTP_TIMEOUT", "UV_HTTP_RETRIES", "UV_CACHE_DIR", "UV_NO_CACHE",
     "UV_INSECURE_HOST", "UV_CONCURRENT_DOWNLOADS"}
)  # fmt: skip
_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)(?P<rest>.*)$")
_HASH = re.compile(r"--hash=sha256:(\S+)")


def executable() -> str | None:
    """The host's uv: the `uv` package's binary (a dependency of the kit), else one on PATH."""
    try:
        import uv

        found = uv.find_uv_bin()
        if found and os.access(found, os.X_OK):
            return str(found)
    except (ImportError, FileNotFoundError):
        pass
    return shutil.which("uv")


def clean_env(environ: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """`env -u ...` for every UV_* variable that is not about the network, and what is set."""
    environ = os.environ if environ is None else environ
    drop = sorted(k for k in environ if k.startswith("UV_") and k not in UV_ENV_KEEP)
    prefix = ["env", *(arg for k in drop for arg in ("-u", k))] if drop else []
    return prefix, {"UV_NO_PROGRESS": "1"}


def command(
    uv: str,
    python: str,
    index_url: str | None,
    requirements: Path,
    out: Path,
    constraints: Path | None = None,
) -> list[str]:
    argv = [
        uv, "pip", "compile", "--no-config", "--quiet", "--generate-hashes", "--no-header",
        "--no-annotate", "--only-binary", ":all:", "--python-version", python,
        "--python-platform", PLATFORM, "--output-file", str(out),
    ]  # fmt: skip
    if index_url:
        argv += ["--index-url", index_url]
    if constraints is not None:
        argv += ["--constraint", str(constraints)]
    return argv + [str(requirements)]


def parse(text: str) -> list[LockedPackage]:
    """The packages of `uv pip compile --generate-hashes` output, each with its sha256s."""
    joined = re.sub(r"\\\n\s*", " ", text)
    packages = []
    for raw in joined.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _LINE.match(line)
        if not match:
            raise UserError(f"uv wrote a line torchenv cannot read as a pin: {line[:80]!r}")
        hashes = tuple(_HASH.findall(match["rest"]))
        name, version = normalize_name(match["name"]), match["version"]
        if not hashes or not all(SHA256_HEX.match(h) for h in hashes):
            raise UserError(f"the index gave no sha256 for {name} {version}: cannot lock it")
        packages.append(LockedPackage(name, version, tuple(sorted(hashes))))
    return sorted(packages, key=lambda p: p.name)

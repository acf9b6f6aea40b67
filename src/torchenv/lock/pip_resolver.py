"""pip's resolver for a lock (`--resolver pip`): `pip install --dry-run --report` for the image's
platform (Linux x86_64, manylinux 2.28, CPython <python>), the one file it chose per version hashed.

pip evaluates environment markers on the running interpreter, so it must run on a host of the
image's kind (`check_host`). It never uses what the user's pip configuration adds (find-links
folders, extra local indexes: they could put a locally built wheel into the lock): pip runs with
PIP_CONFIG_FILE set to /dev/null and without PIP_* variables other than TLS, proxy and timeout
settings (`clean_pip_env`). An index URL with a secret reaches pip by PIP_INDEX_URL, never argv.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from torchenv.credentials import index_source
from torchenv.errors import UserError
from torchenv.hints import last_error, resolve_failure
from torchenv.lock.lockfile import RESOLVE_TIMEOUT, SHA256_HEX, LockedPackage
from torchenv.runner import Runner

# The wheels' platform: glibc 2.28 or newer on x86_64 (the images' Debian bookworm has 2.36).
# pip's --platform does not imply the older manylinux tags, so they are all listed.
PIP_PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(28, 4, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)


# pip variables that only say how to reach the network; every other PIP_* is dropped.
PIP_ENV_KEEP = frozenset(
    {
        "PIP_CERT",
        "PIP_CLIENT_CERT",
        "PIP_PROXY",
        "PIP_TRUSTED_HOST",
        "PIP_DEFAULT_TIMEOUT",
        "PIP_TIMEOUT",
        "PIP_RETRIES",
        "PIP_CACHE_DIR",
        "PIP_NO_CACHE_DIR",
        "PIP_DISABLE_PIP_VERSION_CHECK",
    }
)


def clean_pip_env(environ: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """`env -u ...` prefix and overrides that keep the user's pip configuration out of a resolve.

    Only the network settings (CA bundle, proxy, timeouts) survive, so the lock cannot pick up a
    find-links folder, a local extra index or a pre-release switch from this machine.
    """
    environ = os.environ if environ is None else environ
    drop = sorted(k for k in environ if k.startswith("PIP_") and k not in PIP_ENV_KEEP)
    prefix = ["env", *(arg for k in drop for arg in ("-u", k))] if drop else []
    return prefix, {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INPUT": "1"}


def pip_resolve_command(
    python: str, index_url: str | None, requirements: Path, report: Path, target_dir: Path
) -> list[str]:
    """pip's resolver, for the image's platform, writing its JSON report; installs nothing."""
    tag = python.replace(".", "")
    argv = [
        sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
        "--progress-bar", "off", "--only-binary=:all:", "--target", str(target_dir),
        "--python-version", python, "--implementation", "cp", "--abi", f"cp{tag}",
        *(arg for p in PIP_PLATFORMS for arg in ("--platform", p)),
    ]  # fmt: skip
    if index_url:
        argv += ["--index-url", index_url]
    return argv + ["--report", str(report), "-r", str(requirements)]


def check_host(python: str) -> None:
    """pip evaluates environment markers (Linux-only CUDA wheels) on the running interpreter."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    machine = platform.machine().lower()
    if sys.platform != "linux" or machine not in ("x86_64", "amd64") or here != python:
        raise UserError(
            f"the pip lock must be resolved on Linux x86_64 with Python {python} (pip evaluates "
            f"environment markers on the running interpreter; this is {sys.platform} {machine} "
            f"Python {here}): run invoke lock in the project's venv on such a machine"
        )


def packages_from_report(report: Mapping[str, Any]) -> list[LockedPackage]:
    """Name, version and sha256 of every package in a `pip install --report` JSON."""
    packages = []
    for item in report.get("install", []):
        name = canonicalize_name(item["metadata"]["name"])
        version = item["metadata"]["version"]
        info = item.get("download_info") or {}
        url = str(info.get("url", ""))
        if not url.startswith(("https://", "http://")):
            raise UserError(
                f"pip took {name} {version} from {url.split(':', maxsplit=1)[0] or 'nowhere'}, not from an "
                "index: a lock must come from the index alone; check PIP_* and pip's config"
            )
        archive = info.get("archive_info") or {}
        sha = (archive.get("hashes") or {}).get("sha256")
        if not sha and str(archive.get("hash", "")).startswith("sha256="):
            sha = archive["hash"].split("=", 1)[1]
        if not sha or not SHA256_HEX.match(sha):
            raise UserError(f"the index gave no sha256 for {name} {version}: cannot lock it")
        packages.append(LockedPackage(name, version, (sha,)))
    return sorted(packages, key=lambda p: p.name)


def pip_report(
    python: str,
    index: str | None,
    requirements: str,
    runner: Runner,
    constraints: str = "",
    what: str = "the pins",
) -> list[LockedPackage]:
    """`report` through pip's resolver (`pip install --dry-run --report`)."""
    check_host(python)
    with tempfile.TemporaryDirectory(prefix="torchenv-lock-") as tmp:
        req_file, report = Path(tmp, "requirements.in"), Path(tmp, "report.json")
        req_file.write_text(requirements)
        prefix, env_vars = clean_pip_env()
        on_line, env_vars = index_source(index, env_vars)
        argv = prefix + pip_resolve_command(python, on_line, req_file, report, Path(tmp, "t"))
        if constraints:
            Path(tmp, "constraints.txt").write_text(constraints)
            argv += ["--constraint", str(Path(tmp, "constraints.txt"))]
        result = runner(argv, timeout=RESOLVE_TIMEOUT, env=env_vars)
        if not result.ok:
            raise resolve_failure(
                result, index, "pip", what, last_error(result), "pip's default index"
            )
        try:
            data = json.loads(report.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"pip wrote no readable resolver report ({exc})") from None
    return packages_from_report(data)

"""Making locks: resolve a target's pins through uv or pip (or conda-lock) and write the lock.

The pip lock is resolved for the image's platform (Linux x86_64, manylinux 2.28, CPython
<python>) by uv (`uv pip compile --generate-hashes`, torchenv.lock.uvresolve: the default where uv is
installed, as it is with the kit) or by pip itself (`pip install --dry-run --report`,
`--resolver pip`). Both give the same versions; uv's lock lists the sha256 of every file of each
version, pip's the one file it chose. The conda lock is made with
`conda-lock lock --kind lock -p linux-64 -f envs/<target>.yml --lockfile ...`, and for CUDA
targets `CONDA_OVERRIDE_CUDA=<cuda>` plus `--with-cuda <cuda>` (locks are made on machines
without a GPU).

Resolving never uses what the user's pip configuration adds (find-links folders, extra local
indexes: they could put a locally built wheel into the lock): pip runs with PIP_CONFIG_FILE set to
/dev/null and without PIP_* variables other than TLS, proxy and timeout settings.

Lock files are written whole or not at all (temporary file, then rename). When the index cannot
be reached the task fails with one line that says so and what could help (a mirror, a proxy, a CA
bundle), and leaves any existing lock as it was. `planned_commands` is what `--dry-run` prints.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torchbuild.envfile import EnvFile
from torchbuild.envfile import parse as read_env  # the env file, as the build reads it
from torchenv import credentials, matrix
from torchenv.errors import UserError
from torchenv.files import write_atomic
from torchenv.hints import CONDA_REACH, resolve_failure, unreachable, unreachable_reason
from torchenv.lock import drift
from torchenv.lock.lockfile import (
    CONDA_PLATFORM,
    LOCK_KINDS,
    PIP_PLATFORM,
    SHA256_HEX,
    LockedPackage,
    env_pins,
    lock_kind,
    normalize_name,
    parse_conda_lock,
    parse_pip_lock,
    pin_matches,
    render_header,
    render_pip_lock,
)
from torchenv.matrix import Target, rel
from torchenv.runner import NOT_FOUND, Result, Runner, subprocess_runner

# The wheels' platform: glibc 2.28 or newer on x86_64 (the images' Debian bookworm has 2.36).
# pip's --platform does not imply the older manylinux tags, so they are all listed.
PIP_PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(28, 4, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
RESOLVE_TIMEOUT = 1800.0
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


def write_lock(path: Path, text: str, count: int) -> str:
    """Write a lock unless only its date would change; returns what happened, in words."""

    def undated(body: str) -> str:
        return re.sub(r"(?m)^# locked-on: .*$", "", body)

    if path.exists() and undated(path.read_text()) == undated(text):
        return f"{rel(path)}: up to date ({count} packages), left as it was"
    write_atomic(path, text)
    return f"wrote {rel(path)} ({count} packages)"


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


def index_source(
    index: str | None, env: dict[str, str], shown: bool = False
) -> tuple[str | None, dict[str, str]]:
    """(the --index-url for pip's command line, the environment): an index URL with a secret
    (a user, password, query or fragment) never goes on a command line, which every local user
    can read in /proc: it goes to pip as PIP_INDEX_URL (`shown`: redacted, for --dry-run)."""
    if not index or not credentials.parse_index_url(index).has_credentials:
        return index, env
    return None, {**env, "PIP_INDEX_URL": credentials.redacted(index) if shown else index}


def last_error(result: Result) -> str:
    lines = [ln.strip() for ln in (result.stderr + "\n" + result.stdout).splitlines()]
    errors = [ln for ln in lines if ln.startswith("ERROR") or "Error" in ln]
    return (errors or [ln for ln in lines if ln] or [f"exit status {result.returncode}"])[-1]


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
        name = normalize_name(item["metadata"]["name"])
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


RESOLVERS = ("uv", "pip")


def default_resolver() -> str:
    """uv where the host has it (the kit depends on it), else pip."""
    from torchenv.lock import uvresolve

    return "uv" if uvresolve.executable() else "pip"


def report(
    python: str,
    index: str | None,
    requirements: str,
    runner: Runner,
    constraints: str = "",
    what: str = "the pins",
    resolver: str = "pip",
    family: tuple[str, Mapping[str, str]] | None = None,
) -> list[LockedPackage]:
    """Every package `resolver` (uv or pip) resolves for `requirements` (requirements-file text)
    on the image's platform, hashed; `constraints` (text) holds versions it may not change;
    `family`: (index, {name: version}) of the torch family where only that index may serve it
    (uv only: pip takes one index, the default one, for an overlay)."""
    if resolver == "uv":
        from torchenv.lock import uvresolve

        return uvresolve.report(python, index, requirements, runner, constraints, what, family)
    if resolver != "pip":
        raise UserError(f"unknown resolver {resolver!r}: choose one of {', '.join(RESOLVERS)}")
    return pip_report(python, index, requirements, runner, constraints, what)


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


def resolve_pip(
    env: EnvFile,
    runner: Runner = subprocess_runner,
    index_url: str | None = None,
    resolver: str = "pip",
) -> list[LockedPackage]:
    """Resolve the env file's pins with pip for the image's platform; every package, hashed.

    `index_url` replaces the env file's index (a mirror); the lock does not record it.
    """
    pins = env_pins(env)
    requirements = "".join(f"{n}=={v}\n" for n, v in pins.items())
    packages = report(
        env.python, index_url or env.index_url, requirements, runner, resolver=resolver
    )
    locked = {p.name: p.version for p in packages}
    for name, version in pins.items():
        if not pin_matches(version, locked.get(name, "")):
            raise UserError(
                f"{resolver} resolved {name} to {locked.get(name)}, not the pinned {version}"
            )
    return packages


def lock_pip(
    target: Target,
    runner: Runner = subprocess_runner,
    index_url: str | None = None,
    upgrade: bool = False,
    resolver: str = "pip",
) -> str:
    """Write envs/<target>.pip.lock.txt, then the overlays over it (the project's dependencies,
    the dev extras: torchenv.lock.overlays); returns a line saying what was done.

    A lock that is current (made from what its inputs say now) is kept as it is, as uv and cargo
    keep theirs: adding a dependency to the project then leaves the torch family's lock, and the
    image's layers that hold it, alone. `upgrade` resolves every lock again (newer releases of
    the unpinned dependencies). The project's own dependencies are read first: one that excludes
    the target's torch is refused in one line, and nothing is written."""
    from torchenv.lock import overlays  # which resolves through this module

    overlays.project_dependencies(target)  # the gate, before anything is resolved
    if not upgrade and target.pip_lock.exists() and not drift.check_target(target, target.pip_lock):
        count = len(
            parse_pip_lock(target.pip_lock.read_text(), target.pip_lock, target.name).packages
        )
        done = f"{rel(target.pip_lock)}: current ({count} packages), kept (--upgrade resolves it again)"
    else:
        env = read_env(target.env_file)
        packages = resolve_pip(env, runner, index_url, resolver)
        header = render_header(target, "pip", env, dt.date.today().isoformat(), PIP_PLATFORM)
        text = render_pip_lock(header, packages)
        parse_pip_lock(text, target.pip_lock, target.name)  # never write what the parser refuses
        done = write_lock(target.pip_lock, text, len(packages))
    return "; ".join([done, *overlays.lock_all(target, runner, index_url, upgrade, resolver)])


def conda_lock_executable() -> str | None:
    beside = Path(sys.executable).with_name("conda-lock")
    return str(beside) if beside.exists() else shutil.which("conda-lock")


def conda_lock_command(target: Target, lockfile: Path) -> tuple[list[str], dict[str, str]]:
    """The conda-lock command for a target and the environment it needs."""
    exe = conda_lock_executable() or "conda-lock"
    argv = [
        exe,
        "lock",
        "--kind",
        "lock",
        "-p",
        CONDA_PLATFORM,
        "-f",
        str(target.env_file),
        "--lockfile",
        str(lockfile),
    ]
    env = {}
    if target.cuda:
        # Solve CUDA builds on a machine without a GPU.
        argv += ["--with-cuda", target.cuda]
        env["CONDA_OVERRIDE_CUDA"] = target.cuda
    else:
        argv.append("--without-cuda")
    return argv, env


def lock_conda(target: Target, runner: Runner = subprocess_runner) -> str:
    """Run conda-lock and write envs/<target>.conda-lock.yml; a line saying what was done."""
    env = read_env(target.env_file)
    final = target.conda_lock
    partial = final.with_name(f".{target.name}.conda-lock.partial.yml")
    argv, env_vars = conda_lock_command(target, partial)
    if conda_lock_executable() is None:
        raise UserError(CONDA_LOCK_MISSING)
    partial.unlink(missing_ok=True)
    try:
        result = runner(argv, timeout=RESOLVE_TIMEOUT, env=env_vars)
        if not result.ok:
            reason = unreachable_reason(result.stderr + "\n" + result.stdout)
            if reason:
                raise unreachable("the conda-forge channel (conda-lock)", reason, CONDA_REACH)
            if result.returncode == NOT_FOUND:
                raise UserError(CONDA_LOCK_MISSING)
            raise UserError(f"conda-lock failed: {last_error(result)}")
        if not partial.exists():
            raise UserError("conda-lock succeeded but wrote no lock file")
        header = render_header(target, "conda", env, dt.date.today().isoformat(), CONDA_PLATFORM)
        text = header + partial.read_text()
    finally:
        partial.unlink(missing_ok=True)
    lock = parse_conda_lock(text, final, target.name)
    return write_lock(final, text, len(lock.packages))


CONDA_LOCK_MISSING = (
    "conda-lock is not installed: pip install conda-lock (the conda lock also needs the "
    "conda-forge channel reachable)"
)


def lock_target(
    target: Target | str,
    runner: Runner = subprocess_runner,
    installer: str | None = None,
    index_url: str | None = None,
    upgrade: bool = False,
    resolver: str = "pip",
) -> list[str]:
    """What `invoke lock --target X [--installer pip|conda] [--upgrade] [--resolver R]` calls.

    Resolves and writes the lock of `installer` and returns one line per lock written or left as
    it was. Without `installer`: the pip lock, and the conda lock where conda-lock is installed
    (else a line says it was skipped and why). A lock that cannot be made raises UserError (one
    line) after the others were attempted, and leaves its file as it was. `index_url` is a mirror
    of the pip index for resolving. Drift checks are `torchenv.lock.drift`'s job.
    """
    t = matrix.get(target) if isinstance(target, str) else target
    chosen = (lock_kind(installer),) if installer else LOCK_KINDS
    done, failed = [], []
    for name in chosen:
        if name == "conda" and installer is None and conda_lock_executable() is None:
            done.append(f"conda lock of {t.name} skipped: {CONDA_LOCK_MISSING}")
            continue
        try:
            made = (
                lock_pip(t, runner, index_url, upgrade, resolver)
                if name == "pip"
                else lock_conda(t, runner)
            )
            done.append(made)
        except UserError as exc:
            failed.append(f"{name} lock of {t.name}: {exc}")
    if failed:
        raise UserError("; ".join(done + failed))
    return done


def planned_commands(
    target: Target,
    installer: str | None = None,
    index_url: str | None = None,
    resolver: str = "pip",
) -> list[str]:
    """What `invoke lock --target X --dry-run` prints: the resolver commands a lock would run."""
    from torchenv.lock import overlays, uvresolve

    tmp = Path(tempfile.gettempdir()) / "torchenv-lock"

    def pip_line(index: str | None, constraints: bool) -> str:
        held = tmp / "constraints.txt"
        if resolver == "uv":
            # an overlay of a target with its own index: the throwaway project (uvresolve)
            source = "pyproject.toml" if constraints and target.index_url else "requirements.in"
            prefix, argv, env = uvresolve.invocation(
                uvresolve.executable() or "uv", target.python, index, tmp / source,
                tmp / "requirements.txt", held if constraints else None, shown=True,
            )  # fmt: skip
        else:
            prefix, env = clean_pip_env()
            on_line, env = index_source(index, env, shown=True)
            argv = pip_resolve_command(
                target.python, on_line, tmp / "requirements.txt", tmp / "report.json",
                tmp / "target",
            )  # fmt: skip
            if constraints:
                argv += ["--constraint", str(held)]
        overrides = [f"{k}={shlex.quote(v)}" for k, v in env.items()]
        return " ".join([*prefix, *overrides, shlex.join(argv)]).strip()

    lines = []
    kind = lock_kind(installer) if installer else None
    if kind in (None, "pip"):
        lines.append(pip_line(index_url or target.index_url, constraints=False))
        overlay_index = None if target.index_url else index_url  # they come from the default one
        lines += [pip_line(overlay_index, True) for _ in overlays.overlays(target)]
    if kind in (None, "conda"):
        argv, env = conda_lock_command(target, target.conda_lock)
        lines.append(" ".join([*(f"{k}={v}" for k, v in env.items()), shlex.join(argv)]))
    return lines

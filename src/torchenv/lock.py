"""Locks: every package of a target's environment with its exact version and sha256.

Two locks per target, next to its env file (envs/<target>.yml):

- envs/<target>.pip.lock.txt, for the pip installer: a hashed requirements file, installed with
  `pip install --require-hashes --no-deps -r envs/<target>.pip.lock.txt`. It is resolved by pip
  itself (`pip install --dry-run --report`) for the image's platform (Linux x86_64, manylinux
  2.28, CPython <python>), so each package carries the sha256 of the one wheel the image uses;
  the lock names no index host and no URL.
- envs/<target>.conda-lock.yml, for the conda installer: conda-lock's unified format (it locks the
  env file's `pip:` section too), made with
  `conda-lock lock --kind lock -p linux-64 -f envs/<target>.yml --lockfile ...`, and for CUDA
  targets `CONDA_OVERRIDE_CUDA=<cuda>` plus `--with-cuda <cuda>` (the lock is made on machines
  without a GPU). micromamba installs it as is.

Each lock starts with a header of `# key: value` comments recording what it was made from: the
env file, the sha256 of that env file's pin content (python, pip index, pins: `env_fingerprint`),
the date, the Python version and the platform. A lock is in *drift* when that recorded hash
differs from the env file's current one (the env file changed after locking; file times are
useless for this, git does not keep them) or when its pins disagree with the env file's:
`check_all` lists every such problem and `invoke lock --check` fails on them.

Resolving never uses what the user's pip configuration adds (find-links folders, extra local
indexes: they could put a locally built wheel into the lock): pip runs with PIP_CONFIG_FILE set to
/dev/null and without PIP_* variables other than TLS, proxy and timeout settings.

Lock files are written whole or not at all (temporary file, then rename). When the index cannot
be reached the task fails with one line that says so and what could help (a mirror, a proxy, a CA
bundle), and leaves any existing lock as it was.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from torchenv import matrix
from torchenv.envfile import EnvFile
from torchenv.envfile import parse as read_env  # the env file, as the build reads it
from torchenv.errors import UserError
from torchenv.files import write_atomic
from torchenv.matrix import ROOT, Target
from torchenv.runner import NOT_FOUND, Result, Runner, subprocess_runner

# The installers a build can use, and the two lock files: uv and pip both install the pip lock.
INSTALLERS = ("uv", "pip", "conda")
DEFAULT_INSTALLER = "uv"  # the fastest installer that CI builds and runs end to end
LOCK_KINDS = ("pip", "conda")
# The wheels' platform: glibc 2.28 or newer on x86_64 (the images' Debian bookworm has 2.36).
# pip's --platform does not imply the older manylinux tags, so they are all listed.
PIP_PLATFORM = "manylinux_2_28_x86_64"
PIP_PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(28, 4, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
CONDA_PLATFORM = "linux-64"
DEFAULT_INDEX = "default"  # the header's `index:` for pip's default index
RESOLVE_TIMEOUT = 1800.0
HEADER_KEYS = ("env-file", "env-sha256", "locked-on", "python", "platform", "index")
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

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+!_-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REQUIREMENT = re.compile(r"^(?P<name>\S+?)==(?P<version>\S+)\s+\\$")
_HASH = re.compile(r"^--hash=sha256:(?P<hex>\S*?)(?P<more>\s+\\)?$")
_HEADER = re.compile(rf"^#\s*(?P<key>{'|'.join(HEADER_KEYS)}):\s*(?P<value>\S.*?)\s*$")


class LockError(UserError):
    """A lock file that cannot be used: the message names the file and line."""


@dataclass(frozen=True)
class LockedPackage:
    name: str  # normalized (PEP 503)
    version: str
    hashes: tuple[str, ...] = ()  # sha256 hex digests
    manager: str = "pip"  # pip, or conda for the conda part of a conda lock


@dataclass(frozen=True)
class Lock:
    path: Path
    kind: str  # "pip" or "conda"
    header: Mapping[str, str] = field(default_factory=dict)
    packages: Mapping[str, LockedPackage] = field(default_factory=dict)  # by normalized name

    @property
    def env_sha256(self) -> str | None:
        return self.header.get("env-sha256")


def normalize_name(name: str) -> str:
    """PEP 503 name: lower case, runs of -_. as one dash."""
    return re.sub(r"[-_.]+", "-", name).lower()


def rel(path: Path) -> str:
    """A path as the user knows it: relative to the repository when it is inside."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _regenerate(target_name: str) -> str:
    return f"regenerate with invoke lock --target {target_name}"


def lock_kind(installer: str) -> str:
    """Which lock an installer reads: `pip` (for uv and pip) or `conda`."""
    if installer not in INSTALLERS:
        raise UserError(f"unknown installer {installer!r}: choose one of {', '.join(INSTALLERS)}")
    return "conda" if installer == "conda" else "pip"


def lock_path(target: Target, installer: str) -> Path:
    return target.pip_lock if lock_kind(installer) == "pip" else target.conda_lock


# --- the env file side ------------------------------------------------------------------------


def env_pins(env: EnvFile) -> dict[str, str]:
    """The env file's pip pins as {normalized name: version}."""
    return {normalize_name(name): version for name, version in env.pins.items()}


def env_fingerprint(env) -> str:
    """sha256 of what a lock is made from: the Python version, the pip index and the pins.

    Comments, ordering and spacing of the env file do not count; a changed pin, index or Python
    version does.
    """
    content = {"python": env.python, "index_url": env.index_url, "pins": env_pins(env)}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def pin_matches(pinned: str, locked: str) -> bool:
    """`torch==2.7.1` is satisfied by 2.7.1 and by 2.7.1+cu118 (a local label), as in pip."""
    return locked == pinned or ("+" not in pinned and locked.startswith(pinned + "+"))


# --- lock files: render and parse ---------------------------------------------------------------


def render_header(target: Target, installer: str, env, locked_on: str, platform_: str) -> str:
    lock = rel(lock_path(target, installer))
    env_file = rel(target.env_file)
    if installer == "pip":
        how = f"pip install --require-hashes --no-deps -r {lock}"
    else:
        how = f"micromamba create -p PREFIX -f {lock}"
    lines = [
        f"torchenv lock of target {target.name} for the {installer} installer; install with",
        f"  {how}",
        f"Made by `invoke lock --target {target.name}` from {env_file}: do not edit. Change",
        "targets.toml, run `invoke generate`, then lock again; `invoke lock --check` fails while",
        "the env file and this lock disagree (env-sha256 is the sha256 of the env file's pins).",
        f"env-file: {env_file}",
        f"env-sha256: {env_fingerprint(env)}",
        f"locked-on: {locked_on}",
        f"python: {env.python}",
        f"platform: {platform_}",
        f"index: {env.index_url or DEFAULT_INDEX}",
    ]
    return "".join(f"# {line}\n" for line in lines)


def render_pip_lock(header: str, packages: Iterable[LockedPackage]) -> str:
    """The requirements file: the header, then `name==version \\` and its hash lines, by name."""
    out = [header]
    for pkg in sorted(packages, key=lambda p: p.name):
        hashes = sorted(pkg.hashes)
        out.append(f"{pkg.name}=={pkg.version} \\\n")
        out.append(" \\\n".join(f"    --hash=sha256:{h}" for h in hashes) + "\n")
    return "".join(out)


def parse_header(lines: Sequence[str]) -> dict[str, str]:
    """`# key: value` lines of the leading comment block (first occurrence wins)."""
    header: dict[str, str] = {}
    for line in lines:
        if line.strip() and not line.startswith("#"):
            break
        match = _HEADER.match(line)
        if match:
            header.setdefault(match["key"], match["value"])
    return header


def parse_pip_lock(text: str, source: Path, target_name: str) -> Lock:
    """Parse and validate a hashed requirements lock; LockError names the first bad line."""
    label = rel(source)

    def fail(lineno: int, what: str) -> LockError:
        return LockError(f"{label}:{lineno}: {what}; {_regenerate(target_name)}")

    lines = text.splitlines()
    packages: dict[str, LockedPackage] = {}
    current: tuple[str, str, int] | None = None  # name, version, line of a requirement
    hashes: list[str] = []
    expect_hash = False
    for lineno, line in enumerate(lines, start=1):
        stripped = line.strip()
        if expect_hash:
            match = _HASH.match(stripped)
            if not match:
                raise fail(lineno, f"expected '--hash=sha256:<64 hex>' here, got {stripped!r}")
            if not _SHA256.match(match["hex"]):
                raise fail(lineno, f"not a sha256 (64 lower-case hex digits): {match['hex']!r}")
            hashes.append(match["hex"])
            expect_hash = bool(match["more"])
            if not expect_hash:
                assert current is not None
                name, version, _ = current
                packages[name] = LockedPackage(name, version, tuple(hashes))
            continue
        if not stripped or stripped.startswith("#"):
            continue
        match = _REQUIREMENT.match(stripped)
        if not match:
            if stripped.startswith("--hash"):
                raise fail(lineno, "a hash line without a requirement above it")
            raise fail(lineno, f"expected 'name==version \\', got {stripped!r}")
        name, version = match["name"], match["version"]
        if not _NAME.match(name):
            raise fail(lineno, f"{name!r} is not a normalized package name")
        if not _VERSION.match(version):
            raise fail(lineno, f"{version!r} is not a version")
        if name in packages:
            raise fail(lineno, f"{name} is locked twice")
        current, hashes, expect_hash = (name, version, lineno), [], True
    if expect_hash:
        assert current is not None
        raise fail(current[2], f"{current[0]}=={current[1]} has no hash line after it")
    if not packages:
        raise LockError(f"{label}: no packages in the lock; {_regenerate(target_name)}")
    return Lock(Path(source), "pip", parse_header(lines), packages)


def _package_lines(text: str) -> list[int]:
    """1-based line of each item of the top-level `package:` list (for error messages)."""
    import yaml

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "package" and isinstance(value, yaml.SequenceNode):
                return [item.start_mark.line + 1 for item in value.value]
    return []


def parse_conda_lock(text: str, source: Path, target_name: str) -> Lock:
    """Parse and validate a conda-lock unified lock (linux-64 entries)."""
    import yaml

    label = rel(source)
    try:
        data = yaml.safe_load(text)
        lines = _package_lines(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        what = getattr(exc, "problem", None) or "not valid YAML"
        raise LockError(f"{label}{where}: {what}; {_regenerate(target_name)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("package"), list):
        raise LockError(
            f"{label}: no 'package:' list (not a conda-lock file); {_regenerate(target_name)}"
        )
    packages: dict[str, LockedPackage] = {}
    for index, entry in enumerate(data["package"]):
        lineno = lines[index] if index < len(lines) else 0

        def fail(what: str, lineno: int = lineno) -> LockError:
            return LockError(f"{label}:{lineno}: {what}; {_regenerate(target_name)}")

        if not isinstance(entry, dict):
            raise fail("a package entry that is not a mapping")
        missing = [k for k in ("name", "version", "manager", "platform", "hash") if k not in entry]
        if missing:
            raise fail(f"package entry lacks {', '.join(missing)}")
        if entry["platform"] != CONDA_PLATFORM:
            continue
        sha = (entry["hash"] or {}).get("sha256") if isinstance(entry["hash"], dict) else None
        if not isinstance(sha, str) or not _SHA256.match(sha):
            raise fail(f"{entry['name']} has no sha256")
        if entry["manager"] not in LOCK_KINDS:
            raise fail(f"{entry['name']}: unknown manager {entry['manager']!r}")
        name = normalize_name(str(entry["name"]))
        key = name if entry["manager"] == "pip" else f"conda:{name}"
        packages[key] = LockedPackage(name, str(entry["version"]), (sha,), entry["manager"])
    if not packages:
        raise LockError(f"{label}: no {CONDA_PLATFORM} packages; {_regenerate(target_name)}")
    return Lock(Path(source), "conda", parse_header(text.splitlines()), packages)


def read_lock(path: Path, target_name: str) -> Lock:
    """Read and validate a lock (pip or conda by its name); LockError on anything malformed."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise LockError(f"{rel(path)}: cannot read it ({exc.strerror})") from None
    if str(path).endswith(".yml"):
        return parse_conda_lock(text, Path(path), target_name)
    return parse_pip_lock(text, Path(path), target_name)


# --- drift -----------------------------------------------------------------------------------


def drift(lock: Lock, env, target_name: str) -> list[str]:
    """Every way `lock` disagrees with the parsed env file `env`; [] when it matches."""
    label = rel(lock.path)
    env_label = lock.header.get("env-file", "the env file")
    fix = _regenerate(target_name)
    problems = []
    recorded, current = lock.env_sha256, env_fingerprint(env)
    if recorded is None:
        problems.append(
            f"{label}: no env-sha256 in its header, cannot tell what it was made from; {fix}"
        )
    elif recorded != current:
        problems.append(
            f"{label}: made from other pins than {env_label} has now (env-sha256 "
            f"{recorded[:12]}... was locked, the env file is {current[:12]}...): the lock is "
            f"older than its env file; {fix}"
        )
    if lock.header.get("python") not in (None, env.python):
        problems.append(
            f"{label}: locked for Python {lock.header['python']}, {env_label} "
            f"wants {env.python}; {fix}"
        )
    pip_packages = {k: p for k, p in lock.packages.items() if p.manager == "pip"}
    for name, version in env_pins(env).items():
        locked = pip_packages.get(name)
        if locked is None:
            problems.append(
                f"{label}: {env_label} pins {name}=={version}, the lock lacks {name}; {fix}"
            )
        elif not pin_matches(version, locked.version):
            problems.append(
                f"{label}: {env_label} pins {name}=={version}, the lock has "
                f"{name}=={locked.version}; {fix}"
            )
    conda_python = lock.packages.get("conda:python")
    if conda_python and not (conda_python.version + ".").startswith(env.python + "."):
        problems.append(
            f"{label}: {env_label} wants python={env.python}, the lock has "
            f"python {conda_python.version}; {fix}"
        )
    return problems


def check_target(target: Target) -> list[str]:
    """Drift between a target's env file and each of its locks that exists; [] when in step.

    A missing lock is not a problem (the build then installs from pins and says so loudly).
    """
    locks = [p for p in (target.pip_lock, target.conda_lock) if p.exists()]
    if not locks:
        return []
    if not target.env_file.exists():
        return [
            f"{rel(p)}: its env file {rel(target.env_file)} is missing; run invoke generate"
            for p in locks
        ]
    try:
        env = read_env(target.env_file)
    except UserError as exc:
        return [str(exc)]
    problems = []
    for path in locks:
        try:
            problems += drift(read_lock(path, target.name), env, target.name)
        except UserError as exc:
            problems.append(str(exc))
    return problems


def check_all(targets: Iterable[Target | str]) -> list[str]:
    """What `invoke lock --check` reports: drift of every lock of `targets`; [] when all agree.

    The task prints each problem on its own line and fails when there is any.
    """
    problems = []
    for target in targets:
        problems += check_target(matrix.get(target) if isinstance(target, str) else target)
    return problems


# --- making locks -----------------------------------------------------------------------------


def _write_lock(path: Path, text: str, count: int) -> str:
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


_UNREACHABLE = (
    ("CERTIFICATE_VERIFY_FAILED", "TLS verification failed"),
    ("invalid peer certificate", "TLS verification failed"),  # uv
    ("Name or service not known", "name resolution failed"),
    ("Temporary failure in name resolution", "name resolution failed"),
    ("NameResolutionError", "name resolution failed"),
    ("Could not resolve host", "name resolution failed"),
    ("ProxyError", "the proxy refused"),
    ("Connection refused", "connection refused"),
    ("Network is unreachable", "network unreachable"),
    ("Failed to establish a new connection", "no connection"),
    ("Max retries exceeded", "no connection"),
    ("timed out", "timed out"),
)


def unreachable_reason(output: str) -> str | None:
    """Why a resolver could not reach its index, from what it printed; None: it did reach it."""
    for needle, reason in _UNREACHABLE:
        if needle in output:
            return reason
    return None


PIP_REACH = "a mirror of the index (--index-url), a proxy (HTTPS_PROXY) or its CA bundle (PIP_CERT)"
CONDA_REACH = (
    "a channel mirror (channel_alias in .condarc), a proxy (HTTPS_PROXY) or its CA bundle "
    "(REQUESTS_CA_BUNDLE)"
)


def _unreachable(what: str, reason: str, reach: str) -> UserError:
    return UserError(
        f"{what} is unreachable from here ({reason}): lock where it is reachable, or reach it "
        f"through {reach}"
    )


def _last_error(result: Result) -> str:
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


def packages_from_report(report: Mapping) -> list[LockedPackage]:
    """Name, version and sha256 of every package in a `pip install --report` JSON."""
    packages = []
    for item in report.get("install", []):
        name = normalize_name(item["metadata"]["name"])
        version = item["metadata"]["version"]
        info = item.get("download_info") or {}
        url = str(info.get("url", ""))
        if not url.startswith(("https://", "http://")):
            raise UserError(
                f"pip took {name} {version} from {url.split(':')[0] or 'nowhere'}, not from an "
                "index: a lock must come from the index alone; check PIP_* and pip's config"
            )
        archive = info.get("archive_info") or {}
        sha = (archive.get("hashes") or {}).get("sha256")
        if not sha and str(archive.get("hash", "")).startswith("sha256="):
            sha = archive["hash"].split("=", 1)[1]
        if not sha or not _SHA256.match(sha):
            raise UserError(f"the index gave no sha256 for {name} {version}: cannot lock it")
        packages.append(LockedPackage(name, version, (sha,)))
    return sorted(packages, key=lambda p: p.name)


def resolve_pip(
    env, runner: Runner = subprocess_runner, index_url: str | None = None
) -> list[LockedPackage]:
    """Resolve the env file's pins with pip for the image's platform; every package, hashed.

    `index_url` replaces the env file's index (a mirror); the lock does not record it.
    """
    check_host(env.python)
    index = index_url or env.index_url
    with tempfile.TemporaryDirectory(prefix="torchenv-lock-") as tmp:
        requirements, report = Path(tmp, "requirements.in"), Path(tmp, "report.json")
        requirements.write_text("".join(f"{n}=={v}\n" for n, v in env_pins(env).items()))
        prefix, env_vars = clean_pip_env()
        argv = prefix + pip_resolve_command(env.python, index, requirements, report, Path(tmp, "t"))
        result = runner(argv, timeout=RESOLVE_TIMEOUT, env=env_vars)
        output = result.stderr + "\n" + result.stdout
        if not result.ok:
            reason = unreachable_reason(output)
            if reason:
                raise _unreachable(index or "pip's default index", reason, PIP_REACH)
            raise UserError(f"pip could not resolve the pins: {_last_error(result)}")
        try:
            data = json.loads(report.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"pip wrote no readable resolver report ({exc})") from None
    packages = packages_from_report(data)
    locked = {p.name: p.version for p in packages}
    for name, version in env_pins(env).items():
        if not pin_matches(version, locked.get(name, "")):
            raise UserError(f"pip resolved {name} to {locked.get(name)}, not the pinned {version}")
    return packages


def lock_pip(
    target: Target, runner: Runner = subprocess_runner, index_url: str | None = None
) -> str:
    """Resolve and write envs/<target>.pip.lock.txt; returns a line saying what was done."""
    env = read_env(target.env_file)
    packages = resolve_pip(env, runner, index_url)
    header = render_header(target, "pip", env, dt.date.today().isoformat(), PIP_PLATFORM)
    text = render_pip_lock(header, packages)
    parse_pip_lock(text, target.pip_lock, target.name)  # never write what the parser refuses
    return _write_lock(target.pip_lock, text, len(packages))


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
        raise UserError(
            "conda-lock is not installed: pip install conda-lock (the conda lock "
            "also needs the conda-forge channel reachable)"
        )
    partial.unlink(missing_ok=True)
    try:
        result = runner(argv, timeout=RESOLVE_TIMEOUT, env=env_vars)
        if not result.ok:
            reason = unreachable_reason(result.stderr + "\n" + result.stdout)
            if reason:
                raise _unreachable("the conda-forge channel (conda-lock)", reason, CONDA_REACH)
            if result.returncode == NOT_FOUND:
                raise UserError("conda-lock is not installed: pip install conda-lock")
            raise UserError(f"conda-lock failed: {_last_error(result)}")
        if not partial.exists():
            raise UserError("conda-lock succeeded but wrote no lock file")
        header = render_header(target, "conda", env, dt.date.today().isoformat(), CONDA_PLATFORM)
        text = header + partial.read_text()
    finally:
        partial.unlink(missing_ok=True)
    lock = parse_conda_lock(text, final, target.name)
    return _write_lock(final, text, len(lock.packages))


def lock_target(
    target: Target | str,
    check: bool = False,
    runner: Runner = subprocess_runner,
    installer: str | None = None,
    index_url: str | None = None,
) -> list[str]:
    """What `invoke lock --target X [--check] [--installer uv|pip|conda]` calls.

    check=True: writes nothing, returns the drift problems of the target's locks ([] = in step;
    the task fails when there are any). Otherwise resolves and writes the lock `installer` reads
    (uv and pip share the pip lock; default both locks: pip, then conda) and returns one line per lock written or left as it was; a
    lock that cannot be made raises UserError (one line) after the others were attempted, and
    leaves its file as it was. `index_url` is a mirror of the pip index for resolving.
    """
    t = matrix.get(target) if isinstance(target, str) else target
    if check:
        return check_target(t)
    chosen = (lock_kind(installer),) if installer else LOCK_KINDS
    done, failed = [], []
    for name in chosen:
        try:
            done.append(lock_pip(t, runner, index_url) if name == "pip" else lock_conda(t, runner))
        except UserError as exc:
            failed.append(f"{name} lock of {t.name}: {exc}")
    if failed:
        raise UserError("; ".join(done + failed))
    return done


# --- build-time helpers -----------------------------------------------------------------------

_BUILDKIT_PREFIX = re.compile(r"^#\d+ \d+(?:\.\d+)? ")
_MISMATCH_REQ = re.compile(r"^\s*(?P<req>[A-Za-z0-9][A-Za-z0-9._-]*==\S+?)(?: from \S+.*)?:\s*$")
_EXPECTED = re.compile(r"Expected sha256\s+(?P<hex>[0-9a-f]{64})")
_GOT = re.compile(r"Got\s+(?P<hex>[0-9a-f]{64})")


def explain_hash_mismatch(pip_stderr: str) -> str | None:
    """One line naming each package whose download did not match its locked sha256.

    Reads pip's "THESE PACKAGES DO NOT MATCH THE HASHES" report (also inside BuildKit's
    `#12 3.4 `-prefixed build output); None when there is no such report.
    """
    lines = [_BUILDKIT_PREFIX.sub("", line) for line in pip_stderr.splitlines()]
    start = next((i for i, ln in enumerate(lines) if "DO NOT MATCH THE HASHES" in ln), None)
    if start is None:
        return None
    found: list[list[str]] = []  # [requirement, expected, got]
    for line in lines[start + 1 :]:
        if match := _MISMATCH_REQ.match(line):
            found.append([match["req"], "", ""])
        elif found and (match := _EXPECTED.search(line)):
            found[-1][1] = found[-1][1] or match["hex"]
        elif found and (match := _GOT.search(line)):
            found[-1][2] = match["hex"]
    if not found:
        return "a downloaded package does not match its locked sha256 (see pip's output above)"
    return hash_mismatch_message(found)


def hash_mismatch_message(found: Iterable[Sequence[str]]) -> str:
    """The one line for [requirement, locked sha256, downloaded sha256] items (pip's or uv's)."""
    parts = [
        f"{req} (locked sha256 {expected[:12] or '?'}..., downloaded {got[:12] or '?'}...)"
        for req, expected, got in found
    ]
    return (
        f"hash mismatch for {', '.join(parts)}: the index serves a different file than the one "
        "locked, or the lock is damaged; check where the file comes from (mirror, proxy), then "
        "regenerate the lock with invoke lock"
    )


def is_pinned(ref: str) -> bool:
    """Whether an image reference is pinned by digest (NAME[:TAG]@sha256:<64 hex>)."""
    return re.fullmatch(r"[^@\s]+@sha256:[0-9a-f]{64}", ref) is not None


# --- base image digests -----------------------------------------------------------------------

_IMAGE_KEYS = {"base_digest": "base_image", "micromamba_digest": "micromamba_image"}


def _repository(ref: str) -> str:
    """`python` for `python:3.11-slim`, `docker.io/library/python@sha256:...`; no tag, no digest."""
    name = ref.split("@", 1)[0]
    slash = name.rfind("/")
    if ":" in name[slash + 1 :]:
        name = name[: name.rfind(":")]
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name


def resolve_digest(
    image_tag: str, runner: Runner = subprocess_runner, client: str = "docker"
) -> str:
    """The registry's current digest of a tag: buildx imagetools when present, else pull."""
    if runner([client, "buildx", "version"], timeout=30).ok:
        inspect = ["buildx", "imagetools", "inspect", image_tag, "--format", "{{json .Manifest}}"]
        result = runner([client, *inspect], timeout=300)
        if result.ok:
            try:
                digest = json.loads(result.stdout).get("digest", "")
            except (json.JSONDecodeError, AttributeError):
                digest = ""
            return _checked_digest(image_tag, digest)
    else:
        result = runner([client, "pull", image_tag], timeout=900)
        if result.ok:
            result = runner(
                [client, "image", "inspect", "--format", "{{json .RepoDigests}}", image_tag],
                timeout=60,
            )
            if result.ok:
                return _checked_digest(image_tag, _pick_repo_digest(image_tag, result.stdout))
    raise UserError(
        f"cannot resolve the digest of {image_tag}: no registry reachable "
        f"({result.first_error_line()}); refresh it where the registry is reachable, or through a "
        "registry mirror or proxy"
    )


def _pick_repo_digest(image_tag: str, stdout: str) -> str:
    try:
        digests = json.loads(stdout or "[]") or []
    except json.JSONDecodeError:
        return ""
    wanted = _repository(image_tag)
    matching = [d for d in digests if _repository(d) == wanted]
    chosen = matching or (digests if len(digests) == 1 else [])
    return chosen[0].split("@", 1)[1] if chosen and "@" in chosen[0] else ""


def _checked_digest(image_tag: str, digest: str) -> str:
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest or ""):
        raise UserError(f"the registry gave no sha256 digest for {image_tag} (got {digest!r})")
    return digest


def set_toml_value(text: str, key: str, value: str, source: str = "targets.toml") -> str:
    """`text` with the one `key = "..."` line's value replaced; comments and layout kept."""
    pattern = re.compile(rf'(?m)^(?P<lead>{re.escape(key)}\s*=\s*)"[^"\n]*"')
    matches = pattern.findall(text)
    if len(matches) != 1:
        raise UserError(f"{source}: expected one {key} line, found {len(matches)}; edit it by hand")
    return pattern.sub(lambda m: f'{m["lead"]}"{value}"', text)


def refresh_digest(
    image_tag: str | None = None,
    runner: Runner = subprocess_runner,
    *,
    key: str = "base_digest",
    matrix_file: Path = matrix.MATRIX_FILE,
    client: str = "docker",
) -> str:
    """What `invoke refresh-digest` calls: resolve a tag's digest, rewrite targets.toml's line.

    `key` is base_digest (default) or micromamba_digest; `image_tag` defaults to the matching
    base_image / micromamba_image of targets.toml (a mirror's name for the same tag gives the
    same digest). The file is rewritten in one rename; returns the digest. UserError (one line)
    when no registry is reachable: the file is then left as it was. Regenerate afterwards
    (`invoke generate`) so the Dockerfiles carry the new digest.
    """
    if key not in _IMAGE_KEYS:
        raise UserError(f"unknown key {key!r}: choose one of {', '.join(_IMAGE_KEYS)}")
    text = Path(matrix_file).read_text()
    if image_tag is None:
        image_tag = tomllib.loads(text).get("defaults", {}).get(_IMAGE_KEYS[key])
        if not image_tag:
            raise UserError(f"{matrix_file.name}: no {_IMAGE_KEYS[key]} in [defaults]")
    digest = resolve_digest(image_tag, runner, client)
    write_atomic(Path(matrix_file), set_toml_value(text, key, digest, matrix_file.name))
    matrix.load.cache_clear()
    return digest


def planned_commands(
    target: Target, installer: str | None = None, index_url: str | None = None
) -> list[str]:
    """What `invoke lock --target X --dry-run` prints: the resolver commands a lock would run."""
    import shlex

    lines = []
    kind = lock_kind(installer) if installer else None
    if kind in (None, "pip"):
        prefix, env = clean_pip_env()
        tmp = Path(tempfile.gettempdir()) / "torchenv-lock"
        argv = pip_resolve_command(
            target.python, index_url or target.index_url, tmp / "requirements.txt",
            tmp / "report.json", tmp / "target",
        )  # fmt: skip
        overrides = [f"{k}={shlex.quote(v)}" for k, v in env.items()]
        lines.append(" ".join([*prefix, *overrides, shlex.join(argv)]).strip())
    if kind in (None, "conda"):
        argv, env = conda_lock_command(target, target.conda_lock)
        lines.append(" ".join([*(f"{k}={v}" for k, v in env.items()), shlex.join(argv)]))
    return lines

"""Lock files: the format of a target's locks, rendered and parsed, and what they are made from.

Two locks per target, next to its env file (envs/<target>.yml):

- envs/<target>.pip.lock.txt, for the pip installer: a hashed requirements file, installed with
  `pip install --require-hashes --no-deps -r envs/<target>.pip.lock.txt`; each package carries the
  sha256 of the one wheel the image uses; the lock names no index host and no URL.
- envs/<target>.project.lock.txt and envs/<target>.dev.lock.txt, the overlays (torchenv.lock.overlays):
  the same format, each holding only what it adds to the locks below it.
- envs/<target>.conda-lock.yml, for the conda installer: conda-lock's unified format (it locks the
  env file's `pip:` section too); micromamba installs it as is.

Each lock starts with a header of `# key: value` comments recording what it was made from: the
env file, the sha256 of that env file's pin content (python, pip index, pins: `env_fingerprint`),
the date, the Python version and the platform. `torchenv.lock.drift` compares them with the env file;
`torchenv.lock.make` makes them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from torchbuild.envfile import EnvFile
from torchenv.errors import UserError
from torchenv.files import no_links, write_in
from torchenv.matrix import INSTALLERS, Target, rel

PIP_PLATFORM = "manylinux_2_28_x86_64"
RESOLVE_TIMEOUT = 1800.0  # seconds a resolver may take (uv, pip, conda-lock)
CONDA_PLATFORM = "linux-64"
DEFAULT_INDEX = "default"  # the header's `index:` for pip's default index
HEADER_KEYS = (
    "env-file",
    "env-sha256",
    "overlay-sha256",
    "locked-on",
    "python",
    "platform",
    "index",
)

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+!_-]*$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
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


def regenerate_hint(target_name: str) -> str:
    return f"regenerate with invoke lock --target {target_name}"


# The two lock files: uv and pip both install the pip lock, conda the conda lock.
LOCK_KINDS = ("pip", "conda")


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
    return {canonicalize_name(name): version for name, version in env.pins.items()}


def env_fingerprint(env: EnvFile) -> str:
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


def render_header(
    target: Target, installer: str, env: EnvFile, locked_on: str, platform_: str
) -> str:
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


def render_overlay_header(
    target: Target,
    kind: str,
    path: Path,
    below: Sequence[Path],
    env: EnvFile,
    fingerprint: str,
    locked_on: str,
    platform_: str,
) -> str:
    """The header of an overlay lock (torchenv.lock.overlays): what it sits on and its fingerprint."""
    what = {"project": "the project's dependencies", "dev": "the dev flavor's extras"}[kind]
    lines = [
        f"torchenv lock of {what} for target {target.name}; install with",
        f"  pip install --require-hashes --no-deps -r {rel(path)}",
        f"over {', then '.join(rel(p) for p in below)}, whose versions it was resolved with as",
        f"constraints. Made by `invoke lock --target {target.name}`: do not edit. overlay-sha256",
        "is the sha256 of its requirements and the versions of the locks below it.",
        f"env-file: {rel(target.env_file)}",
        f"overlay-sha256: {fingerprint}",
        f"locked-on: {locked_on}",
        f"python: {env.python}",
        f"platform: {platform_}",
        f"index: {DEFAULT_INDEX}",
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


def parse_pip_lock(text: str, source: Path, target_name: str, allow_empty: bool = False) -> Lock:
    """Parse and validate a hashed requirements lock; LockError names the first bad line.
    `allow_empty`: an overlay's lock may hold no package (its requirements are all below it)."""
    label = rel(source)

    def fail(lineno: int, what: str) -> LockError:
        return LockError(f"{label}:{lineno}: {what}; {regenerate_hint(target_name)}")

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
            if not SHA256_HEX.match(match["hex"]):
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
    if not packages and not allow_empty:
        raise LockError(f"{label}: no packages in the lock; {regenerate_hint(target_name)}")
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
        raise LockError(f"{label}{where}: {what}; {regenerate_hint(target_name)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("package"), list):
        raise LockError(
            f"{label}: no 'package:' list (not a conda-lock file); {regenerate_hint(target_name)}"
        )
    packages: dict[str, LockedPackage] = {}
    for index, entry in enumerate(data["package"]):
        lineno = lines[index] if index < len(lines) else 0

        def fail(what: str, lineno: int = lineno) -> LockError:
            return LockError(f"{label}:{lineno}: {what}; {regenerate_hint(target_name)}")

        if not isinstance(entry, dict):
            raise fail("a package entry that is not a mapping")
        missing = [k for k in ("name", "version", "manager", "platform", "hash") if k not in entry]
        if missing:
            raise fail(f"package entry lacks {', '.join(missing)}")
        if entry["platform"] != CONDA_PLATFORM:
            continue
        sha = (entry["hash"] or {}).get("sha256") if isinstance(entry["hash"], dict) else None
        if not isinstance(sha, str) or not SHA256_HEX.match(sha):
            raise fail(f"{entry['name']} has no sha256")
        if entry["manager"] not in LOCK_KINDS:
            raise fail(f"{entry['name']}: unknown manager {entry['manager']!r}")
        name = canonicalize_name(str(entry["name"]))
        key = name if entry["manager"] == "pip" else f"conda:{name}"
        packages[key] = LockedPackage(name, str(entry["version"]), (sha,), entry["manager"])
    if not packages:
        raise LockError(f"{label}: no {CONDA_PLATFORM} packages; {regenerate_hint(target_name)}")
    return Lock(Path(source), "conda", parse_header(text.splitlines()), packages)


def read_lock(path: Path, target_name: str, allow_empty: bool = False) -> Lock:
    """Read and validate a lock (pip or conda by its name); LockError on anything malformed."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise LockError(f"{rel(path)}: cannot read it ({exc.strerror})") from None
    if str(path).endswith(".yml"):
        return parse_conda_lock(text, Path(path), target_name)
    return parse_pip_lock(text, Path(path), target_name, allow_empty)


def packages_count(count: int) -> str:
    """A lock's size in words, as every lock line says it: "1 package", "3 packages"."""
    return f"{count} package" if count == 1 else f"{count} packages"


def write_lock(path: Path, text: str, count: int, root: Path) -> str:
    """Write a lock of the project at `root` unless only its date would change; returns what
    happened, in words. Never through a symbolic link (torchenv.files.write_in)."""

    def undated(body: str) -> str:
        return re.sub(r"(?m)^# locked-on: .*$", "", body)

    no_links(root, path.relative_to(root))
    if path.exists() and undated(path.read_text()) == undated(text):
        return f"{rel(path)}: up to date ({packages_count(count)}), left as it was"
    write_in(root, path.relative_to(root), text)
    return f"wrote {rel(path)} ({packages_count(count)})"

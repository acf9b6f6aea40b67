"""Does an image hold exactly what its lock says, now? (`invoke verify --target X [--image REF]`)

Verifying hashes the image's live filesystem (torchenv.image.livescan: the host's torchbuild.manifest
run in a locked-down container) and compares that manifest with:

1. the target's lock (and the overlays the image installed: the project's, the dev lock): every locked
   package installed at its version (missing / different version), nothing else installed
   (extra) but the packages in ALLOWED_EXTRA;
2. the manifest the build wrote, /opt/torchenv/manifest.json (when its label
   io.torchenv.manifest.sha256 and its own digests hold): distributions added, removed or at
   another version, files changed, deleted or new under a distribution, files no distribution
   owns (added, changed or deleted);
3. without a trustworthy build manifest (an image from elsewhere, or one whose manifest was
   changed): each distribution's RECORD (files changed or deleted since pip installed them), and
   every file no distribution owns is reported, but torchenv's own torchenv.pth.

ALLOWED_EXTRA: `pip` (and `setuptools`, `wheel`) come with the venv or the conda env that the
lock is installed into and are not the lock's to pin; the lock still pins them when the
environment needs them (torch 2.11 depends on setuptools), and then their version is checked like
any other. `torchsmoke`, the project's smoke suite, is project code, not a dependency.

The comparisons (`compare`, `against_build`, `against_record`, `audit`) are pure; `verify_image`
adds the I/O.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from packaging.utils import canonicalize_name

from torchbuild import buildinfo
from torchbuild import manifest as manifests
from torchenv import matrix
from torchenv.engine import labels as own_labels
from torchenv.engine.labels import MANIFEST_LABEL, MANIFEST_PATH  # where the build puts them
from torchenv.errors import UserError
from torchenv.image import livescan
from torchenv.lock import lockfile as locks
from torchenv.lock import overlays
from torchenv.matrix import Target
from torchenv.runner import Runner, subprocess_runner

BUILD_INFO_PATH = buildinfo.PATH  # {"installer": "uv" | "pip" | "conda", ...}
ALLOWED_EXTRA = frozenset({"pip", "setuptools", "wheel", "torchsmoke"})
ALLOWED_UNOWNED = frozenset({"torchenv.pth"})  # written by install-env.sh into site-packages


def check_label(manifest_bytes: bytes, label: str | None) -> list[str]:
    """The image label against the sha256 of the manifest file's bytes."""
    actual = hashlib.sha256(manifest_bytes).hexdigest()
    if not label:
        return [f"the image has no {MANIFEST_LABEL} label (file sha256 {actual[:12]}...)"]
    recorded = label.removeprefix("sha256:")
    if recorded != actual:
        return [
            f"label {MANIFEST_LABEL}={recorded[:12]}... but {MANIFEST_PATH} has sha256 "
            f"{actual[:12]}...: the file was changed after the build"
        ]
    return []


def installed(manifest: Mapping[str, Any]) -> dict[str, list[str]]:
    """{normalized name: [versions]} of the manifest's distributions."""
    found: dict[str, list[str]] = {}
    for dist in manifest.get("distributions", []):
        found.setdefault(canonicalize_name(dist["name"]), []).append(str(dist["version"]))
    return found


def compare(
    manifest: Mapping[str, Any],
    packages: Iterable[locks.LockedPackage],
    allowed_extra: Iterable[str] = ALLOWED_EXTRA,
) -> list[str]:
    """Every difference between the installed distributions and the locked packages.

    Locked pip packages must be installed at exactly their version; locked conda packages are
    checked where they are Python distributions (python itself, openssl ... are not). Anything
    installed that the lock does not name is extra, unless it is in `allowed_extra`.
    """
    have = installed(manifest)
    pip_locked = {p.name: p for p in packages if p.manager == "pip"}
    conda_locked = {p.name: p for p in packages if p.manager == "conda"}
    differences = []
    for name, versions in sorted(have.items()):
        if len(versions) > 1:
            differences.append(f"{name}: installed {len(versions)} times ({', '.join(versions)})")
    for name, pkg in sorted(pip_locked.items()):
        if name not in have:
            differences.append(f"missing: {name}=={pkg.version} is locked, not installed")
        elif pkg.version not in have[name]:
            differences.append(
                f"different version: {name} {', '.join(have[name])} installed, {pkg.version} locked"
            )
    for name, pkg in sorted(conda_locked.items()):
        if name in have and name not in pip_locked and pkg.version not in have[name]:
            differences.append(
                f"different version: {name} {', '.join(have[name])} installed, "
                f"{pkg.version} locked (conda)"
            )
    allowed = {canonicalize_name(n) for n in allowed_extra}
    for name in sorted(set(have) - set(pip_locked) - set(conda_locked) - allowed):
        differences.append(f"extra: {name} {', '.join(have[name])} is installed, not locked")
    return differences


def check_file(manifest_bytes: bytes, label: str | None) -> tuple[dict[str, Any] | None, list[str]]:
    """A manifest file read from an image: (its content or None, its problems: JSON, format,
    label, its own digests)."""
    try:
        manifest = json.loads(manifest_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, [f"{MANIFEST_PATH} is not valid JSON ({exc})"]
    if not isinstance(manifest, dict) or manifest.get("format") != manifests.FORMAT:
        return None, [f"{MANIFEST_PATH} is not a {manifests.FORMAT} manifest"]
    return manifest, check_label(manifest_bytes, label) + manifests.check(manifest)


def _build_info(build_info: bytes | None, key: str) -> str | None:
    try:
        value = json.loads(build_info or b"{}").get(key)
    except (json.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def image_installer(build_info: bytes | None) -> str | None:
    """The installer recorded in /opt/torchenv/build-info.json, if any."""
    value = _build_info(build_info, "installer")
    return value if value in matrix.INSTALLERS else None


def with_overlays(lock: locks.Lock, target: Target, build_info: bytes | None) -> locks.Lock:
    """The lock, plus each overlay's lock that the image says it installed (build-info's lock
    mode names +project-lock, +dev-lock), and the project's own package at the version the image
    says it installed (build-info's package, NAME==VERSION)."""
    mode = (_build_info(build_info, "lock") or "").split("+")
    packages = dict(lock.packages)
    for kind, path in overlays.lock_paths(target).items():
        if f"{kind}-lock" not in mode:
            continue
        if not path.exists():
            raise UserError(
                f"the image installed {matrix.rel(path)}, which does not exist here: lock first "
                f"(invoke lock --target {target.name})"
            )
        packages.update(locks.read_lock(path, target.name, allow_empty=True).packages)
    name, _, version = (_build_info(build_info, "package") or "").partition("==")
    if name and version:
        own = locks.LockedPackage(canonicalize_name(name), version)
        packages[own.name] = own
    return dataclasses.replace(lock, packages=packages)


def lock_for(target: Target, installer: str | None) -> locks.Lock:
    """The target's lock for the image's installer (the pip lock when unknown and it exists)."""
    if installer is None:
        installer = "pip" if target.pip_lock.exists() or not target.conda_lock.exists() else "conda"
    path = locks.lock_path(target, installer)
    if not path.exists():
        raise UserError(
            f"{matrix.rel(path)} does not exist: nothing to verify against; lock first "
            f"(invoke lock --target {target.name} --installer {installer})"
        )
    return locks.read_lock(path, target.name)


def by_key(manifest: Mapping[str, Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """A manifest's distributions by (name, location)."""
    return {(d["name"], d.get("location", "")): d for d in manifest.get("distributions", [])}


def against_build(live: Mapping[str, Any], baked: Mapping[str, Any]) -> list[str]:
    """Every difference between the live manifest and the one written at build time."""
    now, then = by_key(live), by_key(baked)
    lines = [f"added: {n} {now[(n, loc)]['version']} (not in the build's manifest)"
             for n, loc in sorted(now.keys() - then.keys())]  # fmt: skip
    lines += [f"removed: {n} {then[(n, loc)]['version']} (in the build's manifest, gone now)"
              for n, loc in sorted(then.keys() - now.keys())]  # fmt: skip
    for key in sorted(now.keys() & then.keys()):
        name, was, is_ = key[0], then[key], now[key]
        if was["version"] != is_["version"]:
            lines.append(f"changed version: {name} {was['version']} at build, {is_['version']} now")
            continue
        lines += _file_lines(was.get("files", {}), is_.get("files", {}), name)
    if "unowned" not in baked:  # a manifest from before unowned files were recorded
        return lines + unowned_lines(live)
    return lines + _file_lines(baked["unowned"], live.get("unowned", {}), None)


def _file_lines(
    before: Mapping[str, Any], after: Mapping[str, Any], owner: str | None
) -> list[str]:
    """A line for each file deleted, new or changed; `owner`: its distribution, None: unowned."""
    kind, why = ("file", f"({owner})") if owner else ("unowned file", "(no distribution owns it)")
    lines = []
    for path in sorted(before.keys() | after.keys()):
        if path not in after:
            lines.append(f"deleted {kind}: {path} {why}")
        elif path not in before:
            lines.append(f"{'new file' if owner else kind}: {path} {why}")
        elif before[path] != after[path]:
            lines.append(f"changed {kind}: {path} {why}")
    return lines


def against_record(live: Mapping[str, Any]) -> list[str]:
    """Files changed or deleted since pip installed them, by each distribution's RECORD."""
    lines = []
    for dist in live.get("distributions", []):
        lines += [f"deleted file: {path} ({dist['name']})" for path in dist.get("missing", [])]
        lines += [f"changed file: {path} ({dist['name']})" for path in dist.get("modified", [])]
    return lines


def unowned_lines(live: Mapping[str, Any]) -> list[str]:
    """Every file no distribution owns, but torchenv's own (ALLOWED_UNOWNED at a site root)."""
    roots = {d.get("location", "") for d in live.get("distributions", [])}
    allowed = {f"{root}/{name}" for root in roots for name in ALLOWED_UNOWNED}
    return [
        f"unowned file: {path} (no distribution owns it)"
        for path in sorted(set(live.get("unowned", {})) - allowed)
    ]


def audit(
    live: Mapping[str, Any], baked_bytes: bytes | None, label: str | None, lock: locks.Lock
) -> tuple[list[str], list[str]]:
    """(differences, notes): the live manifest against the lock, and against the build's manifest
    when the image has a trustworthy one, else against RECORDs and ownership."""
    differences = compare(live, lock.packages.values())
    notes = []
    baked = None
    if baked_bytes is None:
        if label:
            differences.append(f"{MANIFEST_PATH} is gone, but the image's label says it was built")
        notes.append(f"no {MANIFEST_PATH} in the image: compared with the lock and RECORDs only")
    else:
        baked, problems = check_file(baked_bytes, label)
        if problems:
            differences += problems
            notes.append("the build's manifest cannot be trusted: compared with RECORDs only")
            baked = None
    if baked is not None:
        differences += against_build(live, baked)
    else:
        differences += against_record(live) + unowned_lines(live)
    return differences, notes


def target_of(image: str, runner: Runner = subprocess_runner, client: str | None = None) -> str:
    """The target an image was built for (its io.torchenv.target label); UserError without one."""
    from torchenv import engine

    client = client or engine.detect(runner).client
    name = (livescan.image_config(client, image, runner).get("Labels") or {}).get(own_labels.TARGET)
    if not name:
        raise UserError(
            f"{image} has no {own_labels.TARGET} label: say which lock to verify it against "
            f"with --target ({', '.join(matrix.names())})"
        )
    return str(name)


def verify_image(
    target: Target | str,
    image: str | None = None,
    installer: str | None = None,
    runner: Runner = subprocess_runner,
    client: str | None = None,
    out: Callable[[str], object] = print,
) -> list[str]:
    """What `invoke verify --target X [--image REF]` calls: every difference, [] when none.

    `image` defaults to the target's runtime image. `installer` picks the lock to compare with:
    default the one recorded in the image's build-info.json, else the pip lock when it exists,
    else the conda lock. Notes (what was hashed, what could not be compared) go to `out`;
    UserError (one line) when the image, its environment or the lock cannot be read.
    """
    from torchenv import engine

    t = matrix.get(target) if isinstance(target, str) else target
    image = image or t.image()
    client = client or engine.detect(runner).client
    config = livescan.image_config(client, image, runner)
    scan = livescan.scan(
        client, image, t.name, (MANIFEST_PATH, BUILD_INFO_PATH), config=config, runner=runner,
        project=t.image_repo,
    )  # fmt: skip
    info = scan.files[BUILD_INFO_PATH]
    lock = with_overlays(lock_for(t, installer or image_installer(info)), t, info)
    counts = manifests.summary(scan.manifest)
    out(
        f"torchenv: hashed {image} as it is now: {counts['distributions']} distributions, "
        f"{counts['files']} files, {counts['bytes'] / 1e9:.2f} GB in {scan.seconds:.1f} s "
        f"(user {scan.user}, no network, read-only)"
    )
    label = (config.get("Labels") or {}).get(MANIFEST_LABEL)
    differences, notes = audit(scan.manifest, scan.files[MANIFEST_PATH], label, lock)
    for note in notes:
        out(f"torchenv: {note}")
    return differences

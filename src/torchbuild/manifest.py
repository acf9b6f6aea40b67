"""What is installed, proved file by file: a deterministic manifest of a Python environment.

    python -m torchbuild.manifest --out /opt/torchenv/manifest.json   (standard library only)
    python -m torchbuild.manifest [--out FILE]        (anywhere, e.g. to verify a live image)

Lists every distribution installed in the running interpreter's site-packages folders (pip and
setuptools of a venv included: nothing is left out), each with its normalized name, version and
installer, and for every file its RECORD lists the sha256 and size of the file as it is on disk
now (computed here, never copied from RECORD; `modified` lists the files whose content no longer
matches what RECORD says was installed). Each distribution carries a digest of its entry, and the
manifest a *content digest* (its "digest" field) of everything else in it: two environments with
the same content digest hold the same distributions with byte-identical files. (Not to be confused
with the *file sha256*, the sha256 of manifest.json's bytes, which images carry in the label
io.torchenv.manifest.sha256.)
`unowned` hashes the files in the site folders that no distribution's RECORD lists (a module
copied in by hand, a .pth file): they are imported like the rest, so they count too.

The output is deterministic: JSON with sorted keys and fixed separators, no timestamps, and paths
relative to the site-packages folder (`location` is that folder relative to sys.prefix).
Hashing streams 1 MiB chunks on a few threads (hashlib releases the GIL), so a 5 GB environment
takes seconds, not minutes. `--reuse OLD` takes a file's sha256 from an earlier manifest of the same
environment (a lower image layer's) when the file is older than that manifest, has the size it
had, and RECORD still names that sha256: a layer that adds one package then hashes only what it
wrote, and the result is the manifest a full pass gives.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import json
import os
import platform
import re
import site
import sys
import sysconfig
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from typing import Any

FORMAT = "torchenv-manifest/1"
CHUNK = 1 << 20


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of -_. as one dash."""
    return re.sub(r"[-_.]+", "-", name).lower()


def canonical(obj: object) -> bytes:
    """The bytes every digest is taken over: compact JSON, sorted keys, ASCII only."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def digest(obj: object) -> str:
    return "sha256:" + hashlib.sha256(canonical(obj)).hexdigest()


def render(manifest: dict[str, Any]) -> str:
    """The file's text, for diffing two manifests line by line: one line per key, except that an
    object or list holding no other container (a file's sha256 and size, say) takes one line."""

    def one_line(value: object) -> str:
        if isinstance(value, dict) and len(value) == 2:  # a file: most lines, written directly
            sha, size = value.get("sha256"), value.get("size")
            if isinstance(sha, str) and sha.isalnum() and sha.isascii() and type(size) is int:
                return f'{{"sha256": "{sha}", "size": {size}}}'
        return json.dumps(value, sort_keys=True, separators=(", ", ": "), ensure_ascii=True)

    def nested(value: object) -> bool:
        if isinstance(value, dict):
            value = list(value.values())
        return isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value)

    def text(value: Any, depth: int) -> str:
        if not nested(value):
            return one_line(value)
        pad = " " * (depth + 1)
        if isinstance(value, dict):
            lines = [f"{pad}{one_line(k)}: {text(value[k], depth + 1)}" for k in sorted(value)]
            return "{\n" + ",\n".join(lines) + "\n" + " " * depth + "}"
        lines = [pad + text(v, depth + 1) for v in value]
        return "[\n" + ",\n".join(lines) + "\n" + " " * depth + "]"

    return text(manifest, 0)


def hash_file(path: str) -> tuple[str, int]:
    """sha256 hex digest and size of a file, read in 1 MiB chunks."""
    sha = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    size = 0
    with open(path, "rb", buffering=0) as handle:
        while True:
            n = handle.readinto(buf)
            if not n:
                break
            sha.update(view[:n])
            size += n
    return sha.hexdigest(), size


def _record_hex(record_hash: str) -> str | None:
    """RECORD's `sha256=<urlsafe base64>` as hex; None for another algorithm or none."""
    mode, _, value = record_hash.partition("=")
    if mode != "sha256" or not value:
        return None
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex()


def _recorded_files(dist: metadata.Distribution) -> list[tuple[str, str]] | None:
    """(path, RECORD hash) of every file the distribution installed, existing or not.

    RECORD is read directly: from Python 3.12 on, `Distribution.files` leaves out the files that
    no longer exist, which are exactly the ones a manifest must report as missing. None when the
    distribution has no RECORD (then `files`, e.g. from installed-files.txt, is all there is).
    """
    text = dist.read_text("RECORD")
    if text is None:
        return None if dist.files is None else [(str(f), "") for f in dist.files]
    return [
        (row[0], row[1] if len(row) > 1 else "") for row in csv.reader(text.splitlines()) if row
    ]


def site_roots() -> list[str]:
    """The site-packages folders of this interpreter, in import order, each once."""
    candidates = [sysconfig.get_paths()[key] for key in ("purelib", "platlib")]
    candidates += site.getsitepackages() if hasattr(site, "getsitepackages") else []
    if site.ENABLE_USER_SITE:
        candidates.append(site.getusersitepackages())
    roots, seen = [], set()
    for path in candidates:
        real = os.path.realpath(path)
        if os.path.isdir(real) and real not in seen:
            seen.add(real)
            roots.append(path)
    return roots


def _location(root: str) -> str:
    return os.path.relpath(root, sys.prefix).replace(os.sep, "/")


def _scan(roots: list[str]) -> tuple[list[dict[str, Any]], list[tuple[int, str, str, str | None]]]:
    """Distribution entries without file hashes, and the hashing jobs for their files."""
    entries: list[dict[str, Any]] = []
    jobs: list[tuple[int, str, str, str | None]] = []  # entry index, RECORD path, path, RECORD hex
    for root in roots:
        for dist in metadata.distributions(path=[root]):
            name = dist.metadata["Name"] or ""
            recorded = _recorded_files(dist)
            entry = {
                "name": normalize(name),
                "version": dist.version,
                "installer": (dist.read_text("INSTALLER") or "").strip(),
                "location": _location(root),
                "record": recorded is not None,
                "files": {},
                "missing": [],
                "modified": [],
            }
            index = len(entries)
            entries.append(entry)
            for file, record_hash in recorded or []:
                relative = file.replace(os.sep, "/")
                full = os.path.normpath(os.path.join(root, file))
                jobs.append((index, relative, full, _record_hex(record_hash)))
    return entries, jobs


def _unowned(roots: list[str], owned: set[str]) -> list[tuple[str, str, bool]]:
    """(manifest key, path, is a link) of every file under `roots` that no RECORD lists, sorted.

    Symbolic links are listed as files (a link to a folder is not followed). One scandir pass:
    each entry's type comes with the listing, and the key is built as the walk goes down."""
    found = []
    for root in roots:
        location = _location(root)
        folders = [(root, "")]  # (folder, its path relative to root, with a trailing /)
        while folders:
            folder, relative = folders.pop()
            try:
                listing = os.scandir(folder)
            except OSError:  # unreadable or gone: as os.walk, skipped
                continue
            with listing:
                for entry in listing:
                    link = entry.is_symlink()
                    if not link and entry.is_dir():
                        folders.append((entry.path, f"{relative}{entry.name}/"))
                        continue
                    full = os.path.normpath(entry.path)
                    if full not in owned:
                        found.append((f"{location}/{relative}{entry.name}", full, link))
    return sorted(found)


class Reuse:
    """What an earlier manifest of these site folders says of each file, by path, and how old it
    is: a file written before it (mtime not later), of the same size, whose RECORD (when it has a
    hash) still agrees, keeps the earlier sha256 without being read again."""

    def __init__(self, old: dict[str, Any], written_ns: int, roots: list[str]) -> None:
        self.written_ns = written_ns
        self.known: dict[str, tuple[str, int]] = {}
        by_location = {_location(root): root for root in roots}
        for entry in old.get("distributions", []):
            root = by_location.get(entry.get("location"))
            if root is None:
                continue
            for relative, info in (entry.get("files") or {}).items():
                self._add(os.path.join(root, relative), info)
        for key, info in (old.get("unowned") or {}).items():  # keyed "<location>/<relative>"
            for location, root in by_location.items():
                if key.startswith(location + "/"):
                    self._add(os.path.join(root, key[len(location) + 1 :]), info)
        self.reused = 0

    def _add(self, path: str, info: Any) -> None:
        if isinstance(info, dict) and isinstance(info.get("sha256"), str):
            self.known[os.path.normpath(path)] = (info["sha256"], int(info.get("size", -1)))

    def lookup(self, path: str, record_hex: str | None) -> tuple[str, int] | None:
        known = self.known.get(path)
        if known is None or (record_hex is not None and record_hex != known[0]):
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        if st.st_size != known[1] or st.st_mtime_ns > self.written_ns:
            return None
        self.reused += 1
        return known

    @classmethod
    def load(cls, path: str, roots: list[str]) -> Reuse | None:
        """From a manifest file; None when there is none or it cannot be read as one."""
        try:
            written_ns = os.stat(path).st_mtime_ns
            with open(path, encoding="ascii") as handle:
                old = json.load(handle)
        except (OSError, ValueError):
            return None
        if not isinstance(old, dict) or old.get("format") != FORMAT or check(old):
            return None
        return cls(old, written_ns, roots)


BATCH = 64  # files per task of the thread pool: one future per file costs more than a small hash


def _hash_or_none(path: str) -> tuple[str, int] | None:
    try:
        return hash_file(path)
    except OSError:  # gone, a folder, or not readable by this user: listed as missing
        return None


def _hash_all(
    pool: ThreadPoolExecutor, jobs: list[tuple[str, str | None]], reuse: Reuse | None
) -> list[tuple[str, int] | None]:
    """(sha256, size) or None for each (path, RECORD hex): what `reuse` knows, the rest read
    on the pool's threads in batches."""
    results: list[tuple[str, int] | None] = [None] * len(jobs)
    pending = []
    for i, (path, record_hex) in enumerate(jobs):
        known = reuse.lookup(path, record_hex) if reuse else None
        if known:
            results[i] = known
        else:
            pending.append(i)
    batches = [pending[k : k + BATCH] for k in range(0, len(pending), BATCH)]
    hashed = pool.map(lambda batch: [_hash_or_none(jobs[i][0]) for i in batch], batches)
    for batch, values in zip(batches, hashed):  # noqa: B905 (3.8+)
        for i, value in zip(batch, values):  # noqa: B905 (3.8+)
            results[i] = value
    return results


def build(
    roots: list[str] | None = None, workers: int | None = None, reuse: Reuse | None = None
) -> dict[str, Any]:
    """The manifest of the distributions in `roots` (default: this interpreter's site folders);
    `reuse`: what an earlier manifest of them says (see Reuse)."""
    roots = site_roots() if roots is None else roots
    entries, jobs = _scan(roots)
    unowned = _unowned(roots, {job[2] for job in jobs})
    workers = workers or min(8, (os.cpu_count() or 1) + 1)
    files = [(key, full) for key, full, link in unowned if not link]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = _hash_all(pool, [(job[2], job[3]) for job in jobs], reuse)
        loose = _hash_all(pool, [(full, None) for _, full in files], reuse)
    for (index, relative, _, record_hex), result in zip(jobs, results):  # noqa: B905 (3.8+)
        entry = entries[index]
        if result is None:
            entry["missing"].append(relative)
            continue
        sha, size = result
        entry["files"][relative] = {"sha256": sha, "size": size}
        if record_hex is not None and record_hex != sha:
            entry["modified"].append(relative)
    for entry in entries:
        entry["missing"].sort()
        entry["modified"].sort()
        entry["digest"] = digest(entry)
    entries.sort(key=lambda e: (e["name"], e["version"], e["location"], e["digest"]))
    manifest = {
        "format": FORMAT,
        "python": {
            "implementation": sys.implementation.name,
            "version": platform.python_version(),
            "platform": sysconfig.get_platform(),
        },
        "distributions": entries,
        "unowned": {
            **{key: {"link": os.readlink(full)} for key, full, link in unowned if link},
            **{
                key: {"sha256": result[0], "size": result[1]} if result else {"unreadable": True}
                for (key, _), result in zip(files, loose)  # noqa: B905 (3.8+)
            },
        },
    }
    manifest["digest"] = manifest_digest(manifest)
    return manifest


def manifest_digest(manifest: dict[str, Any]) -> str:
    """The digest over everything in a manifest but the digest itself."""
    return digest({k: v for k, v in manifest.items() if k != "digest"})


def check(manifest: dict[str, Any]) -> list[str]:
    """Whether a manifest's recorded digests match its content; [] when they all do."""
    problems = []
    for entry in manifest.get("distributions", []):
        if entry.get("digest") != digest({k: v for k, v in entry.items() if k != "digest"}):
            problems.append(f"{entry.get('name')}: its digest does not match its entry")
    if manifest.get("digest") != manifest_digest(manifest):
        problems.append("the manifest's content digest does not match its content")
    return problems


def summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """Counts for people: distributions, files, bytes."""
    dists = manifest["distributions"]
    files = [f for d in dists for f in d["files"].values()]
    return {
        "distributions": len(dists),
        "files": len(files),
        "bytes": sum(f["size"] for f in files),
        "digest": manifest["digest"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m torchbuild.manifest",
        description="Write the manifest of this Python environment.",
    )
    parser.add_argument("--out", help="write it here (default: standard output)")
    parser.add_argument("--workers", type=int, help="hashing threads (default: CPUs + 1, max 8)")
    parser.add_argument(
        "--reuse", metavar="OLD", help="take unchanged files' hashes from this earlier manifest"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    reuse = Reuse.load(args.reuse, site_roots()) if args.reuse else None
    manifest = build(workers=args.workers, reuse=reuse)
    text = render(manifest) + "\n"
    if args.out:
        tmp = f"{args.out}.tmp"
        with open(tmp, "w", encoding="ascii") as handle:
            handle.write(text)
        os.replace(tmp, args.out)
    else:
        sys.stdout.write(text)
    counts = summary(manifest)
    print(
        f"manifest: {counts['distributions']} distributions, {counts['files']} files, "
        f"{counts['bytes'] / 1e9:.2f} GB hashed in {time.perf_counter() - start:.1f} s"
        f"{f' ({reuse.reused} unchanged files taken from {args.reuse})' if reuse else ''}; "
        f"content digest {counts['digest']}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Proof that a rebuild from the lock is the same environment, file for file.

    .venv/bin/python benchmarks/rebuild_identical.py [--target cuda13] [--installer uv] [--gap 30]
        [--base-image torchenv-standin/python:3.11-slim-bookworm] [--ca-cert PATH] [--json OUT]

Builds the target twice through the project's own task (`invoke build --installer uv ...`, uv
being the default), tagged torchenv-bench/rebuild:0: the second time with --no-cache and later
(--gap seconds after the first finished), so no layer is shared (the installer's BuildKit cache
mount may still serve the wheels: each is checked against the lock's sha256 all the same). After
each build it reads /opt/torchenv/manifest.json out of the image (every installed distribution
with the sha256 of every file RECORD lists) and hashes every .pyc file under /opt/env (uv compiles
them after the install, so RECORD does not list them), and finally compares the two: the manifest
digests and the .pyc digests must be equal, and `invoke verify` logic must find no difference
between the second image and the lock. Prints the figures (build times, distributions, files,
bytes, digests) and exits non-zero when the two environments differ in anything, listing what.
Every engine command holds the engine lock (/tmp/torchenv-engine.lock) while it runs.

Needs a Docker engine with BuildKit, the stand-in base (see shared/docs/docker-here.md) or a
reachable registry, and the target's pip lock (envs/<target>.pip.lock.txt). A cuda13 build pulls
about 4-5 GB of wheels: expect minutes per build.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))  # tests.support

from tests.support import manifests as baked  # noqa: E402

from torchenv import engine, matrix  # noqa: E402
from torchenv.errors import UserError  # noqa: E402
from torchenv.image import verify  # noqa: E402
from torchenv.lock import drift  # noqa: E402

STANDIN_BASE = "torchenv-standin/python:3.11-slim-bookworm"
TAG = "torchenv-bench/rebuild:0"
LOCK_FILE = "/tmp/torchenv-engine.lock"
# sha256 of every .pyc under /opt/env (path and content), and their number.
PYC_DIGEST = (
    "cd /opt/env && find . -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum > /tmp/pyc "
    "&& wc -l < /tmp/pyc && sha256sum < /tmp/pyc"
)


def locked(argv: list[str], **kw) -> subprocess.CompletedProcess:
    with open(LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            return subprocess.run(argv, **kw)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def build(args: argparse.Namespace, no_cache: bool) -> float:
    """Run `invoke build` for the target; returns its wall time in seconds."""
    argv = [
        str(ROOT / ".venv" / "bin" / "invoke"), "build", "--target", args.target, "--tag", TAG,
        "--installer", args.installer, "--base-image", args.base_image, "--allow-unpinned-base",
    ]  # fmt: skip
    if args.ca_cert:
        argv += ["--ca-cert", args.ca_cert]
    if no_cache:
        argv.append("--no-cache")
    print(f"+ {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    done = locked(argv, cwd=ROOT, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"build failed (exit {done.returncode}) after {elapsed:.0f} s")
    return elapsed


def snapshot(image: str) -> dict:
    """The image's manifest and figures about it."""
    with open(LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        files, labels = baked.read_image(image)
    pyc = locked([engine.detect().client, "run", "--rm", "--network=none", "--user", "0", image, "bash", "-c",
                  PYC_DIGEST], capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    data = files[verify.MANIFEST_PATH] or b""
    manifest = json.loads(data)
    dists = manifest["distributions"]
    return {
        "manifest": manifest,
        "bytes_of_manifest": len(data),
        "label": labels.get(verify.MANIFEST_LABEL),
        "label_problems": verify.check_label(data, labels.get(verify.MANIFEST_LABEL)),
        "digest": manifest["digest"],
        "distributions": len(dists),
        "files": sum(len(d["files"]) for d in dists),
        "installed_bytes": sum(f["size"] for d in dists for f in d["files"].values()),
        "pyc_files": int(pyc[0]),
        "pyc_digest": pyc[1],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cuda13")
    parser.add_argument("--installer", default=matrix.DEFAULT_INSTALLER, choices=matrix.INSTALLERS)
    parser.add_argument("--base-image", default=STANDIN_BASE)
    parser.add_argument("--ca-cert", default=CA_BUNDLE if Path(CA_BUNDLE).exists() else None)
    parser.add_argument("--gap", type=float, default=30.0, help="seconds between the builds")
    parser.add_argument("--json", help="also write the figures (without manifests) here")
    args = parser.parse_args(argv)

    target = matrix.get(args.target)
    for needed in (target.dockerfile, ROOT / "tasks.py", target.pip_lock):
        if not needed.exists():
            raise SystemExit(f"{needed.relative_to(ROOT)} is missing: nothing to benchmark yet")
    problems = drift.check_target(target)
    if problems:
        raise SystemExit("the lock is not in step with the env file:\n" + "\n".join(problems))
    image = TAG

    runs = []
    for number, no_cache in ((1, False), (2, True)):
        if number == 2:
            print(
                f"waiting {args.gap:g} s so that the second build runs at another time", flush=True
            )
            time.sleep(args.gap)
        started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        seconds = build(args, no_cache)
        runs.append(
            {
                "build": number,
                "no_cache": no_cache,
                "started": started,
                "build_seconds": round(seconds, 1),
                **snapshot(image),
            }
        )

    first, second = runs
    differences = baked.diff_manifests(first["manifest"], second["manifest"])
    try:
        against_lock = verify.verify_image(target, image=image, installer=args.installer)
    except UserError as exc:
        against_lock = [str(exc)]
    same_pyc = first["pyc_digest"] == second["pyc_digest"]
    identical = not differences and first["digest"] == second["digest"] and same_pyc

    print(f"\nrebuild of {image} from {target.pip_lock.relative_to(ROOT)}")
    for run in runs:
        print(
            f"  build {run['build']} ({'--no-cache, ' if run['no_cache'] else ''}started "
            f"{run['started']}): {run['build_seconds']:.0f} s, {run['distributions']} "
            f"distributions, {run['files']} files, {run['installed_bytes'] / 1e9:.2f} GB, "
            f"manifest {run['bytes_of_manifest'] / 1e6:.1f} MB {run['digest']}; "
            f"{run['pyc_files']} .pyc files, sha256 of their hashes {run['pyc_digest'][:16]}..."
        )
        for problem in run["label_problems"]:
            print(f"  build {run['build']}: {problem}")
    print(f"  manifests identical: {'yes' if not differences else 'NO'}")
    print(f"  .pyc files identical: {'yes' if same_pyc else 'NO'}")
    for line in differences[:50]:
        print(f"    {line}")
    if len(differences) > 50:
        print(f"    ... and {len(differences) - 50} more")
    print(
        f"  second image against the lock (invoke verify): "
        f"{'no difference' if not against_lock else ''}"
    )
    for line in against_lock:
        print(f"    {line}")

    if args.json:
        figures = {
            "target": target.name,
            "image": image,
            "identical": identical,
            "differences": differences,
            "verify": against_lock,
            "runs": [{k: v for k, v in run.items() if k != "manifest"} for run in runs],
        }
        Path(args.json).write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    labels_ok = not first["label_problems"] and not second["label_problems"]
    locked([engine.detect().client, "image", "rm", TAG], capture_output=True, check=False)
    return 0 if identical and not against_lock and labels_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

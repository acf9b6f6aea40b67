"""Time `invoke verify` on a built image against the time its build spends on the same hashing.

    python benchmarks/verify_speed.py [--target cuda13] [--image IMAGE] [--runs 3]

Needs the image built (invoke build) and a Docker engine. For each run it prints:
- build-time hashing: `python -m torchbuild.manifest` in a container of the image, as the build's
  install step runs it (the mounted torchbuild folder, as the image's user): the time the module
  itself reports, and the container's wall time;
- verify: the hashing inside verify's locked-down container (the time the driver reports), and
  the wall time of the whole `verify_image` (container start, hashing, sending the manifest back,
  comparing with the build's manifest and the lock).
Then the medians, and verify's wall time as a multiple of the build's hashing time.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from torchenv import engine, matrix  # noqa: E402
from torchenv.image import livescan, verify  # noqa: E402

HASHED = re.compile(r"manifest: (\d+) distributions, (\d+) files, ([\d.]+) GB hashed in ([\d.]+) s")


def build_hashing(client: str, image: str) -> tuple[float, float, str]:
    """(seconds the module reports, container wall seconds, its summary line)."""
    argv = [
        client, "run", "--rm", "--network", "none",
        "--volume", f"{ROOT / 'src' / 'torchbuild'}:/tmp/ctx/torchbuild:ro",
        "--env", "PYTHONPATH=/tmp/ctx", "--env", "PYTHONDONTWRITEBYTECODE=1",
        image, "python", "-m", "torchbuild.manifest",
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)  # stdout: the manifest
    wall = time.perf_counter() - start
    match = HASHED.search(done.stderr)
    if done.returncode != 0 or not match:
        sys.exit(f"the build's hashing failed in {image}: {done.stderr.strip()[-500:]}")
    return float(match.group(4)), wall, match.group(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cuda13")
    parser.add_argument("--image", help="default: the target's runtime image")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    target = matrix.get(args.target)
    image = args.image or target.image()
    client = engine.detect().client
    rows = []
    for run in range(1, args.runs + 1):
        module_s, container_s, summary = build_hashing(client, image)
        scan = livescan.scan(client, image, target.name)
        start = time.perf_counter()
        differences = verify.verify_image(
            target, image=image, client=client, out=lambda _line: None
        )
        verify_s = time.perf_counter() - start
        rows.append((module_s, container_s, scan.seconds, verify_s))
        print(
            f"run {run}: build hashing {module_s:.1f} s (container {container_s:.1f} s); "
            f"verify hashing {scan.seconds:.1f} s, verify in all {verify_s:.1f} s "
            f"({len(differences)} differences); {summary}",
            flush=True,
        )
    medians = [statistics.median(column) for column in zip(*rows)]  # noqa: B905 (3.10)
    print(
        f"median of {args.runs}: build hashing {medians[0]:.1f} s (container {medians[1]:.1f} s), "
        f"verify hashing {medians[2]:.1f} s, verify in all {medians[3]:.1f} s = "
        f"{medians[3] / medians[0]:.2f}x the build's hashing"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

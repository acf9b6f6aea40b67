"""Build speed and size of the cuda13 image (pip installer, the stand-in base), as CI builds it.

    python benchmarks/build_speed.py [--base-image IMAGE] [--ca-cert PATH] [--skip-cold]

Prints: the cold build (no layer cache; the BuildKit download cache mount stays as it is, say
which), a rebuild after editing only the smoke package (budget: 5% of the cold build), a rebuild
with nothing changed (budget: 3 s), and the image size against the installed environment
(budget: 1.1x). Needs a Docker engine; leaves the tree as it found it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from torchenv import engine, matrix  # noqa: E402

EDITED = ROOT / "src" / "torchsmoke" / "core.py"


def timed_build(args: list[str]) -> float:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "build", *args], cwd=ROOT, capture_output=True, text=True
    )
    elapsed = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"build failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-image", default="torchenv-standin/python:3.11-slim-bookworm")
    parser.add_argument("--ca-cert", default="/etc/ssl/certs/ca-certificates.crt")
    parser.add_argument(
        "--skip-cold", action="store_true", help="reuse the layer cache for the first build"
    )
    opts = parser.parse_args()
    eng = engine.detect()
    t = matrix.get("cuda13")
    args = ["--target", "cuda13", "--installer", "pip", "--base-image", opts.base_image,
            "--allow-unpinned-base"]  # fmt: skip
    if Path(opts.ca_cert).exists():
        args += ["--ca-cert", opts.ca_cert]

    cold = timed_build(args + ([] if opts.skip_cold else ["--no-cache"]))
    original = EDITED.read_text()
    try:
        EDITED.write_text(original + f"\n# benchmark edit {time.time()}\n")
        smoke_edit = timed_build(args)
    finally:
        EDITED.write_text(original)
    timed_build(args)  # back to the committed source
    unchanged = min(timed_build(args) for _ in range(3))

    info = json.loads(
        subprocess.run(
            [eng.client, "image", "inspect", t.image()], capture_output=True, text=True, check=True
        ).stdout  # fmt: skip
    )[0]
    image_bytes = info["Size"]
    du = subprocess.run(
        [eng.client, "run", "--rm", "--network=none", t.image(), "du", "-sb", "/opt/env"],
        capture_output=True, text=True, check=True,
    ).stdout.split()[0]  # fmt: skip
    env_bytes = int(du)

    def verdict(ok: bool) -> str:
        return "within budget" if ok else "OVER BUDGET"

    kind = "no layer cache" if not opts.skip_cold else "layer cache allowed"
    print(f"cold build ({kind}, download cache as is): {cold:7.1f} s")
    share = smoke_edit / cold
    print(f"rebuild after a smoke-package edit:      {smoke_edit:7.1f} s  "
          f"({share:.1%} of cold; budget 5%: {verdict(share <= 0.05)})")  # fmt: skip
    print(f"rebuild with nothing changed (best of 3): {unchanged:6.1f} s  (budget 3 s: "
          f"{verdict(unchanged <= 3)})")  # fmt: skip
    ratio = image_bytes / env_bytes
    print(f"image size {image_bytes / 1e9:.2f} GB, installed environment {env_bytes / 1e9:.2f} GB: "
          f"{ratio:.2f}x (budget 1.1x: {verdict(ratio <= 1.1)})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

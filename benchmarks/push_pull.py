"""What publishing by digest costs: push a target's image to a registry on this machine, remove
it locally, pull it back by digest; wall seconds of each step, the image size and the registry's
storage.

    flock /tmp/torchenv-engine.lock python benchmarks/push_pull.py [--target cuda13]

Needs Debian's docker-registry (started on 127.0.0.1 for the run and stopped after) and the built
image. The local tag is given back to the pulled image (the same image ID: the same bytes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support

from tests.support import localregistry  # noqa: E402

from torchenv import engine, matrix  # noqa: E402
from torchenv.image import publish  # noqa: E402


def docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"docker {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cuda13")
    args = parser.parse_args()
    target = matrix.get(args.target)
    local = target.image()
    size = int(docker("image", "inspect", "--format", "{{.Size}}", local))
    client = engine.docker_sdk_client()
    with (
        tempfile.TemporaryDirectory() as tmp,
        localregistry.running(Path(tmp, "registry")) as registry,
    ):
        start = time.perf_counter()
        pushed = publish.push(target, f"{registry}/bench", client, reports=Path(tmp),
                              out=lambda line: None)  # fmt: skip
        push_s = time.perf_counter() - start
        stored = folder_bytes(Path(tmp, "registry", "storage"))
        localregistry.remove_image_everywhere("docker", local)
        start = time.perf_counter()
        try:
            docker("pull", "--quiet", pushed.reference)
        finally:
            docker("tag", pushed.reference, local)
        pull_s = time.perf_counter() - start
    print(
        f"image {local}: {size / 1e9:.2f} GB; in the registry (compressed): {stored / 1e9:.2f} GB"
    )
    print(f"push  {push_s:7.1f} s")
    print(
        f"pull  {pull_s:7.1f} s  (by digest, after deleting the local image: its layers shared with no other image came from the registry)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

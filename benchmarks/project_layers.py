"""A project's edit cycle: what it costs to lock, to rebuild after an edit or a new dependency,
and to push again.

    flock /tmp/torchenv-engine.lock python benchmarks/project_layers.py

(the build takes its base image and CA from INVOKE_TORCHENV_* variables, as .ci/build.env sets)

In a copy of tests/sample-project (a temporary folder, its `test` extra locked too), with the kit
as installed in this Python: `torchenv init`, then the cuda13 pip lock of this repository copied
in (the same env file, so `invoke lock` keeps it as current), and:

1. one paired lock of every lock of the target (torch's, the project's, the dev extras':
   `invoke lock --target cuda13 --installer pip --upgrade`), with pip's resolver, then with uv's
   (the default), which is kept;
2. a cold build, `invoke build --target cuda13 --no-cache` (download caches as they are);
3. one line added to a file of the sample's package, and `invoke build`: its time as a share of
   the cold build (goal: 5% or less);
4. a push to a registry on this machine (Debian's docker-registry, started for the run);
5. one dependency added to pyproject.toml (tabulate), `invoke lock` again (the torch lock kept),
   and `invoke build`: its time as a share of the cold build (goal: 10% or less);
6. the second push: the bytes of the layers the registry did not have yet (the sizes its
   manifest gives), as a share of the image's compressed bytes (goal: 5% or less).

`--no-push` leaves out the registry (steps 4 and 6), the longest part on a slow disk.

Prints each figure with the load average. Removes its images, the registry and the folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support

from tests.support import localregistry  # noqa: E402

SAMPLE = ROOT / "tests" / "sample-project"
ACCEPT = "application/vnd.docker.distribution.manifest.v2+json"


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return time.perf_counter() - start


def layers(registry: str, repo: str, tag: str) -> dict[str, int]:
    """{digest: compressed size} of the layers of repo:tag's manifest in the registry."""
    url = f"http://{registry.replace('localhost', '127.0.0.1')}/v2/{repo}/manifests/{tag}"
    request = urllib.request.Request(url, headers={"Accept": ACCEPT})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        manifest = json.loads(response.read())
    return {layer["digest"]: int(layer["size"]) for layer in manifest["layers"]}


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def add_dependency(
    project: Path, relock: list[str], build: list[str], env: dict[str, str], cold_s: float
) -> None:
    """Step 5: tabulate added, the project locked again, the image rebuilt."""
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('"tqdm>=4.66"', '"tqdm>=4.66", "tabulate>=0.9"')
    )
    relock_s = run(relock, project, env)
    rebuild_s = run(build, project, env)
    print(
        f"after adding tabulate: lock {relock_s:.1f} s; rebuild {rebuild_s:.1f} s = "
        f"{100 * rebuild_s / cold_s:.1f}% of the cold build (goal 10% or less; {load()})"
    )


def push_twice(
    project: Path, relock: list[str], build: list[str], env: dict[str, str], cold_s: float,
    image: str, storage: Path,
) -> None:  # fmt: skip
    """Steps 4 to 6: push `image` (what `build` tags), add a dependency and rebuild, push again
    and count the new bytes."""
    with localregistry.running(storage) as registry:
        first = f"{registry}/bench/sample:one"
        run(["docker", "tag", image, first], project)
        push1_s = run(["docker", "push", first], project)
        before = layers(registry, "bench/sample", "one")
        print(f"first push: {push1_s:.1f} s, {sum(before.values()) / 1e9:.2f} GB compressed")
        add_dependency(project, relock, build, env, cold_s)
        second = f"{registry}/bench/sample:two"
        run(["docker", "tag", image, second], project)
        push2_s = run(["docker", "push", second], project)
        after = layers(registry, "bench/sample", "two")
        new = {d: s for d, s in after.items() if d not in before}
        share = 100 * sum(new.values()) / sum(after.values())
        print(
            f"second push: {push2_s:.1f} s, {len(new)} new layers, "
            f"{sum(new.values()) / 1e6:.1f} MB = {share:.2f}% of the image's "
            f"{sum(after.values()) / 1e9:.2f} GB (goal 5% or less)"
        )
        for ref in (first, second):
            subprocess.run(["docker", "image", "rm", ref], capture_output=True, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-push", action="store_true", help="no registry, no pushes")
    args = parser.parse_args()
    build = ["invoke", "build", "--target", "cuda13", "--frozen"]
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    with tempfile.TemporaryDirectory(prefix="torchenv-bench-") as tmp:
        project = Path(tmp, "sample")
        shutil.copytree(SAMPLE, project)
        run(["torchenv", "init"], project, env)
        matrix_file = project / "targets.toml"
        matrix_file.write_text(matrix_file.read_text().replace("extras = []", 'extras = ["test"]'))
        shutil.copy(ROOT / "envs" / "cuda13.pip.lock.txt", project / ".torchenv.d" / "envs")
        image = "sample/cuda13:bench"
        tagged = [*build, "--tag", image]
        relock = ["invoke", "lock", "--target", "cuda13", "--installer", "pip"]
        try:
            by = {
                r: run([*relock, "--upgrade", "--resolver", r], project, env) for r in ("pip", "uv")
            }
            print(
                f"lock, all three locks of cuda13 resolved again: pip {by['pip']:.1f} s, "
                f"uv {by['uv']:.1f} s = {by['uv'] / by['pip']:.2f}x ({load()})"
            )
            cold_s = run([*tagged, "--no-cache"], project, env)
            print(f"cold build (--no-cache): {cold_s:.1f} s ({load()})")
            module = project / "sample" / "__init__.py"
            module.write_text(module.read_text() + "\n# edited by the benchmark\n")
            edit_s = run(tagged, project, env)
            print(
                f"rebuild after editing one file: {edit_s:.1f} s = {100 * edit_s / cold_s:.1f}% "
                f"of the cold build (goal 5% or less; {load()})"
            )
            if args.no_push:
                add_dependency(project, relock, tagged, env, cold_s)
            else:
                push_twice(project, relock, tagged, env, cold_s, image, Path(tmp, "registry"))
        finally:
            subprocess.run(["docker", "image", "rm", image], capture_output=True, check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

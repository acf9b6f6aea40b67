"""Images reused by content (issue 35): what a CI run that changes nothing the image holds, and
one that changes one dependency, cost with a registry against a cold build. One paired run.

    flock /tmp/torchenv-engine.lock python benchmarks/reuse.py [--keep-log DIR]

(the builds take their base image and CA from INVOKE_TORCHENV_* variables, as .ci/build.env sets;
the kit is the torchenv this Python imports: put the checkout's src/ first on PYTHONPATH)

In a copy of tests/sample-project (a temporary folder, `torchenv init`, its `test` extra, the
cuda13 pip lock of this repository copied in, the project's dependencies locked), cuda13, images
built with `--uid 4242 --gid 4242` so that none of their layers is one that another image on this
engine already has (every byte a pull reports is a byte that came from the registry), and a
registry on this machine (Debian's docker-registry on 127.0.0.1, started for the run, its
storage in the temporary folder):

1. unchanged project: a cold build without a registry (the baseline); then `invoke build
   --registry` once to fill the registry (its push is timed); then, on an engine without the
   image, `invoke build --registry` again: its time, the bytes it pulled (the registry's
   compressed sizes of the layers the pull reports as pulled), whether the image's ID is the one
   pushed, whether any build step ran. Goal: ready in half the cold build's time or less.
   Then a plain `docker pull` of the same image on the same engine state: the engine's floor.
2. one dependency added (tabulate) and locked again: a cold build without a registry, against
   `invoke build --registry`, which builds with the registry's cache (the first run's cache
   image): (a) on an engine with nothing, as a hosted CI runner starts (`--no-push`, so that (b)
   builds too), and (b) on an engine that holds the image of before the change (pulled from the
   registry, as a kept runner or a developer's machine would have it) but no builder cache; (b)
   pushes. Goal: 0.2x the cold build or less, with the torch family's steps (venv, env-uv,
   compiler, report) CACHED.

"Cold" here: before each cold run and each run on "an engine without the image" the builder
cache is pruned (`docker builder prune -af`, BuildKit's layer cache and its download cache mounts:
a fresh CI runner has neither) and the images this benchmark made are removed. The engine itself
is NOT pruned: other images on it (other people's) are left alone, only this benchmark's tag and
the registry names it pulled are removed. The figures print with the load average; the builds'
output goes to --keep-log DIR when given. Removes its images, the registry and the folder.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support

from tests.support import localregistry  # noqa: E402

DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
SAMPLE = ROOT / "tests" / "sample-project"
IMAGE = "torchenv-bench/reuse-cuda13:0"
IDS = ["--uid", "4242", "--gid", "4242"]
MEDIA = "application/vnd.docker.distribution.manifest.v2+json"
# The torch family's steps: they must come from the registry's cache after a dependency changed.
TORCH_STEPS = ("venv 1/1", "env-uv 1/1", "compiler 2/2", "report 1/1")
_STEP = re.compile(r"^#(?P<n>\d+) \[(?P<name>[^\]]+)\]")
_PULLED = re.compile(r"^(?P<id>[0-9a-f]{12}): (?P<what>Pull complete|Already exists)")
MIN_FREE_GB = 20


@dataclass
class Run:
    seconds: float
    lines: list[str]
    marks: dict[str, float] = field(default_factory=dict)  # first line with a word: seconds in

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def run(argv: list[str], cwd: Path, env: dict[str, str], log: Path | None = None,
        marks: tuple[str, ...] = ()) -> Run:  # fmt: skip
    """Run, streaming its output; the seconds it took and when each of `marks` first showed."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    result = Run(0.0, [])
    assert proc.stdout is not None
    for line in proc.stdout:
        result.lines.append(line.rstrip("\n"))
        for mark in marks:
            if mark in line and mark not in result.marks:
                result.marks[mark] = time.perf_counter() - start
    code = proc.wait()
    result.seconds = time.perf_counter() - start
    if log is not None:
        with log.open("a") as sink:
            sink.write(f"$ {' '.join(argv)}  ({result.seconds:.1f} s)\n{result.text}\n\n")
    if code != 0:
        sys.exit(f"{' '.join(argv)} failed (exit {code}):\n{result.text[-3000:]}")
    return result


def docker(*args: str, check: bool = True) -> str:
    done = subprocess.run([DOCKER, *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        sys.exit(f"docker {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def forget_images(registry: str) -> None:
    """Remove what this benchmark made on the engine (its tag, any name of its registry), and
    prune the builder cache. Nothing else: other images stay."""
    names = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").splitlines()
    ours = [n for n in names if n == IMAGE or n.startswith(f"{registry}/")]
    if ours:
        docker("image", "rm", *ours, check=False)
    docker("builder", "prune", "-af")
    left = subprocess.run([DOCKER, "image", "inspect", IMAGE], capture_output=True, check=False)
    if left.returncode == 0:
        sys.exit(f"{IMAGE} is still on the engine: another name keeps it")


def free_gb() -> float:
    return shutil.disk_usage("/").free / 1e9


def layer_sizes(registry: str, repository: str, tag: str) -> dict[str, int]:
    """{first 12 hex of the layer digest: compressed size} of repository:tag on the registry."""
    url = f"http://{registry.replace('localhost', '127.0.0.1')}/v2/{repository}/manifests/{tag}"
    request = urllib.request.Request(url, headers={"Accept": MEDIA})
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
        manifest = json.loads(response.read())
    return {layer["digest"][7:19]: int(layer["size"]) for layer in manifest["layers"]}


def cached_steps(text: str) -> dict[str, tuple[bool, bool]]:
    """Each BuildKit step's name: (whether it was CACHED, whether it is a RUN step)."""
    names: dict[str, tuple[str, bool]] = {}
    cached: set[str] = set()
    for line in text.splitlines():
        match = _STEP.match(line)
        if match:
            names.setdefault(match["n"], (match["name"], "] RUN " in line))
        elif re.match(r"^#\d+ CACHED$", line):
            cached.add(line.split()[0][1:])
    return {name: (n in cached, is_run) for n, (name, is_run) in names.items()}


def prepare(project: Path, env: dict[str, str], log: Path | None) -> list[str]:
    """The sample project set up and locked; the lock command (to lock again)."""
    shutil.copytree(SAMPLE, project)
    run(["torchenv", "init"], project, env, log)
    matrix_file = project / "targets.toml"
    matrix_file.write_text(matrix_file.read_text().replace("extras = []", 'extras = ["test"]'))
    shutil.copy(ROOT / "envs" / "cuda13.pip.lock.txt", project / ".torchenv.d" / "envs")
    relock = ["invoke", "lock", "--target", "cuda13", "--installer", "pip"]
    run(relock, project, env, log)
    return relock


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-log", type=Path, help="write the builds' output into this folder")
    args = parser.parse_args()
    if free_gb() < MIN_FREE_GB:
        sys.exit(f"{free_gb():.0f} GB free on /: the run needs about {MIN_FREE_GB} GB")
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    log = None
    if args.keep_log:
        args.keep_log.mkdir(parents=True, exist_ok=True)
        log = args.keep_log / "reuse.log"
        log.write_text("")
    build = ["invoke", "build", "--target", "cuda13", "--frozen", "--tag", IMAGE, *IDS]
    with tempfile.TemporaryDirectory(prefix="torchenv-bench-reuse-") as tmp:
        project = Path(tmp, "sample")
        relock = prepare(project, env, log)
        with localregistry.running(Path(tmp, "registry")) as registry:
            try:
                with_registry = [*build, "--registry", f"{registry}/bench"]
                previous = unchanged(project, env, log, registry, build, with_registry)
                one_dependency(project, env, log, registry, build, with_registry, relock, previous)
            finally:
                forget_images(registry)
    return 0


def unchanged(project: Path, env: dict[str, str], log: Path | None, registry: str,
              build: list[str], with_registry: list[str]) -> str:  # fmt: skip
    """Part 1; returns the registry's name of the unchanged project's image."""
    forget_images(registry)
    cold = run(build, project, env, log)
    print(f"unchanged project, cold build (no registry): {cold.seconds:.1f} s ({load()})")
    docker("image", "rm", IMAGE)
    seed = run(with_registry, project, env, log, marks=("docker push",))
    pushed_id = docker("image", "inspect", "--format", "{{.Id}}", IMAGE)
    push_s = seed.seconds - seed.marks.get("docker push", seed.seconds)
    stored = sum(
        f.stat().st_size for f in Path(project.parent, "registry").rglob("*") if f.is_file()
    )
    print(f"  filling the registry: build (layer cache warm) and push {seed.seconds:.1f} s, of "
          f"which the push {push_s:.1f} s; the registry holds {stored / 1e9:.2f} GB ({load()})")  # fmt: skip
    forget_images(registry)
    reused = run(with_registry, project, env, log)
    key_tag = re.search(r":(key-[0-9a-f]{16})", reused.text)
    assert key_tag, "no key tag in the output"
    sizes = layer_sizes(registry, "bench/cuda13", key_tag[1])
    pulled = {m["id"]: m["what"] for line in reused.lines if (m := _PULLED.match(line))}
    got = sum(sizes.get(i, 0) for i, what in pulled.items() if what == "Pull complete")
    had = [i for i, what in pulled.items() if what == "Already exists"]
    same = docker("image", "inspect", "--format", "{{.Id}}", IMAGE) == pushed_id
    built = " build --progress=plain" in reused.text or "#1 [internal]" in reused.text
    print(
        f"unchanged project, engine without the image, with the registry: {reused.seconds:.1f} s = "
        f"{reused.seconds / cold.seconds:.2f}x the cold build (goal 0.5x or less); pulled "
        f"{got / 1e9:.2f} GB compressed in {sum(w == 'Pull complete' for w in pulled.values())} "
        f"layers ({len(had)} already here: the base); image ID equal to the pushed one: {same}; "
        f"a build step ran: {built} ({load()})"
    )
    ref = f"{registry}/bench/cuda13:{key_tag[1]}"
    forget_images(registry)
    floor = run([DOCKER, "pull", "--quiet", ref], project, env, log)
    print(
        f"  the engine's floor: `docker pull` of the same image on the same engine state: "
        f"{floor.seconds:.1f} s ({floor.seconds / cold.seconds:.2f}x; {load()})"
    )
    return ref


def one_dependency(project: Path, env: dict[str, str], log: Path | None, registry: str,
                   build: list[str], with_registry: list[str], relock: list[str],
                   previous: str) -> None:  # fmt: skip
    """Part 2: `previous` is the registry's name of the image before the change."""
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('"tqdm>=4.66"', '"tqdm>=4.66", "tabulate>=0.9"')
    )
    run(relock, project, env, log)
    forget_images(registry)
    cold = run(build, project, env, log)
    print(f"one dependency added, cold build (no registry): {cold.seconds:.1f} s ({load()})")
    forget_images(registry)
    fresh = run([*with_registry, "--no-push"], project, env, log)
    print(
        f"one dependency added, an engine with nothing (a hosted CI runner), the registry's cache: "
        f"{fresh.seconds:.1f} s = {fresh.seconds / cold.seconds:.2f}x the cold build (goal 0.2x "
        f"or less); {steps_said(fresh.text)} ({load()})"
    )
    forget_images(registry)
    pull = run([DOCKER, "pull", "--quiet", previous], project, env, log)
    kept = run(with_registry, project, env, log, marks=("docker push",))
    push_s = kept.seconds - kept.marks.get("docker push", kept.seconds)
    print(
        f"one dependency added, an engine that holds the image before the change (pulled in "
        f"{pull.seconds:.1f} s, not counted) and no builder cache, the registry's cache: "
        f"{kept.seconds:.1f} s = {kept.seconds / cold.seconds:.2f}x the cold build (goal 0.2x or "
        f"less), of which the push {push_s:.1f} s; {steps_said(kept.text)} ({load()})"
    )


def steps_said(text: str) -> str:
    """Whether the torch family's steps were CACHED, and which RUN steps ran."""
    steps = cached_steps(text)
    torch = {s: c for name, (c, _) in steps.items() for s in TORCH_STEPS if name.startswith(s)}
    ran = sorted(name for name, (c, is_run) in steps.items() if is_run and not c)
    every = all(torch.values()) and len(torch) == len(TORCH_STEPS)
    return f"the torch family's steps CACHED: {every} ({', '.join(torch)}); RUN steps run: {ran}"


if __name__ == "__main__":
    raise SystemExit(main())

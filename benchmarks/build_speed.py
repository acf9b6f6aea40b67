"""Build speed and size of the cuda13 image, uv against pip, in one paired run (stand-in base).

    python benchmarks/build_speed.py [--base-image IMAGE] [--ca-cert PATH] [--runs N]
        [--skip-gzip] [--json OUT [--resume]] [--cold-only]

Prints, with the goals of issues 10 and 21:
- the host's `uv pip install` of the same lock into a fresh venv (UV_LINK_MODE=copy,
  UV_COMPILE_BYTECODE=1, uv from the kit's uv-requirements.txt; its cache as it is: warm it first);
- a cold build (`--no-cache`: no layer cache; the download caches, BuildKit cache mounts, stay
  warm) with uv against that host install (goal 2.0x or less) and against the same build with pip
  (goal 0.5x or less), the build steps that took longest (where the time goes);
- the peer: the Dockerfile a user would write by hand (`FROM` the same base; one RUN: a venv and
  `pip install --no-cache-dir` of the torch family's pins, downloads included), built with
  `--no-cache` right after the cold uv build (goal: the uv build 0.7x of it or less);
- the engine's floor: a build whose one step writes the same bytes as the environment's layer
  (`COPY --from` the uv image's /opt/env onto the same base) and nothing else, `--no-cache`: what
  writing the layer and exporting it cost on this engine, with no download, install or check;
  `--cold-only` stops after it;
- a rebuild after editing only the smoke package (goal 3% of the cold uv build or less) and a
  rebuild with nothing changed (goal 2 s or less), both with uv;
- `docker run IMAGE python -c "import torch, torchvision, torchaudio"`, uv image against pip
  image (medians, alternating; goal 1.1x or less);
- the uv image's size against its installed environment (`du -sb /opt/env`; goal 1.05x or less)
  and its compressed size (`docker save IMAGE | gzip`), the figures for targets.toml.

The builds and runs hold the shared engine lock (/tmp/torchenv-engine.lock) from the first cold
build to the last `docker run`, so that the figures are paired (no other build runs between
them); the host install runs before it is taken and the compression after it is released. The
load average is printed with each figure (the machine may be shared). The figures go to --json as
they come; with --resume a run that stopped (a full disk, say) keeps the host install and the cold
uv build it already has (while the uv image it built is still there) and measures the rest. Needs a Docker engine; leaves the tree as it found it
and removes the two images it tagged (torchenv-bench/cuda13-uv:0 and -pip:0).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from torchenv import engine, matrix  # noqa: E402
from torchenv.kit import UV_REQUIREMENTS  # noqa: E402

EDITED = ROOT / "src" / "torchsmoke" / "core.py"
LOCK_FILE = "/tmp/torchenv-engine.lock"
UV_TAG, PIP_TAG = "torchenv-bench/cuda13-uv:0", "torchenv-bench/cuda13-pip:0"
PEER_TAG = "torchenv-bench/cuda13-peer:0"
FLOOR_TAG = "torchenv-bench/cuda13-floor:0"
IMPORT = "import torch, torchvision, torchaudio"
_STEP = re.compile(r"^#(?P<n>\d+) \[(?P<name>[^\]]+)\]")
_DONE = re.compile(r"^#(?P<n>\d+) DONE (?P<s>[\d.]+)s")
_EXPORT = re.compile(r"^#\d+ exporting layers (?P<s>[\d.]+)s done")


@contextlib.contextmanager
def engine_lock():
    with open(LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def timed(argv: list[str], env: dict[str, str] | None = None):
    """(seconds, stdout) of a command that must succeed."""
    start = time.monotonic()
    done = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    elapsed = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(argv)}\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return elapsed, done.stdout


def steps(log: str, top: int = 6) -> list[tuple[str, float]]:
    """The longest BuildKit steps of a --progress=plain log, and the layer export."""
    names, found = {}, []
    for line in log.splitlines():
        if match := _STEP.match(line):
            names[match["n"]] = match["name"]
        elif (match := _DONE.match(line)) and match["n"] in names:
            found.append((names[match["n"]], float(match["s"])))
        elif match := _EXPORT.match(line):
            found.append(("exporting layers", float(match["s"])))
    return sorted(found, key=lambda item: -item[1])[:top]


def host_uv_install(lock_file: Path, ca_cert: str | None) -> float:
    """`uv pip install` of the lock into a fresh host venv; uv itself from the hashed pin."""
    with tempfile.TemporaryDirectory(prefix="torchenv-bench-") as tmp:
        tool, venv = Path(tmp, "uv"), Path(tmp, "env")
        subprocess.run([sys.executable, "-m", "venv", str(tool)], check=True)
        subprocess.run(
            [str(tool / "bin" / "pip"), "install", "-q", "--no-deps", "--require-hashes",
             "-r", str(UV_REQUIREMENTS)],
            check=True, env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
        )  # fmt: skip
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        env = {"UV_LINK_MODE": "copy", "UV_COMPILE_BYTECODE": "1", "SOURCE_DATE_EPOCH": "0"}
        if ca_cert:
            env["SSL_CERT_FILE"] = ca_cert
        seconds, _ = timed(
            [str(tool / "bin" / "uv"), "pip", "install", "-q", "--python", str(venv / "bin/python"),
             "--no-deps", "--require-hashes", "--index-strategy", "unsafe-best-match",
             "-r", str(lock_file)],
            env,
        )  # fmt: skip
        return seconds


def image_id(client: str, image: str) -> str:
    out = subprocess.run([client, "image", "inspect", "--format", "{{.Id}}", image],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return out.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-image", default="torchenv-standin/python:3.11-slim-bookworm")
    parser.add_argument("--ca-cert", default="/etc/ssl/certs/ca-certificates.crt")
    parser.add_argument("--runs", type=int, default=5, help="docker run imports per image")
    parser.add_argument("--skip-gzip", action="store_true", help="no compressed size")
    parser.add_argument("--json", help="also write the figures here, as they come")
    parser.add_argument("--resume", action="store_true", help="keep the figures --json has")
    parser.add_argument("--cold-only", action="store_true",
                        help="the host install, the cold uv build and the peer only")  # fmt: skip
    opts = parser.parse_args()
    eng = engine.detect()
    t = matrix.get("cuda13")
    if not t.pip_lock.exists():
        sys.exit(f"{t.pip_lock.relative_to(ROOT)} is missing: nothing to benchmark")
    ca = opts.ca_cert if Path(opts.ca_cert).exists() else None
    invoke = [sys.executable, "-m", "invoke", "build"]
    args = ["--target", "cuda13", "--base-image", opts.base_image, "--allow-unpinned-base"]
    args += ["--ca-cert", ca] if ca else []
    uv_args = [*args, "--tag", UV_TAG]  # the default installer
    pip_args = [*args, "--installer", "pip", "--tag", PIP_TAG]
    figures: dict[str, object] = {}
    if opts.resume and opts.json and Path(opts.json).exists():
        figures = json.loads(Path(opts.json).read_text())
        print(f"resuming with {figures}", flush=True)

    def note(key: str, value: float, text: str) -> None:
        figures[key] = round(value, 3)
        figures[f"{key}_load"] = load()
        print(f"{text}   [{load()}]", flush=True)
        if opts.json:
            Path(opts.json).write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")

    if "host_uv_install_s" in figures:
        host = float(figures["host_uv_install_s"])  # type: ignore[arg-type]
    else:
        host = host_uv_install(t.pip_lock, ca)
        note("host_uv_install_s", host, f"host uv pip install of the lock: {host:7.1f} s")
    with engine_lock():
        engine_part(eng, t, invoke, uv_args, pip_args, opts, host, note, figures, ca)
    if opts.cold_only:
        with engine_lock():
            subprocess.run([eng.client, "image", "rm", UV_TAG, PEER_TAG], capture_output=True)
        return 0
    if not opts.skip_gzip and shutil.which("gzip"):
        save = subprocess.Popen([eng.client, "save", UV_TAG], stdout=subprocess.PIPE)
        gz = subprocess.Popen(["gzip", "-c"], stdin=save.stdout, stdout=subprocess.PIPE)
        assert save.stdout is not None and gz.stdout is not None
        save.stdout.close()
        packed = sum(len(chunk) for chunk in iter(lambda: gz.stdout.read(1 << 20), b""))
        if save.wait() != 0 or gz.wait() != 0:
            sys.exit("docker save | gzip failed")
        note("gzip_bytes", packed, f"docker save | gzip: {packed / 1e9:.2f} GB")
    with engine_lock():
        subprocess.run([eng.client, "image", "rm", UV_TAG, PIP_TAG, PEER_TAG], capture_output=True)
    return 0


PEER_DOCKERFILE = """\
FROM {base}
RUN --mount=type=secret,id=ca,mode=0444 \\
    if [ -f /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \\
    && python3 -m venv /opt/v && /opt/v/bin/pip install --no-cache-dir {pins}
"""


def scratch_build(eng, dockerfile: str, tag: str, extra: list[str] | None = None) -> float:
    """Seconds of a `--no-cache` build of `dockerfile` alone, in an empty context, as `tag`."""
    with tempfile.TemporaryDirectory(prefix="torchenv-bench-") as tmp:
        Path(tmp, "Dockerfile").write_text(dockerfile)
        argv = [eng.client, "build", "--no-cache", "--progress=plain", "--tag", tag, *(extra or [])]
        seconds, _ = timed([*argv, tmp], {"DOCKER_BUILDKIT": "1"})
    return seconds


def peer_build(eng, t, base: str, ca: str | None) -> float:
    """The hand-written Dockerfile's `--no-cache` build (see the module's docstring)."""
    pins = " ".join(f"{n}=={getattr(t, n)}" for n in ("torch", "torchvision", "torchaudio"))
    secret = ["--secret", f"id=ca,src={ca}"] if ca else []
    return scratch_build(eng, PEER_DOCKERFILE.format(base=base, pins=pins), PEER_TAG, secret)


FLOOR_DOCKERFILE = """\
FROM {base}
COPY --from={image} /opt/env /opt/env
"""


def floor_build(eng, base: str) -> float:
    """The engine's floor (see the module's docstring): the uv image's environment, copied."""
    seconds = scratch_build(eng, FLOOR_DOCKERFILE.format(base=base, image=UV_TAG), FLOOR_TAG)
    subprocess.run([eng.client, "image", "rm", FLOOR_TAG], capture_output=True, check=False)
    return seconds


def engine_part(eng, t, invoke, uv_args, pip_args, opts, host, note, figures, ca) -> None:
    """The builds and the runs, paired (the caller holds the engine lock)."""
    runs = opts.runs

    def longest(label: str, log: str) -> None:
        print(f"  longest steps of the cold {label} build:")
        for name, seconds in steps(log):
            print(f"    {seconds:6.1f} s  {name[:90]}", flush=True)

    has_uv = subprocess.run([eng.client, "image", "inspect", UV_TAG], capture_output=True)
    if "cold_uv_s" in figures and has_uv.returncode == 0:
        cold_uv = float(figures["cold_uv_s"])
    else:
        cold_uv, log_uv = timed([*invoke, *uv_args, "--no-cache"])
        note("cold_uv_s", cold_uv, f"cold build, uv:  {cold_uv:7.1f} s  ({cold_uv / host:.2f}x "
             f"the host install; goal 2.0x)")  # fmt: skip
        longest("uv", log_uv)
    peer = peer_build(eng, t, opts.base_image, ca)
    note("peer_s", peer, f"the hand-written Dockerfile, --no-cache: {peer:7.1f} s; torchenv's "
         f"cold uv build is {cold_uv / peer:.2f}x of it (goal 0.7x), {cold_uv / host:.2f}x the "
         "host install (goal 2.0x)")  # fmt: skip
    floor = floor_build(eng, opts.base_image)
    note("floor_s", floor, f"the engine's floor, /opt/env's bytes copied into one layer: "
         f"{floor:7.1f} s = {floor / host:.2f}x the host install; the rest of the cold uv build: "
         f"{cold_uv - floor:.1f} s")  # fmt: skip
    if opts.cold_only:
        return
    cold_pip, log_pip = timed([*invoke, *pip_args, "--no-cache"])
    note("cold_pip_s", cold_pip, f"cold build, pip: {cold_pip:7.1f} s  (uv/pip "
         f"{cold_uv / cold_pip:.2f}x; goal 0.5x)")  # fmt: skip
    figures["uv_over_pip"] = round(cold_uv / cold_pip, 3)
    longest("pip", log_pip)

    original = EDITED.read_text()
    try:
        EDITED.write_text(original + f"\n# benchmark edit {time.time()}\n")
        smoke_edit, _ = timed([*invoke, *uv_args])
    finally:
        EDITED.write_text(original)
    note("smoke_edit_s", smoke_edit, f"rebuild after a smoke-package edit: {smoke_edit:5.1f} s  "
         f"({smoke_edit / cold_uv:.1%} of cold; goal 3%)")  # fmt: skip
    timed([*invoke, *uv_args])  # back to the committed source
    noop = [timed([*invoke, *uv_args])[0] for _ in range(3)]
    note("noop_s", statistics.median(noop), f"rebuild with nothing changed: median "
         f"{statistics.median(noop):.2f} s, best {min(noop):.2f} s (goal 2 s)")  # fmt: skip

    uv_image, pip_image = image_id(eng.client, UV_TAG), image_id(eng.client, PIP_TAG)
    times: dict[str, list[float]] = {"uv": [], "pip": []}
    for _ in range(runs):
        for label, image in (("uv", uv_image), ("pip", pip_image)):
            argv = [eng.client, "run", "--rm", "--network=none", image, "python", "-c", IMPORT]
            times[label].append(timed(argv)[0])
    uv_run, pip_run = statistics.median(times["uv"]), statistics.median(times["pip"])
    note("import_uv_s", uv_run, f"docker run ... import torch, torchvision, torchaudio: uv "
         f"{uv_run:.2f} s, pip {pip_run:.2f} s (medians of {runs}): {uv_run / pip_run:.2f}x "
         "(goal 1.1x)")  # fmt: skip
    figures["import_pip_s"] = round(pip_run, 3)

    size = json.loads(subprocess.run([eng.client, "image", "inspect", uv_image],
                                     capture_output=True, text=True, check=True).stdout)[0]["Size"]  # fmt: skip
    du = subprocess.run([eng.client, "run", "--rm", "--network=none", uv_image, "du", "-sb",
                         "/opt/env"], capture_output=True, text=True, check=True).stdout  # fmt: skip
    env_bytes = int(du.split()[0])
    note("image_bytes", size, f"uv image {size / 1e9:.2f} GB, installed environment "
         f"{env_bytes / 1e9:.2f} GB: {size / env_bytes:.3f}x (goal 1.05x)")  # fmt: skip
    figures["env_bytes"] = env_bytes


if __name__ == "__main__":
    raise SystemExit(main())

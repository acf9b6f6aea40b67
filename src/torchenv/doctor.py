"""`invoke doctor`: check that this host can build and run the torchenv targets.

Each check gives a Row (name, status, detail, fix). Every probe goes through a Runner and every
file read through `read_file`, so that tests replace the host with fakes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from torchbuild import versions
from torchenv import engine, hints, matrix
from torchenv.errors import UserError
from torchenv.matrix import Target
from torchenv.proxy import PROXY_VARS
from torchenv.runner import NOT_FOUND, Runner, subprocess_runner

Status = Literal["ok", "warn", "fail", "skip"]

GB = 1_000_000_000  # decimal, as `docker images` prints sizes
MiB = 1024 * 1024
GiB = 1024 * MiB

# Installed image size per variant, in GB. Estimates until measured (the lead replaces them):
# - cu130: measured here, torch 2.11.0 + torchvision 0.26.0 + torchaudio 2.11.0 from PyPI (the
#   cu130 build, with its nvidia-*/cuda-* wheels) on a small Debian base gave a 5.3 GB image;
#   rounded up to 6.
# - cu128: the same libraries for CUDA 12 (cuDNN 9, cuBLAS, cuSPARSELt, NCCL, ...) are of the same
#   order of size as the CUDA 13 ones: 6.
# - cu118: torch 2.7.1+cu118 also takes its CUDA libraries from nvidia-*-cu11 wheels; somewhat
#   smaller libraries, but an older torch: taken as 6 too.
# - cpu: python slim base (~0.15 GB) + CPU torch (~0.7-0.9 GB installed) + torchvision/torchaudio
#   (~0.1 GB) + the venv and tools: about 1.2 GB, rounded up to 2.
IMAGE_GB = {"cpu": 2.0, "cu118": 6.0, "cu128": 6.0, "cu130": 6.0}
UNKNOWN_CUDA_GB = max(IMAGE_GB.values())  # a variant not listed above (cu126, cu132, ...)
UNKNOWN_CPU_GB = IMAGE_GB["cpu"]
# A build needs about twice the image: BuildKit holds the downloaded wheels (pip's cache mount),
# the unpacked layer in its snapshot and the committed image at the same time.
BUILD_HEADROOM = 2

SHM_DEFAULT = "64 MB"  # what Docker gives a container's /dev/shm without --shm-size / --ipc=host
SHM_ENOUGH = 1 * GiB  # a daemon-wide default-shm-size at least this large is fine for DataLoaders
DAEMON_JSON = "/etc/docker/daemon.json"
FALLBACK_ROOTS = ("/var/lib/docker", "/")

# Where pip gets a CA bundle, in the order it prefers them: PIP_CERT, pip config's cert, then
# the variables requests and Python's ssl read.
CA_VARS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
PIP_CONFIG_LIST = (sys.executable, "-m", "pip", "config", "list")
NVIDIA_SMI = ("nvidia-smi", "--query-gpu=driver_version,name", "--format=csv,noheader")
NVIDIA_TOOLS = ("nvidia-ctk", "nvidia-container-cli")
TOOLKIT_FIX = (
    "install the NVIDIA Container Toolkit (nvidia-container-toolkit), then "
    "sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker"
)
PROBE_TIMEOUT = 30.0


@dataclass(frozen=True)
class Row:
    name: str
    status: Status
    detail: str
    fix: str = ""


def read_text(path: str) -> str | None:
    """The file's text, or None when it is missing or unreadable."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def image_gb(target: Target) -> float:
    """The measured size from targets.toml (image_size_gb) where there is one, else the estimate."""
    if target.image_size_gb:
        return target.image_size_gb
    default = UNKNOWN_CUDA_GB if target.is_cuda else UNKNOWN_CPU_GB
    return IMAGE_GB.get(target.variant, default)


# --- Docker: daemon, builder, disk, NVIDIA runtime ---------------------------------------------


def _docker_rows(
    runner: Runner, clients: Sequence[str] | None
) -> tuple[list[Row], engine.ClientProbe | None]:
    """The daemon and BuildKit rows, by engine.detect's own steps; and a client that reached it."""
    probes = engine.probe_clients(runner, clients)
    reached: list[engine.ClientProbe] = []
    try:
        reached = engine.require_daemon(probes)
        via = f"{reached[0].client} {reached[0].client_version}"
        daemon = Row("Docker daemon", "ok", f"engine {reached[0].server_version} (client {via})")
    except engine.EngineError as exc:
        daemon = Row("Docker daemon", "fail", exc.detail, exc.fix)
    if not any(p.client_version is not None for p in probes):
        return [daemon, Row("BuildKit", "skip", "no docker client to check")], None
    try:
        # With the daemon up, choose as detect() does; with it down, still say what would build.
        probe, builder = engine.pick_builder(reached or probes, runner)
        found = engine.Engine(probe.client, probe.client_version or "", "", builder)
        prefix, env = found.build_prefix()
        command = " ".join([*(f"{k}={v}" for k, v in env.items()), *prefix])
        kind = "buildx plugin" if builder == "buildx" else "BuildKit built into the client"
        buildkit = Row("BuildKit", "ok", f"{command} ({kind}, {probe.client_version})")
    except engine.EngineError as exc:
        buildkit = Row("BuildKit", "fail", exc.detail, exc.fix)
    return [daemon, buildkit], (reached[0] if reached else None)


def _docker_info(runner: Runner, client: engine.ClientProbe | None) -> dict[str, Any]:
    if client is None:
        return {}
    result = runner([client.client, "info", "--format", "{{json .}}"], timeout=PROBE_TIMEOUT)
    try:
        info = json.loads(result.stdout) if result.ok else {}
    except json.JSONDecodeError:
        return {}
    return info if isinstance(info, dict) else {}


def _disk_row(
    targets: Sequence[Target],
    info: Mapping[str, Any],
    environ: Mapping[str, str],
    disk_usage: Callable[[str], tuple[int, int, int]],
) -> Row:
    if not targets:
        return Row("free disk", "skip", "no target selected")
    host = environ.get("DOCKER_HOST", "")
    if host and not host.startswith("unix://"):
        return Row("free disk", "skip", f"the daemon (DOCKER_HOST={host}) is not this machine")
    free = where = None
    for path in (info.get("DockerRootDir"), *FALLBACK_ROOTS):
        if not path:
            continue
        try:
            free, where = disk_usage(path)[2], path
            break
        except OSError:
            continue
    if free is None:
        return Row("free disk", "skip", "cannot read free space of Docker's data root")
    largest = max(targets, key=image_gb)
    need_one = BUILD_HEADROOM * image_gb(largest)
    need_all = sum(BUILD_HEADROOM * image_gb(t) for t in targets)
    detail = (
        f"{free / GB:.1f} GB free in {where}; the largest build ({largest.name}) needs "
        f"~{need_one:g} GB ({BUILD_HEADROOM} x its ~{image_gb(largest):g} GB image)"
    )
    if len(targets) > 1:
        detail += f", all {len(targets)} targets ~{need_all:g} GB"
    fix = (
        "free space in Docker's data root (docker builder prune drops build cache; "
        "docker image rm old images) or move its data-root to a larger disk"
    )
    if free < need_one * GB:
        return Row("free disk", "fail", detail, fix)
    if free < need_all * GB:
        return Row("free disk", "warn", detail, "build fewer targets at once, or " + fix)
    return Row("free disk", "ok", detail)


PRUNE_HINT = (
    "docker builder prune drops the unused build cache (--filter until=72h keeps the last "
    "3 days; the next torchenv build then downloads and installs its wheels again)"
)


def _build_cache_row(runner: Runner, client: engine.ClientProbe | None) -> Row:
    """The size of BuildKit's cache (`docker system df`), and how to prune it."""
    if client is None:
        return Row("build cache", "skip", "no Docker daemon to ask")
    done = runner([client.client, "system", "df", "--format", "{{json .}}"], timeout=120)
    for line in done.stdout.splitlines() if done.ok else []:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and row.get("Type") == "Build Cache":
            size, free = row.get("Size", "?"), row.get("Reclaimable", "?")
            detail = f"{size} ({free} reclaimable, {row.get('TotalCount', '?')} records)"
            return Row("build cache", "ok", f"{detail}; to prune it: {PRUNE_HINT}")
    why = done.first_error_line() if not done.ok else "no Build Cache row"
    return Row("build cache", "skip", f"docker system df gave no build cache size ({why})")


def _runtime_row(runner: Runner, info: Mapping[str, Any], gpu: bool, require_gpu: bool) -> Row:
    name = "NVIDIA container runtime"
    if engine.has_nvidia_runtime(info.get("Runtimes")):
        return Row(name, "ok", "the Docker daemon has the 'nvidia' runtime")
    for tool in NVIDIA_TOOLS:
        if runner([tool, "--version"], timeout=PROBE_TIMEOUT).returncode != NOT_FOUND:
            return Row(name, "ok", f"{tool} found (docker run --gpus uses it)")
    detail = "not found (no 'nvidia' runtime in docker info, no nvidia-ctk/nvidia-container-cli)"
    if gpu or require_gpu:
        return Row(name, "fail", detail + ": containers cannot see the GPU", TOOLKIT_FIX)
    return Row(name, "skip", detail + "; needed only to give containers a GPU", TOOLKIT_FIX)


# --- NVIDIA driver against each CUDA target ----------------------------------------------------


@dataclass(frozen=True)
class Gpu:
    driver: str | None  # None: no usable driver
    names: tuple[str, ...] = ()
    why: str = ""  # why there is no driver


def probe_gpu(runner: Runner) -> Gpu:
    result = runner(NVIDIA_SMI, timeout=PROBE_TIMEOUT)
    if result.returncode == NOT_FOUND:
        return Gpu(None, why="nvidia-smi not found")
    if not result.ok:
        return Gpu(None, why=f"nvidia-smi failed: {result.first_error_line()}")
    rows = [line.split(",", 1) for line in result.stdout.splitlines() if line.strip()]
    if not rows:
        return Gpu(None, why="nvidia-smi lists no GPU")
    names = tuple(row[1].strip() if len(row) > 1 else "GPU" for row in rows)
    return Gpu(rows[0][0].strip(), names)


def _driver_rows(
    cuda_targets: Sequence[Target], gpu: Gpu, require_gpu: bool, all_cuda: Sequence[Target]
) -> list[Row]:
    rows = []
    for target in cuda_targets:
        name = f"driver for {target.name}"
        minimum = target.min_driver or "0"
        if gpu.driver is None:
            rows.append(
                Row(
                    name,
                    "fail" if require_gpu else "warn",
                    f"no NVIDIA driver/GPU found ({gpu.why}): CUDA targets build fine but "
                    "their GPU checks will skip",
                    f"to use a GPU install driver >= {minimum} (CUDA {target.cuda})",
                )
            )
            continue
        gpus = ", ".join(sorted(set(gpu.names)))
        if versions.at_least(gpu.driver, minimum):
            rows.append(
                Row(name, "ok", f"driver {gpu.driver} >= {minimum} (CUDA {target.cuda}); {gpus}")
            )
            continue
        fits = [t.name for t in all_cuda if versions.at_least(gpu.driver, t.min_driver or "0")]
        other = f", or use {' / '.join(fits)}" if fits else ""
        rows.append(
            Row(
                name,
                "fail",
                f"driver {gpu.driver} < {minimum} that CUDA {target.cuda} needs: "
                f"its containers will not start on {gpus}",
                f"upgrade the NVIDIA driver to >= {minimum}{other}",
            )
        )
    return rows


# --- container shared memory, proxies, CA --------------------------------------------------------


def parse_size(text: str | int) -> int | None:
    """Bytes in a Docker size ("2g", "64m", "1GB", "512MiB", 67108864); None when malformed."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?\s*", str(text), re.IGNORECASE)
    if not match:
        return None
    power = " kmgtp".index(match.group(2).lower() or " ")
    return int(float(match.group(1)) * 1024**power)


def _shm_row(read_file: Callable[[str], str | None]) -> Row:
    name = "container /dev/shm"
    fix = "torchenv passes --shm-size for you; for plain docker run use --shm-size=2g or --ipc=host"
    why = "PyTorch DataLoader workers share batches through /dev/shm"
    text = read_file(DAEMON_JSON)
    if text is None:
        return Row(
            name, "warn", f"Docker's default {SHM_DEFAULT} ({DAEMON_JSON} absent); {why}", fix
        )
    try:
        setting = json.loads(text).get("default-shm-size")
    except (json.JSONDecodeError, AttributeError):
        return Row(name, "warn", f"{DAEMON_JSON} is not a JSON object; default {SHM_DEFAULT}", fix)
    if setting is None:
        return Row(
            name, "warn", f"Docker's default {SHM_DEFAULT} (no default-shm-size); {why}", fix
        )
    size = parse_size(setting)
    if size is None:
        return Row(
            name, "warn", f"default-shm-size {setting!r} in {DAEMON_JSON} is unreadable", fix
        )
    if size < SHM_ENOUGH:
        return Row(name, "warn", f"default-shm-size {setting} in {DAEMON_JSON}; {why}", fix)
    return Row(name, "ok", f"default-shm-size {setting} in {DAEMON_JSON}")


def _redact(url: str) -> str:
    """The proxy URL without its password, query or fragment."""
    from torchenv.credentials import redacted

    return redacted(url)


def _is_loopback(url: str) -> bool:
    try:
        host = urlsplit(url if "://" in url else f"http://{url}").hostname or ""
    except ValueError:
        return False
    return host == "localhost" or host.startswith("127.") or host == "::1"


def _proxy_row(environ: Mapping[str, str]) -> Row:
    found = {}
    for var in PROXY_VARS:
        for key in (var, var.lower()):
            if environ.get(key):
                found[key] = environ[key]
    if not found:
        return Row(
            "proxy", "ok", "no HTTP(S)_PROXY/NO_PROXY set: builds reach the network directly"
        )
    shown = ", ".join(
        f"{k}={v if k.lower() == 'no_proxy' else _redact(v)}" for k, v in found.items()
    )
    detail = f"{shown}; torchenv passes these to builds as build args"
    local = [k for k, v in found.items() if k.lower() != "no_proxy" and _is_loopback(v)]
    if local:
        return Row(
            "proxy",
            "warn",
            f"{detail}, but {', '.join(local)} points at localhost, which in a build "
            "container is the container itself",
            "point the proxy at an address containers can reach (e.g. the docker0 bridge "
            "172.17.0.1), or run the proxy there",
        )
    return Row("proxy", "ok", detail)


def _pip_config_certs(runner: Runner) -> list[tuple[str, str]]:
    result = runner(PIP_CONFIG_LIST, timeout=PROBE_TIMEOUT)
    certs = []
    for line in result.stdout.splitlines() if result.ok else []:
        match = re.fullmatch(r"\s*(\S*?)\.cert\s*=\s*'?(.*?)'?\s*", line)
        if match and not match.group(1).startswith(":env:"):  # :env: is PIP_CERT, seen below
            certs.append((f"pip config {match.group(1)}.cert", match.group(2)))
    return certs


def _ca_row(
    runner: Runner, environ: Mapping[str, str], read_file: Callable[[str], str | None]
) -> Row:
    sources = [("PIP_CERT", environ.get("PIP_CERT", ""))]
    sources += _pip_config_certs(runner)
    sources += [(var, environ.get(var, "")) for var in CA_VARS]
    by_path: dict[str, list[str]] = {}
    for source, path in sources:
        if path:
            by_path.setdefault(path, []).append(source)
    if not by_path:
        detail = "pip uses its default CA bundle (no PIP_CERT, pip config cert, "
        return Row("CA certificates", "ok", detail + "REQUESTS_CA_BUNDLE or SSL_CERT_FILE)")
    path = next(iter(by_path))  # pip's own setting first: the one pip here uses
    said = "; ".join(f"{p} ({', '.join(s)})" for p, s in by_path.items())
    if read_file(path) is None:
        fix = f"fix or unset the setting that names {path}"
        return Row("CA certificates", "warn", f"CA bundle set but missing: {said}", fix)
    return Row(
        "CA certificates",
        "warn",
        f"pip here trusts {said}: behind a TLS-inspecting proxy, pip in a build needs it too",
        f"build with invoke build --ca-cert {path} (passed as a BuildKit secret, never stored "
        "in a layer)",
    )


# --- the images a build starts from -------------------------------------------------------------


def image_row(runner: Runner, client: engine.ClientProbe | None, name: str, ref: str) -> Row:
    """Can a build have `ref`: in the engine already, or on a registry that answers?"""
    if client is None:
        return Row(name, "skip", f"{ref}: no Docker daemon to ask")
    if engine.inspect_image(client.client, ref, runner).ok:
        return Row(name, "ok", f"{ref} is in the engine")
    remote = runner([client.client, "manifest", "inspect", ref], timeout=60)
    if remote.ok:
        return Row(name, "ok", f"{ref} is on its registry (the first build pulls it)")
    why = remote.first_error_line()
    return Row(
        name, "fail", f"{ref} is not in the engine and its registry did not answer ({why})",
        hints.image_fix(ref),
    )  # fmt: skip


# --- putting it together -------------------------------------------------------------------------


def run_checks(
    runner: Runner = subprocess_runner,
    targets: Iterable[Target] | None = None,
    require_gpu: bool = False,
    read_file: Callable[[str], str | None] = read_text,
    disk_usage: Callable[[str], tuple[int, int, int]] = shutil.disk_usage,
    environ: Mapping[str, str] | None = None,
    clients: Sequence[str] | None = None,
    images: Mapping[str, str] | None = None,
) -> list[Row]:
    """All host checks for `targets` (default: every target in the matrix), in display order.

    `images` names the images a build starts from ({"base image": ref, ...}); by default the
    targets' base images.
    """
    targets = list(matrix.load().values() if targets is None else targets)
    environ = os.environ if environ is None else environ
    cuda_targets = [t for t in targets if t.is_cuda]
    rows, client = _docker_rows(runner, clients)
    info = _docker_info(runner, client)
    rows.append(_disk_row(targets, info, environ, disk_usage))
    if images is None:
        refs = {t.name: t.base_ref for t in targets}
        single = len(set(refs.values())) == 1
        images = {"base image" if single else f"base image ({n})": r for n, r in refs.items()}
    rows += [image_row(runner, client, name, ref) for name, ref in images.items()]
    rows.append(_build_cache_row(runner, client))
    if cuda_targets or require_gpu:
        gpu = probe_gpu(runner)
        rows.append(_runtime_row(runner, info, gpu.driver is not None, require_gpu))
        # Suggest any CUDA target of the matrix that an old driver still runs.
        known = {t.name: t for t in (*matrix.load().values(), *cuda_targets) if t.is_cuda}
        rows += _driver_rows(cuda_targets, gpu, require_gpu, list(known.values()))
    rows += [_shm_row(read_file), _proxy_row(environ), _ca_row(runner, environ, read_file)]
    return rows


def render(rows: Sequence[Row]) -> str:
    """A plain aligned table: check, status, detail; the fix on its own line below."""
    width = max([len("check"), *(len(r.name) for r in rows)])
    lines = [f"{'check':<{width}}  {'status':<6}  detail"]
    for row in rows:
        lines.append(f"{row.name:<{width}}  {row.status:<6}  {row.detail}")
        if row.fix and row.status != "ok":
            lines.append(f"{'':<{width}}  {'':<6}  fix: {row.fix}")
    counts = {s: sum(r.status == s for r in rows) for s in ("ok", "warn", "fail", "skip")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(lines)


def exit_code(rows: Iterable[Row]) -> int:
    return 1 if any(r.status == "fail" for r in rows) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="torchenv-doctor", description=__doc__.splitlines()[0])
    parser.add_argument("--target", action="append", help="check only this target (repeatable)")
    parser.add_argument("--require-gpu", action="store_true", help="fail without a usable GPU")
    args = parser.parse_args(argv)
    try:
        targets = [matrix.get(n) for n in args.target] if args.target else None
        rows = run_checks(targets=targets, require_gpu=args.require_gpu)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render(rows))
    return exit_code(rows)


if __name__ == "__main__":
    sys.exit(main())

"""The doctor's checks of the engine (`invoke doctor`, torchenv.doctor.checkup puts them together): the
daemon and BuildKit (by engine.detect's own steps), disk for the images, the build cache, the
NVIDIA runtime, and whether a build can have its base images. Also the Row every check gives.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from torchenv import engine, hints
from torchenv.engine import clients as probes_of
from torchenv.matrix import Target
from torchenv.runner import NOT_FOUND, Runner

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

FALLBACK_ROOTS = ("/var/lib/docker", "/")

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


def docker_rows(
    runner: Runner, clients: Sequence[str] | None
) -> tuple[list[Row], probes_of.ClientProbe | None]:
    """The daemon and BuildKit rows, by engine.detect's own steps; and a client that reached it."""
    probes = probes_of.probe_clients(runner, clients)
    reached: list[probes_of.ClientProbe] = []
    try:
        reached = probes_of.require_daemon(probes)
        via = f"{reached[0].client} {reached[0].client_version}"
        daemon = Row("Docker daemon", "ok", f"engine {reached[0].server_version} (client {via})")
    except engine.EngineError as exc:
        daemon = Row("Docker daemon", "fail", exc.detail, exc.fix)
    if not any(p.client_version is not None for p in probes):
        return [daemon, Row("BuildKit", "skip", "no docker client to check")], None
    try:
        # With the daemon up, choose as detect() does; with it down, still say what would build.
        probe, builder = probes_of.pick_builder(reached or probes, runner)
        found = engine.Engine(probe.client, probe.client_version or "", "", builder)
        prefix, env = found.build_prefix()
        command = " ".join([*(f"{k}={v}" for k, v in env.items()), *prefix])
        kind = "buildx plugin" if builder == "buildx" else "BuildKit built into the client"
        buildkit = Row("BuildKit", "ok", f"{command} ({kind}, {probe.client_version})")
    except engine.EngineError as exc:
        buildkit = Row("BuildKit", "fail", exc.detail, exc.fix)
    return [daemon, buildkit], (reached[0] if reached else None)


def docker_info(runner: Runner, client: probes_of.ClientProbe | None) -> dict[str, Any]:
    if client is None:
        return {}
    result = runner([client.client, "info", "--format", "{{json .}}"], timeout=PROBE_TIMEOUT)
    try:
        info = json.loads(result.stdout) if result.ok else {}
    except json.JSONDecodeError:
        return {}
    return info if isinstance(info, dict) else {}


def disk_row(
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


def build_cache_row(runner: Runner, client: probes_of.ClientProbe | None) -> Row:
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


def runtime_row(runner: Runner, info: Mapping[str, Any], gpu: bool, require_gpu: bool) -> Row:
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


# --- the images a build starts from -------------------------------------------------------------


def image_row(runner: Runner, client: probes_of.ClientProbe | None, name: str, ref: str) -> Row:
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

"""The engine: everything torchenv does with Docker goes through this package or torchenv.runner.

One way to reach Docker for each concern:
- Detection (`clients`): which client builds with BuildKit, whether the daemon answers, whether it
  has the NVIDIA runtime: the docker CLI, through torchenv.runner.Runner.
- Builds, shell, export/save, clean, livescan: the docker CLI through the Runner (their modules
  build argv; the Runner runs it), because the user sees and can rerun those command lines.
- Containers and images the kit drives itself (smoke, multi-node, verify, publish): the docker SDK
  (`docker_sdk_client`, `containers.tracked` for one container, `containers.Group` for several
  and their network, `images.get_image`); `images` also answers for the CLI side (ID, dangling).
- The NVIDIA runtime: one probe, `gpu_runtime`, asked through the CLI or the SDK client the
  caller holds, with one rule (`has_nvidia_runtime`, which doctor applies to its `docker info`).
- `registry`: pulling, pushing and naming images on a registry for builds that reuse them by
  content (the command lines `invoke build --registry --dry-run` prints), and the engine's
  platform;
- `labels`: what torchenv puts on what it makes, and where a built image keeps its records;
  `inventory`: what torchenv made, found by those labels; `interrupts`: SIGTERM as Ctrl-C.
- The engine's own queries and chores (inspect, tag, rm, pull, a registry's digest, copying
  files out of a created container) are written here; the jobs keep only the command lines the
  user sees and can rerun (build, run, save).

Outside this package nothing imports `docker` or `subprocess` except torchenv.runner
(tests/torchenv/test_layout.py checks it).
"""

from __future__ import annotations

from torchenv.engine.clients import (
    DAEMON_FIX,
    ClientProbe,
    Engine,
    EngineError,
    detect,
    docker_sdk_client,
    for_dry_run,
    gpu_runtime,
    has_nvidia_runtime,
)
from torchenv.engine.images import ImageNotBuilt, image_exists, inspect_image

__all__ = [
    "DAEMON_FIX",
    "ClientProbe",
    "Engine",
    "EngineError",
    "ImageNotBuilt",
    "detect",
    "docker_sdk_client",
    "for_dry_run",
    "gpu_runtime",
    "has_nvidia_runtime",
    "image_exists",
    "inspect_image",
]

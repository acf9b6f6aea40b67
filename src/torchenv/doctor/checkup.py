"""`invoke doctor`: check that this host can build and run the torchenv targets.

Each check gives a Row (name, status, detail, fix). Every probe goes through a Runner and every
file read through `read_file`, so that tests replace the host with fakes. The checks of the
engine are in torchenv.doctor.engine_checks, those of the host in torchenv.doctor.host_checks; this module puts
them in display order and renders the table.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence

from torchenv import matrix
from torchenv.doctor import gpufit
from torchenv.doctor.engine_checks import (
    GB,
    Row,
    build_cache_row,
    disk_row,
    docker_info,
    docker_rows,
    image_row,
    read_text,
    runtime_row,
)
from torchenv.doctor.host_checks import (
    PIP_CONFIG_LIST,
    ca_row,
    driver_rows,
    fit_rows,
    parse_size,
    probe_gpu,
    proxy_row,
    shm_row,
)
from torchenv.matrix import Target
from torchenv.runner import Runner, subprocess_runner

__all__ = [
    "GB",
    "PIP_CONFIG_LIST",
    "Row",
    "exit_code",
    "parse_size",
    "probe_gpu",
    "render",
    "run_checks",
]


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
    ca_cert: str | None = None,
) -> list[Row]:
    """All host checks for `targets` (default: every target in the matrix), in display order.

    `images` names the images a build starts from ({"base image": ref, ...}); by default the
    targets' base images. `ca_cert`: the CA bundle builds are given (the build's configuration).
    """
    targets = list(matrix.load().values() if targets is None else targets)
    environ = os.environ if environ is None else environ
    cuda_targets = [t for t in targets if t.is_cuda]
    rows, client = docker_rows(runner, clients)
    info = docker_info(runner, client)
    rows.append(disk_row(targets, info, environ, disk_usage))
    if images is None:
        refs = {t.name: t.base_ref for t in targets}
        single = len(set(refs.values())) == 1
        images = {"base image" if single else f"base image ({n})": r for n, r in refs.items()}
    rows += [image_row(runner, client, name, ref) for name, ref in images.items()]
    rows.append(build_cache_row(runner, client))
    if cuda_targets or require_gpu:
        gpu = probe_gpu(runner)
        rows.append(runtime_row(runner, info, gpu.driver is not None, require_gpu))
        # Suggest any CUDA target of the matrix that an old driver still runs.
        known = {t.name: t for t in (*matrix.load().values(), *cuda_targets) if t.is_cuda}
        rows += driver_rows(cuda_targets, gpu, require_gpu, list(known.values()))
        rows += fit_rows(cuda_targets, gpufit.probe(runner), list(known.values()))
    rows += [shm_row(read_file), proxy_row(environ), ca_row(runner, environ, read_file, ca_cert)]
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

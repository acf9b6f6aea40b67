"""Whether a target's torch has kernels for this host's GPUs, before a run fails on them.

Each CUDA build of torch carries kernels for a list of architectures (targets.toml's
`cuda_archs`, measured in the image; the build also records the image's own list in the label
`io.torchenv.cuda-archs`, engine.labels.CUDA_ARCHS). A GPU outside that list fails at the first kernel with "no kernel image
is available for execution on the device". `torchbuild.archs` holds CUDA's rules (the smoke
suite's `cuda` check applies the same); this module asks `nvidia-smi` for the host's GPUs and says,
per target, whether it fits, and if not which target does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from torchbuild import archs
from torchenv.errors import UserError
from torchenv.matrix import Target
from torchenv.runner import NOT_FOUND, Runner, subprocess_runner

QUERY = ["nvidia-smi", "--query-gpu=index,name,compute_cap", "--format=csv,noheader"]

PROBE_TIMEOUT = 30.0


@dataclass(frozen=True)
class HostGpu:
    index: str
    name: str
    capability: str  # "8.6"

    def __str__(self) -> str:
        return f"GPU {self.index} {self.name}"


def parse_query(text: str) -> list[HostGpu]:
    """The rows of `nvidia-smi --query-gpu=index,name,compute_cap --format=csv,noheader`; rows
    without a readable capability (an old driver prints [N/A]) are left out."""
    gpus = []
    for line in text.splitlines():
        parts = [part.strip() for part in line.rsplit(",", 1)]
        head = parts[0].split(",", 1) if len(parts) == 2 else []
        if len(head) != 2:
            continue
        try:
            archs.parse_capability(parts[1])
        except ValueError:
            continue
        gpus.append(HostGpu(head[0].strip(), head[1].strip(), parts[1]))
    return gpus


def probe(runner: Runner) -> list[HostGpu]:
    """This host's GPUs; empty when there is no nvidia-smi or it fails (no driver, no GPU)."""
    result = runner(QUERY, timeout=PROBE_TIMEOUT)
    if result.returncode == NOT_FOUND or not result.ok:
        return []
    return parse_query(result.stdout)


@dataclass(frozen=True)
class Fit:
    target: str
    status: Literal["ok", "fail", "skip"]  # skip: nothing to compare
    detail: str
    fix: str = ""


def fit(target: Target, gpus: Sequence[HostGpu], others: Sequence[Target]) -> Fit:
    """One target against the host's GPUs; `others` are the targets to suggest instead."""
    if not target.is_cuda:
        return Fit(target.name, "skip", "CPU target: no GPU kernels")
    if not gpus:
        return Fit(target.name, "skip", "no GPU found here (nvidia-smi): nothing to compare")
    if not target.cuda_archs:
        return Fit(
            target.name, "skip", "its architectures are not measured yet (cuda_archs in "
            "targets.toml)", f"build it, then read them: invoke smoke --target {target.name} --args '--only env'",
        )  # fmt: skip
    missing = [g for g in gpus if not archs.fits(target.cuda_archs, g.capability)]
    if not missing:
        names = ", ".join(f"{g} ({archs.sm_name(g.capability)})" for g in gpus)
        return Fit(target.name, "ok", f"kernels for {names}")
    line = "; ".join(
        str(archs.misfit(target.cuda_archs, g.capability, str(g))) for g in missing[:2]
    )
    instead = [
        t.name
        for t in others
        if t.is_cuda and t.cuda_archs and all(archs.fits(t.cuda_archs, g.capability) for g in gpus)
    ]
    fix = f"use {' or '.join(instead)}" if instead else "no target of the matrix fits: add one"
    return Fit(target.name, "fail", line, fix)


def refusal(target: Target, image_archs: str | None, gpus: Sequence[HostGpu]) -> str | None:
    """One line refusing to hand these GPUs to the target's image, or None when they fit (or
    nothing is known). `image_archs` is the image's label, else the matrix's list is used."""
    listed = image_archs.split() if image_archs else list(target.cuda_archs)
    if not target.is_cuda or not listed:
        return None
    for gpu in gpus:
        problem = archs.misfit(listed, gpu.capability, str(gpu))
        if problem:
            return (
                f"target {target.name}: {problem}; pass --ignore-arch to run anyway (its GPU "
                "checks will fail), or see `invoke doctor` for a target that fits"
            )
    return None


def refuse(target: Target, image_archs: str | None, runner: Runner = subprocess_runner) -> None:
    """Before a container starts: UserError (one line) when the image has no kernels for a GPU
    of this host that it would be handed (`--ignore-arch` skips this call)."""
    line = refusal(target, image_archs, probe(runner))
    if line:
        raise UserError(line)

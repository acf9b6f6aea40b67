"""GPU architectures: which of a torch build's kernels run on which GPU, by CUDA's rules.

A CUDA build of torch carries machine code (SASS) for a list of architectures, `sm_XY`, and
possibly PTX, `compute_XY`, which the driver compiles for the GPU at load time. CUDA's rules:

- `sm_XY` runs on a GPU of compute capability X.Z with Z >= Y: the same major, a newer minor
  (sm_80 runs on an A100 8.0, an A10 8.6 and an L4 8.9; not on an H100 9.0);
- `compute_XY` (PTX) runs on any GPU of capability X.Y or newer, majors included;
- the architecture-specific `sm_XYa`/`compute_XYa` run on X.Y only, and the family-specific
  `sm_XYf`/`compute_XYf` (CUDA 12.9 and later) on the same major with a minor >= Y.

torch lists its architectures in `torch._C._cuda_getArchFlags()` ("sm_75 sm_80 ... "), readable
without a GPU; the smoke suite's `cuda` check and the host's doctor both apply `runs_on` here.
Standard library only: the images carry this module.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_ARCH = re.compile(r"(sm|compute)_(\d+)([af]?)")
_CAPABILITY = re.compile(r"(\d+)\.(\d+)")


@dataclass(frozen=True, order=True)
class Arch:
    """One entry of an arch list: `sm_86` is Arch(8, 6), `compute_90` Arch(9, 0, ptx=True)."""

    major: int
    minor: int
    ptx: bool = False
    variant: str = ""  # "a" (this capability only), "f" (the family), "" (the usual rules)

    def __str__(self) -> str:
        kind = "compute" if self.ptx else "sm"
        return f"{kind}_{self.major}{self.minor}{self.variant}"


def _split(number: str) -> tuple[int, int]:
    """ "86" -> (8, 6), "120" -> (12, 0): the last digit is the minor."""
    return int(number[:-1]), int(number[-1])


def parse_arch(text: str) -> Arch | None:
    """ "sm_86" -> Arch(8, 6); "compute_120" -> Arch(12, 0, ptx=True); None for anything else."""
    match = _ARCH.fullmatch(text.strip())
    if not match or len(match.group(2)) < 2:
        return None
    major, minor = _split(match.group(2))
    return Arch(major, minor, match.group(1) == "compute", match.group(3))


def parse_arch_list(text: str | Iterable[str] | None) -> list[Arch]:
    """torch's arch flags ("sm_75 sm_80 compute_80", or a list of them): the entries it knows,
    in order, without repeats; None or text without any gives []."""
    if text is None:
        return []
    words = text.replace(",", " ").split() if isinstance(text, str) else list(text)
    found: list[Arch] = []
    for arch in map(parse_arch, words):
        if arch is not None and arch not in found:
            found.append(arch)
    return found


def parse_capability(text: str | tuple[int, int]) -> tuple[int, int]:
    """A GPU's compute capability: "8.6" (nvidia-smi's compute_cap), "sm_86" or (8, 6).

    ValueError for anything else.
    """
    if isinstance(text, tuple):
        return int(text[0]), int(text[1])
    match = _CAPABILITY.fullmatch(text.strip())
    if match:
        return int(match.group(1)), int(match.group(2))
    arch = parse_arch(text)
    if arch is None:
        raise ValueError(f"not a compute capability: {text!r} (expected e.g. '8.6' or 'sm_86')")
    return arch.major, arch.minor


def sm_name(capability: str | tuple[int, int]) -> str:
    """(7, 0) or "7.0" -> "sm_70"."""
    major, minor = parse_capability(capability)
    return f"sm_{major}{minor}"


def runs_on(arch: Arch, capability: str | tuple[int, int]) -> bool:
    """Whether kernels built for `arch` run on a GPU of `capability`, by CUDA's rules."""
    major, minor = parse_capability(capability)
    if arch.variant == "a":
        return (major, minor) == (arch.major, arch.minor)
    if arch.ptx and not arch.variant:
        return (major, minor) >= (arch.major, arch.minor)
    return major == arch.major and minor >= arch.minor


def fits(arch_list: str | Iterable[str] | None, capability: str | tuple[int, int]) -> bool:
    """Whether any of the build's architectures runs on a GPU of `capability`."""
    return any(runs_on(arch, capability) for arch in parse_arch_list(arch_list))


def misfit(
    arch_list: str | Iterable[str] | None,
    capability: str | tuple[int, int],
    gpu: str = "the GPU",
) -> str | None:
    """None when the build has kernels for the GPU, else one line that names what is missing:
    "GPU 0 Tesla V100-SXM2-16GB is sm_70; this torch has kernels for sm_75 sm_80 ...: it needs
    a build with sm_70 (or PTX compute_70 or older)". An empty list reads as "none listed".
    """
    archs = parse_arch_list(arch_list)
    if any(runs_on(arch, capability) for arch in archs):
        return None
    major, minor = parse_capability(capability)
    listed = " ".join(map(str, archs)) or "none listed"
    need = f"sm_{major}{minor}" if minor == 0 else f"sm_{major}0..sm_{major}{minor}"
    return (
        f"{gpu} is {sm_name(capability)}; this torch has kernels for {listed}: "
        f"it needs a build with {need} (or PTX compute_{major}{minor} or older)"
    )

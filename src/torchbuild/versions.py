"""Version numbers, and the minimum NVIDIA driver of each CUDA toolkit: defined once, here.

The matrix (targets.toml) derives each CUDA target's minimum driver from `MIN_DRIVER`, the doctor
compares the host's driver with it, and the smoke suite's `cuda` check names it when the driver is
too old. Standard library only: the images carry this module.
"""

from __future__ import annotations

import re

# Minimum Linux driver per CUDA toolkit (NVIDIA's CUDA release notes, the GA driver of each).
MIN_DRIVER = {
    "11.8": "520.61.05",
    "12.0": "525.60.13",
    "12.1": "530.30.02",
    "12.2": "535.54.03",
    "12.4": "550.54.14",
    "12.6": "560.28.03",
    "12.8": "570.26",
    "12.9": "575.51.03",
    "13.0": "580.65.06",
    "13.2": "595.45.04",
}

_LEADING_NUMBERS = re.compile(r"^\d+(?:\.\d+)*")


def parse(version: str) -> tuple[int, ...]:
    """The leading numeric release of a version: "2.11.0+cu130" -> (2, 11, 0), "570.26" -> (570, 26).

    Anything after the numbers (a local label, a pre-release tag) is ignored; text with no leading
    number gives ().
    """
    match = _LEADING_NUMBERS.match(version.strip())
    return tuple(int(part) for part in match.group().split(".")) if match else ()


def at_least(version: str, minimum: str) -> bool:
    """Whether `version` is `minimum` or newer (numeric release only)."""
    return parse(version) >= parse(minimum)


def minor(version: str) -> str:
    """ "2.11.0+cu130" -> "2.11"."""
    return ".".join(str(part) for part in parse(version)[:2])


def min_driver(cuda: str | None) -> str | None:
    """The minimum driver of a CUDA toolkit ("12.8" or "12.8.1"); None when unknown or no CUDA."""
    return MIN_DRIVER.get(minor(cuda)) if cuda else None

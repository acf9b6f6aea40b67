"""Which torch / torchvision / torchaudio / CUDA / Python combinations can exist.

The facts come from the PyTorch release notes and wheel indexes (see ../shared/docs/versions.md).
`problems(target)` lists every reason a target's pins cannot be installed; the build refuses such a
target before anything is built.
"""

from __future__ import annotations

from dataclasses import dataclass

from torchbuild import versions
from torchenv.errors import UserError
from torchenv.matrix import Target


@dataclass(frozen=True)
class Release:
    torchvision: str  # the torchvision minor built for this torch minor
    torchaudio: str | None  # the torchaudio minor of the same release; None: no new torchaudio
    variants: tuple[str, ...]  # builds on the PyTorch wheel index (cpu included)
    python: tuple[str, str]  # supported CPython range, inclusive


_CU_2_9 = ("cpu", "cu126", "cu128", "cu130")
RELEASES: dict[str, Release] = {
    "2.7": Release("0.22", "2.7", ("cpu", "cu118", "cu126", "cu128"), ("3.9", "3.13")),
    "2.8": Release("0.23", "2.8", ("cpu", "cu126", "cu128", "cu129"), ("3.9", "3.13")),
    "2.9": Release("0.24", "2.9", _CU_2_9, ("3.10", "3.14")),
    "2.10": Release("0.25", "2.10", _CU_2_9, ("3.10", "3.14")),
    "2.11": Release("0.26", "2.11", _CU_2_9, ("3.10", "3.14")),
    "2.12": Release("0.27", None, ("cpu", "cu126", "cu130", "cu132"), ("3.10", "3.14")),
    "2.13": Release("0.28", None, ("cpu", "cu126", "cu130"), ("3.10", "3.15")),
    "2.14": Release("0.29", None, ("cpu", "cu126", "cu130", "cu132"), ("3.10", "3.15")),
    # PyPI's 2.15.0 is the cu132 build (checked); the PyTorch index's variants are not confirmed.
    "2.15": Release("0.29", None, ("cpu", "cu130", "cu132"), ("3.10", "3.15")),
}
# torchvision from this minor on is ABI-stable: one wheel works with any torch >= its own release.
ABI_STABLE_TORCHVISION = "0.29"
# The last torchaudio release; torchaudio is in maintenance mode.
LAST_TORCHAUDIO = "2.11"
# What pip's default index serves for Linux: a CUDA build, never CPU.
DEFAULT_INDEX_VARIANT = {
    "2.11": "cu130", "2.12": "cu130", "2.13": "cu130", "2.14": "cu130", "2.15": "cu132",
}  # fmt: skip
# torchaudio releases with no compiled part (one py3-none wheel, checked on PyPI: 2.11.1): they
# load beside any torch of their minor or newer, whatever its CUDA build.
PURE_TORCHAUDIO = ("2.11.1",)
# TorchCodec minors built for each torch minor (TorchCodec's compatibility table); from torch
# 2.11 on, TorchCodec 0.12 and newer load with it too (checked: 0.17.0 with torch 2.14.1 and
# 2.15.0, decoding and torchaudio save/load).
TORCHCODEC = {
    "2.7": ("0.3", "0.4", "0.5"), "2.8": ("0.6", "0.7"), "2.9": ("0.8", "0.9"),
    "2.10": ("0.10",), "2.11": ("0.11",),
}  # fmt: skip
TORCHCODEC_STABLE = ("2.11", "0.12")  # from this torch minor on, TorchCodec >= this minor loads
# torchaudio reads and writes files through TorchCodec from this minor on.
TORCHAUDIO_NEEDS_TORCHCODEC = "2.9"


def problems(t: Target) -> list[str]:
    """Every reason the target's pins cannot exist (empty when they can)."""
    out: list[str] = []
    torch_minor = versions.minor(t.torch)
    release = RELEASES.get(torch_minor)
    if release is None:
        known = ", ".join(RELEASES)
        return [f"torch {t.torch} is not in torchenv's release table (known: {known})"]
    if (t.variant == "cpu") != (t.cuda is None):
        out.append(f"variant {t.variant} and cuda {t.cuda} disagree (cpu has no cuda)")
    elif t.cuda and t.variant != "cu" + t.cuda.replace(".", ""):
        out.append(f"variant {t.variant} is not the build for CUDA {t.cuda}")
    if t.variant not in release.variants:
        hint = ""
        if t.variant == "cu118":
            hint = " (torch 2.7.1 is the last CUDA 11.8 release)"
        out.append(
            f"torch {t.torch} has no {t.variant} build{hint}; "
            f"its builds: {', '.join(release.variants)}"
        )
    if t.index_url is None:
        served = DEFAULT_INDEX_VARIANT.get(torch_minor)
        if served != t.variant:
            what = f"serves the {served} build" if served else "has no matching Linux build"
            out.append(
                f"pip's default index {what} of torch {t.torch}, not {t.variant}: "
                f"set index_url to https://download.pytorch.org/whl/{t.variant}"
            )
    elif not t.index_url.rstrip("/").endswith(f"/{t.variant}"):
        out.append(f"index_url {t.index_url} does not end in /{t.variant}")
    for name in COMPANIONS:
        out += companion_problems(t, name)
    low, high = release.python
    if not versions.parse(low) <= versions.parse(t.python) <= versions.parse(high):
        out.append(f"torch {t.torch} supports Python {low} to {high}, not {t.python}")
    return out


# The packages that pair with torch, each judged by its own rule.
COMPANIONS = ("torchvision", "torchaudio", "torchcodec")


def companion_problems(t: Target, name: str) -> list[str]:
    """Why `name` (one of COMPANIONS) at the target's pin cannot live beside its torch; [] when it
    can, or when torch itself is not in the release table (problems says that)."""
    release = RELEASES.get(versions.minor(t.torch))
    if release is None:
        return []
    if name == "torchvision":
        return _torchvision_problems(t, release)
    if name == "torchaudio":
        return _torchaudio_problems(t, release)
    return _torchcodec_problems(t)


def _torchvision_problems(t: Target, release: Release) -> list[str]:
    tv_minor, torch_minor = versions.minor(t.torchvision), versions.minor(t.torch)
    if tv_minor == release.torchvision or (
        versions.parse(tv_minor) >= versions.parse(ABI_STABLE_TORCHVISION)
        and versions.parse(torch_minor) >= versions.parse("2.14")
    ):
        return []
    return [
        f"torchvision {t.torchvision} does not match torch {t.torch} "
        f"(torch {torch_minor} pairs with torchvision {release.torchvision}.x)"
    ]


def _torchcodec_problems(t: Target) -> list[str]:
    torch_minor = versions.minor(t.torch)
    if t.torchcodec is None:
        if versions.at_least(t.torchaudio, TORCHAUDIO_NEEDS_TORCHCODEC):
            return [
                f"torchaudio {t.torchaudio} loads and saves files through TorchCodec: set "
                "torchcodec (the version that pairs with the target's torch)"
            ]
        return []
    tc_minor = versions.minor(t.torchcodec)
    stable_torch, stable_codec = TORCHCODEC_STABLE
    if tc_minor in TORCHCODEC.get(torch_minor, ()) or (
        versions.at_least(t.torch, stable_torch) and versions.at_least(t.torchcodec, stable_codec)
    ):
        return []
    want = (
        "/".join(f"{m}.x" for m in TORCHCODEC.get(torch_minor, ())) or f"{stable_codec}.x or newer"
    )
    return [f"torchcodec {t.torchcodec} does not pair with torch {t.torch} (use {want})"]


def _torchaudio_problems(t: Target, release: Release) -> list[str]:
    ta_minor = versions.minor(t.torchaudio)
    if ta_minor == release.torchaudio:
        return []
    if t.torchaudio in PURE_TORCHAUDIO and versions.at_least(t.torch, ta_minor):
        return []
    if release.torchaudio is not None or ta_minor != LAST_TORCHAUDIO:
        want = release.torchaudio or LAST_TORCHAUDIO
        return [f"torchaudio {t.torchaudio} does not pair with torch {t.torch} (use {want}.x)"]
    # A newer torch with the last torchaudio: it loads only when both have the same CUDA build.
    audio_variants = RELEASES[LAST_TORCHAUDIO].variants
    served_audio = DEFAULT_INDEX_VARIANT.get(LAST_TORCHAUDIO)
    audio_variant = served_audio if t.index_url is None else t.variant
    if audio_variant not in audio_variants or audio_variant != t.variant:
        return [
            f"torchaudio {t.torchaudio} has no {t.variant} build: torchaudio refuses to load "
            f"when its CUDA version differs from torch's (minor included)"
        ]
    return []


def check(t: Target) -> None:
    """Raise UserError (one line) when the target's pins cannot exist."""
    found = problems(t)
    if found:
        raise UserError(f"target {t.name}: pins cannot exist: {'; '.join(found)}")

"""`audio_io`: a sine wave saved and loaded as WAV and FLAC with torchaudio.save/torchaudio.load.

torchaudio 2.9 and later read and write files through TorchCodec, which loads FFmpeg's shared
libraries; torchaudio 2.7 and 2.8 have backends of their own (FFmpeg, SoX, soundfile), listed
by `torchaudio.list_audio_backends()`. The wave lies on the 16-bit grid, so both formats must
give it back within one int16 step (WAV: 16-bit PCM; FLAC: lossless). The details give the
backend, the sample rate, the length in seconds and the ms per save and per load. Where a piece
is missing, the failure says in one line what to install where; without torchaudio it skips.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from torchbuild import versions
from torchsmoke.checks.vision_audio import _audio_hints, _explained, _import
from torchsmoke.core import CheckFailed, Context, Outcome, check, error_summary, passed

RATE = 16000
SECONDS = 1.0
FREQUENCY = 440.0
LSB = 1 / 32768  # one int16 step of a [-1, 1) float wave
FORMATS = ("wav", "flac")
# torch minor -> the TorchCodec release that pairs with it (TorchCodec's README; 2.14: checked)
TORCHCODEC_FOR_TORCH = {"2.9": "0.9", "2.14": "0.17"}
# The FFmpeg shared libraries of each base distribution, by its os-release PRETTY_NAME.
FFMPEG_PACKAGES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (
        re.compile(r"Debian GNU/Linux 12\b"),
        "Debian 12",
        "libavcodec59 libavformat59 libavutil57 libswresample4 libswscale6 libavdevice59 "
        "libavfilter8",
    ),
    (
        re.compile(r"Debian GNU/Linux 13\b"),
        "Debian 13",
        "libavcodec61 libavformat61 libavutil59 libswresample5 libswscale8 libavdevice61 "
        "libavfilter10",
    ),
    (
        re.compile(r"Ubuntu 24\.04"),
        "Ubuntu 24.04",
        "libavcodec60 libavformat60 libavutil58 libswresample4 libswscale7 libavdevice60 "
        "libavfilter9",
    ),
    (
        re.compile(r"Ubuntu 22\.04"),
        "Ubuntu 22.04",
        "libavcodec58 libavformat58 libavutil56 libswresample3 libswscale5 libavdevice58 "
        "libavfilter7",
    ),
)
_FFMPEG_LIB = re.compile(r"\b(libav\w+|libsw\w+)\.so[.\d]*: cannot open shared object file")


def sine(rate: int = RATE, seconds: float = SECONDS, frequency: float = FREQUENCY) -> torch.Tensor:
    """A mono sine at half scale, (1, samples) float32, rounded to the 16-bit grid."""
    t = torch.arange(round(rate * seconds), dtype=torch.float64) / rate
    wave = 0.5 * torch.sin(2 * math.pi * frequency * t)
    return ((wave * 32768).round() / 32768).to(torch.float32).unsqueeze(0)


def uses_torchcodec(torchaudio_version: str) -> bool:
    """torchaudio 2.9 and later load and save through TorchCodec."""
    return versions.parse(torchaudio_version)[:2] >= (2, 9)


def torchcodec_missing(torchaudio_version: str, torch_version: str) -> str:
    minor = versions.minor(torch_version)
    pin = TORCHCODEC_FOR_TORCH.get(minor)
    wanted = (
        f"torchcodec=={pin}.*"
        if pin
        else f"torchcodec (the release that pairs with torch {minor}: TorchCodec's README "
        "has the table)"
    )
    return (
        f"torchaudio {versions.minor(torchaudio_version)} reads and writes files through "
        f"TorchCodec, which is not installed: add {wanted} to the target"
    )


def ffmpeg_hint(distro: str | None, conda: bool = False) -> str:
    """What to install for FFmpeg's shared libraries on this base."""
    if conda:
        return "add ffmpeg to the target's conda packages"
    for pattern, label, packages in FFMPEG_PACKAGES:
        if distro and pattern.search(distro):
            return f"install the base's FFmpeg libraries ({label}: {packages})"
    label, packages = FFMPEG_PACKAGES[0][1:]
    return (
        f"install FFmpeg's shared libraries (4 to 9) from the base's distribution "
        f"(e.g. {label}: {packages})"
    )


def explain(text: str, torchaudio_version: str, torch_version: str, hint: str) -> str | None:
    """The one line for an I/O error whose cause is known (`hint`: what installs FFmpeg)."""
    if "TorchCodec is required" in text:
        return torchcodec_missing(torchaudio_version, torch_version)
    if "Could not load libtorchcodec" in text:
        missing = _FFMPEG_LIB.search(text)
        if missing:
            name = re.sub(r"\.so[.\d]*", ".so.*", missing.group(0).split(":")[0])
            return f"TorchCodec cannot load FFmpeg ({name}): {hint}"
        return (
            f"TorchCodec does not load with torch {torch_version}: install the torchcodec "
            "release that pairs with this torch"
        )
    if re.search(r"Couldn't find appropriate backend|No audio I/O backend", text, re.I):
        return no_backend(torchaudio_version, hint)
    return None


def no_backend(torchaudio_version: str, hint: str) -> str:
    return (
        f"torchaudio {torchaudio_version} has no audio I/O backend "
        f"(torchaudio.list_audio_backends() is empty): add soundfile to the target's packages, "
        f"or {hint}"
    )


def max_error_lsb(loaded: torch.Tensor, source: torch.Tensor) -> float:
    """The largest difference in int16 steps; inf when the shapes differ."""
    if loaded.shape != source.shape:
        return math.inf
    return float((loaded.double() - source.double()).abs().max()) / LSB


def _timed(func: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = func()
    return round((time.perf_counter() - start) * 1000, 3), result


def installed(name: str) -> bool:
    """Whether `name` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: sys.modules holds None for it
        return False


def backend_of(ta: ModuleType, hint: str) -> str:
    """The backend torchaudio.save/load will use; a failure naming what to install when none."""
    version = str(getattr(ta, "__version__", "0"))
    if uses_torchcodec(version):
        if not installed("torchcodec"):
            raise CheckFailed(torchcodec_missing(version, torch.__version__))
        try:
            codec = importlib.import_module("torchcodec")
        except Exception as exc:
            line = explain(str(exc), version, torch.__version__, hint)
            raise CheckFailed(line or f"torchcodec does not import: {error_summary(exc)}") from exc
        return f"torchcodec {getattr(codec, '__version__', 'unknown')}"
    backends = list(ta.list_audio_backends()) if hasattr(ta, "list_audio_backends") else []
    if not backends:
        raise CheckFailed(no_backend(version, hint))
    return f"torchaudio {backends[0]} (of {', '.join(backends)})"


@check("audio_io")
def audio_io(ctx: Context) -> Outcome:
    with _explained(_audio_hints(ctx)):
        ta = _import("torchaudio")
    version = str(getattr(ta, "__version__", "0"))
    hint = ffmpeg_hint(ctx.env.os.distro, conda=Path(sys.prefix, "conda-meta").is_dir())
    backend = backend_of(ta, hint)
    wave = sine()
    formats: dict[str, dict[str, Any]] = {}
    details: dict[str, Any] = {
        "torchaudio": version,
        "backend": backend,
        "sample_rate": RATE,
        "seconds": wave.shape[-1] / RATE,
        "formats": formats,
    }
    problems: list[str] = []
    # TorchCodec writes 16-bit PCM for this wave by itself (and warns at bits_per_sample)
    options = {} if uses_torchcodec(version) else {"bits_per_sample": 16}
    with tempfile.TemporaryDirectory(prefix="torchsmoke-audio-") as tmp:
        for fmt in FORMATS:
            path = str(Path(tmp) / f"sine.{fmt}")
            try:
                save_ms, _ = _timed(functools.partial(ta.save, path, wave, RATE, **options))
                load_ms, (loaded, rate) = _timed(functools.partial(ta.load, path))
            except Exception as exc:
                line = explain(str(exc), version, torch.__version__, hint)
                raise CheckFailed(
                    line or f"{fmt.upper()} save/load failed: {error_summary(exc)}", **details
                ) from exc
            error = max_error_lsb(loaded, wave)
            formats[fmt] = {
                "save_ms": save_ms,
                "load_ms": load_ms,
                "bytes": Path(path).stat().st_size,
                "max_error_lsb": error,
            }
            if rate != RATE:
                problems.append(f"{fmt.upper()} came back at {rate} Hz, not {RATE}")
            if error > 1:
                problems.append(
                    f"{fmt.upper()} came back {error:.1f} int16 steps off the source "
                    f"({tuple(loaded.shape)} samples against {tuple(wave.shape)})"
                )
    if problems:
        raise CheckFailed("; ".join(problems), **details)
    return passed(details)

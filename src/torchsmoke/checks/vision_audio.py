"""`vision` and `audio`: torchvision's and torchaudio's compiled pieces, imported lazily.

Both skip when the package is missing. The usual breakage is a package built for another torch
(or another CUDA): the failure names that cause instead of only repeating torch's message.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import re
from collections.abc import Iterator
from types import ModuleType

import torch

from torchsmoke.core import (
    CheckFailed,
    CheckSkipped,
    Context,
    Outcome,
    check,
    error_summary,
    passed,
    require,
)

_VISION_ABI = re.compile(r"torchvision::\w+ does not exist|undefined symbol|custom C\+\+ ops", re.I)
_VISION_BACKEND = re.compile(r"Could not run 'torchvision::\w+' with arguments from the", re.I)
_AUDIO_CUDA = re.compile(r"compiled with different CUDA versions", re.I)
_AUDIO_ABI = re.compile(r"undefined symbol|libtorchaudio|_torchaudio", re.I)


def _import(name: str) -> ModuleType:
    """The module, a skip when it is not installed; other import errors propagate."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            raise CheckSkipped(f"{name} is not installed") from None
        raise


def _dist_version(module: ModuleType) -> str:
    return str(getattr(module, "__version__", "unknown"))


@contextlib.contextmanager
def _explained(hints: list[tuple[re.Pattern[str], str]]) -> Iterator[None]:
    """Turn an error whose text matches a pattern into a failure that states the likely cause."""
    try:
        yield
    except (CheckFailed, CheckSkipped):
        raise
    except Exception as exc:
        for pattern, hint in hints:
            if pattern.search(str(exc)):
                raise CheckFailed(f"{error_summary(exc)}; likely cause: {hint}") from exc
        raise


def _built_for_another_torch(ctx: Context, name: str) -> str:
    info = getattr(ctx.env, name)
    installed = "(not installed)" if info is None else info.build or info.version
    return (
        f"{name} {installed} was built for another torch than {torch.__version__}: install "
        f"the {name} release that pairs with this torch, from the same wheel index"
    )


def _vision_hints(ctx: Context) -> list[tuple[re.Pattern[str], str]]:
    return [
        (_VISION_ABI, _built_for_another_torch(ctx, "torchvision")),
        (
            _VISION_BACKEND,
            "torchvision has no kernels for this device: it is not the build that matches "
            f"torch {torch.__version__} (a CPU torchvision next to a CUDA torch?)",
        ),
    ]


@check("vision")
def vision(ctx: Context) -> Outcome:
    with _explained(_vision_hints(ctx)):
        tv = _import("torchvision")
        from torchvision import models, ops
        from torchvision.transforms import v2

        device = ctx.device
        boxes = torch.tensor(
            [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=torch.float, device=device
        )
        scores = torch.tensor([0.9, 0.8, 0.7], device=device)
        keep = ops.nms(boxes, scores, iou_threshold=0.5).tolist()
        require(keep == [0, 2], f"nms kept {keep}, expected [0, 2]")

        # Features equal to the x coordinate: each output bin is the mean x of its samples.
        ramp = torch.arange(8, dtype=torch.float, device=device).expand(1, 1, 8, 8)
        rois = torch.tensor([[0, 2, 2, 6, 6]], dtype=torch.float, device=device)
        pooled = ops.roi_align(ramp, rois, output_size=2, sampling_ratio=2, aligned=True)
        expected = torch.tensor([[2.5, 4.5], [2.5, 4.5]], device=device).expand(1, 1, 2, 2)
        require(
            torch.allclose(pooled, expected, atol=1e-5),
            f"roi_align gave {pooled.flatten().tolist()}, expected {expected.flatten().tolist()}",
        )

        image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=ctx.generator())
        transform = v2.Compose(
            [
                v2.RandomResizedCrop(16, antialias=True),
                v2.RandomHorizontalFlip(),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(mean=[0.5] * 3, std=[0.5] * 3),
            ]
        )
        out = transform(image)
        require(
            out.shape == (3, 16, 16) and out.dtype == torch.float32,
            f"transforms v2 gave {tuple(out.shape)} {out.dtype}",
        )
        require(bool(out.abs().max() <= 1.0 + 1e-6), "transforms v2 output is out of [-1, 1]")

        model = models.resnet18(weights=None, num_classes=10).to(device).eval()
        with torch.no_grad():
            logits = model(torch.randn(2, 3, 64, 64, generator=ctx.generator()).to(device))
        require(
            logits.shape == (2, 10) and bool(torch.isfinite(logits).all()),
            f"resnet18 gave {tuple(logits.shape)} (or non-finite values)",
        )
    return passed({"torchvision": _dist_version(tv), "device": str(device), "nms_keep": keep})


def _audio_hints(ctx: Context) -> list[tuple[re.Pattern[str], str]]:
    return [
        (
            _AUDIO_CUDA,
            f"torch and torchaudio were built for different CUDA versions (torch has CUDA "
            f"{torch.version.cuda}): their CUDA major.minor must match; install the torchaudio "
            "that pairs with this torch from the same wheel index",
        ),
        (_AUDIO_ABI, _built_for_another_torch(ctx, "torchaudio")),
    ]


@check("audio")
def audio(ctx: Context) -> Outcome:
    with _explained(_audio_hints(ctx)):
        ta = _import("torchaudio")
        device = ctx.device
        rate = 16000
        t = torch.arange(rate, device=device) / rate

        def tone(freq: float) -> torch.Tensor:
            return torch.sin(2 * math.pi * freq * t)

        mel = ta.transforms.MelSpectrogram(sample_rate=rate, n_fft=512, n_mels=40).to(device)
        low, high = mel(tone(500.0)), mel(tone(3000.0))
        require(
            low.shape[0] == 40 and bool(torch.isfinite(low).all()),
            f"MelSpectrogram gave {tuple(low.shape)}",
        )
        low_bin, high_bin = int(low.mean(-1).argmax()), int(high.mean(-1).argmax())
        require(
            high_bin > low_bin,
            f"MelSpectrogram puts 3 kHz (band {high_bin}) below 500 Hz (band {low_bin})",
        )

        resampled = ta.transforms.Resample(rate, rate // 2).to(device)(tone(1000.0))
        inner = resampled[100:-100]  # away from the edges
        rms = inner.pow(2).mean().sqrt().item()
        require(
            resampled.shape[-1] == rate // 2 and 0.6 < rms < 0.8,
            f"Resample gave {resampled.shape[-1]} samples with RMS {rms:.3f} "
            f"(expected {rate // 2}, ~0.707)",
        )

        impulse = torch.zeros(16, device=device)
        impulse[0] = 1.0
        response = ta.functional.lfilter(
            impulse,
            a_coeffs=torch.tensor([1.0, -0.5], device=device),
            b_coeffs=torch.tensor([1.0, 0.0], device=device),
        )
        expected = 0.5 ** torch.arange(16, dtype=torch.float, device=device)
        require(
            torch.allclose(response, expected, atol=1e-6),
            "lfilter's impulse response of y[n] = x[n] + 0.5 y[n-1] is not 0.5**n",
        )
    return passed(
        {
            "torchaudio": _dist_version(ta),
            "device": str(device),
            "mel_peak_bands": [low_bin, high_bin],
            "resample_rms": rms,
        }
    )

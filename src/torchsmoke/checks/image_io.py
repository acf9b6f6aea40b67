"""`image_io`: JPEG, PNG and WebP files made here decode through torchvision.io and PIL.

The files are written in a temporary folder (nothing is downloaded): with PIL where it is
importable, else with torchvision's own encoders (JPEG and PNG; torchvision writes no WebP).
Each is decoded through `torchvision.io.read_file` + `decode_image` and through PIL and compared
with the source pixels: PNG exactly, JPEG and WebP (lossy) by PSNR. On a GPU the JPEG is also
decoded by nvJPEG (`decode_jpeg(device="cuda")`) and compared with the CPU decode. The details
give the decode time per image for each format and route, and whether torchvision's image
extension is linked with libjpeg-turbo (read from the libjpeg it loaded, where one is found).
What is missing (PIL, WebP support) fails the check with one line saying what to install.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import torch

from torchsmoke.core import (
    CheckFailed,
    CheckSkipped,
    Context,
    Outcome,
    check,
    error_summary,
    passed,
)

T = TypeVar("T")
HEIGHT, WIDTH = 240, 320  # not square: a transposed decode shows
FORMATS = ("jpeg", "png", "webp")
LOSSY_MIN_PSNR_DB = 30.0  # quality 95 on this smooth image gives about 40 dB
NVJPEG_MIN_PSNR_DB = 35.0  # nvJPEG against libjpeg-turbo on the same file: a few levels apart
QUALITY = 95
PIL_FORMAT = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
ROUTE_LABEL = {"torchvision": "torchvision.io", "pil": "PIL"}
# What to install when a route cannot decode a format at all.
ROUTE_HINT = {
    "torchvision": "install torchvision's wheel from PyPI or the PyTorch index (its image "
    "extension bundles libjpeg-turbo, libpng and libwebp)",
    "pil": "install pillow's wheel from PyPI (it bundles libjpeg-turbo, libpng and libwebp)",
}
SUFFIX = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}
PIL_MISSING = (
    "PIL is missing: add pillow to the target's packages (torchvision's transforms and "
    "datasets need it too)"
)


def source_image(height: int = HEIGHT, width: int = WIDTH) -> torch.Tensor:
    """A smooth RGB uint8 image (3, H, W): gradients and a soft disc, distinct per channel."""
    y = torch.linspace(0, 1, height).unsqueeze(1).expand(height, width)
    x = torch.linspace(0, 1, width).unsqueeze(0).expand(height, width)
    disc = torch.exp(-((x - 0.6) ** 2 + (y - 0.4) ** 2) / 0.05)
    channels = torch.stack([x, y, 0.3 + 0.7 * disc * (1 - x)])
    return (channels * 255).round().clamp(0, 255).to(torch.uint8)


def psnr_db(decoded: torch.Tensor, source: torch.Tensor) -> float:
    """Peak signal-to-noise ratio of two uint8 images, in dB (inf when equal)."""
    mse = (decoded.double() - source.double()).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def compare(fmt: str, decoded: torch.Tensor, source: torch.Tensor) -> tuple[str | None, float]:
    """(the problem or None, the PSNR): PNG must be exact, JPEG and WebP close."""
    if tuple(decoded.shape) != tuple(source.shape) or decoded.dtype != torch.uint8:
        return (
            f"decoded {fmt.upper()} is {tuple(decoded.shape)} {decoded.dtype}, "
            f"not {tuple(source.shape)} torch.uint8"
        ), 0.0
    psnr = psnr_db(decoded, source)
    if fmt == "png" and psnr != math.inf:
        diff = int((decoded.int() - source.int()).abs().max())
        return f"decoded PNG differs from the source (max difference {diff}): PNG is lossless", psnr
    if psnr < LOSSY_MIN_PSNR_DB:
        return (
            f"decoded {fmt.upper()} is {psnr:.1f} dB from the source (< {LOSSY_MIN_PSNR_DB})",
            psnr,
        )
    return None, psnr


def to_pil(image: torch.Tensor, pil: ModuleType) -> Any:
    """A PIL RGB image of a (3, H, W) uint8 tensor (no numpy needed)."""
    channels, height, width = image.shape
    raw = bytes(image.permute(1, 2, 0).contiguous().flatten().tolist())
    return pil.frombytes("RGB", (width, height), raw)


def from_pil(img: Any) -> torch.Tensor:
    """The (3, H, W) uint8 tensor of a PIL image, converted to RGB."""
    rgb = img.convert("RGB")
    width, height = rgb.size
    flat = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
    return flat.reshape(height, width, 3).permute(2, 0, 1).contiguous()


def ms_per_call(func: Callable[[], T], repeats: int) -> tuple[float, T]:
    """The mean wall time of `func` in ms over `repeats` (>= 1) calls, and its last result."""
    start = time.perf_counter()
    result = func()
    for _ in range(repeats - 1):
        result = func()
    return round((time.perf_counter() - start) * 1000 / repeats, 3), result


def mapped_libraries(maps: str) -> list[str]:
    """The files mapped into a process, from the text of /proc/<pid>/maps, each once."""
    paths = (line.split(None, 5)[5].strip() for line in maps.splitlines() if len(line.split()) >= 6)
    return list(dict.fromkeys(p for p in paths if p.startswith("/")))


def torchvision_libjpeg(maps: str) -> str | None:
    """The libjpeg torchvision's image extension loaded: the one beside torchvision (its
    wheel bundles one in torchvision.libs), else any libjpeg that is not PIL's."""
    jpegs = [p for p in mapped_libraries(maps) if Path(p).name.startswith("libjpeg")]
    for path in jpegs:
        if "torchvision" in path:
            return path
    others = [p for p in jpegs if "pillow" not in p.lower() and "/PIL/" not in p]
    return others[0] if others else None


def is_libjpeg_turbo(path: str | None) -> bool | None:
    """Whether the library is libjpeg-turbo (it carries its name); None when unreadable."""
    if path is None:
        return None
    try:
        return b"libjpeg-turbo" in Path(path).read_bytes()
    except OSError:
        return None


def _import_torchvision() -> ModuleType:
    try:
        return importlib.import_module("torchvision")
    except ModuleNotFoundError as exc:
        if exc.name == "torchvision":
            raise CheckSkipped("torchvision is not installed") from None
        raise


def _import_pil() -> tuple[ModuleType | None, ModuleType | None]:
    try:
        return importlib.import_module("PIL.Image"), importlib.import_module("PIL.features")
    except ImportError:
        return None, None


@contextlib.contextmanager
def _problem(problems: list[str], what: str, hint: str | None = None) -> Iterator[None]:
    """Any error becomes one line of `problems`: `what`, the error, and `hint` when given."""
    try:
        yield
    except (CheckFailed, CheckSkipped):
        raise
    except Exception as exc:
        problems.append(
            f"{what} ({error_summary(exc)}): {hint}" if hint else f"{what}: {error_summary(exc)}"
        )


def make_files(
    folder: Path, source: torch.Tensor, pil: ModuleType | None, webp: bool, tv_io: ModuleType
) -> dict[str, tuple[Path, str]]:
    """The files of each format that can be made here: format -> (path, made with)."""
    files: dict[str, tuple[Path, str]] = {}
    for fmt in FORMATS:
        path = folder / f"source{SUFFIX[fmt]}"
        if pil is not None and (fmt != "webp" or webp):
            options = {"quality": QUALITY} if fmt != "png" else {}
            to_pil(source, pil).save(path, PIL_FORMAT[fmt], **options)
            files[fmt] = (path, "PIL")
        elif fmt == "jpeg":
            tv_io.write_jpeg(source, str(path), quality=QUALITY)
            files[fmt] = (path, "torchvision")
        elif fmt == "png":
            tv_io.write_png(source, str(path))
            files[fmt] = (path, "torchvision")
    return files


@check("image_io")
def image_io(ctx: Context) -> Outcome:
    tv = _import_torchvision()
    tv_io = importlib.import_module("torchvision.io")
    pil, features = _import_pil()
    webp = bool(features.check("webp")) if features is not None else False
    repeats = ctx.pick(5, 2)
    source = source_image()
    problems: list[str] = []
    if pil is None:
        problems.append(PIL_MISSING)
    elif not webp:
        problems.append(
            "PIL has no WebP support: install pillow from PyPI (its wheels bundle libwebp), "
            "or the base's libwebp before building pillow"
        )
    formats: dict[str, dict[str, Any]] = {}
    details: dict[str, Any] = {
        "torchvision": str(getattr(tv, "__version__", "unknown")),
        "pil": None if pil is None else importlib.import_module("PIL").__version__,
        "size": [HEIGHT, WIDTH],
        "repeats": repeats,
        "formats": formats,
    }

    with (
        tempfile.TemporaryDirectory(prefix="torchsmoke-image-") as tmp,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always", DeprecationWarning)
        files = make_files(Path(tmp), source, pil, webp, tv_io)
        for fmt, (path, made_with) in files.items():
            row: dict[str, Any] = {"bytes": path.stat().st_size, "made_with": made_with}
            formats[fmt] = row
            routes: dict[str, Callable[[Path], torch.Tensor]] = {"torchvision": _tv_decoder(tv_io)}
            if pil is not None:
                routes["pil"] = _pil_decoder(pil)
            for route, decode in routes.items():
                label = ROUTE_LABEL[route]
                what = f"{label} cannot decode {fmt.upper()}"
                with _problem(problems, what, ROUTE_HINT[route]):
                    ms, decoded = ms_per_call(functools.partial(decode, path), repeats)
                    problem, psnr = compare(fmt, decoded, source)
                    row[route] = {"ms": ms, "psnr_db": _rounded(psnr)}
                    if problem:
                        problems.append(f"{label}: {problem}")

        libjpeg = _libjpeg_of_torchvision()
        details["libjpeg"] = {
            "torchvision": Path(libjpeg).name if libjpeg else None,
            "torchvision_turbo": is_libjpeg_turbo(libjpeg),
            "pil_turbo": _pil_feature(features, "libjpeg_turbo"),
        }
        if "jpeg" in files:
            details["nvjpeg"] = _nvjpeg(ctx, tv_io, files["jpeg"][0], repeats, problems)

    deprecated = deprecations(caught)
    if deprecated:
        details["deprecated"] = deprecated
    if problems:
        raise CheckFailed("; ".join(problems), **details)
    notes = [headline(text) for text in deprecated]
    if details["libjpeg"]["torchvision_turbo"] is False:
        notes.append("torchvision's libjpeg is not libjpeg-turbo: JPEG decoding is slower")
    return passed(details, note="; ".join(notes) or None)


def deprecations(caught: list[warnings.WarningMessage]) -> list[str]:
    """The distinct deprecation warnings torchvision gave while decoding."""
    texts = (
        str(w.message)
        for w in caught
        if issubclass(w.category, DeprecationWarning) and "torchvision" in str(w.message).lower()
    )
    return list(dict.fromkeys(texts))


def headline(text: str) -> str:
    """The warning's first two sentences: what is deprecated and what supersedes it."""
    sentences = [s.strip() for s in text.replace("\n", " ").split(". ") if s.strip()]
    return ". ".join(sentences[:2]).rstrip(".")


def _tv_decoder(tv_io: ModuleType) -> Callable[[Path], torch.Tensor]:
    def decode(path: Path) -> torch.Tensor:
        out: torch.Tensor = tv_io.decode_image(
            tv_io.read_file(str(path)), mode=tv_io.ImageReadMode.RGB
        )
        return out

    return decode


def _pil_decoder(pil: ModuleType) -> Callable[[Path], torch.Tensor]:
    def decode(path: Path) -> torch.Tensor:
        with pil.open(path) as img:
            return from_pil(img)

    return decode


def _rounded(psnr: float) -> float | str:
    return "exact" if psnr == math.inf else round(psnr, 1)


def _pil_feature(features: ModuleType | None, name: str) -> bool | None:
    if features is None:
        return None
    try:
        return bool(features.check_feature(name))
    except Exception:
        return None


def _libjpeg_of_torchvision() -> str | None:
    try:
        return torchvision_libjpeg(Path("/proc/self/maps").read_text())
    except OSError:
        return None


def _nvjpeg(
    ctx: Context, tv_io: ModuleType, path: Path, repeats: int, problems: list[str]
) -> dict[str, Any] | str:
    """nvJPEG's decode of the JPEG on the GPU against the CPU decode (a GPU only)."""
    if not ctx.has_cuda:
        return "not run: no GPU"
    data = tv_io.read_file(str(path))
    cpu = tv_io.decode_jpeg(data, mode=tv_io.ImageReadMode.RGB)
    result: dict[str, Any] = {}
    with _problem(problems, "nvJPEG (decode_jpeg(device='cuda')) failed"):

        def decode_gpu() -> torch.Tensor:
            out: torch.Tensor = tv_io.decode_jpeg(data, mode=tv_io.ImageReadMode.RGB, device="cuda")
            torch.cuda.synchronize()
            return out

        decode_gpu()  # the first call initialises nvJPEG
        ms, on_gpu = ms_per_call(decode_gpu, repeats)
        gpu = on_gpu.cpu()
        psnr = psnr_db(gpu, cpu) if gpu.shape == cpu.shape else 0.0
        diff = int((gpu.int() - cpu.int()).abs().max()) if gpu.shape == cpu.shape else -1
        result.update(ms=ms, psnr_db_vs_cpu=_rounded(psnr), max_difference=diff)
        if psnr < NVJPEG_MIN_PSNR_DB:
            problems.append(
                f"nvJPEG's decode differs from the CPU decode ({_rounded(psnr)} dB, shape "
                f"{tuple(gpu.shape)} against {tuple(cpu.shape)})"
            )
    return result

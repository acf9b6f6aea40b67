"""The image_io check: the comparisons, the libjpeg-turbo probe, and the check itself where
torchvision is installed (with PIL, without it, with a PIL lacking WebP)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from torchsmoke.checks import image_io
from torchsmoke.core import run_check


def test_the_source_image_is_smooth_rgb_and_not_square():
    image = image_io.source_image()
    assert image.shape == (3, image_io.HEIGHT, image_io.WIDTH) and image.dtype == torch.uint8
    assert image.shape[1] != image.shape[2]
    assert (image[:, :, 1:].int() - image[:, :, :-1].int()).abs().max() <= 8  # no hard edges
    assert torch.equal(image, image_io.source_image())


def test_psnr():
    a = torch.zeros(3, 4, 4, dtype=torch.uint8)
    assert image_io.psnr_db(a, a) == math.inf
    assert image_io.psnr_db(a + 1, a) == pytest.approx(20 * math.log10(255), abs=1e-9)


def test_png_must_be_exact_and_lossy_formats_close():
    source = image_io.source_image(8, 8)
    assert image_io.compare("png", source.clone(), source) == (None, math.inf)
    off = source.clone()
    off[0, 0, 0] ^= 3
    problem, _ = image_io.compare("png", off, source)
    assert problem == "decoded PNG differs from the source (max difference 3): PNG is lossless"
    assert image_io.compare("jpeg", off, source)[0] is None
    noisy = torch.randint(0, 256, source.shape, dtype=torch.uint8, generator=torch.manual_seed(0))
    problem, psnr = image_io.compare("webp", noisy, source)
    assert problem == f"decoded WEBP is {psnr:.1f} dB from the source (< 30.0)"
    problem, _ = image_io.compare("jpeg", source.transpose(1, 2), image_io.source_image(8, 9))
    assert problem == "decoded JPEG is (3, 8, 8) torch.uint8, not (3, 8, 9) torch.uint8"


MAPS = """\
7f01-7f02 r--p 00000000 fd:01 123 /venv/site-packages/pillow.libs/libjpeg-6dc8d115.so.62.4.0
7f02-7f03 r-xp 00001000 fd:01 123 /venv/site-packages/pillow.libs/libjpeg-6dc8d115.so.62.4.0
7f03-7f04 r--p 00000000 fd:01 124 /venv/site-packages/torchvision.libs/libjpeg.67fb65bd.so.8
7f04-7f05 rw-p 00000000 00:00 0
7f05-7f06 r--p 00000000 fd:01 125 /usr/lib/x86_64-linux-gnu/libc.so.6
7f06-7f07 rw-p 00000000 00:00 0 [heap]
"""


def test_the_libjpeg_of_torchvision_is_found_in_the_process_maps():
    assert image_io.mapped_libraries(MAPS) == [
        "/venv/site-packages/pillow.libs/libjpeg-6dc8d115.so.62.4.0",
        "/venv/site-packages/torchvision.libs/libjpeg.67fb65bd.so.8",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
    ]
    assert image_io.torchvision_libjpeg(MAPS) == (
        "/venv/site-packages/torchvision.libs/libjpeg.67fb65bd.so.8"
    )
    conda = "7f-8f r--p 0 fd:01 1 /opt/env/lib/libjpeg.so.8.3.2\n" + MAPS.splitlines()[0]
    assert image_io.torchvision_libjpeg(conda) == "/opt/env/lib/libjpeg.so.8.3.2"
    assert image_io.torchvision_libjpeg(MAPS.splitlines()[0]) is None  # PIL's only


def test_libjpeg_turbo_is_told_by_its_name_in_the_library(tmp_path: Path):
    turbo, plain = tmp_path / "turbo.so", tmp_path / "plain.so"
    turbo.write_bytes(b"\x7fELF...libjpeg-turbo version 3.1.3...")
    plain.write_bytes(b"\x7fELF...Independent JPEG Group...")
    assert image_io.is_libjpeg_turbo(str(turbo)) is True
    assert image_io.is_libjpeg_turbo(str(plain)) is False
    assert image_io.is_libjpeg_turbo(str(tmp_path / "gone.so")) is None
    assert image_io.is_libjpeg_turbo(None) is None


def test_pil_round_trip_without_numpy():
    pil = pytest.importorskip("PIL.Image", reason="the PIL conversions need pillow")
    source = image_io.source_image(6, 10)
    img = image_io.to_pil(source, pil)
    assert img.size == (10, 6)
    assert torch.equal(image_io.from_pil(img), source)


def test_ms_per_call_returns_the_last_result():
    calls = []
    ms, result = image_io.ms_per_call(lambda: calls.append(1) or len(calls), 3)
    assert result == 3 and ms >= 0


def test_without_torchvision_it_skips(real_env, monkeypatch, context):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    result = run_check(image_io.image_io, context(real_env, device="cpu"))
    assert (result.status, result.reason) == ("skip", "torchvision is not installed")


@pytest.fixture
def with_torchvision():
    pytest.importorskip("torchvision", reason="decoding files needs torchvision")
    pytest.importorskip("PIL.Image", reason="torchvision's PIL route needs pillow")


def test_every_format_decodes_through_both_routes(with_torchvision, real_env, context):
    result = run_check(image_io.image_io, context(real_env, device="cpu", quick=True))
    assert result.status == "pass", result.reason
    formats = result.details["formats"]
    assert sorted(formats) == ["jpeg", "png", "webp"]
    for fmt, row in formats.items():
        assert row["made_with"] == "PIL"
        for route in ("torchvision", "pil"):
            assert row[route]["ms"] > 0
            assert (row[route]["psnr_db"] == "exact") is (fmt == "png")
    assert result.details["libjpeg"]["torchvision_turbo"] in (True, False, None)
    if not torch.cuda.is_available():
        assert result.details["nvjpeg"] == "not run: no GPU"


def test_without_pil_torchvision_makes_jpeg_and_png_and_the_line_says_what_to_add(
    with_torchvision, real_env, monkeypatch, context
):
    monkeypatch.setattr(image_io, "_import_pil", lambda: (None, None))
    result = run_check(image_io.image_io, context(real_env, device="cpu", quick=True))
    assert (result.status, result.reason) == ("fail", image_io.PIL_MISSING)
    formats = result.details["formats"]
    assert sorted(formats) == ["jpeg", "png"]
    assert {row["made_with"] for row in formats.values()} == {"torchvision"}
    assert formats["png"]["torchvision"]["psnr_db"] == "exact"


def test_a_pil_without_webp_fails_in_one_line(with_torchvision, real_env, monkeypatch, context):
    import PIL.Image

    no_webp = SimpleNamespace(check=lambda name: name != "webp", check_feature=lambda name: None)
    monkeypatch.setattr(image_io, "_import_pil", lambda: (PIL.Image, no_webp))
    result = run_check(image_io.image_io, context(real_env, device="cpu", quick=True))
    assert result.status == "fail"
    assert result.reason.startswith("PIL has no WebP support: install pillow from PyPI")
    assert ";" not in result.reason
    assert sorted(result.details["formats"]) == ["jpeg", "png"]


def test_torchvisions_deprecation_becomes_a_short_note():
    import warnings

    text = (
        "The image decoding and encoding capabilities of TorchVision are deprecated since "
        "torchvision 0.29 and will be removed in a future release. They are superseded by the "
        "decoders of TorchCodec (from torchcodec 0.16). Please see https://example.org."
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for message in (text, text, "something else is deprecated"):
            warnings.warn(message, DeprecationWarning, stacklevel=1)
        warnings.warn("torchvision is slow", UserWarning, stacklevel=1)
    assert image_io.deprecations(caught) == [text]
    assert image_io.headline(text) == (
        "The image decoding and encoding capabilities of TorchVision are deprecated since "
        "torchvision 0.29 and will be removed in a future release. They are superseded by the "
        "decoders of TorchCodec (from torchcodec 0.16)"
    )


def test_a_format_a_route_cannot_decode_says_what_to_install(
    with_torchvision, real_env, monkeypatch, context
):
    import torchvision.io as tv_io

    real = image_io._tv_decoder(tv_io)

    def no_webp(path: Path) -> torch.Tensor:
        if path.suffix == ".webp":
            raise RuntimeError("Not compiled with WebP support")
        return real(path)

    monkeypatch.setattr(image_io, "_tv_decoder", lambda module: no_webp)
    result = run_check(image_io.image_io, context(real_env, device="cpu", quick=True))
    assert (result.status, result.reason) == (
        "fail",
        "torchvision.io cannot decode WEBP (RuntimeError: Not compiled with WebP support): "
        + image_io.ROUTE_HINT["torchvision"],
    )


def test_nvjpeg_is_compared_with_the_cpu_decode(monkeypatch, real_env, context, tmp_path: Path):
    """The GPU path through a stand-in torchvision.io (no GPU here)."""
    source = image_io.source_image(16, 24)
    shift = {"by": 0}

    def decode_jpeg(data, mode=None, device="cpu"):
        return source if device == "cpu" else (source.int() + shift["by"]).clamp(0, 255).byte()

    tv_io = SimpleNamespace(
        read_file=lambda path: b"jpeg", decode_jpeg=decode_jpeg,
        ImageReadMode=SimpleNamespace(RGB="RGB"),
    )  # fmt: skip
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    ctx = context(real_env)
    ctx.has_cuda = True
    problems: list[str] = []
    result = image_io._nvjpeg(ctx, tv_io, tmp_path / "a.jpg", 2, problems)
    assert (problems, result["psnr_db_vs_cpu"], result["max_difference"]) == ([], "exact", 0)
    shift["by"] = 40
    result = image_io._nvjpeg(ctx, tv_io, tmp_path / "a.jpg", 2, problems)
    assert result["max_difference"] == 40
    assert problems == [
        f"nvJPEG's decode differs from the CPU decode ({result['psnr_db_vs_cpu']} dB, shape "
        "(3, 16, 24) against (3, 16, 24))"
    ]
    ctx = context(real_env)
    ctx.has_cuda = False
    assert image_io._nvjpeg(ctx, tv_io, tmp_path / "a.jpg", 2, []) == "not run: no GPU"

"""The audio_io check: the wave, the one-line causes, and the check around a stand-in torchaudio
(TorchCodec missing, FFmpeg missing, no backend, samples off) and the real one where installed."""

from __future__ import annotations

import sys
import types
import wave as wavefile
from pathlib import Path

import pytest
import torch

from torchsmoke.checks import audio_io
from torchsmoke.core import run_check

FFMPEG_ERROR = (
    "Failed to create AudioEncoder: Could not load libtorchcodec. Likely causes:\n"
    "  1. FFmpeg is not properly installed in your environment. ...\n"
    "[start of libtorchcodec loading traceback]\nFFmpeg version 9:\n"
    "OSError: libavutil.so.61: cannot open shared object file: No such file or directory\n"
    "FFmpeg version 8:\n"
    "OSError: libavutil.so.60: cannot open shared object file: No such file or directory\n"
)
DEBIAN_12 = (
    "install the base's FFmpeg libraries (Debian 12: libavcodec59 libavformat59 libavutil57 "
    "libswresample4 libswscale6 libavdevice59 libavfilter8)"
)


def test_the_wave_lies_on_the_16_bit_grid():
    wave = audio_io.sine()
    assert wave.shape == (1, audio_io.RATE) and wave.dtype == torch.float32
    steps = wave.double() * 32768
    assert torch.equal(steps, steps.round())
    assert 0.49 < float(wave.abs().max()) <= 0.5


def test_which_torchaudio_goes_through_torchcodec():
    assert audio_io.uses_torchcodec("2.11.0+cu130") and audio_io.uses_torchcodec("2.9.0")
    assert not audio_io.uses_torchcodec("2.8.0") and not audio_io.uses_torchcodec("2.7.1+cu118")


def test_the_torchcodec_line_names_the_pin_where_known():
    assert audio_io.torchcodec_missing("2.11.0+cu130", "2.14.1+cu130") == (
        "torchaudio 2.11 reads and writes files through TorchCodec, which is not installed: "
        "add torchcodec==0.17.* to the target"
    )
    assert "add torchcodec (the release that pairs with torch 2.11: TorchCodec's README" in (
        audio_io.torchcodec_missing("2.11.0", "2.11.0")
    )


@pytest.mark.parametrize(
    ("distro", "conda", "hint"),
    [
        ("Debian GNU/Linux 12 (bookworm)", False, DEBIAN_12),
        ("Ubuntu 24.04.1 LTS", False, "(Ubuntu 24.04: libavcodec60 libavformat60 libavutil58"),
        ("Ubuntu 22.04.5 LTS", False, "(Ubuntu 22.04: libavcodec58"),
        ("Debian GNU/Linux 13 (trixie)", False, "(Debian 13: libavcodec61"),
        (None, False, "install FFmpeg's shared libraries (4 to 9) from the base's distribution"),
        ("Debian GNU/Linux 12 (bookworm)", True, "add ffmpeg to the target's conda packages"),
    ],
)
def test_the_ffmpeg_hint_fits_the_base(distro, conda, hint):
    assert hint in audio_io.ffmpeg_hint(distro, conda)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            "TorchCodec is required for save_with_torchcodec. Please install torchcodec",
            "torchaudio 2.11 reads and writes files through TorchCodec, which is not installed: "
            "add torchcodec==0.17.* to the target",
        ),
        (FFMPEG_ERROR, f"TorchCodec cannot load FFmpeg (libavutil.so.*): {DEBIAN_12}"),
        (
            "Could not load libtorchcodec. ... undefined symbol: _ZN3c10",
            "TorchCodec does not load with torch 2.14.1+cu130: install the torchcodec release "
            "that pairs with this torch",
        ),
        ("Couldn't find appropriate backend to handle uri a.wav and format None.", "no audio I/O"),
        ("disk full", None),
    ],
    ids=["no torchcodec", "no ffmpeg", "torchcodec for another torch", "no backend", "other"],
)
def test_known_errors_become_one_line(text, line):
    got = audio_io.explain(text, "2.11.0", "2.14.1+cu130", DEBIAN_12)
    assert got is None if line is None else line in got


def test_max_error_in_int16_steps():
    wave = audio_io.sine(100, 0.1)
    assert audio_io.max_error_lsb(wave, wave) == 0
    assert audio_io.max_error_lsb(wave + 2 * audio_io.LSB, wave) == pytest.approx(2)
    assert audio_io.max_error_lsb(wave[:, :5], wave) == float("inf")


def fake_torchaudio(version: str = "2.11.0", backends: list[str] | None = None, offset=0.0):
    """A torchaudio whose save/load write 16-bit WAV with the standard library (FLAC too)."""
    module = types.ModuleType("torchaudio")
    module.__version__ = version

    def save(path: str, src: torch.Tensor, rate: int, bits_per_sample: int = 16) -> None:
        assert bits_per_sample == 16
        with wavefile.open(path, "wb") as out:
            out.setnchannels(1), out.setsampwidth(2), out.setframerate(rate)
            samples = ((src[0].double() + offset) * 32768).round().clamp(-32768, 32767)
            out.writeframes(samples.to(torch.int16).numpy().tobytes())

    def load(path: str) -> tuple[torch.Tensor, int]:
        with wavefile.open(path, "rb") as inp:
            data = bytearray(inp.readframes(inp.getnframes()))
            rate = inp.getframerate()
        return (torch.frombuffer(data, dtype=torch.int16).float() / 32768).unsqueeze(0), rate

    module.save, module.load = save, load
    if backends is not None:
        module.list_audio_backends = lambda: backends
    return module


@pytest.fixture
def run_with(monkeypatch, real_env, context):
    def run(module, torchcodec: bool = True):
        monkeypatch.setitem(sys.modules, "torchaudio", module)
        monkeypatch.setattr(audio_io, "installed", lambda name: torchcodec)
        codec = types.ModuleType("torchcodec")
        codec.__version__ = "0.17.0"
        monkeypatch.setitem(sys.modules, "torchcodec", codec)
        return run_check(audio_io.audio_io, context(real_env, device="cpu"))

    return run


def test_without_torchaudio_it_skips(real_env, monkeypatch, context):
    monkeypatch.setitem(sys.modules, "torchaudio", None)
    result = run_check(audio_io.audio_io, context(real_env, device="cpu"))
    assert (result.status, result.reason) == ("skip", "torchaudio is not installed")


def test_a_round_trip_passes_with_the_figures(run_with):
    pytest.importorskip("numpy", reason="the stand-in torchaudio writes through numpy")
    result = run_with(fake_torchaudio())
    assert result.status == "pass", result.reason
    details = result.details
    assert details["backend"] == "torchcodec 0.17.0"
    assert (details["sample_rate"], details["seconds"]) == (16000, 1.0)
    for fmt in ("wav", "flac"):
        row = details["formats"][fmt]
        assert row["max_error_lsb"] == 0 and row["save_ms"] > 0 and row["load_ms"] > 0


def test_samples_that_come_back_off_fail(run_with):
    pytest.importorskip("numpy", reason="the stand-in torchaudio writes through numpy")
    result = run_with(fake_torchaudio(offset=3 * audio_io.LSB))
    assert result.status == "fail"
    assert result.reason.startswith("WAV came back 3.0 int16 steps off the source")


def test_torchcodec_missing_is_one_line(run_with):
    result = run_with(fake_torchaudio(), torchcodec=False)
    assert result.status == "fail"
    assert result.reason.startswith(
        "torchaudio 2.11 reads and writes files through TorchCodec, which is not installed: add "
    )


def test_ffmpeg_missing_is_one_line(run_with, real_env):
    module = fake_torchaudio()

    def save(*args, **kwargs):
        raise RuntimeError(FFMPEG_ERROR)

    module.save = save
    result = run_with(module)
    assert result.status == "fail"
    assert result.reason.startswith("TorchCodec cannot load FFmpeg (libavutil.so.*): install ")


def test_torchaudio_2_7_uses_its_own_backends(run_with):
    pytest.importorskip("numpy", reason="the stand-in torchaudio writes through numpy")
    result = run_with(fake_torchaudio("2.7.1+cu118", backends=["soundfile"]), torchcodec=False)
    assert result.status == "pass", result.reason
    assert result.details["backend"] == "torchaudio soundfile (of soundfile)"
    result = run_with(fake_torchaudio("2.7.1+cu118", backends=[]), torchcodec=False)
    assert result.status == "fail"
    assert result.reason.startswith(
        "torchaudio 2.7.1+cu118 has no audio I/O backend (torchaudio.list_audio_backends() is "
        "empty): add soundfile to the target's packages, or install "
    )


def test_the_real_torchaudio_round_trips(real_env, context):
    pytest.importorskip("torchaudio", reason="a real round trip needs torchaudio")
    result = run_check(audio_io.audio_io, context(real_env, device="cpu"))
    assert result.status == "pass", result.reason
    assert {row["max_error_lsb"] for row in result.details["formats"].values()} == {0.0}


def test_the_files_are_written_in_a_temporary_folder(run_with, tmp_path: Path, monkeypatch):
    pytest.importorskip("numpy", reason="the stand-in torchaudio writes through numpy")
    monkeypatch.setattr(audio_io.tempfile, "tempdir", str(tmp_path))
    assert run_with(fake_torchaudio()).status == "pass"
    assert list(tmp_path.iterdir()) == []  # removed afterwards

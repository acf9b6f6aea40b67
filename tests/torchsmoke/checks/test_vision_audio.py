"""The vision and audio checks: a missing package skips, a broken one fails with the likely cause."""

from __future__ import annotations

import sys

import pytest

from torchsmoke.checks import vision_audio
from torchsmoke.core import run_check


@pytest.mark.parametrize(
    ("chk", "name"), [(vision_audio.vision, "torchvision"), (vision_audio.audio, "torchaudio")]
)
def test_a_missing_package_skips(real_env, monkeypatch, chk, name, context):
    monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail as if not installed
    result = run_check(chk, context(real_env, device="cpu"))
    assert (result.status, result.reason) == ("skip", f"{name} is not installed")


@pytest.mark.parametrize(
    ("chk", "error", "cause"),
    [
        (
            vision_audio.vision,
            "operator torchvision::nms does not exist",
            "was built for another torch than",
        ),
        (
            vision_audio.audio,
            "Detected that PyTorch and TorchAudio were compiled with different CUDA versions. "
            "PyTorch has CUDA version 13.2 whereas TorchAudio has CUDA version 13.0.",
            "CUDA major.minor must match",
        ),
    ],
    ids=["torchvision for another torch", "torchaudio for another CUDA"],
)
def test_a_broken_package_fails_with_the_likely_cause(
    real_env, monkeypatch, chk, error, cause, context
):
    def broken_import(name: str):
        raise RuntimeError(error)

    monkeypatch.setattr(vision_audio.importlib, "import_module", broken_import)
    result = run_check(chk, context(real_env, device="cpu"))
    assert result.status == "fail"
    assert error.split(".")[0] in result.reason
    assert "likely cause:" in result.reason
    assert cause in result.reason

"""The cuda check: without a GPU it skips, or fails under --require-gpu with the likely causes."""

from __future__ import annotations

import pytest
import torch

from torchsmoke.checks.cuda import _driver_cause, cuda
from torchsmoke.core import run_check

NO_GPU = not torch.cuda.is_available()


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")
def test_no_gpu_skips_with_the_reason(real_env, context):
    result = run_check(cuda, context(real_env))
    assert result.status == "skip" and result.reason.startswith("no GPU")


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")
def test_require_gpu_without_a_gpu_fails_with_the_causes(real_env, context, with_torch):
    env = with_torch(real_env, version="2.13.0+cpu", variant="cpu", cuda=None, hip=None)
    result = run_check(cuda, context(env, require_gpu=True))
    assert result.status == "fail"
    assert "--require-gpu" in result.reason
    for cause in (
        "torch is the CPU build",
        "without --gpus all",
        "driver is too old",
        "NVIDIA container toolkit is missing",
    ):
        assert cause in result.reason


def test_the_driver_hint_names_the_minimum_and_drops_out_when_met():
    assert "needs >= 580.65.06, found 570.86.15" in _driver_cause("13.0", "570.86.15")
    assert _driver_cause("13.0", "580.95.05") is None
    assert "needs >= 520.61.05)" in _driver_cause("11.8", None)
    assert _driver_cause(None, None) == "the host NVIDIA driver is too old for this CUDA build"

"""The cuda check: without a GPU it skips, or fails under --require-gpu with the likely causes;
the GPU paths (arch fit, CUDA errors, the device-side assert probe) through their helpers."""

from __future__ import annotations

import pytest
import torch

from torchsmoke.checks import cuda as cuda_check
from torchsmoke.checks.cuda import _driver_cause, cuda
from torchsmoke.core import CheckFailed, run_check

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


def test_gpus_the_build_has_no_kernels_for_are_named_one_line_each():
    flags = "sm_75 sm_80 sm_86 sm_90 sm_100 sm_120"
    devices = [("Tesla V100-SXM2-16GB", (7, 0)), ("NVIDIA H100", (9, 0)), ("GTX 1080", (6, 1))]
    assert cuda_check.misfits(flags, devices) == [
        "GPU 0 Tesla V100-SXM2-16GB is sm_70; this torch has kernels for sm_75 sm_80 sm_86 "
        "sm_90 sm_100 sm_120: it needs a build with sm_70 (or PTX compute_70 or older)",
        "GPU 2 GTX 1080 is sm_61; this torch has kernels for sm_75 sm_80 sm_86 sm_90 sm_100 "
        "sm_120: it needs a build with sm_60..sm_61 (or PTX compute_61 or older)",
    ]
    assert cuda_check.misfits(flags, devices[1:2]) == []
    assert cuda_check.misfits(None, devices) == []  # unreadable (ROCm): torch's errors speak


def test_arch_flags_reads_torch_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch._C, "_cuda_getArchFlags", lambda: "sm_80 sm_90", raising=False)
    assert cuda_check.arch_flags() == "sm_80 sm_90"
    monkeypatch.setattr(torch._C, "_cuda_getArchFlags", lambda: None)
    assert cuda_check.arch_flags() is None

    def broken() -> str:
        raise RuntimeError("no")

    monkeypatch.setattr(torch._C, "_cuda_getArchFlags", broken)
    assert cuda_check.arch_flags() is None


@pytest.mark.parametrize(
    ("returncode", "stdout", "stderr", "ok", "message"),
    [
        (
            0,
            "CAUGHT AcceleratorError: CUDA error: device-side assert triggered\n",
            "",
            True,
            "AcceleratorError: CUDA error: device-side assert triggered",
        ),
        (None, "", "", False, "a device-side assert hung the process (no answer in 120 s)"),
        (
            -6,
            "",
            "Assertion `index out of bounds` failed.\n",
            False,
            "a device-side assert crashed the process (SIGABRT): Assertion `index out of "
            "bounds` failed.",
        ),
        (3, "no error\n", "", False, "an index out of range in a kernel raised no error"),
        (1, "", "ImportError: no torch\n", False, "the device-side assert probe exited 1: "
         "ImportError: no torch"),
    ],
    ids=["caught", "hung", "crashed", "no error", "other exit"],
)  # fmt: skip
def test_the_assert_probes_verdict(returncode, stdout, stderr, ok, message):
    assert cuda_check.read_assert_probe(returncode, stdout, stderr, 120) == cuda_check.AssertProbe(
        ok, message
    )


def test_the_assert_probe_runs_in_a_child_and_brings_back_the_error():
    """On the CPU the out-of-range index is an IndexError straight away: the same code path."""
    probe = cuda_check.device_assert_probe("cpu", timeout_s=120)
    assert probe.ok, probe.message
    assert probe.message.startswith("IndexError: index 10 is out of bounds")


def test_a_hanging_probe_times_out(monkeypatch):
    monkeypatch.setattr(cuda_check, "ASSERT_PROBE", "import time; time.sleep(30)")
    probe = cuda_check.device_assert_probe("cpu", timeout_s=1)
    assert probe == cuda_check.AssertProbe(
        False, "a device-side assert hung the process (no answer in 1 s)"
    )


def test_a_cuda_error_becomes_a_failure_with_cudas_message():
    with pytest.raises(CheckFailed) as caught, cuda_check.cuda_errors("the GPU checks"):
        raise RuntimeError("CUDA error: device-side assert triggered\nCompile with ...")
    reason = caught.value.outcome.reason
    assert reason.startswith(
        "CUDA error during the GPU checks: RuntimeError: CUDA error: device-side assert triggered"
    )
    assert "CUDA_LAUNCH_BLOCKING=1" in reason
    not_cudas = pytest.raises(RuntimeError, match="shape mismatch")  # left as it is
    with not_cudas, cuda_check.cuda_errors("the GPU checks"):
        raise RuntimeError("shape mismatch")


@pytest.fixture
def fake_gpu(monkeypatch, real_env, context):
    """`fake_gpu(name, capability, flags)`: a context that sees one such GPU (no kernel runs)."""
    from types import SimpleNamespace

    def make(name: str, capability: tuple[int, int], flags: str | None, **options):
        props = SimpleNamespace(
            name=name, major=capability[0], minor=capability[1], total_memory=16 * 2**30,
            multi_processor_count=80,
        )  # fmt: skip
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
        monkeypatch.setattr(cuda_check, "arch_flags", lambda: flags)
        ctx = context(real_env, **options)
        ctx.has_cuda = True  # replaces the cached property's value
        return ctx

    return make


def test_a_gpu_without_kernels_fails_before_any_kernel_runs(fake_gpu, monkeypatch):
    def no_kernels(ctx, details):
        raise AssertionError("the GPU work ran on a GPU the build cannot run")

    monkeypatch.setattr(cuda_check, "_gpu_work", no_kernels)
    ctx = fake_gpu("Tesla V100-SXM2-16GB", (7, 0), "sm_75 sm_80 sm_86 sm_90 sm_100 sm_120")
    result = run_check(cuda, ctx)
    assert result.status == "fail"
    assert result.reason.startswith(
        "GPU 0 Tesla V100-SXM2-16GB is sm_70; this torch has kernels for sm_75 sm_80"
    )
    assert result.details["arch_list"][0] == "sm_75"
    assert result.details["devices"][0]["capability"] == "7.0"


def test_a_cuda_error_in_the_gpu_work_is_a_failure_with_cudas_message(fake_gpu, monkeypatch):
    def illegal_access(ctx, details):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(cuda_check, "_gpu_work", illegal_access)
    result = run_check(cuda, fake_gpu("NVIDIA H100 80GB HBM3", (9, 0), "sm_80 sm_90"))
    assert result.status == "fail"
    assert "CUDA error: an illegal memory access was encountered" in result.reason


def test_the_device_assert_probe_decides_after_the_gpu_work(fake_gpu, monkeypatch):
    monkeypatch.setattr(cuda_check, "_gpu_work", lambda ctx, details: None)
    hung = cuda_check.AssertProbe(False, "a device-side assert hung the process (no answer in 1 s)")
    monkeypatch.setattr(cuda_check, "device_assert_probe", lambda device: hung)
    result = run_check(cuda, fake_gpu("NVIDIA L4", (8, 9), "sm_80 sm_90"))
    assert (result.status, result.reason) == ("fail", hung.message)
    caught = cuda_check.AssertProbe(True, "AcceleratorError: CUDA error: device-side assert")
    monkeypatch.setattr(cuda_check, "device_assert_probe", lambda device: caught)
    result = run_check(cuda, fake_gpu("NVIDIA L4", (8, 9), "sm_80 sm_90"))
    assert result.status == "pass" and result.details["device_assert"] == caught.message
    result = run_check(cuda, fake_gpu("NVIDIA L4", (8, 9), "sm_80 sm_90", quick=True))
    assert result.status == "pass" and result.details["device_assert"] == "not run (--quick)"

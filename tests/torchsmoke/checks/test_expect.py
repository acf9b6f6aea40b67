"""The expect check: each mismatch with its likely cause (the wheel index, the companion release)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from torchsmoke import envinfo
from torchsmoke.checks.expect import expect, mismatch, variant_hint, version_matches
from torchsmoke.core import run_check


def test_expecting_cu118_on_a_cpu_torch_fails_with_the_wheel_index_hint(
    real_env, context, with_torch
):
    env = with_torch(real_env, version="2.13.0+cpu", variant="cpu", cuda=None)
    result = run_check(expect, context(env, expect={"variant": "cu118"}))
    assert result.status == "fail"
    assert result.reason.startswith(
        "torch is the CPU build but cu118 was expected: was the CUDA wheel index used?"
    )
    assert result.details["mismatches"] == [result.reason]


def test_expect_passes_when_everything_matches_ignoring_the_local_label(
    real_env, context, with_torch
):
    env = with_torch(real_env, version="2.7.1+cu118", variant="cu118", cuda="11.8")
    env = replace(
        env,
        torchvision=envinfo.PackageInfo("0.22.1+cu118", None, "cu118"),
        torchaudio=envinfo.PackageInfo("2.7.1", "2.7.1+cu118", "cu118"),
    )
    wanted = {
        "variant": "cu118",
        "torch": "2.7.1",
        "torchvision": "0.22.1",
        "torchaudio": "2.7.1",
        "python": env.python.version.rsplit(".", 1)[0],
    }
    result = run_check(expect, context(env, expect=wanted))
    assert (result.status, result.reason) == ("pass", None)


def test_expect_skips_when_nothing_was_expected(real_env, context):
    result = run_check(expect, context(real_env))
    assert result.status == "skip" and "nothing expected" in result.reason


def test_expect_lists_every_mismatch(real_env, context, with_torch):
    env = replace(
        with_torch(real_env, version="2.11.0+cu128", variant="cu128", cuda="12.8"),
        torchvision=None,
        torchaudio=envinfo.PackageInfo("2.10.0", None, None),
    )
    wanted = {"variant": "cu130", "torchvision": "0.26.0", "torchaudio": "2.11.0"}
    result = run_check(expect, context(env, expect=wanted))
    assert result.status == "fail"
    problems = result.details["mismatches"]
    assert len(problems) == 3
    assert "cu128 build but cu130 was expected" in problems[0] and "cu130 index" in problems[0]
    assert "torchvision is not installed" in problems[1]
    assert "torchvision must match torch 2.11.0" in problems[1]
    assert "torchaudio 2.10.0 is installed but 2.11.0" in problems[2]
    assert "CUDA minor version" in problems[2]


@pytest.mark.parametrize(
    ("actual", "expected", "words"),
    [
        ("cpu", "cu126", "was the CUDA wheel index used?"),
        ("cu130", "cpu", "pip's default index serves CUDA builds"),
        ("cu130", "cu128", "install from the cu128 index"),
        ("rocm6.2", "cu126", "torch is the rocm6.2 build but cu126 was expected"),
    ],
)
def test_variant_hints(actual, expected, words):
    assert words in variant_hint(actual, expected)


def test_version_matching_ignores_labels_and_matches_python_by_prefix():
    assert version_matches("2.7.1+cu118", "2.7.1")
    assert version_matches("3.11.2", "3.11")
    assert not version_matches("3.1.2", "3.11")
    assert not version_matches("2.7.0", "2.7.1")
    assert mismatch("python", "3.12.1", "3.11", "2.7.1").startswith("Python 3.12.1 but 3.11")
    assert mismatch("torch", "2.7.1+cu118", "2.7.1", "2.7.1") is None


def test_require_gpu_is_an_expectation_too(real_env, context):
    ctx = context(real_env, require_gpu=True)
    ctx.has_cuda = False
    result = run_check(expect, ctx)
    assert result.status == "fail" and "--require-gpu" in result.reason

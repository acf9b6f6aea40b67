"""The quantize check: torchao where installed, else torch.ao; accuracy, size and the engine."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchsmoke.checks import quantize
from torchsmoke.core import run_check


@pytest.fixture
def without_torchao(monkeypatch):
    """The path of an environment without torchao: torch.ao's quantize_dynamic."""
    monkeypatch.setattr(
        quantize, "torchao_quantization", lambda: (None, "torchao is not installed")
    )


def test_quantize_uses_torchao_where_it_is_installed(real_env, context):
    ao, why_not = quantize.torchao_quantization()
    if ao is None:  # the dev extras install it (pyproject.toml)
        pytest.skip(f"torchao's path needs torchao: {why_not}")
    result = run_check(quantize.quantize, context(real_env, quick=True))
    assert result.status == "pass", result.reason
    d = result.details
    assert d["api"] == quantize.TORCHAO_API and d["engine"] is None
    assert d["accuracy_fp32"] - d["accuracy_int8"] <= 0.02 and d["accuracy_fp32"] > 0.8
    assert d["bytes_int8"] < d["bytes_fp32"] / 2  # int8 weights: about a quarter
    assert "torch.nn.modules.linear.Linear" in d["modules"]  # kept, with an int8 weight
    assert d["weights"] and "torch.nn.parameter.Parameter" not in d["weights"]
    assert "deprecation" not in d and result.reason is None


def test_a_torchao_that_does_not_import_falls_back_and_says_why(monkeypatch):
    monkeypatch.setattr(quantize.importlib.util, "find_spec", lambda name: object())

    def broken(name):
        raise ImportError("undefined symbol: _ZN3c10\nmore")

    monkeypatch.setattr(quantize.importlib, "import_module", broken)
    assert quantize.torchao_quantization() == (
        None,
        "torchao is installed but does not import (ImportError: undefined symbol: _ZN3c10)",
    )


def test_unquantized_linears_are_named():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    assert quantize.unquantized_linears(model) == ["0", "2"]
    assert quantize.unquantized_linears(nn.Linear(2, 2)) == ["model"]


def test_quantize_keeps_accuracy_shrinks_the_model_and_reports_the_engine(
    real_env, without_torchao, context
):
    result = run_check(quantize.quantize, context(real_env, quick=True))
    assert result.status == "pass", result.reason
    d = result.details
    assert d["engine"] in torch.backends.quantized.supported_engines and d["engine"] != "none"
    assert d["accuracy_fp32"] - d["accuracy_int8"] <= 0.02 and d["accuracy_fp32"] > 0.8
    assert d["bytes_int8"] < d["bytes_fp32"] / 2  # int8 weights: about a quarter
    assert "torch.ao.nn.quantized.dynamic.modules.linear.Linear" in d["modules"]
    if "deprecation" in d:  # torch says so itself: the result repeats it, with the way out
        assert d["deprecation"] in result.reason
        assert "torchao is not installed; pip install torchao" in result.reason


def test_quantize_skips_without_a_quantized_engine(real_env, monkeypatch, without_torchao, context):
    monkeypatch.setattr(quantize, "supported_engines", lambda: ["none"])
    result = run_check(quantize.quantize, context(real_env, quick=True))
    assert result.status == "skip"
    assert result.reason == (
        "this torch build has no quantized engine (supported engines: ['none']): "
        "int8 quantization cannot run here"
    )


@pytest.mark.parametrize(
    ("supported", "current", "chosen"),
    [
        (["qnnpack", "x86", "fbgemm"], "x86", "x86"),
        (["qnnpack", "fbgemm"], "none", "fbgemm"),
        (["none", "qnnpack"], "none", "qnnpack"),
        (["none"], "none", None),
    ],
    ids=["torch's choice", "preferred when none chosen", "the only one", "no engine"],
)
def test_engine_choice(supported, current, chosen):
    assert quantize.pick_engine(supported, current) == chosen


def test_quantization_that_loses_accuracy_fails(real_env, monkeypatch, without_torchao, context):
    real = torch.ao.quantization.quantize_dynamic

    def lossy(model, *args, **kw):
        with torch.no_grad():
            model[0].weight.mul_(-1)  # a broken quantizer: accuracy collapses
        return real(model, *args, **kw)

    monkeypatch.setattr(torch.ao.quantization, "quantize_dynamic", lossy)
    result = run_check(quantize.quantize, context(real_env, device="cpu", quick=True))
    assert result.status == "fail"
    assert "more than 2% below fp32's" in result.reason


def test_quantization_that_quantizes_nothing_fails(real_env, monkeypatch, without_torchao, context):
    monkeypatch.setattr(torch.ao.quantization, "quantize_dynamic", lambda model, *a, **k: model)
    result = run_check(quantize.quantize, context(real_env, device="cpu", quick=True))
    assert result.status == "fail" and "left nn.Linear layers unquantized" in result.reason

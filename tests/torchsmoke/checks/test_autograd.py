"""The autograd check: gradcheck passes in float64, and a wrong backward fails it."""

from __future__ import annotations

from typing import Any

import torch

from torchsmoke.checks import autograd
from torchsmoke.core import run_check


class TwiceTheGradient(torch.autograd.Function):
    """The identity, whose backward pass is wrong by a factor of two."""

    @staticmethod
    def forward(_ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(_ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad * 2


def test_gradcheck_passes_in_double_precision(real_env, context):
    result = run_check(autograd.autograd, context(real_env))
    assert result.status == "pass", result.reason
    assert result.details == {"inputs": [[4, 3], [3, 3]], "dtype": "float64"}


def test_a_wrong_backward_fails_with_gradchecks_words(real_env, context, monkeypatch):
    def smooth(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return TwiceTheGradient.apply(x @ w).sum(dim=1)

    monkeypatch.setattr(autograd, "_smooth", smooth)
    result = run_check(autograd.autograd, context(real_env))
    assert result.status == "fail"
    assert result.reason.startswith("GradcheckError: Jacobian mismatch")
    assert "Traceback" in result.details["traceback"]

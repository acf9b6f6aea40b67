"""`autograd`: torch.autograd.gradcheck on a small double-precision function."""

from __future__ import annotations

import torch

from torchsmoke.core import Context, Outcome, check, passed, require


def _smooth(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (torch.tanh(x @ w) * x.sin()).sum(dim=1) + (w**2).mean()


@check("autograd")
def autograd(ctx: Context) -> Outcome:
    gen = ctx.generator()
    x = torch.randn(4, 3, dtype=torch.double, generator=gen).requires_grad_()
    w = torch.randn(3, 3, dtype=torch.double, generator=gen).requires_grad_()
    # raise_exception=True: a GradcheckError carries the mismatching Jacobians into the reason.
    ok = torch.autograd.gradcheck(_smooth, (x, w), eps=1e-6, atol=1e-5, raise_exception=True)
    require(ok, "gradcheck: analytical and numerical gradients differ")
    return passed({"inputs": [list(x.shape), list(w.shape)], "dtype": "float64"})

"""`autograd` (gradcheck) and `checkpoint` (state_dict round trip with weights_only=True)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import nn

from torchsmoke.core import Context, Outcome, check, passed, require


def _smooth(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (torch.tanh(x @ w) * x.sin()).sum(dim=1) + (w**2).mean()


@check("autograd", "torch.autograd.gradcheck on a small double-precision function")
def autograd(ctx: Context) -> Outcome:
    gen = ctx.generator()
    x = torch.randn(4, 3, dtype=torch.double, generator=gen).requires_grad_()
    w = torch.randn(3, 3, dtype=torch.double, generator=gen).requires_grad_()
    # raise_exception=True: a GradcheckError carries the mismatching Jacobians into the reason.
    ok = torch.autograd.gradcheck(_smooth, (x, w), eps=1e-6, atol=1e-5, raise_exception=True)
    require(ok, "gradcheck: analytical and numerical gradients differ")
    return passed({"inputs": [list(x.shape), list(w.shape)], "dtype": "float64"})


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


@check("checkpoint", "state_dict saved and loaded with torch.load(weights_only=True)")
def checkpoint(ctx: Context) -> Outcome:
    device = ctx.device
    model = _model().to(device)
    x = torch.randn(32, 8, generator=ctx.generator()).to(device)
    model.train()
    model(x)  # moves the BatchNorm running statistics: buffers are saved too
    model.eval()
    expected = model(x)
    with tempfile.TemporaryDirectory(prefix="torchsmoke-") as tmp:
        path = Path(tmp) / "model.pt"
        torch.save(model.state_dict(), path)
        size = path.stat().st_size
        fresh = _model().to(device)
        fresh.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    fresh.eval()
    got = fresh(x)
    require(torch.equal(got, expected), "the reloaded model gives different outputs")
    return passed({"file_bytes": size, "tensors": len(model.state_dict())})

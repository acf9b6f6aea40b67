"""`checkpoint`: a state_dict round trip with weights_only=True.

The checkpoint is saved from the suite's device and loaded twice: on that device, where the
outputs must be bit-identical, and on the CPU with map_location (trained on a GPU, evaluated on a
laptop), where they must agree within CPU-versus-GPU rounding.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import nn

from torchsmoke.core import Context, Outcome, check, passed, require

CROSS_DEVICE_RTOL, CROSS_DEVICE_ATOL = 1e-4, 1e-5  # GPU and CPU kernels round differently


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def _reloaded(path: Path, device: torch.device) -> nn.Module:
    state = torch.load(path, map_location=device, weights_only=True)
    where = sorted({str(t.device) for t in state.values()})
    require(
        where == [str(device)],
        f"torch.load(map_location={str(device)!r}) put tensors on {where}",
    )
    fresh = _model().to(device)
    fresh.load_state_dict(state)
    return fresh.eval()


@check("checkpoint")
def checkpoint(ctx: Context) -> Outcome:
    device, cpu = ctx.device, torch.device("cpu")
    model = _model().to(device)
    x = torch.randn(32, 8, generator=ctx.generator()).to(device)
    model.train()
    model(x)  # moves the BatchNorm running statistics: buffers are saved too
    model.eval()
    with torch.no_grad():
        expected = model(x)
        with tempfile.TemporaryDirectory(prefix="torchsmoke-") as tmp:
            path = Path(tmp) / "model.pt"
            torch.save(model.state_dict(), path)
            size = path.stat().st_size
            same = _reloaded(path, device)(x)
            on_cpu = _reloaded(path, cpu)(x.to(cpu))
    require(torch.equal(same, expected), "the reloaded model gives different outputs")
    expected = expected.to(cpu)
    err = (on_cpu - expected).abs().max().item()
    portable = (
        torch.equal(on_cpu, expected)
        if device == cpu
        else torch.allclose(on_cpu, expected, rtol=CROSS_DEVICE_RTOL, atol=CROSS_DEVICE_ATOL)
    )
    require(
        portable,
        f"saved on {device}, loaded on the CPU with map_location: outputs differ "
        f"(max error {err:.3g})",
    )
    return passed(
        {
            "file_bytes": size,
            "tensors": len(model.state_dict()),
            "saved_on": str(device),
            "loaded_on": [str(device), "cpu"],
            "cpu_max_error": err,
        }
    )

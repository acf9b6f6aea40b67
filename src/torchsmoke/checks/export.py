"""`export`: torch.export of the trained MLP and CNN, as deploying them from this environment needs.

Each model is exported with a dynamic batch size, the program saved (.pt2) and loaded back, and its
outputs compared with eager on two batch sizes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import nn

from torchsmoke.checks.compile import require_named_user
from torchsmoke.checks.training import CNN_LR, cnn_data, train_mlp
from torchsmoke.core import Context, Outcome, check, passed, require
from torchsmoke.train import SmallCNN, fit

EXPORT_RTOL, EXPORT_ATOL = 1e-4, 1e-5


def _export_one(name: str, model: nn.Module, x: torch.Tensor, folder: Path) -> dict[str, object]:
    """Export with a dynamic batch size, save, load, compare with eager on two batch sizes."""
    model.eval()
    batch = torch.export.Dim("batch", min=2, max=4096)
    program = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
    path = folder / f"{name}.pt2"
    torch.export.save(program, path)
    loaded = torch.export.load(path).module()
    errors = []
    with torch.no_grad():
        for inputs in (x, x[:7]):
            expected, got = model(inputs), loaded(inputs)
            require(
                got.shape == expected.shape,
                f"exported {name}: output shape {tuple(got.shape)}, eager {tuple(expected.shape)}",
            )
            err = (got - expected).abs().max().item()
            errors.append(err)
            require(
                torch.allclose(got, expected, rtol=EXPORT_RTOL, atol=EXPORT_ATOL),
                f"exported {name} differs from eager on a batch of {len(inputs)} "
                f"(max error {err:.3g})",
            )
    return {"file_bytes": path.stat().st_size, "batch_sizes": [len(x), 7], "max_error": max(errors)}


@check("export")
def export(ctx: Context) -> Outcome:
    require_named_user()
    device = ctx.device
    mlp, mlp_split, _ = train_mlp(ctx, device)
    cnn, cnn_split = SmallCNN().to(device), cnn_data(ctx).to(device)
    # Trained enough to move every weight away from its initial value; accuracy is cnn's job.
    steps = ctx.pick(60, 20)
    fit(cnn, cnn_split, steps=steps, batch_size=64, lr=CNN_LR, gen=ctx.generator(1))
    with tempfile.TemporaryDirectory(prefix="torchsmoke-export-") as tmp:
        results = {
            "mlp": _export_one("mlp", mlp, mlp_split.x_test[:64], Path(tmp)),
            "cnn": _export_one("cnn", cnn, cnn_split.x_test[:64], Path(tmp)),
        }
    return passed(
        {
            "device": str(device),
            "cnn_steps": steps,
            "rtol": EXPORT_RTOL,
            "atol": EXPORT_ATOL,
            **results,
        }
    )

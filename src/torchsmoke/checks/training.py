"""Checks that train: `mlp`, `cnn`, `amp`, `determinism`.

Budgets (steps, samples) have a full and a --quick value; thresholds hold with a wide margin on
every seed tried (benchmarks/smoke_seeds.py shows the figures).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import torch
from torch import nn

from torchsmoke.core import Context, Outcome, check, passed, require
from torchsmoke.train import SmallCNN, Split, accuracy, fit, make_mlp, prototype_data, shape_images

MLP_THRESHOLD = 0.80  # chance is 0.10
CNN_THRESHOLD = 0.70  # chance is 0.25
AMP_MAX_LOSS_RATIO = 0.6  # mean loss of the last steps / of the first steps
N_TEST = 1000
MLP_LR, MLP_STEPS = 2e-3, (150, 60)  # steps: full, --quick
CNN_LR, CNN_STEPS = 5e-3, (400, 200)


def mlp_data(ctx: Context) -> Split:
    return prototype_data(ctx.generator(), ctx.pick(2000, 1000), N_TEST, spread=0.2)


def cnn_data(ctx: Context) -> Split:
    return shape_images(ctx.generator(), ctx.pick(2000, 1000), N_TEST, noise=0.2)


def train_mlp(
    ctx: Context,
    device: torch.device,
    on_loss: Callable[[int, float, nn.Module], None] | None = None,
) -> tuple[nn.Module, Split, list[float]]:
    """The mlp check's model trained on its data (for the checks that start from it)."""
    data = mlp_data(ctx).to(device)
    model = make_mlp().to(device)
    losses = fit(
        model,
        data,
        steps=ctx.pick(*MLP_STEPS),
        batch_size=64,
        lr=MLP_LR,
        gen=ctx.generator(1),
        on_loss=on_loss,
    )
    return model, data, losses


def _train_classifier(
    ctx: Context, model: nn.Module, data: Split, steps: int, lr: float, threshold: float
) -> Outcome:
    device = ctx.device
    data = data.to(device)
    model = model.to(device)
    losses = fit(model, data, steps=steps, batch_size=64, lr=lr, gen=ctx.generator(1))
    acc = accuracy(model, data.x_test, data.y_test)
    details = {
        "device": str(device),
        "train_samples": len(data.y_train),
        "test_samples": len(data.y_test),
        "steps": steps,
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "accuracy": acc,
        "threshold": threshold,
    }
    require(all(map(math.isfinite, losses)), "the training loss is not finite", **details)
    require(
        acc >= threshold,
        f"held-out accuracy {acc:.3f} is below {threshold} after {steps} steps "
        f"(loss {losses[0]:.3f} -> {losses[-1]:.3f}): training does not learn",
        **details,
    )
    return passed(details)


@check("mlp")
def mlp(ctx: Context) -> Outcome:
    return _train_classifier(
        ctx,
        make_mlp(),
        mlp_data(ctx),
        steps=ctx.pick(*MLP_STEPS),
        lr=MLP_LR,
        threshold=MLP_THRESHOLD,
    )


@check("cnn")
def cnn(ctx: Context) -> Outcome:
    return _train_classifier(
        ctx,
        SmallCNN(),
        cnn_data(ctx),
        steps=ctx.pick(*CNN_STEPS),
        lr=CNN_LR,
        threshold=CNN_THRESHOLD,
    )


def _amp_run(
    ctx: Context, device: torch.device, dtype: torch.dtype, scaler: bool
) -> dict[str, object]:
    torch.manual_seed(ctx.seed)
    data = prototype_data(ctx.generator(), 512, 0, spread=0.2).to(device)
    model = make_mlp().to(device)
    dtypes: set[torch.dtype] = set()
    losses = fit(
        model,
        data,
        steps=ctx.pick(30, 20),
        batch_size=64,
        lr=3e-3,
        gen=ctx.generator(1),
        autocast_dtype=dtype,
        scaler=torch.amp.GradScaler(device.type) if scaler else None,
        on_step=lambda out: dtypes.add(out.dtype),
    )
    window = 5
    first, last = sum(losses[:window]) / window, sum(losses[-window:]) / window
    name = f"{device.type} {str(dtype).removeprefix('torch.')}" + (
        " + GradScaler" if scaler else ""
    )
    result = {
        "run": name,
        "loss_first": first,
        "loss_last": last,
        "loss_ratio": last / first,
        "max_loss_ratio": AMP_MAX_LOSS_RATIO,
        "output_dtypes": sorted(str(d) for d in dtypes),
    }
    require(dtypes == {dtype}, f"{name}: autocast produced {dtypes}, not {dtype}", **result)
    require(all(map(math.isfinite, losses)), f"{name}: the loss is not finite", **result)
    require(
        last <= AMP_MAX_LOSS_RATIO * first,
        f"{name}: the loss did not go down ({first:.3f} -> {last:.3f})",
        **result,
    )
    return result


@check("amp")
def amp(ctx: Context) -> Outcome:
    device = ctx.device
    if device.type == "cuda":
        runs = [(torch.float16, True)]
        if torch.cuda.is_bf16_supported():
            runs.append((torch.bfloat16, False))
    else:
        runs = [(torch.bfloat16, False)]
    return passed({"runs": [_amp_run(ctx, device, dtype, scaler) for dtype, scaler in runs]})


def _losses(ctx: Context, device: torch.device) -> tuple[list[float], torch.Tensor]:
    torch.manual_seed(ctx.seed)  # model init and dropout, CUDA generators included
    data = shape_images(ctx.generator(), 256, 0).to(device)
    model = SmallCNN().to(device)
    losses = fit(model, data, steps=ctx.pick(20, 10), batch_size=32, lr=1e-2, gen=ctx.generator(1))
    return losses, torch.cat([p.detach().flatten() for p in model.parameters()]).cpu()


def _compare_runs(ctx: Context, device: torch.device) -> dict[str, object]:
    (losses_a, params_a), (losses_b, params_b) = _losses(ctx, device), _losses(ctx, device)
    result = {"steps": len(losses_a), "losses": losses_a[:5]}
    step = next(
        (i for i, (a, b) in enumerate(zip(losses_a, losses_b, strict=True)) if a != b), None
    )
    require(
        step is None,
        f"two {device.type} trainings with seed {ctx.seed} give different losses from step {step}",
        **result,
    )
    require(
        torch.equal(params_a, params_b),
        f"two {device.type} trainings with seed {ctx.seed} end with different parameters",
        **result,
    )
    return result


@check("determinism")
def determinism(ctx: Context) -> Outcome:
    details = {"cpu": _compare_runs(ctx, torch.device("cpu"))}
    if ctx.device.type == "cuda":
        # cuBLAS needs a fixed workspace to be deterministic; the runner restores all of this.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        details["cuda"] = _compare_runs(ctx, ctx.device)
    return passed(details)

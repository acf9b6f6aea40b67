"""Synthetic learnable data, the small models and the training loop the checks share.

The data is generated from a seeded CPU generator, so a seed gives the same data on every
device. It is learnable by construction (accuracy far above chance proves training works) and
never random labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

MLP_DIM, MLP_HIDDEN, MLP_CLASSES = 784, 128, 10
SHAPES = ("horizontal bar", "vertical bar", "cross", "square")


@dataclass(frozen=True)
class Split:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def to(self, device: torch.device) -> Split:
        return Split(
            *(t.to(device) for t in (self.x_train, self.y_train, self.x_test, self.y_test))
        )


def _split(x: torch.Tensor, y: torch.Tensor, n_train: int) -> Split:
    return Split(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def prototype_data(
    gen: torch.Generator,
    n_train: int,
    n_test: int,
    dim: int = MLP_DIM,
    classes: int = MLP_CLASSES,
    spread: float = 0.12,
    noise: float = 1.0,
) -> Split:
    """Each class is a random prototype vector; samples are prototype + Gaussian noise.

    With spread 0.12 and noise 1.0 a single sample is mostly noise (a nearest-neighbour guess on
    a few features is near chance) but the class means are linearly separable.
    """
    protos = torch.randn(classes, dim, generator=gen) * spread
    n = n_train + n_test
    y = torch.randint(0, classes, (n,), generator=gen)
    x = protos[y] + noise * torch.randn(n, dim, generator=gen)
    return _split(x, y, n_train)


def shape_images(
    gen: torch.Generator, n_train: int, n_test: int, size: int = 16, noise: float = 0.35
) -> Split:
    """Images (N, 1, size, size) of one of SHAPES at a random place and size, plus noise.

    Label 0 horizontal bar, 1 vertical bar, 2 cross (both bars), 3 hollow square.
    """
    n = n_train + n_test
    y = torch.randint(0, len(SHAPES), (n,), generator=gen)
    half = torch.randint(2, 5, (n, 1, 1), generator=gen)  # half-length 2..4
    cy = torch.randint(0, size, (n, 1, 1), generator=gen).clamp(half, size - 1 - half)
    cx = torch.randint(0, size, (n, 1, 1), generator=gen).clamp(half, size - 1 - half)
    coords = torch.arange(size)
    dy = (coords.view(1, size, 1) - cy).abs()
    dx = (coords.view(1, 1, size) - cx).abs()
    hbar = (dy == 0) & (dx <= half)
    vbar = (dx == 0) & (dy <= half)
    ring = torch.maximum(dy, dx) == half
    label = y.view(n, 1, 1)
    img = torch.where(label == 0, hbar, torch.where(label == 1, vbar, hbar | vbar))
    img = torch.where(label == 3, ring, img).float()
    intensity = 0.6 + 0.4 * torch.rand(n, 1, 1, generator=gen)
    x = img * intensity + noise * torch.randn(n, size, size, generator=gen)
    return _split(x.unsqueeze(1), y, n_train)


def make_mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(MLP_DIM, MLP_HIDDEN), nn.ReLU(), nn.Linear(MLP_HIDDEN, MLP_CLASSES)
    )


class SmallCNN(nn.Module):
    """The PyTorch MNIST example's shape, narrower: conv, conv, max-pool, dropout, two linear."""

    def __init__(self, size: int = 16, classes: int = len(SHAPES)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3)
        self.conv2 = nn.Conv2d(8, 16, 3)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        pooled = (size - 4) // 2
        self.fc1 = nn.Linear(16 * pooled * pooled, 64)
        self.fc2 = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        logits: torch.Tensor = self.fc2(x)
        return logits


def fit(
    model: nn.Module,
    data: Split,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    gen: torch.Generator,
    autocast_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    on_step: Callable[[torch.Tensor], None] | None = None,
    on_loss: Callable[[int, float, nn.Module], None] | None = None,
) -> list[float]:
    """Adam on random mini-batches (indices from `gen`); the loss of every step.

    With `autocast_dtype` the forward pass runs under torch.autocast on the data's device;
    with `scaler` the backward pass goes through a GradScaler (fp16 on CUDA). `on_step` sees each
    step's output, `on_loss` each step's index, loss and the model after the update.
    """
    device = data.x_train.device
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses: list[float] = []
    model.train()
    for step in range(steps):
        idx = torch.randint(0, len(data.y_train), (batch_size,), generator=gen).to(device)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            out = model(data.x_train[idx])
            loss = F.cross_entropy(out, data.y_train[idx])
        if on_step is not None:
            on_step(out)
        if scaler is not None:
            scaler.scale(loss).backward()  # type: ignore[no-untyped-call]  # unannotated in torch
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()  # type: ignore[no-untyped-call]  # unannotated in torch
            opt.step()
        losses.append(loss.item())
        if on_loss is not None:
            on_loss(step, losses[-1], model)
    return losses


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    acc: float = (model(x).argmax(dim=1) == y).float().mean().item()
    return acc

"""A tiny model that uses einops, trained by the sample project's tests."""

from __future__ import annotations

import torch
from einops import rearrange
from einops.layers.torch import Rearrange
from tqdm import tqdm


def model(patch: int = 4, classes: int = 3) -> torch.nn.Module:
    """A patch MLP: 16x16 one-channel images cut into patches with einops, then two layers."""
    patches = (16 // patch) ** 2
    return torch.nn.Sequential(
        Rearrange("b c (h p1) (w p2) -> b (h w) (c p1 p2)", p1=patch, p2=patch),
        torch.nn.Linear(patch * patch, 16),
        torch.nn.GELU(),
        torch.nn.Flatten(),
        torch.nn.Linear(patches * 16, classes),
    )


def data(n: int = 96, classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose class is the quadrant that holds a bright square: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    images = 0.1 * torch.randn(n, 1, 16, 16, generator=g)
    for i, label in enumerate(labels.tolist()):
        row, col = divmod(label, 2)
        images[i, 0, row * 8 : row * 8 + 8, col * 8 : col * 8 + 8] += 1.0
    return images, labels


def train(steps: int = 60, seed: int = 0) -> tuple[float, float]:
    """Train on `data`; returns the first and the last loss."""
    torch.manual_seed(seed)
    net, (x, y) = model(), data(seed=seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in tqdm(range(steps), disable=True):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses[0], losses[-1]


def patches_of(images: torch.Tensor, patch: int = 4) -> torch.Tensor:
    return rearrange(images, "b c (h p1) (w p2) -> b (h w) (c p1 p2)", p1=patch, p2=patch)

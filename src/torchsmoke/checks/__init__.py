"""All checks, in the order they run (and `--list` shows them)."""

from __future__ import annotations

from torchsmoke.checks.board import tensorboard
from torchsmoke.checks.compiler import torch_compile
from torchsmoke.checks.deploy import export, quantize
from torchsmoke.checks.distributed import ddp
from torchsmoke.checks.environment import env, expect
from torchsmoke.checks.extras import audio, vision
from torchsmoke.checks.gpu import cuda
from torchsmoke.checks.loader import dataloader
from torchsmoke.checks.numerics import autograd, checkpoint
from torchsmoke.checks.training import amp, cnn, determinism, mlp
from torchsmoke.core import Check

ALL: tuple[Check, ...] = (
    env,
    expect,
    mlp,
    cnn,
    vision,
    audio,
    autograd,
    checkpoint,
    determinism,
    dataloader,
    ddp,
    amp,
    cuda,
    torch_compile,
    quantize,
    export,
    tensorboard,
)
NAMES: tuple[str, ...] = tuple(c.name for c in ALL)
BY_NAME: dict[str, Check] = {c.name: c for c in ALL}
